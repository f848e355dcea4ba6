"""The speech front end as part of the model declaration: ``FRONTEND fbank|mfcc|spectrogram`` and its options.

:data:`OPTIONS` is the one table of the front-end options: per option its CMake keyword, its CLI flag
(``--frontend-<keyword in lowercase with dashes>``), the :class:`~.config.FrontendConfig` field it sets,
its type, its default (``FrontendConfig``'s, i.e. ESP-DL's ``SpeechFeatureConfig``'s), the front ends
that read it and its help text.  The CLI (:func:`add_cli_arguments`), the CMake keyword list
(:data:`CMAKE_KEYWORDS`) and the README table (:func:`markdown_table`) are generated from it or checked
against it.

:func:`parse_frontend` turns the flat ``{option: text}`` mapping that CMake keywords and CLI flags give
(keys may be spelled as the CMake keyword, the CLI flag or the argparse ``dest``; ``None`` values are
"not given") into a :class:`FrontendDeclaration`, or ``None`` when no front end is declared.  Every
error names the option in both spellings, the bad value and the fix; the checks are those of
:meth:`FrontendConfig.validate` (its messages reworded to name the options) plus the ones only a
declaration can make: an option the chosen front end does not read, a value that is not a number, a
dither other than 0.  :func:`check_feature_dim` checks the model's input against the front end's output.

ESP-DL's ``SpeechFeatureConfig`` has one more field, ``use_int16_fft``, that no ESP-DL 3.3 class reads
(``FrontendConfig.validate`` requires it off); it has no option.  ESP-DL accepts any ``int`` sample rate;
the front end needs every frame length and shift to be whole samples (so 8000, 16000, 32000, 48000, ...,
not 44100 or 22050 with the default 25/10 ms frames) and an even rate: :meth:`FrontendConfig.validate`
says so.
"""

from __future__ import annotations

import argparse
import difflib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Literal

from ..errors import DeclarationError, FrontendConfigError
from .config import FEATURE_KINDS, FLT_EPSILON, WINDOW_TYPES, FeatureKind, FrontendConfig

OptionType = Literal["kind", "int", "float", "bool", "choice", "log_mode"]

#: LOG_MODE values: ESP-DL's ``use_log_fbank`` 0, 1, 2 by name (the numbers are accepted too).
LOG_MODES: dict[str, int] = {"linear": 0, "max": 1, "add": 2}
_LOG_MODE_NAMES = {v: k for k, v in LOG_MODES.items()}
_TRUE = ("on", "true", "yes", "y", "1")
_FALSE = ("off", "false", "no", "n", "0")
_MEL_KINDS: tuple[FeatureKind, ...] = ("fbank", "mfcc")
_ALL_KINDS: tuple[FeatureKind, ...] = ("fbank", "mfcc", "spectrogram")


@dataclass(frozen=True)
class FrontendOption:
    """One front-end option of the declaration (a row of :data:`OPTIONS`)."""

    key: str  # the CMake keyword, e.g. SAMPLE_RATE
    field: str | None  # the FrontendConfig field it sets (None: a declaration-only option)
    type: OptionType
    help: str
    kinds: tuple[FeatureKind, ...] = _ALL_KINDS  # the front ends that read it
    choices: tuple[str, ...] = ()
    metavar: str = ""
    default_text: str | None = None  # for options without a FrontendConfig field

    @property
    def flag(self) -> str:
        """The CLI flag: ``--frontend`` for FRONTEND, else ``--frontend-`` + the keyword in lowercase with dashes."""
        return "--frontend" if self.key == "FRONTEND" else "--frontend-" + self.key.lower().replace("_", "-")

    @property
    def dest(self) -> str:
        """The argparse destination of :attr:`flag` (``frontend_sample_rate``)."""
        return self.flag[2:].replace("-", "_")

    @property
    def default(self) -> Any:
        """The default value (FrontendConfig's, which are ESP-DL's), or None for FRONTEND (no front end)."""
        if self.field is None or self.field == "kind":
            return None
        return getattr(FrontendConfig(), self.field)

    @property
    def default_display(self) -> str:
        """The default as one would write it in CMake."""
        if self.default_text is not None:
            return self.default_text
        return "-" if self.default is None else format_value(self, self.default)

    @property
    def names(self) -> str:
        """Both spellings, as errors name the option: ``SAMPLE_RATE (--frontend-sample-rate)``."""
        return f"{self.key} ({self.flag})"


