"""The declaration: one validated description of a model to build.

Both front ends (the CLI and, through it, the CMake function) end here.  Every user
mistake that can be found without running the model is reported from this module with
the flag or keyword, the value and the fix.  Nothing here imports torch or esp-ppq.
"""

from __future__ import annotations

import keyword
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .audio.declare import FrontendDeclaration, check_feature_dim, parse_frontend
from .errors import DeclarationError
from .espdl_semantics import ESPDL_W8A16_MIN, runs_w8a16
from .facts import CHIP_TO_PPQ_TARGET, CPP_KEYWORDS

MIN_VERIFY_CHUNKS = 8

#: dataclasses.field metadata: the field enters the build's fingerprint (inputs.declaration_fingerprint, the
#: cache key and the lock) only when it differs from its default, so adding one keeps the fingerprints of
#: declarations that do not use it as they were.
FINGERPRINT_WHEN_SET = {"fingerprint": "when_set"}

#: Quantization schemes (esp-ppq 1.3.12's quant_type): weights and activations at 8 or 16 bits;
#: "auto" starts from w8a8 and moves the worst layers to 16 bits until --min-snr-db holds.
QUANT_SCHEMES = ("w8a8", "w8a16", "w16a16", "auto")
BITS_TO_QUANT = {8: "w8a8", 16: "w16a16"}
MAX_MIN_SNR_DB = 150.0

#: esp-ppq's activation observers (QuantizationSetting.quantize_activation_setting.calib_algorithm); None keeps
#: esp-ppq's own choice for the scheme (kl at 8-bit activations, minmax at 16).
CALIB_ALGORITHMS = ("kl", "minmax", "percentile", "mse")
#: esp-ppq optimisation passes exposed because they measurably help some zoo models at w8a8 and hurt none by
#: 1 dB or more (bench/calib_options.py): cross-layer equalization and bias correction.
CALIB_OPTIONS = ("equalization", "bias_correction")


@dataclass(frozen=True)
class ModelRef:
    """Where the model comes from: a Python factory or an ONNX file."""

    path: Path
    factory: str | None  # None for ONNX

    @property
    def is_onnx(self) -> bool:
        return self.factory is None

    def __str__(self) -> str:
        return f"{self.path}:{self.factory}" if self.factory else str(self.path)


@dataclass(frozen=True)
class CalibrationRef:
    """CALIBRATION / EVAL: FILE.npy, FILE.npz, FILE.py:FUNC, or with a front end audio: FILE.wav, a folder of
    .wav files (``path`` the folder) or FILE.npy of PCM (1-D or 2-D; see loading.load_samples)."""

    path: Path
    function: str | None  # for FILE.py:FUNC
    # Audio: the .wav files read, in order (a folder's listing, taken when the declaration is parsed, so that
    # adding or removing a file changes the build's fingerprint); empty otherwise.
    wav_files: tuple[Path, ...] = field(default=(), metadata=FINGERPRINT_WHEN_SET)

    @property
    def is_audio_folder(self) -> bool:
        return self.path.is_dir()

    def __str__(self) -> str:
        return f"{self.path}:{self.function}" if self.function else str(self.path)


@dataclass(frozen=True)
class Placement:
    kind: str  # "rodata" | "partition"
    label: str | None = None

    def __str__(self) -> str:
        return f"partition:{self.label}" if self.kind == "partition" else "rodata"


