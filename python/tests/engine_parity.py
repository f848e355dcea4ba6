"""The differential check of the C++ host engine against the Python simulator.

Not a conftest: a helper module the tests import (test_host_engine.py, test_quant_ops.py,
test_quant_schemes.py, test_quality.py, test_fast_fixtures.py, and test_zoo.py: every zoo model that
verifies also runs on the engine); the engine itself comes from the session fixture ``host_engine``
in conftest.py.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import numpy as np

from espdl_streaming.espdl import LoopedSimulator, load_espdl
from espdl_streaming.host_engine import model_info, run_int_chunks


def random_ints(rng: np.random.Generator, tensor: dict[str, Any]) -> np.ndarray:
    """Integers of a model input: mostly within a quarter of the range, some saturating."""
    limits = np.iinfo(tensor["dtype"])
    values = rng.normal(0.0, (limits.max + 1) / 4, size=tensor["shape"])
    return np.clip(np.rint(values), limits.min, limits.max).astype(tensor["dtype"])


def assert_engine_matches_simulator(
    exe: Path, espdl: Path, rounding: str, chunks: int, inputs: list[dict[str, np.ndarray]] | None = None
) -> None:
    """Feed the same integer chunks (random unless given) to the C++ engine and to the simulator,
    both starting from fresh caches, with recurrent states looped back; every output of every
    chunk must be equal."""
    info = model_info(exe, espdl)
    states = {s["input"]: s["output"] for s in info["states"]}
    if inputs is None:
        rng = np.random.default_rng(zlib.crc32(str(espdl).encode()))
        inputs = [
            {t["name"]: random_ints(rng, t) for t in info["inputs"] if t["name"] not in states} for _ in range(chunks)
        ]
    got = run_int_chunks(exe, espdl, rounding, inputs)
    assert len(got) == len(inputs)
    sim = LoopedSimulator(load_espdl(espdl), rounding, str(espdl))
    assert {i.name: o.name for i, o in sim.loop.pairs} == states, espdl  # the engine pairs states as Python does
    for k, (chunk, outputs) in enumerate(zip(inputs, got, strict=True)):
        expected = sim.run(chunk)
        assert set(outputs) == set(expected), espdl
        for name, want in expected.items():
            np.testing.assert_array_equal(outputs[name], want, err_msg=f"{espdl}: chunk {k}, output {name!r}")


def edge_case_chunks(
    model: Any, info: dict[str, Any], seed: int, random_chunks: int = 3
) -> list[dict[str, np.ndarray]]:
    """Chunks that exercise a kernel's corners: esp-ppq's own test inputs, random ones, and every input
    held at 0, at its largest and at its smallest integer."""
    rng = np.random.default_rng(seed)
    chunks = [dict(model.test_inputs)]
    chunks += [{t["name"]: random_ints(rng, t) for t in info["inputs"]} for _ in range(random_chunks)]
    for t in info["inputs"]:
        limits = np.iinfo(t["dtype"])
        for value in (0, limits.max, limits.min):
            chunks.append({t["name"]: np.full(t["shape"], value, dtype=t["dtype"])})
    return chunks