def format_value(option: FrontendOption, value: Any) -> str:
    """A value as it is written in a declaration (ON/OFF, LOG_MODE names, ``%g`` numbers)."""
    if option.type == "bool":
        return "ON" if value else "OFF"
    if option.type == "log_mode" and isinstance(value, int) and value in _LOG_MODE_NAMES:
        return _LOG_MODE_NAMES[value]
    if isinstance(value, float):
        return repr(value) if value != int(value) else f"{value:g}"
    return str(value)


#: The front-end options, in the order the README lists them.
OPTIONS: tuple[FrontendOption, ...] = (
    FrontendOption(
        "FRONTEND",
        "kind",
        "kind",
        "The speech front end computing the model's input frames from PCM (ESP-DL's dl::audio::Fbank, MFCC or "
        "Spectrogram); without it the model takes feature frames computed elsewhere",
        choices=FEATURE_KINDS,
        metavar="fbank|mfcc|spectrogram",
    ),
    FrontendOption(
        "SAMPLE_RATE",
        "sample_rate",
        "int",
        "PCM sample rate in Hz (even, and every frame length and shift a whole number of samples)",
        metavar="HZ",
    ),
    FrontendOption("FRAME_LENGTH_MS", "frame_length", "int", "Frame (window) length in ms", metavar="MS"),
    FrontendOption(
        "FRAME_SHIFT_MS",
        "frame_shift",
        "int",
        "Frame shift in ms (<= FRAME_LENGTH_MS): one model input frame per shift",
        metavar="MS",
    ),
    FrontendOption(
        "NUM_MEL_BINS",
        "num_mel_bins",
        "int",
        "Mel filters (fbank: the feature dimension, plus 1 with USE_ENERGY)",
        kinds=_MEL_KINDS,
        metavar="N",
    ),
    FrontendOption(
        "NUM_CEPS",
        "num_ceps",
        "int",
        "Cepstral coefficients (the MFCC feature dimension, plus 1 with USE_ENERGY), <= NUM_MEL_BINS",
        kinds=("mfcc",),
        metavar="N",
    ),
    FrontendOption(
        "CEPSTRAL_LIFTER",
        "cepstral_lifter",
        "float",
        "Cepstral lifter coefficient Q (0: no lifter)",
        kinds=("mfcc",),
        metavar="Q",
    ),
    FrontendOption("PREEMPHASIS", "preemphasis", "float", "Pre-emphasis coefficient in [0, 1) (0: none)", metavar="K"),
    FrontendOption(
        "WINDOW",
        "window_type",
        "choice",
        "Window function (ESP-DL's names; hann is the periodic Hann window, hanning the symmetric one)",
        choices=WINDOW_TYPES,
        metavar="|".join(WINDOW_TYPES),
    ),
    FrontendOption(
        "LOW_FREQ",
        "low_freq",
        "float",
        "Lower edge of the mel filters in whole Hz",
        kinds=_MEL_KINDS,
        metavar="HZ",
    ),
    FrontendOption(
        "HIGH_FREQ",
        "high_freq",
        "float",
        "Upper edge of the mel filters in whole Hz (0: the Nyquist frequency; not Kaldi's negative offsets)",
        kinds=_MEL_KINDS,
        metavar="HZ",
    ),
    FrontendOption(
        "LOG_MODE",
        "use_log_fbank",
        "log_mode",
        "Mel energies as: linear (0), max = log(max(x, LOG_EPSILON)) (1), add = log(x + LOG_EPSILON) (2)"
        " (ESP-DL's use_log_fbank; MFCC and spectrogram always use max)",
        kinds=("fbank",),
        choices=tuple(LOG_MODES),
        metavar="linear|max|add",
    ),
    FrontendOption("LOG_EPSILON", "log_epsilon", "float", "The floor of the logarithms (> 0)", metavar="EPS"),
    FrontendOption(
        "USE_ENERGY",
        "use_energy",
        "bool",
        "Prepend the frame's log energy to the features (one more feature)",
        kinds=_MEL_KINDS,
        metavar="ON|OFF",
    ),
    FrontendOption(
        "RAW_ENERGY",
        "raw_energy",
        "bool",
        "Energy before pre-emphasis and window (ON) or after (OFF)",
        metavar="ON|OFF",
    ),
    FrontendOption(
        "USE_POWER",
        "use_power",
        "bool",
        "Power spectrum (ON) or magnitude spectrum (OFF) (MFCC and spectrogram always use power)",
        kinds=("fbank",),
        metavar="ON|OFF",
    ),
    FrontendOption(
        "REMOVE_DC_OFFSET",
        "remove_dc_offset",
        "bool",
        "Subtract each frame's mean before anything else",
        metavar="ON|OFF",
    ),
    FrontendOption(
        "DITHER",
        None,
        "float",
        "Must be 0: ESP-DL's front end has no dither (it is deterministic); train with dither 0 to match it",
        metavar="0",
        default_text="0",
    ),
    FrontendOption(
        "RESAMPLE",
        None,
        "bool",
        "Resample calibration and evaluation audio recorded at another rate to SAMPLE_RATE (windowed-sinc, "
        "espdl_streaming.audio.pcm.resample_pcm) instead of refusing it",
        metavar="ON|OFF",
        default_text="OFF",
    ),
)

