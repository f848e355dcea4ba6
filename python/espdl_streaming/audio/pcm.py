"""PCM audio for calibration and evaluation: WAV files, folders of WAV files, .npy arrays of PCM.

Reading (:func:`load_audio`, no dependency beyond numpy):

- ``FILE.wav``: one clip.  RIFF/WAVE with format PCM (8-bit unsigned, 16-, 24- and 32-bit signed), IEEE
  float (32 and 64 bit) or WAVE_FORMAT_EXTENSIBLE with one of those as its sub-format.  The RIFF chunks
  are parsed here (the standard ``wave`` module rejects float and, before Python 3.12, EXTENSIBLE files).
  Mono only: a file with more channels is refused with the fix (``sox in.wav -c 1 out.wav``), never
  downmixed, because the chip's front end gets one microphone channel and which mix of channels matches it
  is the user's choice.  Integers are scaled to [-1, 1) by the full scale of their width (int16 / 32768,
  as ESP-DL's ``process_frame(const int16_t *)`` does; 8-bit: (u8 - 128) / 128); float samples must lie in
  [-1, 1] (and be finite).  A truncated file, a data chunk that is not a whole number of frames, an unknown
  format or a file without samples is an error naming the file.
- A folder: every ``*.wav`` (any case) under it, recursively, in the order of their relative paths
  (``sorted`` on the POSIX path: deterministic on every OS); names starting with ``.`` are skipped (macOS
  ``._x.wav`` resource forks).  An error names the file that fails.
- ``FILE.npy``: PCM at the front end's sample rate (a .npy carries no rate): int16 (scaled by 1/32768) or
  float in [-1, 1]; 1-D is one clip, 2-D is ``[clips, samples]``.

Sample rates (the ``resample`` argument, the declaration's RESAMPLE option): a WAV file at another rate
than the front end's is refused with an error naming the file, both rates and the fixes, unless
``resample=True``: then :func:`resample_pcm` converts it.  That is a windowed-sinc (Kaiser, beta 10.06)
polyphase resampler in float64: passband up to 0.9 x the lower of the two Nyquist frequencies,
stopband from that Nyquist frequency on, designed for 100 dB attenuation.  Measured (48, 44.1 and 32 kHz
to 16 kHz): tones from 8.0 kHz up to the old Nyquist frequency come out at least 101 dB down (the tests,
python/tests/test_audio_pcm.py, require 96 dB), the passband is flat within 1e-5 up to 7.2 kHz (tests:
1e-4), and a 1 kHz sine comes out within 3e-8 of the same sine sampled at 16 kHz (tests: 1e-6).  The
result is clipped to [-1, 1] (the overshoot of a band-limited full-scale signal); the edges of a clip
are resampled as if zeros lay beyond them.

Model input (:func:`clips_to_model_input`): each clip's features by :func:`~.frontend.compute_features`
(``[frames, D]``, one frame per FRAME_SHIFT_MS), cut into windows of ``T`` frames (``T`` = dim 2 of the
model's input shape, the offline input's time axis), the first at frame 0, the next ``hop_frames``
(default ``T``: no overlap) later, the frames after the last whole window dropped.  Each window is
transposed to the torch layout: ``[D, T]`` for an input ``[1, D, T]``, ``[D, T, 1]`` for ``[1, D, T, 1]``,
``[1, T, D]`` for ``[1, 1, T, D]``; the result ``[N, *input_shape[1:]]`` float32 is what a CALIBRATION /
EVAL .npy holds (N windows over all clips, in clip order, then time order).
"""

from __future__ import annotations

import math
import struct
import wave
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
import numpy.typing as npt

from ..errors import CalibrationError
from .config import FrontendConfig
from .declare import BY_KEY, FrontendDeclaration, check_feature_dim
from .frontend import compute_features

FloatArray = npt.NDArray[np.float32]

