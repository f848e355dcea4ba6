"""ESP-DL's speech front end (``dl::audio``: Fbank, MFCC, Spectrogram) in numpy, for build-time use.

:class:`FrontendConfig` mirrors ESP-DL's ``SpeechFeatureConfig`` (with its defaults) and validates it;
:class:`StreamingFrontend` turns PCM pieces of any size into feature frames as ESP-DL's
``process_frame`` sequence does; :func:`compute_features` does the same for a whole signal.

:mod:`.declare` makes the front end part of the model declaration (``FRONTEND`` and one option per
setting, in one table: :data:`OPTIONS`); :mod:`.pcm` reads calibration and evaluation audio (WAV files,
folders of them, .npy PCM), resamples it on request and turns it into model inputs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ..errors import FrontendConfigError
from .config import FEATURE_KINDS, WINDOW_TYPES, FeatureKind, FrontendConfig
from .declare import (
    CLI_FLAGS,
    CMAKE_KEYWORDS,
    OPTIONS,
    FrontendDeclaration,
    FrontendOption,
    check_feature_dim,
    parse_frontend,
)

if TYPE_CHECKING:
    from .frontend import FrameProcessor, StreamingFrontend, compute_features, mel_filterbank, window_function
    from .pcm import (
        AudioClips,
        audio_model_input,
        clips_to_model_input,
        load_audio,
        read_pcm_npy,
        read_wav,
        resample_pcm,
        write_wav,
    )

# The numpy modules are imported on first use: the declaration (config, declare) needs only the standard
# library, so a build that hits the cache imports no numpy (python/tests/test_cache.py).
_LAZY = {
    **dict.fromkeys(
        ("FrameProcessor", "StreamingFrontend", "compute_features", "mel_filterbank", "window_function"), "frontend"
    ),
    **dict.fromkeys(
        (
            "AudioClips",
            "audio_model_input",
            "clips_to_model_input",
            "load_audio",
            "read_pcm_npy",
            "read_wav",
            "write_wav",
            "resample_pcm",
        ),
        "pcm",
    ),
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "CLI_FLAGS",
    "CMAKE_KEYWORDS",
    "FEATURE_KINDS",
    "OPTIONS",
    "WINDOW_TYPES",
    "AudioClips",
    "FeatureKind",
    "FrameProcessor",
    "FrontendConfig",
    "FrontendConfigError",
    "FrontendDeclaration",
    "FrontendOption",
    "StreamingFrontend",
    "audio_model_input",
    "check_feature_dim",
    "clips_to_model_input",
    "compute_features",
    "load_audio",
    "mel_filterbank",
    "parse_frontend",
    "read_pcm_npy",
    "read_wav",
    "write_wav",
    "resample_pcm",
    "window_function",
]
