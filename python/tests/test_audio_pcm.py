"""Calibration and evaluation audio (espdl_streaming.audio.pcm): WAV formats read back exactly, the files it
refuses and what it says, folders in a fixed order, .npy PCM scaling, the resampler's accuracy and alias
rejection, the sample-rate policy, and the model input built from clips (equal to compute_features).

The WAV files are written here, by the standard ``wave`` module (16-bit PCM, an independent writer) or
byte by byte (every other format), so no audio file is committed.
"""

from __future__ import annotations

import struct
import wave
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from espdl_streaming.audio import FrontendConfig, compute_features
from espdl_streaming.audio.declare import parse_frontend
from espdl_streaming.audio.pcm import (
    RESAMPLER_STOPBAND_DB,
    AudioClips,
    audio_model_input,
    clips_to_model_input,
    list_wav_files,
    load_audio,
    read_pcm_npy,
    read_wav,
    resample_pcm,
)
from espdl_streaming.errors import CalibrationError, DeclarationError

SR = 16000
_GUID_TAIL = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"

# --------------------------------------------------------------------------- writers


def riff(
    payload: bytes,
    *,
    tag: int = 1,
    bits: int = 16,
    channels: int = 1,
    rate: int = SR,
    extensible: bool = False,
    before_data: bytes = b"",
    block_align: int | None = None,
    guid_tail: bytes = _GUID_TAIL,
) -> bytes:
    """A WAV file's bytes: RIFF/WAVE, a 'fmt ' chunk (16 bytes, or 40 for WAVE_FORMAT_EXTENSIBLE), optional
    chunks, then 'data'."""
    align = channels * bits // 8 if block_align is None else block_align
    if extensible:
        fmt = struct.pack("<HHIIHH", 0xFFFE, channels, rate, rate * align, align, bits)
        fmt += struct.pack("<HHI", 22, bits, 0x4) + struct.pack("<H", tag) + guid_tail
    else:
        fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * align, align, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + before_data
    body += b"data" + struct.pack("<I", len(payload)) + payload + (b"\0" if len(payload) & 1 else b"")
    return b"RIFF" + struct.pack("<I", len(body)) + body


def chunk(cid: bytes, data: bytes) -> bytes:
    return cid + struct.pack("<I", len(data)) + data + (b"\0" if len(data) & 1 else b"")


def write_wave16(path: Path, pcm: np.ndarray, rate: int = SR, channels: int = 1) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.asarray(pcm, dtype="<i2").tobytes())
    return path


def int24_bytes(values: np.ndarray) -> bytes:
    v = np.asarray(values, dtype=np.int64) & 0xFFFFFF
    return np.stack([v & 0xFF, (v >> 8) & 0xFF, (v >> 16) & 0xFF], axis=1).astype(np.uint8).tobytes()


def tone(freq: float, rate: int, seconds: float, amp: float = 0.5, phase: float = 0.3) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return amp * np.sin(2 * np.pi * freq * t + phase)


RNG = np.random.default_rng(7)
INT16 = np.concatenate([[-32768, 32767, 0, -1, 1], RNG.integers(-32768, 32768, 995)]).astype(np.int16)

# --------------------------------------------------------------------------- WAV formats


def test_16bit_wav_written_by_the_wave_module(tmp_path: Path) -> None:
    x, rate = read_wav(write_wave16(tmp_path / "a.wav", INT16))
    assert rate == SR and x.dtype == np.float32
    np.testing.assert_array_equal(x, INT16.astype(np.float32) / 32768)
    assert x.min() == -1.0 and x.max() < 1.0


