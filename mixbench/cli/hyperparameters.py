"""A strategy's hyperparameters from the command line: `--NAME VALUE` for each keyword-only
constructor parameter, typed by its default, parsed by click like every other option."""

from __future__ import annotations

import inspect

import click

from mixbench.config import option
from mixbench.errors import MixbenchError
from mixbench.strategy import MixingStrategy


def parse_hyperparameters(algo: str, strategy_cls: type[MixingStrategy], args: list[str]) -> dict:
    """The keyword arguments `args` give for `strategy_cls`; unknown or ill-typed ones are a
    MixbenchError naming the option."""
    defaults = strategy_cls.param_defaults()
    params = [click.Option([f"--{option(name)}", name], type=_type_of(default), default=None)
              for name, default in defaults.items()]
    command = click.Command(algo, params=params, add_help_option=False)
    try:
        parsed = command.make_context(algo, list(args)).params
    except click.NoSuchOption as exc:
        known = ", ".join(f"--{option(k)}" for k in defaults) or "none"
        raise MixbenchError(f"no such option {exc.option_name} (run options: see --help; {algo} hyperparameters: "
                            f"{known})") from None
    except click.BadParameter as exc:
        raise MixbenchError(exc.format_message()) from None
    except click.UsageError as exc:
        raise MixbenchError(exc.format_message()) from None
    return {name: value for name, value in parsed.items() if value is not None}


def _type_of(default):
    """bool, int, float or str: the type of the default (str when there is none)."""
    if default is None or default is inspect.Parameter.empty:
        return str
    return type(default) if isinstance(default, (bool, int, float)) else str


def parse_param_specs(specs: tuple[str, ...], algos: list[str]) -> dict[str, dict]:
    """`--param ALGO.NAME=VALUE` options → {algo: {name: value}}, typed and checked like `run`'s
    hyperparameter options."""
    from mixbench import registry

    args: dict[str, list[str]] = {}
    for spec in specs:
        head, eq, value = spec.partition("=")
        algo, dot, name = head.partition(".")
        if not (eq and dot and algo and name):
            raise MixbenchError(f"--param takes ALGO.NAME=VALUE (e.g. aioli.eta=0.2), got {spec!r}")
        if algo not in algos:
            raise MixbenchError(f"--param {spec!r}: {algo!r} is not among --algos ({', '.join(algos)})")
        args.setdefault(algo, []).extend([f"--{option(name)}", value])
    return {algo: parse_hyperparameters(algo, registry.strategies.get(algo), a) for algo, a in args.items()}