BY_KEY: dict[str, FrontendOption] = {o.key: o for o in OPTIONS}
BY_FIELD: dict[str, FrontendOption] = {o.field: o for o in OPTIONS if o.field is not None}
#: The CMake keywords of the front end (each takes one value).
CMAKE_KEYWORDS: tuple[str, ...] = tuple(o.key for o in OPTIONS)
#: The CLI flags of the front end (each takes one value).
CLI_FLAGS: tuple[str, ...] = tuple(o.flag for o in OPTIONS)
_ALIASES: dict[str, FrontendOption] = {
    **{o.key: o for o in OPTIONS},
    **{o.flag: o for o in OPTIONS},
    **{o.dest: o for o in OPTIONS},
}
_CLASS_NAMES = {"fbank": "Fbank", "mfcc": "MFCC", "spectrogram": "Spectrogram"}


@dataclass(frozen=True)
class FrontendDeclaration:
    """A declared, validated front end: ESP-DL's configuration and how to treat audio at another rate."""

    config: FrontendConfig
    resample: bool = False
    given: tuple[str, ...] = ()  # the CMake keywords given explicitly, in OPTIONS order

    @property
    def feature_dim(self) -> int:
        return self.config.feature_dim

    def options(self) -> dict[str, str]:
        """Every option with its value (given or default) as text: a declaration that gives this back."""
        out: dict[str, str] = {}
        for o in OPTIONS:
            if o.key == "RESAMPLE":
                out[o.key] = format_value(o, self.resample)
            elif o.field is not None:
                out[o.key] = format_value(o, getattr(self.config, o.field))
            else:
                out[o.key] = o.default_display
        return out


def _fail(name: str | None, what: str) -> FrontendConfigError:
    return FrontendConfigError(f"{name}: {what}" if name else what)


def _lookup(key: str, name: str | None) -> FrontendOption:
    option = _ALIASES.get(key)
    if option is not None:
        return option
    upper = key.upper().lstrip("-").replace("-", "_")
    if upper.startswith("FRONTEND_") and upper[len("FRONTEND_") :] in BY_KEY:
        upper = upper[len("FRONTEND_") :]
    hint = ""
    if upper in BY_KEY:
        hint = f": did you mean {BY_KEY[upper].names}?"
    else:
        close = difflib.get_close_matches(upper, list(BY_KEY), n=1, cutoff=0.6)
        if close:
            hint = f": did you mean {BY_KEY[close[0]].names}?"
        else:
            hint = f": the front-end options are {', '.join(CMAKE_KEYWORDS)}"
    raise _fail(name, f"'{key}' is not a front-end option{hint}")


