"""The speech front end in a build (issue 13): FRONTEND and its options through the CLI, calibration and
evaluation from audio (WAV, a folder of WAVs, .npy of PCM), the report's `frontend` section, the build
cache keyed on a calibration folder's listing, and the errors (exit 2 with the option and the fix).

Each successful build costs a few seconds (torch and esp-ppq): the successful builds here are few.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import TEST_MODELS, build_args, run_cli

from espdl_streaming.audio import pcm as pcm_io

MODEL = f"{TEST_MODELS / 'per_frame.py'}:build"  # [1, 8, T] -> [1, 4, T]
SHAPE = "1,8,16"
FBANK = ("--frontend", "fbank", "--frontend-num-mel-bins", "8")
HIT = "replayed from the build cache"


def write_wav(
    path: Path, rate: int, seconds: float = 0.5, tone_hz: float = 440.0, seed: int = 0, *, channels: int = 1
) -> Path:
    """A deterministic 16-bit WAV: a tone plus seeded noise (the same on every channel)."""
    n = int(rate * seconds)
    t = np.arange(n) / rate
    x = 0.3 * np.sin(2 * np.pi * tone_hz * t) + 0.05 * np.random.default_rng(seed).standard_normal(n)
    pcm = np.round(np.clip(x, -1, 1) * 32767).astype(np.int16)
    path.parent.mkdir(parents=True, exist_ok=True)
    return pcm_io.write_wav(path, pcm if channels == 1 else np.repeat(pcm[:, None], channels, axis=1), rate)


def fe_args(out: Path, *extra: str) -> list[str]:
    return build_args("fe", MODEL, SHAPE, 4, "esp32p4", out, *extra)


def test_fbank_build_from_a_wav_folder_and_adding_a_wav_rebuilds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ESPDL_STREAMING_CACHE", "1")
    monkeypatch.setenv("ESPDL_STREAMING_CACHE_DIR", str(tmp_path / "cache"))
    calib = tmp_path / "calib"
    write_wav(calib / "a.wav", 16000, tone_hz=300, seed=1)
    write_wav(calib / "sub" / "b.wav", 16000, tone_hz=900, seed=2)
    out = tmp_path / "out"
    args = fe_args(out, *FBANK, "--calibration", str(calib), "--depfile", str(out / "fe.d"))
    r = run_cli(*args)
    assert r.returncode == 0, r.stderr
    assert "front end fbank: 8 features per frame from 16000 Hz PCM, frames of 400 samples every 160" in r.stdout
    report = json.loads((out / "fe.report.json").read_text())
    assert report["streaming"]["verified"] is True and report["streaming"]["max_abs_diff"] == 0
    fe = report["frontend"]
    assert (fe["kind"], fe["feature_dim"], fe["frame_length_samples"], fe["frame_shift_samples"]) == (
        "fbank", 8, 400, 160,
    )  # fmt: skip
    assert fe["config"]["num_mel_bins"] == 8 and fe["config"]["sample_rate"] == 16000
    # 0.5 s at 10 ms shift: 48 frames, 3 windows of 16 per clip
    assert report["calibration"] == {"source": str(calib.resolve()), "samples": 6, "random": False}
    deps = (out / "fe.d").read_text()
    for f in ("a.wav", "sub/b.wav"):
        assert str((calib / f).resolve()) in deps
    assert HIT in run_cli(*args).stdout  # same audio: replayed
    write_wav(calib / "c.wav", 16000, tone_hz=600, seed=3)
    r = run_cli(*args)
    assert r.returncode == 0, r.stderr
    assert HIT not in r.stdout, "a .wav added to the calibration folder must invalidate the build cache"
    assert json.loads((out / "fe.report.json").read_text())["calibration"]["samples"] == 9


def test_wrong_rate_is_refused_with_the_fix_and_resample_builds(tmp_path: Path) -> None:
    wav = write_wav(tmp_path / "rec48k.wav", 48000, seconds=0.4)
    out = tmp_path / "out"
    r = run_cli(*fe_args(out, *FBANK, "--calibration", str(wav)))
    assert r.returncode == 2, r.stderr
    assert "48000 Hz" in r.stderr and "16000 Hz (SAMPLE_RATE)" in r.stderr
    assert "sox in.wav -r 16000" in r.stderr and "RESAMPLE (--frontend-resample) ON" in r.stderr
    assert not out.exists() or not any(out.iterdir())
    # RESAMPLE ON builds; the evaluation data is a 1-D .npy of int16 PCM (the .npy rule: 1-D / 2-D is PCM)
    pcm = (np.random.default_rng(5).standard_normal(16000) * 3000).astype(np.int16)
    np.save(tmp_path / "eval_pcm.npy", pcm)
    eval_pcm = str(tmp_path / "eval_pcm.npy")
    r = run_cli(*fe_args(out, *FBANK, "--frontend-resample", "ON", "--calibration", str(wav), "--eval", eval_pcm))
    assert r.returncode == 0, r.stderr
    report = json.loads((out / "fe.report.json").read_text())
    assert report["frontend"]["resample"] is True
    assert report["quality"]["frames"] == 6 * 16  # 1 s of PCM: 98 frames, 6 windows of 16


def test_feature_dim_mismatch_exits_2(tmp_path: Path) -> None:
    r = run_cli(*fe_args(tmp_path / "out", "--frontend", "fbank"))  # 26 mel bins by default, the input takes 8
    assert r.returncode == 2
    assert "INPUT_SHAPE 1 8 16" in r.stderr and "NUM_MEL_BINS 8" in r.stderr and "outputs 26 features" in r.stderr
    assert "Traceback" not in r.stderr


def test_wav_without_frontend_exits_2(tmp_path: Path) -> None:
    wav = write_wav(tmp_path / "a.wav", 16000)
    r = run_cli(*fe_args(tmp_path / "out", "--calibration", str(wav)))
    assert r.returncode == 2
    assert f"--calibration '{wav}' is a .wav file" in r.stderr and "FRONTEND" in r.stderr
    r = run_cli(*fe_args(tmp_path / "out", "--eval", str(tmp_path)))
    assert r.returncode == 2 and "--eval" in r.stderr and "is a folder" in r.stderr and "FRONTEND" in r.stderr


def test_frontend_option_errors_exit_2(tmp_path: Path) -> None:
    r = run_cli(*fe_args(tmp_path / "out", "--frontend-num-mel-bins", "8"))
    assert r.returncode == 2 and "without FRONTEND (--frontend)" in r.stderr
    r = run_cli(*fe_args(tmp_path / "out", *FBANK, "--frontend-num-ceps", "4"))
    assert r.returncode == 2 and "NUM_CEPS (--frontend-num-ceps) '4'" in r.stderr and "remove it" in r.stderr
    assert os.path.exists(tmp_path) and not (tmp_path / "out").exists()
    # the mel-filter checks need numpy: the declaration leaves them to the build, which makes them first
    r = run_cli(*build_args("fe", MODEL, "1,200,16", 4, "esp32p4", tmp_path / "out", "--frontend", "fbank",
                            "--frontend-num-mel-bins", "200"))  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert "NUM_MEL_BINS (--frontend-num-mel-bins) '200': mel filter" in r.stderr and "covers no FFT bin" in r.stderr