def _formats() -> dict[str, tuple[bytes, np.ndarray]]:
    """name -> (WAV bytes, expected float32 samples)."""
    u8 = np.concatenate([[0, 255, 128, 127], RNG.integers(0, 256, 96)]).astype(np.uint8)
    i24 = np.concatenate([[-(1 << 23), (1 << 23) - 1, 0, -1], RNG.integers(-(1 << 23), 1 << 23, 96)])
    i32 = np.concatenate([[-(1 << 31), (1 << 31) - 1, 0, -1], RNG.integers(-(1 << 31), 1 << 31, 96)]).astype("<i4")
    f32 = np.concatenate([[-1.0, 1.0, 0.0], RNG.uniform(-1, 1, 97)]).astype("<f4")
    f64 = np.concatenate([[-1.0, 1.0, 0.0], RNG.uniform(-1, 1, 97)]).astype("<f8")
    want_i32 = np.minimum((i32.astype(np.float64) / 2**31).astype(np.float32), np.float32(1 - 2**-24))
    return {
        "pcm8": (riff(u8.tobytes(), bits=8), ((u8.astype(np.float64) - 128) / 128).astype(np.float32)),
        "pcm16": (riff(INT16.astype("<i2").tobytes()), INT16.astype(np.float32) / 32768),
        "pcm24": (riff(int24_bytes(i24), bits=24), (i24 / 2**23).astype(np.float32)),
        "pcm32": (riff(i32.tobytes(), bits=32), want_i32),
        "float32": (riff(f32.tobytes(), tag=3, bits=32), f32.astype(np.float32)),
        "float64": (riff(f64.tobytes(), tag=3, bits=64), f64.astype(np.float32)),
        "ext-pcm16": (riff(INT16.astype("<i2").tobytes(), extensible=True), INT16.astype(np.float32) / 32768),
        "ext-pcm24": (riff(int24_bytes(i24), bits=24, extensible=True), (i24 / 2**23).astype(np.float32)),
        "ext-float32": (riff(f32.tobytes(), tag=3, bits=32, extensible=True), f32.astype(np.float32)),
        # An odd-sized chunk before the data: chunks are padded to even sizes.
        "pcm16-list-chunk": (
            riff(INT16.astype("<i2").tobytes(), before_data=chunk(b"LIST", b"INFOabc")),
            INT16.astype(np.float32) / 32768,
        ),
    }


@pytest.mark.parametrize("name", list(_formats()))
def test_wav_formats_read_back_exactly(name: str, tmp_path: Path) -> None:
    data, want = _formats()[name]
    path = tmp_path / f"{name}.wav"
    path.write_bytes(data)
    x, rate = read_wav(path)
    assert rate == SR and x.dtype == np.float32
    np.testing.assert_array_equal(x, want)
    assert x.min() >= -1.0 and x.max() <= 1.0
    if not name.startswith(("float", "ext-float")):
        assert x.max() < 1.0  # integers: [-1, 1)


def test_24_and_32_bit_extremes_scale_to_minus_one_and_just_below_one(tmp_path: Path) -> None:
    (tmp_path / "a.wav").write_bytes(riff(int24_bytes(np.array([-(1 << 23), (1 << 23) - 1])), bits=24))
    x, _ = read_wav(tmp_path / "a.wav")
    assert x[0] == -1.0 and x[1] == np.float32(1 - 2**-23)
    (tmp_path / "b.wav").write_bytes(riff(np.array([-(1 << 31), (1 << 31) - 1], dtype="<i4").tobytes(), bits=32))
    y, _ = read_wav(tmp_path / "b.wav")
    assert y[0] == -1.0 and 0.9999999 < y[1] < 1.0


