"""Issue 29 (2): `mixbench --help` and `mixbench list` cut no line short."""

from __future__ import annotations

import re

from click.testing import CliRunner

from mixbench.cli import cli
from mixbench.plugin import Plugin


def test_help_shows_every_command_summary_whole():
    out = CliRunner().invoke(cli, ["--help"], terminal_width=80).output
    commands = out.split("Commands:")[1]
    assert "..." not in commands and "(Table 1, the Fig.\n" not in commands
    flat = " ".join(commands.split())
    for name, command in cli.commands.items():
        if command.hidden:
            continue
        assert command.short_help and command.short_help.endswith("."), name
        assert f"{name} {command.short_help}" in flat, (name, flat)


def test_list_prints_whole_first_sentences_wrapped_at_100_columns():
    from mixbench import registry

    out = CliRunner().invoke(cli, ["list"]).output
    flat = " ".join(out.split())
    for reg in (registry.embedders, registry.k_rules, registry.strategies):
        for entry in reg.entries():
            summary = entry.obj.summary()
            assert summary.endswith((".", ".)", "!", "?")), (entry.name, summary)
            assert " ".join(summary.split()) in flat, entry.name
    assert "minilm's fast mode: only the first max_tokens word pieces of each example are embedded." in flat
    section = re.search(r"^embedders:\n(.*?)(?=^tasks:)", out, re.M | re.S).group(1)
    assert all(len(line) <= 100 for line in section.splitlines())


def test_a_summary_runs_to_the_end_of_its_first_sentence():
    class Wrapped(Plugin):
        """A summary that runs over
        two lines, then stops.

        More detail."""

    class OneLine(Plugin):
        """Short and whole.
        Then a second sentence."""

    assert Wrapped.summary() == "A summary that runs over two lines, then stops."
    assert OneLine.summary() == "Short and whole."
