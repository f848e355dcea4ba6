"""One glue description for tests and tools: a two-output model "kws" with a deterministic fake model.

Used by test_codegen.py (rendered, compiled with g++ and streamed against this file's float64
reference) and by tools/typecheck_glue.sh (rendered and type-checked against the real ESP-DL and
ESP-IDF headers). The fake model's outputs are a fixed integer map of the quantized chunk plus a
running state, so the golden vectors are known without ESP-DL.

    PYTHONPATH=python:python/tests python -m glue_fixture OUT_DIR [NAME:PLACEMENT ...]

writes NAME.hpp / NAME.cpp for each NAME (placement ``rodata`` or ``partition``; default
``kws:rodata kws_part:partition``). ``NAME:PLACEMENT:KIND`` adds a speech front end (``fbank`` or ``mfcc``: the build's
front end on synthesized PCM; example_frontend_glue()).
"""

from __future__ import annotations

import dataclasses
import struct
import sys
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from espdl_streaming.audio import FrontendConfig
from espdl_streaming.glue import Glue, GlueFrontend

CHUNK, FEATURES, CHUNKS = 3, 5, 9
INPUT_EXPONENT = -5
DTYPE_RANGE = {"int8": (-128, 127), "int16": (-32768, 32767)}
OUTPUTS: list[dict[str, Any]] = [  # sorted by name, as ESP-DL orders them
    {"name": "logits", "shape": [1, 4], "dtype": "int8", "exponent": -3},
    {"name": "state/h:0", "shape": [1, 2, 3], "dtype": "int16", "exponent": -7},
]
ESPDL_BYTES = 4096
PARTITION_LABEL = "model"


def reference_quantize(x: npt.ArrayLike, exponent: int, rounding: str, dtype: str) -> npt.NDArray[np.int64]:
    """The simulator's rule: float64 math on float32 inputs, NaN -> 0, saturate."""
    v = np.asarray(x, dtype=np.float32).astype(np.float64) * 2.0 ** (-exponent)
    q = np.rint(v) if rounding == "half_even" else np.floor(v + 0.5)
    q = np.where(np.isnan(q), 0.0, q)
    lo, hi = DTYPE_RANGE[dtype]
    return np.clip(q, lo, hi).astype(np.int64)


def fake_model(chunks_q: npt.NDArray[np.int64]) -> list[npt.NDArray[np.int64]]:
    """Outputs per chunk: a fixed integer map of the quantized chunk plus a running state."""
    rng = np.random.default_rng(5)
    weights = [rng.integers(-2, 3, size=(CHUNK * FEATURES, int(np.prod(o["shape"])))) for o in OUTPUTS]
    results: list[list[npt.NDArray[np.int64]]] = [[] for _ in OUTPUTS]
    state = 0
    for q in chunks_q:
        for o, out in enumerate(OUTPUTS):
            lo, hi = DTYPE_RANGE[out["dtype"]]
            scale = 1 if out["dtype"] == "int8" else 37
            results[o].append(np.clip((q @ weights[o]) * scale + state, lo, hi))
        state += int(q[0]) - int(q[-1])
    return [np.array(r, dtype=np.int64) for r in results]


def golden_frames() -> npt.NDArray[np.float32]:
    rng = np.random.default_rng(11)
    frames = rng.normal(0.0, 1.5, size=(CHUNKS * CHUNK + 2, FEATURES)).astype(np.float32)
    flat = frames.reshape(-1)
    # exact halfway points at the input exponent (-5), and values that saturate
    flat[::4] = (rng.integers(-300, 300, size=flat[::4].size) + 0.5) / 32.0
    flat[1::9] = rng.choice([-9.0, 7.0, 3.98, -4.01], size=flat[1::9].size)
    return frames


def fake_espdl(size: int = ESPDL_BYTES, seed: int = 1) -> bytes:
    """Stand-in .espdl bytes: an EDL2 header describing `size` bytes, then noise."""
    body = np.random.default_rng(seed).integers(0, 256, size - 16, dtype=np.uint8).tobytes()
    return b"EDL2" + struct.pack("<III", 0, size - 16, 0) + body