BAD_FILES: dict[str, tuple[bytes, str]] = {
    "stereo": (
        riff(np.zeros(20, dtype="<i2").tobytes(), channels=2),
        r"2 channels: the front end takes one \(mono\) channel.*sox in\.wav -c 1 out\.wav",
    ),
    "12-bit": (riff(b"\0" * 20, bits=12, block_align=2), r"12-bit PCM is not supported.*sox in\.wav -b 16"),
    "16-bit float": (riff(b"\0" * 20, tag=3, bits=16), r"16-bit float is not supported \(float: 32, 64 bits\)"),
    "a-law": (riff(b"\0" * 20, tag=6, bits=8), r"A-law audio is not supported"),
    "garbage": (b"this is not audio at all, just text\n" * 3, r"not a WAV file \(no RIFF/WAVE header\)"),
    "empty": (b"", r"not a WAV file"),
    "mp3 renamed": (b"ID3\x03\x00" + bytes(200), r"not a WAV file"),
    "truncated": (riff(np.zeros(100, dtype="<i2").tobytes())[:-50], r"truncated: its 'data' chunk announces 200"),
    "half sample": (riff(b"\0\0\0"), r"not a whole number of 2-byte samples"),
    "no samples": (riff(b""), r"holds no samples"),
    "no data chunk": (riff(b"")[: -8 - 0], r"without a 'data' chunk"),
    "bad block align": (riff(b"\0" * 20, block_align=4), r"block align is 4 bytes, not 2"),
    "float beyond 1": (riff(np.array([0.5, 1.5], "<f4").tobytes(), tag=3, bits=32), r"reach 1\.5.*sox --norm"),
    "float nan": (riff(np.array([0.5, np.nan], "<f4").tobytes(), tag=3, bits=32), r"NaN or infinite"),
    "extensible unknown": (
        riff(b"\0" * 20, extensible=True, guid_tail=bytes(14)),
        r"unknown sub-format",
    ),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_wav_files_are_refused_naming_the_file(case: str, tmp_path: Path) -> None:
    data, message = BAD_FILES[case]
    path = tmp_path / "clip_07.wav"
    path.write_bytes(data)
    with pytest.raises(CalibrationError, match=message) as info:
        read_wav(path)
    assert str(path) in str(info.value)
    with pytest.raises(CalibrationError, match=message) as info:
        load_audio(path, SR, name="kws", role="calibration")
    assert str(info.value).startswith(f"kws: calibration {path}: ")


def test_missing_and_unknown_paths(tmp_path: Path) -> None:
    with pytest.raises(CalibrationError, match=r"no such file or folder"):
        load_audio(tmp_path / "nope.wav", SR)
    (tmp_path / "a.flac").write_bytes(b"fLaC")
    with pytest.raises(CalibrationError, match=r"give a \.wav file, a folder of \.wav files or a \.npy of PCM"):
        load_audio(tmp_path / "a.flac", SR)


# --------------------------------------------------------------------------- folders


def test_folder_is_read_in_sorted_relative_path_order(tmp_path: Path) -> None:
    root = tmp_path / "calib"
    (root / "yes").mkdir(parents=True)
    (root / "no").mkdir()
    (root / ".cache").mkdir()
    names = ["b.wav", "a.wav", "yes/c.wav", "no/z.WAV", "B2.wav", "yes/a10.wav", "yes/a9.wav"]
    for i, n in enumerate(names):
        write_wave16(root / n, np.full(400, i, dtype=np.int16))
    (root / "notes.txt").write_text("not audio")
    (root / "._a.wav").write_bytes(b"macOS resource fork")  # hidden: skipped, though it is no WAV
    (root / ".cache" / "x.wav").write_bytes(b"junk")
    clips = load_audio(root, SR)
    want = sorted(names)
    assert (
        list(clips.names) == want == ["B2.wav", "a.wav", "b.wav", "no/z.WAV", "yes/a10.wav", "yes/a9.wav", "yes/c.wav"]
    )
    for name, clip in zip(clips.names, clips.clips):
        assert clip[0] * 32768 == names.index(name)
    assert [p.relative_to(root).as_posix() for p in clips.files] == want
    assert list_wav_files(root) == list(clips.files)
    assert clips.source_rates == (SR,) * len(names) and clips.resampled == ()


def test_folder_error_names_the_file_that_fails(tmp_path: Path) -> None:
    write_wave16(tmp_path / "a.wav", np.zeros(400, np.int16))
    write_wave16(tmp_path / "b.wav", np.zeros((400, 2), np.int16), channels=2)
    write_wave16(tmp_path / "c.wav", np.zeros(400, np.int16), rate=8000)
    with pytest.raises(CalibrationError, match=r"evaluation .*b\.wav: 2 channels"):
        load_audio(tmp_path, SR, role="evaluation")
    (tmp_path / "b.wav").unlink()
    with pytest.raises(CalibrationError, match=r"c\.wav: sampled at 8000 Hz"):
        load_audio(tmp_path, SR)


def test_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "x.txt").write_text("")
    with pytest.raises(CalibrationError, match=r"no \.wav files"):
        load_audio(tmp_path, SR, name="kws", role="calibration")


# --------------------------------------------------------------------------- .npy


def test_npy_int16_is_scaled_as_esp_dl_does(tmp_path: Path) -> None:
    np.save(tmp_path / "one.npy", INT16)
    clips = load_audio(tmp_path / "one.npy", SR)
    assert clips.names == ("one.npy",) and len(clips) == 1
    np.testing.assert_array_equal(clips.clips[0], INT16.astype(np.float32) / np.float32(32768))
    # What the front end computes from int16 directly (process_frame(const int16_t *)) is what it computes
    # from the scaled clip.
    cfg = FrontendConfig()
    np.testing.assert_array_equal(compute_features(cfg, clips.clips[0]), compute_features(cfg, INT16))


