"""Run a built streaming model on recorded frames, as the firmware's generated glue does.

Float frames -> chunks of ``chunk_frames`` quantized at the model input's exponent with the
chip's rounding (NaN -> 0, saturation: ``src/quantize.cpp``) -> one integer run per chunk
-> every output dequantized to float32 -> the chunks of each output put together.  Only the
integer step depends on the engine: the numpy simulator (``python``) or the C++ runtime
built for the host (``host``, :mod:`espdl_streaming.host_engine`).

Recurrent state: inputs ``state_in_K`` and outputs ``state_out_K`` are not user tensors.
Before the first chunk ``state_in_K`` holds the model's initial state (zeros, or the learned
initial state recorded in the file's metadata); after every chunk it gets the raw
integers of ``state_out_K``.  The frames feed the one other input; the outputs written are
the other outputs.

Audio (``--input AUDIO.wav``, a model built with ``FRONTEND``): the build report next to the model
(the one describing this very file) gives the front end's configuration; the WAV (mono, at the front
end's rate, or resampled when the report says RESAMPLE) is turned into feature frames, one per frame
shift, by the engine's front end: the Python port (``espdl_streaming.audio.compute_features``) for
``python``, the C++ port through the runtime's ``audio_frontend`` (``host_engine.compute_features_host``,
pushed one frame shift at a time as a microphone loop would) for ``host``; then the frames take the
path above.

Nothing here prints or writes files: the CLI does.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from .errors import CalibrationError, EspdlFormatError, FrontendConfigError, RunError
from .espdl import (
    EspdlModel,
    LoopedSimulator,
    Rounding,
    StateLoop,
    ValueInfo,
    dequantize_values,
    initial_states,
    is_state_input,
    is_state_output,
    load_espdl,
    quantize_values,
    rounding_for_target,
    state_pairs,
)
from .facts import CHIP_TO_PPQ_TARGET
from .report import BuildReport

if TYPE_CHECKING:
    from .audio.config import FrontendConfig

IntChunk = dict[str, np.ndarray]
IntEngine = Callable[[list[IntChunk]], list[IntChunk]]


# --------------------------------------------------------------------------- what the model streams


@dataclass
class StreamSpec:
    """The user-facing tensors of a streaming model."""

    source: str  # the model file, for messages
    input: ValueInfo  # the streamed input, [1, chunk_frames, *frame_shape]
    outputs: list[ValueInfo]  # user outputs (no state), sorted by name
    state: StateLoop
    time_axes: dict[str, int | None] = field(default_factory=dict)  # per output, as the build recorded

    @property
    def chunk_frames(self) -> int:
        return int(self.input.shape[1])

    @property
    def frame_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.input.shape[2:])


def stream_spec(model: EspdlModel, source: str) -> StreamSpec:
    """Split the model's inputs and outputs into the stream, the user outputs and the state pairs."""
    pairs = state_pairs(model, source)
    streams = [v for v in model.inputs if not is_state_input(v.name)]
    if len(streams) != 1:
        raise EspdlFormatError(
            f"{source}: the model has {len(streams)} inputs besides state_in_K "
            f"({', '.join(v.name for v in streams) or 'none'}); run streams exactly one"
        )
    stream = streams[0]
    if len(stream.shape) < 2 or stream.shape[0] != 1 or stream.shape[1] < 1:
        raise EspdlFormatError(
            f"{source}: input '{stream.name}' has shape {list(stream.shape)}; a streaming input is "
            "[1, chunk_frames, ...] (time on axis 1)"
        )
    outputs = sorted((v for v in model.outputs if not is_state_output(v.name)), key=lambda v: v.name)
    if not outputs:
        raise EspdlFormatError(f"{source}: the model has no outputs besides state_out_K")
    for v in (stream, *outputs):
        if v is not stream and v.dtype == "float32":
            continue  # real values (ESP-DL's Softmax output), no exponent
        if v.exponent is None or v.dtype not in ("int8", "int16"):
            raise EspdlFormatError(
                f"{source}: '{v.name}' is {v.dtype} without an exponent: not a quantized ESP-DL model"
            )
    return StreamSpec(
        source,
        stream,
        outputs,
        StateLoop(pairs, initial_states(model, pairs, source)),
        {v.name: model.output_time_axis(v.name) for v in outputs},
    )