@dataclass(frozen=True)
class Declaration:
    name: str
    model: ModelRef
    input_shape: tuple[int, ...]
    chunk_frames: int
    chip: str
    out_dir: Path
    calibration: CalibrationRef | None = None
    calib_steps: int = 32
    quant: str = "w8a8"
    verify_chunks: int = MIN_VERIFY_CHUNKS
    placement: Placement = Placement("rodata")
    # Evaluation data for the quality measure (same formats as calibration); None: held-out calibration.
    evaluation: CalibrationRef | None = None
    # The quality gate: the build fails when an output's SNR against the float model is below it.
    min_snr_db: float | None = None
    # Saturation on evaluation data fails the build instead of warning.
    strict: bool = False
    # esp-ppq's activation observer (CALIB_ALGORITHMS); None: esp-ppq's default for the scheme.
    calib_algorithm: str | None = None
    # esp-ppq passes run while calibrating (CALIB_OPTIONS), sorted.
    calib_options: tuple[str, ...] = ()
    # The ESP-DL version the project builds with, when known (the ESP-IDF wrapper reads its manifest):
    # QUANT w8a16 needs >= 3.3.11 and QUANT auto keeps to what it can load.
    espdl_version: str | None = None
    # The speech front end (FRONTEND and its options): the model's input frames are ESP-DL's Fbank / MFCC /
    # Spectrogram features of PCM, and calibration and evaluation data may be audio.
    frontend: FrontendDeclaration | None = field(default=None, metadata=FINGERPRINT_WHEN_SET)

    @property
    def bits(self) -> int:
        """Activation bits (what the model's inputs and outputs are): 16 for w8a16 and w16a16."""
        return 16 if self.quant in ("w8a16", "w16a16") else 8

    @property
    def ppq_target(self) -> str:
        return CHIP_TO_PPQ_TARGET[self.chip]

    @property
    def time_axis(self) -> int:
        """Time is dim 2 of the torch-layout input (NCW, or NCHW with H = time)."""
        return 2

    @property
    def offline_frames(self) -> int:
        return self.input_shape[2]

    @property
    def feature_dim(self) -> int:
        """Values per frame in the exported (frame-major) layout."""
        n = 1
        for i, d in enumerate(self.input_shape):
            if i not in (0, 2):
                n *= d
        return n

    @property
    def streaming_input_shape(self) -> tuple[int, ...]:
        shape = list(self.input_shape)
        shape[2] = self.chunk_frames
        return tuple(shape)

    def output_path(self, suffix: str) -> Path:
        return self.out_dir / f"{self.name}{suffix}"


def _fail(name: str, what: str) -> DeclarationError:
    return DeclarationError(f"{name}: {what}")


def validate_name(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name or "") or name in CPP_KEYWORDS or keyword.iskeyword(name):
        raise DeclarationError(
            f"{name or '<empty>'}: --name '{name}' is not a usable C/C++ identifier "
            "(it names the generated class and files): use letters, digits and '_', not starting with a digit, "
            "and not a C++ keyword"
        )
    if name.startswith("__") or re.match(r"_[A-Z]", name):
        raise DeclarationError(f"{name}: --name '{name}' is reserved in C++ (leading '__' or '_X'): rename it")
    return name


def parse_model_ref(name: str, text: str) -> ModelRef:
    if text.lower().endswith(".onnx"):
        path = Path(text)
        factory = None
    else:
        path_text, sep, factory = text.rpartition(":")
        if not sep or not path_text.endswith(".py") or not factory:
            raise _fail(
                name,
                f"--model '{text}' must be FILE.py:FACTORY (a function returning a torch.nn.Module) or FILE.onnx",
            )
        if not factory.isidentifier():
            raise _fail(name, f"--model '{text}': factory '{factory}' is not a Python identifier")
        path = Path(path_text)
    if not path.is_file():
        raise _fail(name, f"--model: file not found: {path.resolve()}: check the path (relative to {Path.cwd()})")
    return ModelRef(path.resolve(), factory)


def parse_shape(name: str, text: str) -> tuple[int, ...]:
    parts = [p for p in re.split(r"[,\s;x]+", text.strip()) if p]
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        raise _fail(name, f"--input-shape '{text}' must be integers, e.g. 1,16,24 (batch, features, time)") from None
    if len(shape) not in (3, 4):
        raise _fail(
            name,
            f"--input-shape '{text}' has {len(shape)} dims: give the torch layout with batch 1 and time on dim 2, "
            "NCW (1,C,T) or NCHW (1,C,T,F)",
        )
    if shape[0] != 1:
        raise _fail(name, f"--input-shape '{text}': batch (dim 0) must be 1, got {shape[0]}")
    if any(d <= 0 for d in shape):
        raise _fail(name, f"--input-shape '{text}': every dim must be positive")
    return shape


def list_wav_files(folder: Path) -> tuple[Path, ...]:
    """The ``*.wav`` files under ``folder`` as audio.pcm.list_wav_files reads them (recursive, any case, no
    names starting with '.', sorted by relative POSIX path), without numpy."""
    found = []
    for p in folder.rglob("*"):
        rel = p.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if p.suffix.lower() == ".wav" and p.is_file():
            found.append(p)
    return tuple(sorted(found, key=lambda p: p.relative_to(folder).as_posix()))


