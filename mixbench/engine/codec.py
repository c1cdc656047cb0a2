"""Run state as a checkpoint holds it: tensors and plain data only, so a checkpoint loads with
`torch.load(path, weights_only=True)` and reading one never runs pickled code.

A strategy's learned state (its attributes ending in `_`) may hold numpy arrays and scalars,
Mixtures and numpy generators besides plain data. `encode` turns each into a tagged dict of
tensors and plain values; `decode` turns it back, bit for bit. Anything else (a class of the
strategy's own, say) is refused by name: rebuilding it would mean importing code a file names.
"""

from __future__ import annotations

import numpy as np
import torch

from mixbench.errors import MixbenchError
from mixbench.mixture import Mixture

TAG = "__mixbench__"   # marks an encoded value; a plain dict holding this key is encoded too
# torch has no unsigned integers wider than 8 bits: those travel as the signed type of their width.
_SIGNED_VIEW = {np.dtype(np.uint16): np.int16, np.dtype(np.uint32): np.int32, np.dtype(np.uint64): np.int64}


class UnsavableState(MixbenchError, TypeError):
    """A value a checkpoint cannot hold; the message names where it is."""


def encode(value, where: str = "state"):
    """`value` as tensors and plain data; `where` names it in an error."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, torch.Tensor):
        return {TAG: "tensor", "data": value.detach().cpu().clone(), "device": str(value.device)}
    if isinstance(value, Mixture):
        return {TAG: "mixture", "weights": torch.from_numpy(value.weights.copy())}
    if isinstance(value, np.random.Generator):
        return {TAG: "generator", "state": encode(value.bit_generator.state, where)}
    if isinstance(value, np.random.RandomState):
        return {TAG: "random_state", "state": encode(value.get_state(legacy=False), where)}
    if isinstance(value, np.generic):
        return {TAG: "scalar", "array": encode(np.asarray(value), where)}
    if isinstance(value, np.ndarray):
        return _encode_array(value, where)
    if isinstance(value, list):
        return [encode(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, tuple):
        return {TAG: "tuple", "items": [encode(v, f"{where}[{i}]") for i, v in enumerate(value)]}
    if isinstance(value, (set, frozenset)):
        return {TAG: type(value).__name__, "items": [encode(v, where) for v in value]}
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value) and TAG not in value:
            return {k: encode(v, f"{where}.{k}") for k, v in value.items()}
        return {TAG: "dict", "items": [[encode(k, where), encode(v, f"{where}[{k!r}]")] for k, v in value.items()]}
    raise UnsavableState(f"{where} is a {type(value).__module__}.{type(value).__qualname__}, which a checkpoint "
                         f"cannot hold (tensors, numpy arrays and generators, Mixtures and plain data only)")


def decode(value):
    """The inverse of `encode`."""
    if isinstance(value, list):
        return [decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    kind = value.get(TAG)
    if kind is None:
        return {k: decode(v) for k, v in value.items()}
    if kind == "tensor":
        return value["data"].to(value["device"]) if value["device"] != "cpu" else value["data"]
    if kind == "mixture":
        return Mixture.exact(value["weights"].numpy())
    if kind == "generator":
        state = decode(value["state"])
        generator = np.random.Generator(getattr(np.random, state["bit_generator"])())
        generator.bit_generator.state = state
        return generator
    if kind == "random_state":
        random_state = np.random.RandomState()
        random_state.set_state(decode(value["state"]))
        return random_state
    if kind == "scalar":
        return decode(value["array"])[()]
    if kind == "ndarray":
        return _decode_array(value)
    if kind == "tuple":
        return tuple(decode(v) for v in value["items"])
    if kind in ("set", "frozenset"):
        return {"set": set, "frozenset": frozenset}[kind](decode(v) for v in value["items"])
    if kind == "dict":
        return {decode(k): decode(v) for k, v in value["items"]}
    raise ValueError(f"unknown encoded value {kind!r}")


def _encode_array(array: np.ndarray, where: str) -> dict:
    if array.dtype.kind in "biufc":   # numbers and booleans: a tensor of the very same bits
        if not array.dtype.isnative:
            array = array.astype(array.dtype.newbyteorder("="))
        data = np.ascontiguousarray(array)
        data = data.view(_SIGNED_VIEW.get(data.dtype, data.dtype))
        return {TAG: "ndarray", "dtype": array.dtype.str, "data": torch.from_numpy(data.copy())}
    if array.dtype.kind in "USO":   # text, or arrays of Python objects
        return {TAG: "ndarray", "dtype": array.dtype.str, "shape": list(array.shape),
                "items": [encode(v, where) for v in array.reshape(-1).tolist()]}
    raise UnsavableState(f"{where} is a numpy array of {array.dtype}, which a checkpoint cannot hold")


def _decode_array(value: dict) -> np.ndarray:
    dtype = np.dtype(value["dtype"])
    if "data" in value:
        return value["data"].numpy().view(dtype).copy()
    items = [decode(v) for v in value["items"]]
    if dtype.kind == "O":
        array = np.empty(len(items), dtype=object)
        array[:] = items
        return array.reshape(value["shape"])
    return np.array(items, dtype=dtype).reshape(value["shape"])