def test_npy_2d_is_clips_by_samples(tmp_path: Path) -> None:
    data = RNG.uniform(-1, 1, (3, 500)).astype(np.float64)
    np.save(tmp_path / "pcm.npy", data)
    clips = load_audio(tmp_path / "pcm.npy", SR)
    assert clips.names == ("pcm.npy[0]", "pcm.npy[1]", "pcm.npy[2]")
    for i in range(3):
        np.testing.assert_array_equal(clips.clips[i], data[i].astype(np.float32))
    assert clips.files == (tmp_path / "pcm.npy",)


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((2, 3, 4), np.float32), r"shape \[2, 3, 4\]: give \[samples\] \(one clip\) or \[clips, samples\]"),
        (np.zeros(10, np.int32), r"dtype int32: give int16 samples"),
        (np.array([0.1, -1.25], np.float32), r"reach 1\.25"),
        (np.zeros((2, 0), np.float32), r"holds no samples"),
    ],
)
def test_npy_errors(array: np.ndarray, message: str, tmp_path: Path) -> None:
    np.save(tmp_path / "pcm.npy", array)
    with pytest.raises(CalibrationError, match=message):
        read_pcm_npy(tmp_path / "pcm.npy")
    with pytest.raises(CalibrationError, match=r"^kws: calibration \S*pcm\.npy: (.* )?" + message):
        load_audio(tmp_path / "pcm.npy", SR, name="kws", role="calibration")


def test_npy_that_is_no_npy(tmp_path: Path) -> None:
    (tmp_path / "x.npy").write_bytes(b"garbage")
    with pytest.raises(CalibrationError, match=r"not a readable \.npy file"):
        read_pcm_npy(tmp_path / "x.npy")


# --------------------------------------------------------------------------- resampling


def _amplitude_at(y: np.ndarray, freq: float, rate: int) -> float:
    """Least-squares amplitude of a sinusoid at `freq` in `y`."""
    t = np.arange(y.size) / rate
    basis = np.stack([np.sin(2 * np.pi * freq * t), np.cos(2 * np.pi * freq * t)], axis=1)
    coef, *_ = np.linalg.lstsq(basis, y, rcond=None)
    return float(np.hypot(*coef))


EDGE = 400  # output samples at each end left out: there the clip's end is resampled against zeros


def test_resampled_sine_keeps_frequency_and_amplitude() -> None:
    x = tone(1000.0, 48000, 1.0, amp=0.5, phase=0.3)
    y = resample_pcm(x, 48000, 16000).astype(np.float64)
    assert y.size == 16000
    want = tone(1000.0, 16000, 1.0, amp=0.5, phase=0.3)
    assert np.abs(y - want)[EDGE:-EDGE].max() < 1e-6  # same frequency, phase and amplitude, sample by sample
    # frequency: the spectrum peaks at 1000 Hz and the fitted amplitude there is 0.5
    spectrum = np.abs(np.fft.rfft(y[EDGE:-EDGE] * np.hanning(y.size - 2 * EDGE)))
    peak_hz = np.argmax(spectrum) * 16000 / (y.size - 2 * EDGE)
    assert abs(peak_hz - 1000.0) <= 16000 / (y.size - 2 * EDGE)
    fitted = _amplitude_at(y[EDGE:-EDGE], 1000.0, 16000)
    assert abs(fitted - 0.5) < 0.5e-4, fitted


@pytest.mark.parametrize(("src", "dst"), [(48000, 16000), (44100, 16000), (32000, 16000), (22050, 16000)])
def test_passband_is_flat_to_0_9_nyquist(src: int, dst: int) -> None:
    edge = 0.9 * min(src, dst) / 2
    for f in np.linspace(50.0, edge, 9):
        y = resample_pcm(tone(f, src, 0.25), src, dst).astype(np.float64)
        amp = _amplitude_at(y[EDGE:-EDGE], f, dst)
        assert abs(amp / 0.5 - 1) < 1e-4, (f, amp)


# Alias rejection measured: a tone above the new Nyquist frequency must leave nothing in the output.
ALIAS_REJECTION_DB = 96.0


