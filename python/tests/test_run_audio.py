"""`python -m espdl_streaming run MODEL.espdl --input AUDIO.wav`: a model built with a front end run on a
recording. The front end's configuration comes from the build report next to the model; the features are
computed by the engine's front end (python: espdl_streaming.audio; host: the C++ port through the runtime's
audio_frontend, host/espdl_features.cpp), then the frames take the FRAMES.npy path. The errors exit 2 naming
the file and the fix.

One model is built for the module (a few seconds: torch and esp-ppq); the variants the errors and the
resampling need (no report, a stale report, a report without or with RESAMPLE) are copies of it with the
report edited, which is all run reads about the build.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import TEST_MODELS, build_args, run_cli
from test_audio_build import write_wav

from espdl_streaming.audio import FrontendConfig, compute_features, read_wav, resample_pcm

MODEL = f"{TEST_MODELS / 'per_frame.py'}:build"  # [1, 8, T] -> [1, 4, T]
CHUNK = 4


@pytest.fixture(scope="module")
def fe_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An fbank front end (8 mel bins) feeding per_frame.py, [1, 8, 16], chunks of 4 frames, esp32p4; calibrated
    on a WAV."""
    d = tmp_path_factory.mktemp("run_audio_build")
    calib = write_wav(d / "calib.wav", 16000, 0.5, seed=1)
    out = d / "out"
    args = build_args("fe", MODEL, "1,8,16", CHUNK, "esp32p4", out, "--frontend", "fbank")
    r = run_cli(*args, "--frontend-num-mel-bins", "8", "--calibration", str(calib))
    assert r.returncode == 0, r.stderr
    return out / "fe.espdl"