# --------------------------------------------------------------------------- target


def resolve_target(model_path: Path, model_bytes: bytes, target: str | None) -> tuple[str, list[str]]:
    """The chip whose rounding to use, and warnings.

    ``--target`` wins; without it the build report next to the model (``<name>.report.json``)
    names the chip, provided it describes this very file (same sha256)."""
    report_path = report_path_of(model_path)
    report, problem = _read_report(report_path, model_bytes)
    if target is None:
        if report is None:
            raise RunError(
                f"{model_path}: no --target given and {problem}: pass --target CHIP (the chip it was built for)"
            )
        built = report.target
        if built.lower() not in CHIP_TO_PPQ_TARGET:
            raise RunError(f"{report_path}: no valid 'target' in the build report ({built!r}): pass --target CHIP")
        return built.lower(), []
    chip = target.lower()
    if chip not in CHIP_TO_PPQ_TARGET:
        raise RunError(
            f"--target '{target}' is not an ESP-IDF chip ESP-DL supports: use one of "
            f"{', '.join(sorted(CHIP_TO_PPQ_TARGET))}"
        )
    built_for = report.target if report else None
    if built_for is not None and rounding_for_target(built_for) != rounding_for_target(chip):
        return chip, [
            f"{model_path.name} was built for {built_for} (rounding {rounding_for_target(built_for)}); running it "
            f"with {chip}'s rounding ({rounding_for_target(chip)}) as --target asks"
        ]
    return chip, []


def report_path_of(model_path: Path) -> Path:
    """``<name>.report.json`` next to ``<name>.espdl``: where the build writes the model's report."""
    return model_path.with_name(model_path.name.removesuffix(".espdl") + ".report.json")


