"""Read ``.espdl`` files and simulate them bit-exactly on the host (numpy only, no torch)."""

from .reader import EspdlModel, Node, Tensor, ValueInfo, load_espdl, read_espdl
from .simulate import Rounding, Simulator, dequantize, quantize, rounding_for_target

__all__ = [
    "EspdlModel",
    "Node",
    "Rounding",
    "Simulator",
    "Tensor",
    "ValueInfo",
    "dequantize",
    "load_espdl",
    "quantize",
    "read_espdl",
    "rounding_for_target",
]