WAVE_FORMAT_PCM = 0x0001
WAVE_FORMAT_IEEE_FLOAT = 0x0003
WAVE_FORMAT_EXTENSIBLE = 0xFFFE
# KSDATAFORMAT_SUBTYPE_PCM / _IEEE_FLOAT: the format tag, then this fixed GUID tail.
_GUID_TAIL = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
_FORMAT_NAMES = {
    0x0002: "Microsoft ADPCM",
    0x0006: "A-law",
    0x0007: "mu-law",
    0x0011: "IMA ADPCM",
    0x0055: "MP3",
}
_FIX_FORMAT = "convert it to 16-bit PCM (e.g. `sox in.wav -b 16 -e signed-integer out.wav`)"

#: The resampler's design (see the module docstring for what the tests measure).
RESAMPLER_STOPBAND_DB = 100.0
RESAMPLER_PASSBAND_EDGE = 0.9  # of the lower Nyquist frequency; the stopband starts at 1.0
_KAISER_BETA = 0.1102 * (RESAMPLER_STOPBAND_DB - 8.7)
_BLOCK = 4096  # output samples computed at a time (bounds the memory of the gathered input)


@dataclass(frozen=True)
class AudioClips:
    """PCM clips ready for the front end: float32 mono, all at ``sample_rate``.

    ``names[i]`` says where ``clips[i]`` comes from (``a.wav``, ``dir/b.wav``, ``pcm.npy[3]``);
    ``source_rates[i]`` is the rate it was recorded at (differs from ``sample_rate`` when resampled);
    ``files`` are the files read (the build's dependencies).
    """

    clips: tuple[FloatArray, ...]
    sample_rate: int
    names: tuple[str, ...]
    source_rates: tuple[int, ...]
    files: tuple[Path, ...]

    def __len__(self) -> int:
        return len(self.clips)

    @property
    def resampled(self) -> tuple[str, ...]:
        """The names of the clips that were resampled."""
        return tuple(n for n, r in zip(self.names, self.source_rates) if r != self.sample_rate)


def _prefix(name: str | None) -> str:
    return f"{name}: " if name else ""


# ---------------------------------------------------------------------------- WAV