def _read_report(path: Path, model_bytes: bytes) -> tuple[BuildReport | None, str]:
    """The build report of this model, or None and why not."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None, f"no build report {path} to read it from"
    except (OSError, ValueError) as exc:
        return None, f"the build report {path} cannot be read ({exc})"
    if not isinstance(data, dict):
        return None, f"{path} is not a build report (not a JSON object)"
    try:
        report = BuildReport.from_dict(data)
    except ValueError as exc:
        return None, f"the build report {path} cannot be read ({exc})"
    if report.espdl_sha256 != hashlib.sha256(model_bytes).hexdigest():
        return None, f"the build report {path} describes another build of the model (espdl_sha256 differs)"
    return report, ""


# --------------------------------------------------------------------------- frames <-> integer chunks


def load_frames(path: Path, spec: StreamSpec) -> np.ndarray:
    """FRAMES.npy as float32: [frames, *frame_shape], frames on axis 0."""
    expected = "[" + ", ".join(["frames", *map(str, spec.frame_shape)]) + "]"
    try:
        data = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise RunError(f"{path}: file not found") from None
    except (OSError, ValueError, EOFError) as exc:
        raise RunError(f"{path}: not a readable .npy file ({exc}): save the frames with numpy.save") from None
    if isinstance(data, np.lib.npyio.NpzFile):
        data.close()
        raise RunError(f"{path}: an .npz archive; --input takes one .npy array of shape {expected}")
    if data.dtype.kind != "f":
        raise RunError(
            f"{path}: holds {data.dtype} values; expected float frames, as the firmware's push() takes "
            f"(run quantizes them at the input's exponent {spec.input.exponent})"
        )
    if data.ndim != 1 + len(spec.frame_shape) or tuple(data.shape[1:]) != spec.frame_shape:
        hint = ""
        if data.ndim == 2 and len(spec.frame_shape) == 1 and data.shape[0] == spec.frame_shape[0]:
            hint = " (it looks like [features, frames]: transpose it)"
        raise RunError(
            f"{path}: frames of shape {list(data.shape)}, expected {expected} for {Path(spec.source).name} "
            f"(frames on axis 0, each frame the input '{spec.input.name}' {list(spec.input.shape)} without "
            f"batch and time){hint}"
        )
    if data.shape[0] < spec.chunk_frames:
        raise RunError(
            f"{path}: {data.shape[0]} frame(s) do not fill one chunk of {spec.chunk_frames} frames: nothing to run"
        )
    # The firmware gets float32 frames; quantizing their float32 values gives the device's integers.
    return np.asarray(data, dtype=np.float32)


# --------------------------------------------------------------------------- audio -> feature frames


def is_audio(path: Path) -> bool:
    """--input AUDIO.wav (any case of the suffix) rather than FRAMES.npy."""
    return path.suffix.lower() == ".wav"


@dataclass(frozen=True)
class AudioInput:
    """What ``--input AUDIO.wav`` became: its samples turned into feature frames."""

    path: Path
    kind: str  # fbank, mfcc or spectrogram
    samples: int  # at sample_rate (after resampling)
    sample_rate: int  # the front end's
    source_rate: int  # the file's
    frames: int  # feature frames computed
    feature_dim: int
    engine: str  # whose front end computed them: python or host

    @property
    def resampled(self) -> bool:
        return self.source_rate != self.sample_rate


def model_frontend(model_path: Path, model_bytes: bytes, audio_path: Path) -> tuple[FrontendConfig, bool]:
    """The front end the model was built with (its configuration, and whether RESAMPLE is on), from the
    build report next to it, which must describe this very file."""
    from .audio.config import FrontendConfig

    report_path = report_path_of(model_path)
    report, problem = _read_report(report_path, model_bytes)
    if report is None:
        why = "there is no such file" if not report_path.exists() else problem
        raise RunError(
            f"{audio_path}: run needs {model_path.name}'s build report {report_path} to know its front end, but "
            f"{why}: rebuild the model, or put the report its build wrote next to it"
        )
    if report.frontend is None:
        raise RunError(
            f"{audio_path}: {model_path.name} was built without FRONTEND, so it takes feature frames, not audio: "
            "pass FRAMES.npy ([frames, ...] float features computed elsewhere), or rebuild the model with FRONTEND "
            "fbank | mfcc | spectrogram (--frontend) to run it on a .wav"
        )
    fields = cast("dict[str, Any]", dict(report.frontend.config))
    try:
        config = FrontendConfig(**fields).validate()
    except (TypeError, FrontendConfigError) as exc:
        raise RunError(
            f"{report_path}: the front end configuration in the report cannot be used ({exc}): rebuild the model "
            "with this version of espdl_streaming"
        ) from None
    return config, report.frontend.resample


def audio_frames(
    audio_path: Path, spec: StreamSpec, config: FrontendConfig, *, resample: bool, engine: str
) -> tuple[np.ndarray, AudioInput]:
    """AUDIO.wav as float32 frames ``[frames, *frame_shape]`` computed by ``engine``'s front end."""
    from .audio.declare import BY_KEY
    from .audio.frontend import compute_features
    from .audio.pcm import read_wav, resample_pcm

    model = Path(spec.source).name
    dim = config.feature_dim
    if math.prod(spec.frame_shape) != dim:
        raise RunError(
            f"{spec.source}: its build report's front end ({config.kind}) outputs {dim} features per frame but "
            f"the input '{spec.input.name}' {list(spec.input.shape)} takes frames of {list(spec.frame_shape)}: "
            "the report does not fit the model; rebuild it"
        )
    try:
        x, rate = read_wav(audio_path)
    except CalibrationError as exc:
        raise RunError(str(exc)) from None
    sr = config.sample_rate
    if rate != sr:
        if not resample:
            raise RunError(
                f"{audio_path}: sampled at {rate} Hz but {model}'s front end takes {sr} Hz (SAMPLE_RATE): convert "
                f"it (e.g. `sox in.wav -r {sr} out.wav`) or rebuild the model with {BY_KEY['RESAMPLE'].names} ON "
                "to let run resample it"
            )
        x = resample_pcm(x, rate, sr)
    count = config.num_frames(x.size)
    chunk = spec.chunk_frames
    if count < chunk:
        need = config.win_len + (chunk - 1) * config.win_step
        at = f"at {sr} Hz" + (f", resampled from {rate} Hz" if rate != sr else "")
        raise RunError(
            f"{audio_path}: {x.size} samples ({x.size / sr:.3f} s {at}) give {count} feature frame(s), fewer than "
            f"one chunk of {chunk} frames of {model}: nothing to run; it needs at least {need} samples "
            f"({need / sr:.3f} s) with frames of {config.win_len} samples every {config.win_step}: use a longer "
            "recording"
        )
    if engine == "host":
        from .host_engine import compute_features_host  # builds C++: only when asked for

        step = config.win_step  # one push per frame shift, as a microphone loop would
        pieces = [step] * (x.size // step) + ([x.size % step] if x.size % step else [])
        feats = compute_features_host(config, x, pieces)
    else:
        feats = compute_features(config, x)
    if feats.shape != (count, dim):
        raise RuntimeError(f"the {engine} front end returned {list(feats.shape)} features, expected {[count, dim]}")
    frames = np.ascontiguousarray(feats.reshape(count, *spec.frame_shape), dtype=np.float32)
    return frames, AudioInput(audio_path, config.kind, int(x.size), sr, rate, count, dim, engine)


def quantize_chunks(frames: np.ndarray, spec: StreamSpec, rounding: Rounding) -> tuple[list[IntChunk], int]:
    """Integer input chunks (the stream input only) and the number of trailing frames dropped."""
    chunk = spec.chunk_frames
    count = frames.shape[0] // chunk
    dropped = frames.shape[0] - count * chunk
    assert spec.input.exponent is not None
    q = quantize_values(frames[: count * chunk], spec.input.exponent, spec.input.dtype, rounding)
    q = q.reshape(count, 1, chunk, *spec.frame_shape)
    return [{spec.input.name: q[k]} for k in range(count)], dropped


def time_axis(recorded: Sequence[int], chunk_shape: Sequence[int], built: int | None = None) -> int | None:
    """An output's time axis, None when it has none: what the build recorded in the model's metadata
    (`built`), else from the shapes: esp-ppq records the offline shape of a streaming model's outputs,
    so a per-frame output differs from it on axis 1, and rank >= 3 outputs are [1, frames, ...] in
    the exported layout."""
    if built is not None:
        return built if built < len(chunk_shape) else None
    if len(chunk_shape) >= 3:
        return 1
    same_rank = len(recorded) == len(chunk_shape) == 2
    return 1 if same_rank and recorded[0] == chunk_shape[0] and recorded[1] != chunk_shape[1] else None


def _real(info: ValueInfo, raw: np.ndarray) -> np.ndarray:
    """The float32 values of one raw output: q * 2^exponent, or a float32 output's values bit for bit."""
    if info.dtype == "float32":
        if raw.dtype != np.float32:
            raise RuntimeError(f"the engine returned {raw.dtype} for the float32 output '{info.name}'")
        return cast("np.ndarray", raw.copy())
    assert info.exponent is not None
    return dequantize_values(raw, info.exponent).astype(np.float32)


def assemble_outputs(spec: StreamSpec, results: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Dequantize every chunk's user outputs to float32 (a float32 output, ESP-DL's Softmax, as it is)
    and put them together: concatenated along axis 1 for outputs with a time axis, stacked on a new
    axis 1 ([1, chunks, ...]) otherwise."""
    assembled: dict[str, np.ndarray] = {}
    for info in spec.outputs:
        chunks = []
        for k, result in enumerate(results):
            if info.name not in result:
                raise RuntimeError(f"the engine returned no output '{info.name}' for chunk {k}")
            chunks.append(_real(info, np.asarray(result[info.name])))
        shape = chunks[0].shape
        if any(c.shape != shape for c in chunks):
            raise RuntimeError(
                f"output '{info.name}' changes shape between chunks: {sorted({c.shape for c in chunks})}"
            )
        axis = time_axis(info.shape, shape, spec.time_axes.get(info.name))
        if axis is not None:
            assembled[info.name] = np.concatenate(chunks, axis=axis)
        else:
            assembled[info.name] = np.stack(chunks, axis=1 if len(shape) >= 1 and shape[:1] == (1,) else 0)
    return assembled


# --------------------------------------------------------------------------- engines (the integer step)


def python_engine(model: EspdlModel, rounding: Rounding) -> IntEngine:
    """The numpy simulator, fresh caches and the initial state, state looped back after every chunk."""

    def run(chunks: list[IntChunk]) -> list[IntChunk]:
        sim = LoopedSimulator(model, rounding)
        return [sim.run(chunk) for chunk in chunks]

    return run


def host_runtime_engine(model_path: Path, rounding: Rounding) -> IntEngine:
    """The C++ runtime built for the host (module host_engine); it loops the state back itself."""

    def run(chunks: list[IntChunk]) -> list[IntChunk]:
        from .host_engine import build_host_engine, run_int_chunks  # builds C++: only when asked for

        exe = build_host_engine()
        return run_int_chunks(exe, model_path, rounding, chunks)

    return run


# --------------------------------------------------------------------------- the whole run


@dataclass
class RunResult:
    outputs: dict[str, np.ndarray]  # user output name -> float32, chunks put together
    frames: int
    chunks: int
    chunk_frames: int
    dropped: int


def run_frames(spec: StreamSpec, frames: np.ndarray, rounding: Rounding, engine: IntEngine) -> RunResult:
    """Stream float `frames` ([frames, *frame_shape]) through the model, chunk by chunk."""
    chunks, dropped = quantize_chunks(frames, spec, rounding)
    if not chunks:
        raise RunError(
            f"{frames.shape[0]} frame(s) do not fill one chunk of {spec.chunk_frames} frames: nothing to run"
        )
    results = engine(chunks)
    if len(results) != len(chunks):
        raise RuntimeError(f"the engine returned {len(results)} results for {len(chunks)} chunks")
    return RunResult(assemble_outputs(spec, results), int(frames.shape[0]), len(chunks), spec.chunk_frames, dropped)


def check_out_path(out: Path, spec: StreamSpec) -> None:
    """.npy for one output, .npz (one array per output name) for any number."""
    names = ", ".join(v.name for v in spec.outputs)
    if out.suffix == ".npz":
        return
    if out.suffix != ".npy":
        raise RunError(f"--out {out}: name a .npy file (one output) or an .npz file (one array per output name)")
    if len(spec.outputs) > 1:
        raise RunError(
            f"--out {out}: {Path(spec.source).name} has {len(spec.outputs)} outputs ({names}): "
            f"use --out {out.with_suffix('.npz')} (one array per output name)"
        )


def encode_outputs(outputs: dict[str, np.ndarray], out: Path) -> bytes:
    """The bytes of OUT: a .npy of the one output, or an .npz keyed by output name; the same
    arrays always give the same bytes (no timestamps in the archive)."""
    if out.suffix == ".npy":
        (array,) = outputs.values()
        return _npy_bytes(array)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as archive:
        for name in sorted(outputs):
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            archive.writestr(info, _npy_bytes(outputs[name]))
    return buf.getvalue()


def _npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


@dataclass
class RunPlan:
    """Everything checked before any chunk runs."""

    model_path: Path
    spec: StreamSpec
    frames: np.ndarray
    chip: str
    rounding: Rounding
    engine: IntEngine
    warnings: list[str]
    audio: AudioInput | None = None  # --input AUDIO.wav: how its frames were computed


def plan_run(model_path: Path, frames_path: Path, out: Path, *, target: str | None, engine: str) -> RunPlan:
    """Read and check the model, the frames (or the audio, turned into frames by the engine's front end),
    the target and the output path."""
    if engine not in ("python", "host"):
        raise ValueError(f"unknown engine {engine!r}")  # the CLI offers only these
    model = load_espdl(model_path)
    try:
        model_bytes = model_path.read_bytes()
    except OSError as exc:  # pragma: no cover - load_espdl just read it
        raise EspdlFormatError(f"{model_path}: cannot read: {exc.strerror}") from exc
    spec = stream_spec(model, str(model_path))
    check_out_path(out, spec)
    frontend = model_frontend(model_path, model_bytes, frames_path) if is_audio(frames_path) else None
    chip, warnings = resolve_target(model_path, model_bytes, target)
    rounding = rounding_for_target(chip)
    audio: AudioInput | None = None
    if frontend is not None:
        config, resample = frontend
        frames, audio = audio_frames(frames_path, spec, config, resample=resample, engine=engine)
    else:
        frames = load_frames(frames_path, spec)
    int_engine = python_engine(model, rounding) if engine == "python" else host_runtime_engine(model_path, rounding)
    return RunPlan(model_path, spec, frames, chip, rounding, int_engine, warnings, audio)