def _parse_value(option: FrontendOption, text: str, name: str | None) -> Any:
    t = text.strip()

    def bad(why: str) -> FrontendConfigError:
        return _fail(name, f"{option.names} '{text}': {why}")

    if option.type in ("kind", "choice"):
        low = t.lower()
        if low not in option.choices:
            close = difflib.get_close_matches(low, list(option.choices), n=1)
            did = f" (did you mean {close[0]}?)" if close else ""
            raise bad(f"use one of {', '.join(option.choices)}{did}")
        return low
    if option.type == "bool":
        low = t.lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise bad("is not a switch: use ON or OFF (TRUE/FALSE, YES/NO, 1/0)")
    if option.type == "log_mode":
        low = t.lower()
        if low in LOG_MODES:
            return LOG_MODES[low]
        if low in ("0", "1", "2"):
            return int(low)
        raise bad("use linear, max or add (ESP-DL's use_log_fbank 0, 1 or 2)")
    if option.type == "int":
        if not re.fullmatch(r"[+-]?[0-9]+", t):
            example = option.default_display
            raise bad(f"must be a whole number (e.g. {example}{' Hz' if option.metavar == 'HZ' else ''})")
        return int(t)
    try:
        value = float(t)
    except ValueError:
        raise bad(f"must be a number (e.g. {option.default_display})") from None
    if not math.isfinite(value):
        raise bad("must be a finite number")
    return value


def _translate(exc: FrontendConfigError, texts: Mapping[str, str], name: str | None) -> FrontendConfigError:
    """FrontendConfig.validate()'s message with option names for field names and the user's text for values."""
    message = str(exc)
    m = re.match(r"front end (\w+)=(.*?): (.*)\Z", message, re.S)
    if not m or m.group(1) not in BY_FIELD:
        return _fail(name, message)
    option = BY_FIELD[m.group(1)]
    if option.key in texts:
        value = f"'{texts[option.key]}'"
    else:
        value = f"{format_value(option, _literal(m.group(2)))} (the default)"
    why = m.group(3)
    for field, opt in BY_FIELD.items():
        why = re.sub(rf"\b{field}=(\S+?)(?=[\s,)\]]|$)", lambda v, o=opt: f"{o.key} {_shown(o, v.group(1))}", why)
        if "_" in field:
            why = re.sub(rf"\b{field}\b", opt.key, why)
    return _fail(name, f"{option.names} {value}: {why}")


def _literal(text: str) -> Any:
    text = text.strip()
    if text in ("True", "False"):
        return text == "True"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text.strip("'\"")


def _shown(option: FrontendOption, text: str) -> str:
    return format_value(option, _literal(text))


