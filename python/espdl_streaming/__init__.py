"""espdl_streaming: one declaration from a PyTorch/ONNX model to a verified ESP-DL streaming model.

The package quantizes a model with esp-ppq, converts it to a streaming model, proves by
host simulation that every streaming chunk equals the offline model bit for bit, and
generates a typed C++ class over the component's runtime.
"""

from ._version import __version__

__all__ = ["__version__"]
