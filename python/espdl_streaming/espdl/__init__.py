"""Read ``.espdl`` files and simulate them bit-exactly on the host (numpy only, no torch)."""

from ..facts import Rounding, rounding_for_target
from .ops.kernels import dequantize_values, quantize_values
from .reader import EspdlModel, Node, Tensor, ValueInfo, load_espdl, read_espdl
from .simulator import LoopedSimulator, Simulator
from .state import StateLoop, encode_initial_state, initial_states, is_state_input, is_state_output, state_pairs

__all__ = [
    "EspdlModel",
    "LoopedSimulator",
    "Node",
    "Rounding",
    "Simulator",
    "StateLoop",
    "Tensor",
    "ValueInfo",
    "dequantize_values",
    "encode_initial_state",
    "initial_states",
    "is_state_input",
    "is_state_output",
    "load_espdl",
    "quantize_values",
    "read_espdl",
    "rounding_for_target",
    "state_pairs",
]