def _report(model: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(model.with_name("fe.report.json").read_text())
    return data


def _variant(model: Path, where: Path, edit: Any = None, *, report: bool = True) -> Path:
    """A copy of the model in `where`, with its report edited by `edit(report_dict)` (or without a report)."""
    where.mkdir(parents=True, exist_ok=True)
    copy = where / "fe.espdl"
    shutil.copyfile(model, copy)
    if report:
        data = _report(model)
        if edit is not None:
            edit(data)
        (where / "fe.report.json").write_text(json.dumps(data, indent=2))
    return copy


def _config(model: Path) -> FrontendConfig:
    return FrontendConfig(**_report(model)["frontend"]["config"])


def _run(model: Path, inp: Path, out: Path, engine: str = "python") -> Any:
    return run_cli("run", model, "--input", inp, "--out", out, "--engine", engine)


def _via_features(model: Path, features: np.ndarray, tmp: Path) -> bytes:
    """OUT.npy of `run --input FEATURES.npy` on the feature frames [frames, 8]."""
    np.save(tmp / "features.npy", features)
    r = _run(model, tmp / "features.npy", tmp / "via_features.npy")
    assert r.returncode == 0, r.stderr
    return (tmp / "via_features.npy").read_bytes()


def test_wav_runs_on_both_engines_as_features_npy_does(
    fe_model: Path, tmp_path: Path, cmake: str, ninja: str, cxx: str
) -> None:
    wav = write_wav(tmp_path / "speech.wav", 16000, 1.0)
    outs = {}
    for engine in ("python", "host"):
        out = tmp_path / f"{engine}.npy"
        r = _run(fe_model, wav, out, engine)
        assert r.returncode == 0, r.stderr
        # 16000 samples: 1 + (16000 - 400) // 160 = 98 frames, 24 chunks of 4, 2 left over
        assert (
            f"fe.espdl: 16000 samples of speech.wav (1.000 s at 16000 Hz) turned into 98 fbank feature frames of 8 "
            f"by the {engine} front end, 24 chunks of 4 frames run on the {engine} engine"
        ) in r.stdout
        assert "the last 2 of 98 feature frames computed from it do not fill a chunk of 4 frames" in r.stderr
        outs[engine] = out.read_bytes()
    assert outs["host"] == outs["python"]
    assert np.load(tmp_path / "python.npy").shape == (1, 96, 4)
    x, rate = read_wav(wav)
    assert rate == 16000
    assert _via_features(fe_model, compute_features(_config(fe_model), x), tmp_path) == outs["python"]


def test_resampled_when_the_report_says_so(fe_model: Path, tmp_path: Path) -> None:
    wav = write_wav(tmp_path / "rec48k.wav", 48000, 0.6, seed=4)
    # RESAMPLE off (as built): refused with both rates and the fixes
    r = _run(fe_model, wav, tmp_path / "no.npy")
    assert r.returncode == 2, r.stderr
    assert f"{wav}: sampled at 48000 Hz but fe.espdl's front end takes 16000 Hz (SAMPLE_RATE)" in r.stderr
    assert "sox in.wav -r 16000 out.wav" in r.stderr and "RESAMPLE (--frontend-resample) ON" in r.stderr
    assert not (tmp_path / "no.npy").exists() and "Traceback" not in r.stderr

    def resample_on(report: dict[str, Any]) -> None:
        report["frontend"]["resample"] = True

    model = _variant(fe_model, tmp_path / "resample", resample_on)
    r = _run(model, wav, tmp_path / "out.npy")
    assert r.returncode == 0, r.stderr
    # 28800 samples at 48 kHz -> 9600 at 16 kHz: 58 frames, 14 chunks
    assert "9600 samples of rec48k.wav (0.600 s at 16000 Hz, resampled from 48000 Hz) turned into 58 fbank" in r.stdout
    x, rate = read_wav(wav)
    features = compute_features(_config(fe_model), resample_pcm(x, rate, 16000))
    assert features.shape == (58, 8)
    assert _via_features(model, features, tmp_path) == (tmp_path / "out.npy").read_bytes()


def test_a_missing_or_stale_report_exits_2(fe_model: Path, tmp_path: Path) -> None:
    wav = write_wav(tmp_path / "a.wav", 16000, 0.3)
    model = _variant(fe_model, tmp_path / "alone", report=False)
    r = _run(model, wav, tmp_path / "o.npy")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    report = tmp_path / "alone" / "fe.report.json"
    assert f"run needs fe.espdl's build report {report} to know its front end, but there is no such file" in r.stderr
    assert "rebuild the model, or put the report its build wrote next to it" in r.stderr

    def other_build(data: dict[str, Any]) -> None:
        data["espdl_sha256"] = "0" * 64

    model = _variant(fe_model, tmp_path / "stale", other_build)
    r = _run(model, wav, tmp_path / "o.npy")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "run needs fe.espdl's build report" in r.stderr and "describes another build of the model" in r.stderr
    assert not (tmp_path / "o.npy").exists()


def test_a_model_without_frontend_takes_frames_not_audio(fe_model: Path, tmp_path: Path) -> None:
    wav = write_wav(tmp_path / "a.wav", 16000, 0.3)

    def no_frontend(data: dict[str, Any]) -> None:
        del data["frontend"]

    model = _variant(fe_model, tmp_path / "plain", no_frontend)
    r = _run(model, wav, tmp_path / "o.npy")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert f"{wav}: fe.espdl was built without FRONTEND, so it takes feature frames, not audio" in r.stderr
    assert "pass FRAMES.npy" in r.stderr and "rebuild the model with FRONTEND" in r.stderr


def test_stereo_and_too_short_audio_exit_2(fe_model: Path, tmp_path: Path) -> None:
    stereo = write_wav(tmp_path / "stereo.wav", 16000, 0.3, channels=2)
    r = _run(fe_model, stereo, tmp_path / "o.npy")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert f"{stereo}: 2 channels: the front end takes one (mono) channel" in r.stderr
    assert "sox in.wav -c 1 out.wav" in r.stderr

    # one chunk of 4 frames needs 400 + 3 * 160 = 880 samples; 0.05 s is 800
    short = write_wav(tmp_path / "short.wav", 16000, 0.05)
    r = _run(fe_model, short, tmp_path / "o.npy")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert f"{short}: 800 samples (0.050 s at 16000 Hz) give 3 feature frame(s), fewer than one chunk of 4" in r.stderr
    assert "it needs at least 880 samples (0.055 s)" in r.stderr and "use a longer recording" in r.stderr
    assert not (tmp_path / "o.npy").exists()

    r = run_cli("run", "--help")
    assert "FRAMES.npy | AUDIO.wav" in r.stdout