def read_wav(path: str | Path) -> tuple[FloatArray, int]:
    """One mono WAV file as (float32 samples, sample rate); :class:`CalibrationError` naming the file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CalibrationError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    return _decode_wav(data, str(path))


def write_wav(path: str | Path, pcm: npt.ArrayLike, rate: int) -> Path:
    """16-bit PCM WAV: `pcm` int16 as [samples] (mono) or [samples, channels]; what :func:`read_wav` reads back."""
    samples = np.asarray(pcm)
    if samples.dtype != np.int16 or samples.ndim not in (1, 2):
        raise ValueError(f"write_wav: int16 [samples] or [samples, channels], got {samples.dtype} {samples.shape}")
    path = Path(path)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1 if samples.ndim == 1 else samples.shape[1])
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.astype("<i2").tobytes())
    return path


def _decode_wav(data: bytes, where: str) -> tuple[FloatArray, int]:
    def bad(why: str) -> CalibrationError:
        return CalibrationError(f"{where}: {why}")

    if len(data) < 12 or data[:4] not in (b"RIFF", b"RF64") or data[8:12] != b"WAVE":
        raise bad("not a WAV file (no RIFF/WAVE header): give a .wav file of PCM audio")
    if data[:4] == b"RF64":
        raise bad(f"an RF64 (over 4 GB) WAV file is not supported: cut it into smaller files, or {_FIX_FORMAT}")
    fmt: bytes | None = None
    pcm: bytes | None = None
    pos = 12
    while pos + 8 <= len(data):
        chunk_id = data[pos : pos + 4]
        (size,) = struct.unpack_from("<I", data, pos + 4)
        body = data[pos + 8 : pos + 8 + size]
        if len(body) < size:
            raise bad(
                f"truncated: its '{chunk_id.decode('latin-1')}' chunk announces {size} bytes and {len(body)} are "
                "left in the file (an interrupted copy or recording?): re-export the file"
            )
        if chunk_id == b"fmt " and fmt is None:
            fmt = body
        elif chunk_id == b"data" and pcm is None:
            pcm = body
        pos += 8 + size + (size & 1)  # chunks are padded to an even size
    if fmt is None:
        raise bad("a WAV file without a 'fmt ' chunk: re-export the file")
    if pcm is None:
        raise bad("a WAV file without a 'data' chunk: re-export the file")
    if len(fmt) < 16:
        raise bad(f"its 'fmt ' chunk has {len(fmt)} bytes, fewer than the 16 of every WAV format: re-export it")
    tag, channels, rate, _byte_rate, block_align, bits = struct.unpack_from("<HHIIHH", fmt, 0)
    if tag == WAVE_FORMAT_EXTENSIBLE:
        if len(fmt) < 40:
            raise bad("a WAVE_FORMAT_EXTENSIBLE file with a short 'fmt ' chunk (under 40 bytes): re-export it")
        sub = fmt[24:40]
        if sub[2:] != _GUID_TAIL:
            raise bad(f"WAVE_FORMAT_EXTENSIBLE with an unknown sub-format: {_FIX_FORMAT}")
        (tag,) = struct.unpack_from("<H", sub, 0)
    if tag not in (WAVE_FORMAT_PCM, WAVE_FORMAT_IEEE_FLOAT):
        kind = _FORMAT_NAMES.get(tag, f"format tag 0x{tag:04x}")
        raise bad(f"{kind} audio is not supported (only PCM integers and IEEE float): {_FIX_FORMAT}")
    if channels != 1:
        raise bad(
            f"{channels} channels: the front end takes one (mono) channel, as the chip's microphone gives it; "
            "pick or mix the channel you mean (e.g. `sox in.wav -c 1 out.wav` averages them, "
            "`sox in.wav out.wav remix 1` keeps the first)"
        )
    supported = (8, 16, 24, 32) if tag == WAVE_FORMAT_PCM else (32, 64)
    kind = "PCM" if tag == WAVE_FORMAT_PCM else "float"
    if bits not in supported:
        raise bad(f"{bits}-bit {kind} is not supported ({kind}: {', '.join(map(str, supported))} bits): {_FIX_FORMAT}")
    width = bits // 8
    if block_align != width:
        raise bad(f"its block align is {block_align} bytes, not {width} for mono {bits}-bit: re-export the file")
    if rate <= 0:
        raise bad(f"a sample rate of {rate} Hz: re-export the file")
    if len(pcm) % width:
        raise bad(
            f"its data chunk ({len(pcm)} bytes) is not a whole number of {width}-byte samples (truncated?): "
            "re-export the file"
        )
    if not pcm:
        raise bad("holds no samples")
    raw = np.frombuffer(pcm, dtype=np.uint8)
    x: npt.NDArray[np.float64]
    if tag == WAVE_FORMAT_IEEE_FLOAT:
        x = np.frombuffer(pcm, dtype="<f4" if bits == 32 else "<f8").astype(np.float64)
        _check_float_range(x, where, "float WAV")
        return x.astype(np.float32), rate
    if bits == 8:
        x = (raw.astype(np.float64) - 128.0) / 128.0
    elif bits == 16:
        x = np.frombuffer(pcm, dtype="<i2").astype(np.float64) / 32768.0
    elif bits == 24:
        b = raw.reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        v = np.where(v >= 1 << 23, v - (1 << 24), v)
        x = v.astype(np.float64) / float(1 << 23)
    else:
        x = np.frombuffer(pcm, dtype="<i4").astype(np.float64) / float(1 << 31)
    # 32-bit full scale (2^31 - 1) / 2^31 rounds to 1.0 in float32: keep the [-1, 1) promise.
    return np.minimum(x.astype(np.float32), np.float32(1.0 - 2.0**-24)), rate


def _check_float_range(x: npt.NDArray[np.floating], where: str, what: str) -> None:
    if not np.isfinite(x).all():
        raise CalibrationError(f"{where}: {what} with NaN or infinite samples: re-export the audio")
    peak = float(np.abs(x).max()) if x.size else 0.0
    if peak > 1.0:
        raise CalibrationError(
            f"{where}: {what} samples reach {peak:g}, beyond the [-1, 1] of PCM (the chip's int16 PCM would have "
            "clipped): normalize the audio to a peak of at most 1 (e.g. `sox --norm in.wav out.wav`)"
        )


def list_wav_files(folder: str | Path) -> list[Path]:
    """The ``*.wav`` files under ``folder`` (recursive, any case, no hidden names), sorted by relative path."""
    root = Path(folder)
    found = []
    for p in root.rglob("*"):
        rel = p.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if p.suffix.lower() == ".wav" and p.is_file():
            found.append(p)
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


# ---------------------------------------------------------------------------- .npy


def read_pcm_npy(path: str | Path) -> list[FloatArray]:
    """The clips of a .npy of PCM: int16 (/ 32768) or float in [-1, 1]; 1-D one clip, 2-D ``[clips, samples]``."""
    path = Path(path)
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise CalibrationError(f"{path}: not a readable .npy file ({exc}): save the PCM with numpy.save") from None
    if not isinstance(array, np.ndarray):
        array.close()
        raise CalibrationError(f"{path}: an .npz archive; give one .npy array of PCM ([samples] or [clips, samples])")
    if array.ndim not in (1, 2):
        raise CalibrationError(
            f"{path}: PCM of shape {list(array.shape)}: give [samples] (one clip) or [clips, samples]"
        )
    if array.dtype == np.int16:
        x = array.astype(np.float32) / np.float32(32768.0)
    elif array.dtype.kind == "f":
        x64 = array.astype(np.float64)
        _check_float_range(x64, str(path), "float PCM")
        x = x64.astype(np.float32)
    else:
        raise CalibrationError(
            f"{path}: PCM of dtype {array.dtype}: give int16 samples (scaled by 1/32768, as ESP-DL does) or float "
            "samples in [-1, 1]"
        )
    if x.shape[-1] == 0 or (x.ndim == 2 and x.shape[0] == 0):
        raise CalibrationError(f"{path}: holds no samples")
    clips = [x] if x.ndim == 1 else list(x)
    return [np.ascontiguousarray(c, dtype=np.float32) for c in clips]


# ---------------------------------------------------------------------------- resampling


def _kaiser(t: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """The Kaiser window at ``t`` in [-1, 1] (0 outside)."""
    inside = np.abs(t) <= 1.0
    arg = _KAISER_BETA * np.sqrt(np.clip(1.0 - t * t, 0.0, None))
    return cast("npt.NDArray[np.float64]", np.where(inside, np.i0(arg) / np.i0(_KAISER_BETA), 0.0))


@dataclass(frozen=True)
class _Resampler:
    up: int  # L
    down: int  # M
    half: int  # taps each side of the output time, in input samples
    table: npt.NDArray[np.float64]  # [L, 2 * half]: the weights of x[base - half + 1 ...] for each phase


def _design(source_rate: int, target_rate: int) -> _Resampler:
    g = math.gcd(source_rate, target_rate)
    up, down = target_rate // g, source_rate // g
    nyquist = 0.5 * min(1.0, target_rate / source_rate)  # cycles per input sample
    transition = (1.0 - RESAMPLER_PASSBAND_EDGE) * nyquist
    cutoff = nyquist - transition / 2.0
    taps = (RESAMPLER_STOPBAND_DB - 7.95) / (14.36 * transition)  # Kaiser's estimate of the filter length
    half = max(2, math.ceil(taps / 2.0))
    d = np.arange(-half + 1, half + 1, dtype=np.float64)
    frac = np.arange(up, dtype=np.float64)[:, None] / up
    tau = d[None, :] - frac  # from the output time to each input sample, in input samples
    table = 2.0 * cutoff * np.sinc(2.0 * cutoff * tau) * _kaiser(tau / half)
    table /= table.sum(axis=1, keepdims=True)  # unit gain at DC for every phase
    return _Resampler(up, down, half, table)


def resample_pcm(samples: npt.ArrayLike, source_rate: int, target_rate: int) -> FloatArray:
    """``samples`` at ``source_rate`` Hz resampled to ``target_rate`` Hz (float32, clipped to [-1, 1]).

    Output sample ``m`` is at time ``m / target_rate``; there are ``ceil(n * target / source)`` of them.
    Deterministic (float64 numpy, no FFT); the design is in the module docstring.
    """
    x = np.asarray(samples, dtype=np.float64).reshape(-1)
    if source_rate <= 0 or target_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {source_rate} and {target_rate}")
    if source_rate == target_rate:
        return x.astype(np.float32)
    r = _design(int(source_rate), int(target_rate))
    n_out = -(-x.size * r.up // r.down)
    padded = np.concatenate([np.zeros(r.half), x, np.zeros(r.half + 1)])
    offsets = np.arange(2 * r.half)  # base - half + 1 + i, shifted by the `half` zeros in front
    out = np.empty(n_out, dtype=np.float64)
    for start in range(0, n_out, _BLOCK):
        pos = np.arange(start, min(n_out, start + _BLOCK), dtype=np.int64) * r.down
        base, phase = pos // r.up, pos % r.up
        gathered = padded[base[:, None] + 1 + offsets[None, :]]
        out[start : start + pos.size] = np.sum(gathered * r.table[phase], axis=1)
    return np.clip(out, -1.0, 1.0).astype(np.float32)


# ---------------------------------------------------------------------------- loading


def _rate_error(what: str, where: str, rate: int, expected: int) -> CalibrationError:
    option = BY_KEY["RESAMPLE"]
    return CalibrationError(
        f"{what} {where}: sampled at {rate} Hz but the front end takes {expected} Hz (SAMPLE_RATE): "
        f"convert it (e.g. `sox in.wav -r {expected} out.wav`) or let the tool resample it ({option.names} ON, "
        "the resample argument of espdl_streaming.audio.pcm.load_audio)"
    )


def load_audio(
    path: str | Path, sample_rate: int, *, resample: bool = False, name: str | None = None, role: str = "audio"
) -> AudioClips:
    """The clips of a .wav file, a folder of .wav files or a .npy of PCM, at ``sample_rate`` Hz.

    A WAV file at another rate is resampled when ``resample`` is true, else refused.  Errors are
    :class:`CalibrationError` naming the file (prefixed ``name: `` when given; ``role`` says what the audio
    is for, e.g. "calibration").
    """
    path = Path(path)
    what = f"{_prefix(name)}{role}"
    if path.is_dir():
        files = list_wav_files(path)
        if not files:
            raise CalibrationError(f"{what} folder {path}: no .wav files in it (or under it)")
        labels = [f.relative_to(path).as_posix() for f in files]
    elif path.is_file() and path.suffix.lower() == ".wav":
        files, labels = [path], [path.name]
    elif path.is_file() and path.suffix.lower() == ".npy":
        try:
            clips = read_pcm_npy(path)
        except CalibrationError as exc:
            raise CalibrationError(f"{what} {exc}") from None
        names = [path.name] if len(clips) == 1 else [f"{path.name}[{i}]" for i in range(len(clips))]
        return AudioClips(tuple(clips), sample_rate, tuple(names), (sample_rate,) * len(clips), (path,))
    elif not path.exists():
        raise CalibrationError(f"{what} {path}: no such file or folder")
    else:
        raise CalibrationError(f"{what} {path}: give a .wav file, a folder of .wav files or a .npy of PCM")
    clips, rates = [], []
    for file in files:
        try:
            x, rate = read_wav(file)
        except CalibrationError as exc:
            raise CalibrationError(f"{what} {exc}") from None
        if rate != sample_rate:
            if not resample:
                raise _rate_error(what, str(file), rate, sample_rate)
            x = resample_pcm(x, rate, sample_rate)
        clips.append(x)
        rates.append(rate)
    return AudioClips(tuple(clips), sample_rate, tuple(labels), tuple(rates), tuple(files))


# ---------------------------------------------------------------------------- model input


def clips_to_model_input(
    audio: AudioClips,
    config: FrontendConfig,
    input_shape: Sequence[int],
    *,
    hop_frames: int | None = None,
    name: str | None = None,
    role: str = "calibration",
) -> FloatArray:
    """Model inputs ``[N, *input_shape[1:]]`` float32 from the clips' features (layout in the module docstring).

    Raises :class:`~..errors.DeclarationError` when the input does not take the front end's frames and
    :class:`CalibrationError` for a clip shorter than one window of ``input_shape[2]`` frames.
    """
    config = config.validate()
    shape = tuple(int(d) for d in input_shape)
    check_feature_dim(config, shape, name)
    if audio.sample_rate != config.sample_rate:
        raise CalibrationError(
            f"{_prefix(name)}{role} audio is at {audio.sample_rate} Hz, the front end takes {config.sample_rate} Hz"
        )
    frames = shape[2]
    hop = frames if hop_frames is None else int(hop_frames)
    if hop < 1:
        raise ValueError(f"hop_frames must be >= 1, got {hop_frames}")
    per_frame = shape[1:2] + shape[3:]
    windows: list[FloatArray] = []
    for clip, label in zip(audio.clips, audio.names):
        feats = compute_features(config, clip)
        if feats.shape[0] < frames:
            need = config.win_len + (frames - 1) * config.win_step
            raise CalibrationError(
                f"{_prefix(name)}{role} clip {label}: {clip.size} samples ({clip.size / config.sample_rate:.3f} s) "
                f"give {feats.shape[0]} feature frames, fewer than the {frames} of one model input (INPUT_SHAPE dim "
                f"2): it needs at least {need} samples ({need / config.sample_rate:.3f} s) at "
                f"FRAME_LENGTH_MS {config.frame_length} / FRAME_SHIFT_MS {config.frame_shift}; use longer clips, "
                "leave this one out, or a model input with fewer frames"
            )
        for start in range(0, feats.shape[0] - frames + 1, hop):
            window = feats[start : start + frames].reshape(frames, *per_frame)  # [T, C(, F)]
            windows.append(np.moveaxis(window, 0, 1))  # [C, T(, F)]
    if not windows:
        raise CalibrationError(f"{_prefix(name)}{role} audio holds no clips")
    return np.ascontiguousarray(np.stack(windows), dtype=np.float32)


def audio_model_input(
    path: str | Path,
    frontend: FrontendDeclaration | FrontendConfig,
    input_shape: Sequence[int],
    *,
    resample: bool | None = None,
    hop_frames: int | None = None,
    name: str | None = None,
    role: str = "calibration",
) -> tuple[FloatArray, AudioClips]:
    """:func:`load_audio` then :func:`clips_to_model_input`: the model inputs from an audio path, and the clips.

    ``resample`` defaults to the declaration's RESAMPLE (off for a bare :class:`FrontendConfig`).
    """
    if isinstance(frontend, FrontendDeclaration):
        config = frontend.config
        do_resample = frontend.resample if resample is None else resample
    else:
        config, do_resample = frontend, bool(resample)
    audio = load_audio(path, config.sample_rate, resample=do_resample, name=name, role=role)
    return clips_to_model_input(audio, config, input_shape, hop_frames=hop_frames, name=name, role=role), audio