@pytest.mark.parametrize(("src", "dst"), [(48000, 16000), (44100, 16000), (32000, 16000)])
def test_tones_above_the_new_nyquist_are_attenuated(src: int, dst: int) -> None:
    assert ALIAS_REJECTION_DB <= RESAMPLER_STOPBAND_DB
    worst = np.inf
    # The stopband edge (8000 Hz) and up; 8000 itself (sampled at its zeros) would prove nothing.
    freqs = np.concatenate([[8010.0, 8040.0, 8075.0, 8150.0, 8400.0], np.linspace(8500.0, src / 2 - 100, 24)])
    for f in freqs:
        y = resample_pcm(tone(f, src, 0.25), src, dst).astype(np.float64)
        rms = np.sqrt(np.mean(y[EDGE:-EDGE] ** 2))
        worst = min(worst, 20 * np.log10((0.5 / np.sqrt(2)) / max(rms, 1e-30)))
    assert worst >= ALIAS_REJECTION_DB, worst


def test_upsampling_leaves_no_image() -> None:
    x = tone(3000.0, 8000, 0.5)
    y = resample_pcm(x, 8000, 16000).astype(np.float64)
    assert y.size == 8000
    core = y[EDGE:-EDGE]
    assert abs(_amplitude_at(core, 3000.0, 16000) - 0.5) < 0.5e-4
    image = _amplitude_at(core, 5000.0, 16000)  # 8000 - 3000: where a zero-order upsampler puts the image
    assert 20 * np.log10(0.5 / max(image, 1e-30)) >= ALIAS_REJECTION_DB


def test_resampler_is_deterministic_and_identity_at_the_same_rate() -> None:
    x = RNG.uniform(-0.5, 0.5, 4410)
    a = resample_pcm(x, 44100, 16000)
    b = resample_pcm(x.copy(), 44100, 16000)
    assert a.tobytes() == b.tobytes() and a.size == 1600
    np.testing.assert_array_equal(resample_pcm(x, 16000, 16000), x.astype(np.float32))
    with pytest.raises(ValueError):
        resample_pcm(x, 0, 16000)


def test_resampled_full_scale_stays_in_range() -> None:
    square = np.sign(np.sin(2 * np.pi * 440 * np.arange(4800) / 48000)) * 0.999
    y = resample_pcm(square, 48000, 16000)
    assert y.max() <= 1.0 and y.min() >= -1.0


# --------------------------------------------------------------------------- the sample-rate policy


def test_a_wav_at_another_rate_is_refused_with_the_fix(tmp_path: Path) -> None:
    path = write_wave16(tmp_path / "rec.wav", INT16, rate=44100)
    with pytest.raises(CalibrationError) as info:
        load_audio(path, 16000, name="kws", role="calibration")
    message = str(info.value)
    assert message.startswith(f"kws: calibration {path}: sampled at 44100 Hz but the front end takes 16000 Hz")
    assert "sox in.wav -r 16000 out.wav" in message
    assert "RESAMPLE (--frontend-resample) ON" in message


def test_a_wav_at_another_rate_is_resampled_on_request(tmp_path: Path) -> None:
    x = (tone(440.0, 48000, 0.5) * 32767).astype(np.int16)
    write_wave16(tmp_path / "a.wav", x, rate=48000)
    write_wave16(tmp_path / "b.wav", x[::3], rate=16000)
    clips = load_audio(tmp_path, 16000, resample=True)
    assert clips.sample_rate == 16000 and clips.source_rates == (48000, 16000)
    assert clips.resampled == ("a.wav",)
    assert clips.clips[0].size == 8000
    np.testing.assert_array_equal(clips.clips[0], resample_pcm(x.astype(np.float32) / 32768, 48000, 16000))
    np.testing.assert_array_equal(clips.clips[1], x[::3].astype(np.float32) / 32768)


# --------------------------------------------------------------------------- model input


def _clips(*arrays: np.ndarray) -> AudioClips:
    return AudioClips(
        tuple(np.asarray(a, np.float32) for a in arrays),
        SR,
        tuple(f"c{i}.wav" for i in range(len(arrays))),
        (SR,) * len(arrays),
        (),
    )