def parse_frontend(
    options: Mapping[str, Any], name: str | None = None, *, filters: bool = True
) -> FrontendDeclaration | None:
    """The front end a declaration's options describe, validated; None when FRONTEND is not given.

    ``options`` maps option names (CMake keyword ``SAMPLE_RATE``, CLI flag ``--frontend-sample-rate`` or
    argparse dest ``frontend_sample_rate``) to their text; ``None`` means not given (argparse's default).
    ``name`` (the model's name) prefixes every error, as the other declaration errors are.
    ``filters=False`` leaves out the mel-filter checks (they need numpy; :func:`check_filters` makes them).
    Raises :class:`FrontendConfigError` (a :class:`~..errors.DeclarationError`).
    """
    texts: dict[str, str] = {}
    spelled: dict[str, str] = {}
    for raw_key, raw_value in options.items():
        option = _lookup(str(raw_key), name)
        if raw_value is None:
            continue
        if isinstance(raw_value, (list, tuple)):
            if len(raw_value) != 1:
                raise _fail(name, f"{option.names} takes one value, got {len(raw_value)}: {' '.join(raw_value)}")
            raw_value = raw_value[0]
        if isinstance(raw_value, bool):
            raw_value = "ON" if raw_value else "OFF"
        if option.key in texts:
            raise _fail(name, f"{option.names} is given twice (as {spelled[option.key]} and {raw_key}): give it once")
        texts[option.key] = str(raw_value)
        spelled[option.key] = str(raw_key)
    if "FRONTEND" not in texts:
        if texts:
            listed = ", ".join(BY_KEY[k].names for k in texts)
            raise _fail(
                name,
                f"{listed} given without FRONTEND (--frontend): add FRONTEND fbank, mfcc or spectrogram, "
                "or remove the front-end options",
            )
        return None
    values: dict[str, Any] = {k: _parse_value(BY_KEY[k], t, name) for k, t in texts.items()}
    kind: FeatureKind = values["FRONTEND"]
    for key in texts:
        option = BY_KEY[key]
        if kind not in option.kinds:
            readers = " and ".join(f"FRONTEND {k}" for k in option.kinds)
            raise _fail(
                name,
                f"{option.names} '{texts[key]}': ESP-DL's {_CLASS_NAMES[kind]} (FRONTEND {kind}) does not use it "
                f"(only {readers} {'do' if len(option.kinds) > 1 else 'does'}): remove it",
            )
    if "DITHER" in values and values["DITHER"] != 0.0:
        raise _fail(
            name,
            f"{BY_KEY['DITHER'].names} '{texts['DITHER']}': ESP-DL's front end has no dither (its features are "
            "deterministic); remove DITHER or give 0, and train the model on features computed with dither 0 "
            "(Kaldi / torchaudio: dither=0.0) so that they match the chip's",
        )
    config_fields: dict[str, Any] = {}
    for key, value in values.items():
        field = BY_KEY[key].field
        if field is not None:
            config_fields[field] = value
    config = FrontendConfig(**config_fields)
    try:
        config.validate(filters=filters)
    except FrontendConfigError as exc:
        raise _translate(exc, texts, name) from None
    given = tuple(o.key for o in OPTIONS if o.key in texts)
    return FrontendDeclaration(config, bool(values.get("RESAMPLE", False)), given)


def check_filters(frontend: FrontendDeclaration, name: str | None = None) -> None:
    """The checks ``parse_frontend(..., filters=False)`` left out (the mel filters; imports numpy), with the
    errors :func:`parse_frontend` gives."""
    try:
        frontend.config.validate()
    except FrontendConfigError as exc:
        shown = frontend.options()
        raise _translate(exc, {k: shown[k] for k in frontend.given}, name) from None


# ---------------------------------------------------------------------------- the model's input


def _dim_source(config: FrontendConfig) -> str:
    """What decides the front end's output size, in option names."""
    energy = " + 1 (USE_ENERGY)" if config.use_energy else ""
    if config.kind == "fbank":
        return f"NUM_MEL_BINS {config.num_mel_bins}{energy}"
    if config.kind == "mfcc":
        return f"NUM_CEPS {config.num_ceps}{energy}"
    return (
        f"FFT size {config.fft_size} / 2 + 1 bins: FRAME_LENGTH_MS {config.frame_length} at SAMPLE_RATE "
        f"{config.sample_rate} is {config.win_len} samples, padded to {config.fft_size}"
    )


def feature_axes(input_shape: Sequence[int]) -> tuple[int, ...]:
    """The per-frame shape of a model input in torch layout: every dim but batch (0) and time (2)."""
    shape = tuple(int(d) for d in input_shape)
    return shape[1:2] + shape[3:]


