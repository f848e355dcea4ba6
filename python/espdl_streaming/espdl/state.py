"""Recurrent state carried across chunks: the one implementation every host-side runner uses.

A streaming model with GRU/LSTM layers has extra inputs ``state_in_<k>`` and outputs
``state_out_<k>`` (see recurrent_state.py).  Before the first chunk (and after a reset) the
state inputs hold zeros; after every chunk they get the raw integers of the state outputs,
exactly what the generated C++ class does (stream_runner::copy_state).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from ..errors import EspdlFormatError
from .reader import EspdlModel, ValueInfo

if TYPE_CHECKING:
    from .simulate import Rounding

STATE_INPUT_PREFIX = "state_in_"
STATE_OUTPUT_PREFIX = "state_out_"
_STATE_IN = re.compile(re.escape(STATE_INPUT_PREFIX) + "(.+)")
_STATE_OUT = re.compile(re.escape(STATE_OUTPUT_PREFIX) + "(.+)")


def is_state_input(name: str) -> bool:
    return _STATE_IN.fullmatch(name) is not None


def is_state_output(name: str) -> bool:
    return _STATE_OUT.fullmatch(name) is not None


def _order(key: str) -> tuple[int, str]:
    return (int(key), key) if key.isdigit() else (1 << 30, key)


def state_pairs(model: EspdlModel, source: str) -> list[tuple[ValueInfo, ValueInfo]]:
    """The (state_in_k, state_out_k) pairs of a model in k order; an unpaired one, or a pair whose
    dtype or element count differ, is an EspdlFormatError naming `source`."""
    ins = {m.group(1): v for v in model.inputs if (m := _STATE_IN.fullmatch(v.name))}
    outs = {m.group(1): v for v in model.outputs if (m := _STATE_OUT.fullmatch(v.name))}
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


class StateLoop:
    """What the state inputs hold for the next chunk."""

    def __init__(self, pairs: list[tuple[ValueInfo, ValueInfo]]) -> None:
        self.pairs = pairs

    def initial(self) -> dict[str, np.ndarray]:
        """The state inputs of the first chunk: zeros."""
        return {i.name: np.zeros(i.shape, dtype=i.dtype) for i, _ in self.pairs}

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


class LoopedSimulator:
    """A Simulator that carries the recurrent state from run to run; reset() zeroes it with the caches."""

    def __init__(self, model: EspdlModel, rounding: Rounding, source: str = "<model>") -> None:
        from .simulate import Simulator  # simulate.py imports this module's predicates

        self.sim = Simulator(model, rounding)
        self.loop = StateLoop(state_pairs(model, source))
        self.state = self.loop.initial()

    def reset(self) -> None:
        self.sim.reset()
        self.state = self.loop.initial()

    def run(self, inputs: Mapping[str, np.ndarray], *, trace: bool = False) -> dict[str, np.ndarray]:
        out = self.sim.run({**inputs, **self.state}, trace=trace)
        self.state = self.loop.next(out)
        return out