def example_glue_dict(
    rounding: str = "half_even", placement: dict[str, str] | None = None, *, name: str = "kws"
) -> dict[str, Any]:
    """The glue as Glue.from_dict reads it: fresh, mutable (tests corrupt it to see the checks fail)."""
    frames = golden_frames()
    q = reference_quantize(frames[: CHUNKS * CHUNK], INPUT_EXPONENT, rounding, "int8").reshape(CHUNKS, CHUNK * FEATURES)
    return {
        "name": name,
        "target": "esp32p4" if rounding == "half_even" else "esp32s3",
        "command_line": f"python -m espdl_streaming build --name {name} --model model.py:make",
        "espdl_versions": ">=3.3.8,<4.0.0",
        "chunk_frames": CHUNK,
        "feature_dim": FEATURES,
        "rounding": rounding,
        "input": {"name": "input.1", "shape": [1, CHUNK, FEATURES], "dtype": "int8", "exponent": INPUT_EXPONENT},
        "outputs": [dict(o) for o in OUTPUTS],
        "placement": placement or {"kind": "rodata", "symbol": f"espdl_streaming_{name}_espdl"},
        "golden": {"frames": frames, "chunks": CHUNKS, "outputs": fake_model(q)},
        "espdl": fake_espdl(),
        "espdl_bytes": ESPDL_BYTES,
        "cache_bytes": 80,
        "macs_per_chunk": 1234,
    }


def example_glue(rounding: str = "half_even", placement: dict[str, str] | None = None, *, name: str = "kws") -> Glue:
    """The checked glue description of example_glue_dict()."""
    return Glue.from_dict(example_glue_dict(rounding, placement, name=name))


#: Front ends whose feature dimension is FEATURES (a spectrogram's is fft_size / 2 + 1: none fits).
FRONTENDS = {
    "fbank": FrontendConfig(kind="fbank", num_mel_bins=FEATURES, window_type="povey"),
    "mfcc": FrontendConfig(kind="mfcc", num_ceps=FEATURES, num_mel_bins=20, use_energy=False),
}


def example_frontend_glue(kind: str, placement: dict[str, str] | None = None, *, name: str = "kws_audio") -> Glue:
    """example_glue() with a speech front end: golden PCM, the features the build's front end computes from it
    and the fake model's outputs on them."""
    from espdl_streaming.audio.frontend import compute_features
    from espdl_streaming.audio.golden import feature_tolerance, golden_pcm

    config = FRONTENDS[kind]
    glue = example_glue(placement=placement, name=name)
    chunks = 2
    pcm = golden_pcm(config, chunks * CHUNK)
    features = compute_features(config, pcm)
    q = reference_quantize(features[: chunks * CHUNK], INPUT_EXPONENT, glue.rounding, "int8")
    outputs = fake_model(q.reshape(chunks, CHUNK * FEATURES))
    abs_tol, rel_tol = feature_tolerance(config)
    front = GlueFrontend(config, pcm, features, chunks, tuple(outputs), abs_tol, rel_tol)
    return dataclasses.replace(glue, frontend=front)


PLACEMENTS = {"rodata": None, "partition": {"kind": "partition", "label": PARTITION_LABEL}}


def main(argv: list[str]) -> int:
    from espdl_streaming.codegen import render_glue

    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(argv[0])
    for item in argv[1:] or ["kws:rodata", "kws_part:partition"]:
        name, _, rest = item.partition(":")
        placement, _, kind = rest.partition(":")
        where = PLACEMENTS[placement or "rodata"]
        glue = example_frontend_glue(kind, where, name=name) if kind else example_glue(placement=where, name=name)
        hpp, cpp = render_glue(glue)
        (out / f"{name}.hpp").write_text(hpp)
        (out / f"{name}.cpp").write_text(cpp)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
