"""ESP-DL's speech front end (``dl::audio``: Fbank, MFCC, Spectrogram) in numpy, for build-time use.

:class:`FrontendConfig` mirrors ESP-DL's ``SpeechFeatureConfig`` (with its defaults) and validates it;
:class:`StreamingFrontend` turns PCM pieces of any size into feature frames as ESP-DL's
``process_frame`` sequence does; :func:`compute_features` does the same for a whole signal.
"""

from __future__ import annotations

from ..errors import FrontendConfigError
from .config import FEATURE_KINDS, WINDOW_TYPES, FeatureKind, FrontendConfig
from .frontend import FrameProcessor, StreamingFrontend, compute_features, mel_filterbank, window_function

__all__ = [
    "FEATURE_KINDS",
    "WINDOW_TYPES",
    "FeatureKind",
    "FrameProcessor",
    "FrontendConfig",
    "FrontendConfigError",
    "StreamingFrontend",
    "compute_features",
    "mel_filterbank",
    "window_function",
]