def parse_calibration(
    name: str, text: str, flag: str = "--calibration", frontend: FrontendDeclaration | None = None
) -> CalibrationRef:
    path = Path(text)
    is_wav = text.lower().endswith(".wav")
    if is_wav or (path.is_dir() and not text.endswith(".py")):
        what = "a .wav file" if is_wav else "a folder"
        if frontend is None:
            raise _fail(
                name,
                f"{flag} '{text}' is {what}: audio data needs the front end that turns it into the "
                "model's input: declare FRONTEND fbank|mfcc|spectrogram (--frontend) with its options, or give "
                "feature frames as FILE.npy / FILE.npz / FILE.py:FUNC",
            )
        if is_wav:
            if not path.is_file():
                raise _fail(name, f"{flag}: file not found: {path.resolve()}")
            return CalibrationRef(path.resolve(), None, (path.resolve(),))
        folder = path.resolve()
        files = list_wav_files(folder)
        if not files:
            raise _fail(name, f"{flag} '{text}': no .wav files in the folder {folder} (or under it)")
        return CalibrationRef(folder, None, files)
    if text.endswith((".npy", ".npz")):
        path, func = Path(text), None
    else:
        path_text, sep, func_text = text.rpartition(":")
        if not sep or not path_text.endswith(".py") or not func_text.isidentifier():
            audio = ", FILE.wav or a folder of .wav files" if frontend is not None else ""
            raise _fail(name, f"{flag} '{text}' must be FILE.npy, FILE.npz or FILE.py:FUNC{audio}")
        path, func = Path(path_text), func_text
    if not path.is_file():
        raise _fail(name, f"{flag}: file not found: {path.resolve()}")
    return CalibrationRef(path.resolve(), func)


def parse_quant(name: str, quant: str | None, bits: int | None) -> str:
    """The scheme from --quant, or from its alias --bits (8: w8a8, 16: w16a16); w8a8 by default."""
    if bits is not None and bits not in BITS_TO_QUANT:
        raise _fail(name, f"--bits {bits}: ESP-DL models are quantized to 8 or 16 bits (or use --quant)")
    if quant is None:
        return BITS_TO_QUANT[bits] if bits is not None else "w8a8"
    scheme = quant.lower()
    if scheme not in QUANT_SCHEMES:
        raise _fail(name, f"--quant '{quant}' is not a scheme: use one of {', '.join(QUANT_SCHEMES)}")
    if bits is not None and BITS_TO_QUANT[bits] != scheme:
        raise _fail(name, f"--bits {bits} contradicts --quant {scheme}: give only --quant")
    return scheme


def parse_min_snr_db(name: str, value: float | None, quant: str) -> float | None:
    if value is None:
        return None
    if not (0.0 < value <= MAX_MIN_SNR_DB) or value != value:
        raise _fail(name, f"--min-snr-db {value}: give a target in dB between 0 and {MAX_MIN_SNR_DB:g}, e.g. 30")
    return float(value)


def parse_calib_algorithm(name: str, text: str | None) -> str | None:
    if text is None:
        return None
    algorithm = text.lower()
    if algorithm not in CALIB_ALGORITHMS:
        raise _fail(
            name,
            f"--calib-algorithm '{text}' is not an esp-ppq activation observer: use one of "
            f"{', '.join(CALIB_ALGORITHMS)}",
        )
    return algorithm


def parse_calib_options(name: str, options: str | Sequence[str] | None) -> tuple[str, ...]:
    """--calib-options a,b (CMake: CALIB_OPTIONS a b): each once, from CALIB_OPTIONS; sorted."""
    if options is None:
        return ()
    items = [o for o in re.split(r"[,;\s]+", options) if o] if isinstance(options, str) else list(options)
    chosen = []
    for option in items:
        low = option.lower()
        if low not in CALIB_OPTIONS:
            raise _fail(
                name,
                f"--calib-options: '{option}' is not an option: use any of {', '.join(CALIB_OPTIONS)} "
                "(comma-separated)",
            )
        if low in chosen:
            raise _fail(name, f"--calib-options: '{low}' is given twice")
        chosen.append(low)
    return tuple(sorted(chosen))


def parse_espdl_version(name: str, text: str | None, quant: str) -> str | None:
    if text is None:
        return None
    if not re.fullmatch(r"[0-9]+(\.[0-9]+){0,3}", text):
        raise _fail(name, f"--espdl-version '{text}' must be a version such as 3.3.11")
    if quant == "w8a16" and not runs_w8a16(text):
        raise _fail(
            name,
            f"--quant w8a16: ESP-DL {text}, which this project builds with, cannot load W8A16 layers (ESP-DL "
            f'{ESPDL_W8A16_MIN} added them): use espressif/esp-dl ">={ESPDL_W8A16_MIN},<4.0.0" in the project\'s '
            "idf_component.yml, or QUANT w8a8 / w16a16 / auto (auto keeps to what the ESP-DL loads)",
        )
    return text