def test_model_input_is_windows_of_compute_features(tmp_path: Path) -> None:
    cfg = FrontendConfig(num_mel_bins=16)
    a = RNG.uniform(-0.3, 0.3, SR).astype(np.float32)  # 98 frames
    b = RNG.uniform(-0.3, 0.3, SR // 2).astype(np.float32)  # 48 frames
    out = clips_to_model_input(_clips(a, b), cfg, (1, 16, 24))
    fa, fb = compute_features(cfg, a), compute_features(cfg, b)
    assert fa.shape == (98, 16) and fb.shape == (48, 16)
    assert out.shape == (98 // 24 + 48 // 24, 16, 24) and out.dtype == np.float32
    windows = [fa[i * 24 : (i + 1) * 24].T for i in range(4)] + [fb[i * 24 : (i + 1) * 24].T for i in range(2)]
    np.testing.assert_array_equal(out, np.stack(windows))
    # hop_frames: overlapping windows
    hopped = clips_to_model_input(_clips(a), cfg, (1, 16, 24), hop_frames=10)
    assert hopped.shape == (1 + (98 - 24) // 10, 16, 24)
    np.testing.assert_array_equal(hopped[3], fa[30:54].T)


def test_model_input_is_what_calibration_npy_holds() -> None:
    from espdl_streaming.loading import _as_samples

    cfg = FrontendConfig(kind="mfcc", num_mel_bins=40, num_ceps=13)
    a = RNG.uniform(-0.3, 0.3, SR).astype(np.float32)
    out = clips_to_model_input(_clips(a), cfg, (1, 13, 20))
    decl = SimpleNamespace(name="kws", input_shape=(1, 13, 20))
    samples = _as_samples(decl, out, "audio")  # type: ignore[arg-type]
    assert len(samples) == 4 and samples[0].shape == (1, 13, 20)
    np.testing.assert_array_equal(samples[1][0], compute_features(cfg, a)[20:40].T)


@pytest.mark.parametrize(
    ("shape", "layout"),
    [((1, 1, 24, 26), lambda w: w[None, :, :]), ((1, 26, 24, 1), lambda w: w.T[:, :, None])],
)
def test_four_dim_inputs(shape: tuple[int, ...], layout: object) -> None:
    cfg = FrontendConfig()
    a = RNG.uniform(-0.3, 0.3, SR // 2).astype(np.float32)
    out = clips_to_model_input(_clips(a), cfg, shape)
    assert out.shape == (2, *shape[1:])
    f = compute_features(cfg, a)
    assert callable(layout)
    np.testing.assert_array_equal(out[1], layout(f[24:48]))


def test_clip_shorter_than_a_window_is_named() -> None:
    cfg = FrontendConfig(num_mel_bins=16)
    ok = np.zeros(SR, np.float32)
    short = np.zeros(2000, np.float32)  # 11 frames
    with pytest.raises(CalibrationError) as info:
        clips_to_model_input(_clips(ok, short), cfg, (1, 16, 24), name="kws", role="evaluation")
    message = str(info.value)
    assert message.startswith("kws: evaluation clip c1.wav: 2000 samples (0.125 s) give 11 feature frames")
    assert "fewer than the 24 of one model input" in message
    assert "at least 4080 samples (0.255 s)" in message  # 400 + 23 * 160


def test_feature_dim_mismatch_is_a_declaration_error() -> None:
    with pytest.raises(DeclarationError, match=r"INPUT_SHAPE 1 40 24 takes 40 .* FRONTEND fbank outputs 26"):
        clips_to_model_input(_clips(np.zeros(SR)), FrontendConfig(), (1, 40, 24))


def test_audio_model_input_from_a_folder_with_the_declaration(tmp_path: Path) -> None:
    decl = parse_frontend({"FRONTEND": "fbank", "NUM_MEL_BINS": "16", "RESAMPLE": "ON"})
    assert decl is not None
    x = (tone(300.0, 32000, 1.0) * 20000).astype(np.int16)
    write_wave16(tmp_path / "a.wav", x, rate=32000)
    out, clips = audio_model_input(tmp_path, decl, (1, 16, 24))
    want = compute_features(decl.config, resample_pcm(x.astype(np.float32) / 32768, 32000, 16000))
    assert out.shape == (4, 16, 24)
    np.testing.assert_array_equal(out[2], want[48:72].T)
    assert clips.source_rates == (32000,)
    with pytest.raises(CalibrationError, match="sampled at 32000 Hz"):
        audio_model_input(tmp_path, decl, (1, 16, 24), resample=False)
    with pytest.raises(CalibrationError, match="sampled at 32000 Hz"):
        audio_model_input(tmp_path, decl.config, (1, 16, 24))
