"""One exception hierarchy for the whole package.

Every user mistake is an :class:`EspdlStreamingError`; the CLI prints it as
``error: <message>`` and exits with status 2.  Anything else is a bug and keeps its
traceback (exit status 1).
"""

from __future__ import annotations


class EspdlStreamingError(Exception):
    """A problem the user can fix: bad arguments, inputs, or a model we cannot stream."""


class DeclarationError(EspdlStreamingError):
    """An argument of the declaration (CLI flag or CMake keyword) is invalid."""


class ModelLoadError(EspdlStreamingError):
    """The model file or factory could not be loaded or run."""


class CalibrationError(EspdlStreamingError):
    """The calibration data is missing or of the wrong shape."""


class QuantizeError(EspdlStreamingError):
    """esp-ppq rejected the model or logged an error while converting it."""


class StreamingConversionError(EspdlStreamingError):
    """The model cannot be converted to a correct streaming model (look-ahead, ...)."""


class EspdlFormatError(EspdlStreamingError):
    """An .espdl file is truncated, corrupt or uses a feature we do not read."""


class UnsupportedOpError(EspdlStreamingError):
    """The simulator has no implementation of an operator found in the model."""


class VerificationError(EspdlStreamingError):
    """The streaming model does not compute what the offline model computes."""


class QualityGateError(EspdlStreamingError):
    """The quantized model is further from the float model than MIN_SNR_DB allows, or (STRICT)
    evaluation data saturates a quantized tensor."""


class HostEngineError(EspdlStreamingError):
    """The host engine rejected a model or its input, or could not be built."""


class HostEngineUnavailableError(HostEngineError):
    """A tool needed to build the host engine (CMake, Ninja, a C++ compiler) or its sources are missing."""


class RunError(EspdlStreamingError):
    """A problem with the arguments or files of ``run`` (frames, target, output path)."""


class LockError(EspdlStreamingError):
    """The lock does not hold for the current inputs (or is missing or damaged): exit 2."""


class FrontendConfigError(DeclarationError, ValueError):
    """A speech front-end setting is invalid or is one ESP-DL would silently mis-handle."""


class ReportInputError(Exception):
    """The report file cannot be used (missing, not JSON, not a report); message is for the user."""
