"""Recurrent state carried across chunks: the one implementation every host-side runner uses.

A streaming model with GRU/LSTM layers has extra inputs ``state_in_<k>`` and outputs
``state_out_<k>`` (see recurrent_state.py).  Before the first chunk (and after a reset) the
state inputs hold the initial state; after every chunk they get the raw integers of the state
outputs, exactly what the generated C++ class does (stream_runner::copy_state).

Two facts travel in the model file's metadata, so that every runner (the verifier, ``run``, the
C++ host engine's espdl_run, the generated class) reads them from one place:

* ``espdl_streaming.state_initial.<k>``: the raw integers (little-endian, hex) ``state_in_<k>``
  holds before the first chunk (a learned initial state); absent means zeros;
* ``espdl_streaming.state_output.<k>``: the output that carries the last state when it is not
  ``state_out_<k>``: a last state the user's model itself returns keeps the user's output name
  (it is then both a user output and the state the glue loops back).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np

from ..errors import EspdlFormatError
from ..facts import META_STATE_INITIAL, META_STATE_OUTPUT, STATE_INPUT_PREFIX, STATE_OUTPUT_PREFIX
from .reader import EspdlModel, ValueInfo

_STATE_IN = re.compile(re.escape(STATE_INPUT_PREFIX) + "(.+)")
_STATE_OUT = re.compile(re.escape(STATE_OUTPUT_PREFIX) + "(.+)")


def is_state_input(name: str) -> bool:
    return _STATE_IN.fullmatch(name) is not None


def is_state_output(name: str) -> bool:
    """A state-only output (``state_out_<k>``): not a user output."""
    return _STATE_OUT.fullmatch(name) is not None


def _order(key: str) -> tuple[int, str]:
    return (int(key), key) if key.isdigit() else (1 << 30, key)


def state_pairs(model: EspdlModel, source: str) -> list[tuple[ValueInfo, ValueInfo]]:
    """The (state_in_k, state_out_k) pairs of a model in k order; an unpaired one, or a pair whose
    dtype or element count differ, is an EspdlFormatError naming `source`."""
    ins = {m.group(1): v for v in model.inputs if (m := _STATE_IN.fullmatch(v.name))}
    by_name = {v.name: v for v in model.outputs}
    outs = {m.group(1): v for v in model.outputs if (m := _STATE_OUT.fullmatch(v.name))}
    for key in ins:
        named = model.metadata.get(META_STATE_OUTPUT + key)
        if named is not None:
            if named not in by_name:
                raise EspdlFormatError(
                    f"{source}: the metadata names output '{named}' as the last state of 'state_in_{key}', but the "
                    "model has no such output"
                )
            outs[key] = by_name[named]
    for key in sorted(set(ins) ^ set(outs)):
        have, missing = ("in", "out") if key in ins else ("out", "in")
        raise EspdlFormatError(
            f"{source}: the model has 'state_{have}_{key}' but no 'state_{missing}_{key}': recurrent state comes in "
            "pairs (state_out_K is copied into state_in_K after every chunk)"
        )
    pairs = []
    for key in sorted(ins, key=_order):
        i, o = ins[key], outs[key]
        if i.dtype != o.dtype or int(np.prod(i.shape)) != int(np.prod(o.shape)):
            raise EspdlFormatError(
                f"{source}: state output '{o.name}' is {o.dtype} {list(o.shape)}, but state input '{i.name}' takes "
                f"{i.dtype} {list(i.shape)}: the model cannot loop its state back"
            )
        pairs.append((i, o))
    return pairs


def initial_states(model: EspdlModel, pairs: list[tuple[ValueInfo, ValueInfo]], source: str) -> dict[str, np.ndarray]:
    """The learned initial states the model records, by state input (states absent here start at zero)."""
    state = {}
    for i, _ in pairs:
        key = i.name[len(STATE_INPUT_PREFIX) :]
        text = model.metadata.get(META_STATE_INITIAL + key)
        if text is None:
            continue
        try:
            raw = bytes.fromhex(text)
        except ValueError as exc:
            raise EspdlFormatError(f"{source}: the initial state of '{i.name}' in the metadata is not hex") from exc
        want = int(np.prod(i.shape)) * np.dtype(i.dtype).itemsize
        if len(raw) != want:
            raise EspdlFormatError(
                f"{source}: the initial state of '{i.name}' holds {len(raw)} bytes, the input takes {want}"
            )
        state[i.name] = np.frombuffer(raw, dtype=np.dtype(i.dtype).newbyteorder("<")).astype(i.dtype).reshape(i.shape)
    return state


def encode_initial_state(raw: np.ndarray) -> str:
    """The metadata text of an initial state's raw integers (little-endian hex)."""
    return np.ascontiguousarray(raw, dtype=raw.dtype.newbyteorder("<")).tobytes().hex()


class StateLoop:
    """What the state inputs hold for the next chunk."""

    def __init__(self, pairs: list[tuple[ValueInfo, ValueInfo]], start: Mapping[str, np.ndarray] | None = None) -> None:
        self.pairs = pairs
        self.start = dict(start or {})

    @classmethod
    def of(cls, model: EspdlModel, source: str) -> StateLoop:
        pairs = state_pairs(model, source)
        return cls(pairs, initial_states(model, pairs, source))

    def initial(self) -> dict[str, np.ndarray]:
        """The state inputs of the first chunk (and after a reset): the initial state, zeros if none."""
        return {
            i.name: self.start[i.name].copy() if i.name in self.start else np.zeros(i.shape, dtype=i.dtype)
            for i, _ in self.pairs
        }

    def next(self, outputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The state inputs of the next chunk: the raw integers of this chunk's state outputs."""
        state = {}
        for i, o in self.pairs:
            raw = np.asarray(outputs[o.name])
            if raw.size != int(np.prod(i.shape)) or str(raw.dtype) != i.dtype:
                raise EspdlFormatError(
                    f"state output '{o.name}' is {raw.dtype} {list(raw.shape)}, but state input '{i.name}' takes "
                    f"{i.dtype} {list(i.shape)}: the model cannot loop its state back"
                )
            state[i.name] = raw.reshape(i.shape).copy()
        return state