def check_feature_dim(config: FrontendConfig, input_shape: Sequence[int], name: str | None = None) -> None:
    """Raise :class:`DeclarationError` unless the model's input takes the front end's frames.

    The input is in torch layout with time on dim 2 (``INPUT_SHAPE``); a front-end frame of ``D`` values
    fills one dim: ``[1, D, T]``, ``[1, D, T, 1]`` or ``[1, 1, T, D]``.
    """
    shape = tuple(int(d) for d in input_shape)
    if len(shape) not in (3, 4):
        raise DeclarationError(
            (f"{name}: " if name else "") + f"INPUT_SHAPE {_shape_text(shape)}: give [1, C, T] or [1, C, T, F]"
        )
    dim = config.feature_dim
    per_frame = feature_axes(shape)
    frames = shape[2]
    layouts = [(1, dim, frames)] if len(shape) == 3 else [(1, dim, frames, 1), (1, 1, frames, dim)]
    if shape in layouts:
        return
    takes = math.prod(per_frame)
    if len(shape) == 3:
        where = f"takes {takes} features per frame (dim 1)"
    else:
        where = f"takes {per_frame[0]} x {per_frame[1]} = {takes} values per frame (dims 1 and 3)"
    fixes = [f"INPUT_SHAPE {_shape_text(s)}" for s in layouts]
    if takes != dim and config.kind == "fbank" and takes - config.use_energy >= 1:
        fixes.append(f"NUM_MEL_BINS {takes - config.use_energy}")
    elif takes != dim and config.kind == "mfcc" and 1 <= takes - config.use_energy <= config.num_mel_bins:
        fixes.append(f"NUM_CEPS {takes - config.use_energy}")
    elif takes == dim:
        where += ", spread over two dims"
    raise DeclarationError(
        (f"{name}: " if name else "")
        + f"INPUT_SHAPE {_shape_text(shape)} {where} but FRONTEND {config.kind} outputs {dim} features per frame "
        f"({_dim_source(config)}): the front end's frame must fill one dim of the input; use " + " or ".join(fixes)
    )


def _shape_text(shape: Sequence[int]) -> str:
    return " ".join(str(d) for d in shape)


# ---------------------------------------------------------------------------- CLI, CMake and docs


def add_cli_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """Add every ``--frontend*`` flag (one value each, default None = not given) to an argparse parser."""
    for o in OPTIONS:
        default = "" if o.key == "FRONTEND" else f" (default {o.default_display})"
        parser.add_argument(o.flag, dest=o.dest, metavar=o.metavar or None, default=None, help=o.help + default)


def options_from_namespace(namespace: argparse.Namespace | Mapping[str, Any]) -> dict[str, Any]:
    """The ``{CMAKE_KEYWORD: text or None}`` mapping of parsed CLI arguments, for :func:`parse_frontend`."""
    get = namespace.get if isinstance(namespace, Mapping) else lambda k: getattr(namespace, k, None)
    return {o.key: get(o.dest) for o in OPTIONS}


def markdown_table() -> str:
    """The README's table of the front-end options."""
    rows = [
        "| CMake keyword | CLI flag | Default | Front ends | Meaning |",
        "|---|---|---|---|---|",
    ]
    for o in OPTIONS:
        kinds = "all" if o.kinds == _ALL_KINDS else ", ".join(o.kinds)
        values = f" ({', '.join(o.choices)})" if o.choices and o.type in ("kind", "choice") else ""
        rows.append(f"| `{o.key}` | `{o.flag}` | `{o.default_display}` | {kinds} | {o.help}{values} |")
    return "\n".join(rows) + "\n"


def _config_fields_without_option() -> tuple[str, ...]:
    """FrontendConfig fields that have no option (kept for tests: only use_int16_fft)."""
    return tuple(f.name for f in fields(FrontendConfig) if f.name not in BY_FIELD)


__all__ = [
    "BY_KEY",
    "CLI_FLAGS",
    "CMAKE_KEYWORDS",
    "FLT_EPSILON",
    "LOG_MODES",
    "OPTIONS",
    "FrontendDeclaration",
    "FrontendOption",
    "add_cli_arguments",
    "check_feature_dim",
    "check_filters",
    "feature_axes",
    "format_value",
    "markdown_table",
    "options_from_namespace",
    "parse_frontend",
]