def parse_placement(name: str, text: str) -> Placement:
    if text.lower() == "rodata":
        return Placement("rodata")
    kind, sep, label = text.partition(":")
    if kind.lower() == "partition" and sep and re.fullmatch(r"[A-Za-z0-9_.-]{1,16}", label):
        return Placement("partition", label)
    raise _fail(
        name, f"--placement '{text}' must be 'rodata' or 'partition:LABEL' (LABEL: up to 16 of A-Z a-z 0-9 _ . -)"
    )


def check_out_dir(name: str, out_dir: Path) -> Path:
    out_dir = out_dir.resolve()
    probe = out_dir
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise _fail(name, f"--out-dir {out_dir}: {probe} is not a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise _fail(name, f"--out-dir {out_dir}: {probe} is not writable: choose a writable directory")
    return out_dir


def make_declaration(
    *,
    name: str,
    model: str,
    input_shape: str,
    chunk_frames: int,
    target: str,
    out_dir: str | os.PathLike[str],
    calibration: str | None = None,
    calib_steps: int = 32,
    bits: int | None = None,
    verify_chunks: int = MIN_VERIFY_CHUNKS,
    placement: str = "rodata",
    quant: str | None = None,
    evaluation: str | None = None,
    min_snr_db: float | None = None,
    strict: bool = False,
    calib_algorithm: str | None = None,
    calib_options: str | Sequence[str] | None = None,
    espdl_version: str | None = None,
    frontend: Mapping[str, Any] | None = None,
) -> Declaration:
    """Validate every argument and return the declaration, or raise DeclarationError.

    ``frontend`` maps the front-end options (audio.declare.OPTIONS: CMake keyword, CLI flag or argparse dest)
    to their text, None for "not given"; without FRONTEND there is no front end.
    """
    validate_name(name)
    chip = target.lower()
    if chip not in CHIP_TO_PPQ_TARGET:
        raise _fail(
            name,
            f"--target '{target}' is not an ESP-IDF chip ESP-DL supports: use one of "
            f"{', '.join(sorted(CHIP_TO_PPQ_TARGET))}",
        )
    scheme = parse_quant(name, quant, bits)
    gate = parse_min_snr_db(name, min_snr_db, scheme)
    if scheme == "auto" and gate is None:
        raise _fail(
            name,
            "--quant auto needs a target: give --min-snr-db (e.g. 30), the SNR against the float model that the "
            "promotion to 16 bits must reach",
        )
    shape = parse_shape(name, input_shape)
    frames = shape[2]
    if chunk_frames <= 0:
        raise _fail(name, f"--chunk-frames {chunk_frames}: must be a positive number of frames per streaming step")
    if chunk_frames > frames:
        raise _fail(
            name,
            f"--chunk-frames {chunk_frames} is longer than the offline input ({frames} frames on dim 2 of "
            f"--input-shape {','.join(map(str, shape))}): use at most {frames}, or a longer offline input",
        )
    if calib_steps <= 0:
        raise _fail(name, f"--calib-steps {calib_steps}: must be positive")
    if verify_chunks < MIN_VERIFY_CHUNKS:
        raise _fail(name, f"--verify-chunks {verify_chunks}: at least {MIN_VERIFY_CHUNKS} chunks are verified")
    # Pure-Python checks only (no numpy: a cache hit imports none); the mel filters are checked by the build.
    front = parse_frontend(frontend or {}, name, filters=False)
    if front is not None:
        check_feature_dim(front.config, shape, name)
    model_ref = parse_model_ref(name, model)
    calib = parse_calibration(name, calibration, "--calibration", front) if calibration else None
    eval_ref = parse_calibration(name, evaluation, "--eval", front) if evaluation else None
    return Declaration(
        name=name,
        model=model_ref,
        input_shape=shape,
        chunk_frames=chunk_frames,
        chip=chip,
        out_dir=check_out_dir(name, Path(out_dir)),
        calibration=calib,
        calib_steps=calib_steps,
        quant=scheme,
        verify_chunks=verify_chunks,
        placement=parse_placement(name, placement),
        evaluation=eval_ref,
        min_snr_db=gate,
        strict=strict,
        calib_algorithm=parse_calib_algorithm(name, calib_algorithm),
        calib_options=parse_calib_options(name, calib_options),
        espdl_version=parse_espdl_version(name, espdl_version, scheme),
        frontend=front,
    )
