"""The model zoo: each architecture verifies bit-exact or is refused with the expected reason, on every chip family."""

from __future__ import annotations

import datetime
import json
import os
from pathlib import Path

import pytest
from conftest import EXAMPLE_MODEL, TEST_MODELS, build_args, run_cli
from engine_parity import assert_engine_matches_simulator
from zoo import ALL_ENTRIES as ENTRIES
from zoo.zoo_models import Entry

from espdl_streaming.espdl import rounding_for_target

ZOO_DIR = Path(__file__).resolve().parent / "zoo"
CHIPS = ["esp32p4", "esp32s3", "esp32c3"]
# Worst output SNR against the float model a verified zoo model must reach (dB): a conversion that
# changes what the model computes lands below (a GRU whose learned h0 was zeroed measured 13 dB).
FIDELITY_FLOOR_DB = {8: 15.0, 16: 25.0}
# w8a16 (int8 weights, int16 activations): the weights' 8 bits bound the fidelity, as at 8 bits.
W8A16_FLOOR_DB = 15.0
# `make test` builds w8a16 on every W8A16_STRIDE-th verifying entry (a different handful and chip family each
# day of the year, so the whole matrix is covered over time); `make zoo` builds all of them on every family.
W8A16_STRIDE = 11
EXTRA = [
    Entry("tcn", "1,16,24", 3, None),
    Entry("per_frame", "1,8,20", 4, None),
    Entry("branchy", "1,8,16", 2, None),
    Entry("lookahead", "1,8,16", 4, "1 future frame"),
    Entry("time_mean", "1,8,16", 4, "time axis"),
]
MODEL_FILES = {"tcn": f"{EXAMPLE_MODEL}:build", **{e.name: f"{TEST_MODELS / e.name}.py:build" for e in EXTRA[1:]}}


FULL_ZOO = os.environ.get("ESPDL_STREAMING_FULL_ZOO") == "1"


def _cases(bits: int) -> list[tuple[Entry, str]]:
    """Every entry at 8 bits, every verifying one at 16: on every chip family with ESPDL_STREAMING_FULL_ZOO=1
    (`make zoo`), else on one family per entry and width, taken in turn (the 16-bit build on the family after
    the 8-bit one; at 16 bits every other entry, alternating by day), so `make test` stays in budget and
    covers all three families."""
    entries = [e for e in ENTRIES + EXTRA if bits == 8 or e.expect is None]
    if FULL_ZOO:
        return [(e, chip) for e in entries for chip in CHIPS]
    shift = 0 if bits == 8 else 1
    cases = [(e, CHIPS[(i + shift) % len(CHIPS)]) for i, e in enumerate(entries)]
    if bits == 16:  # CI budget: every other verifying entry at 16 bits, the half turning with the day
        day = datetime.date.today().timetuple().tm_yday
        cases = [c for i, c in enumerate(cases) if i % 2 == day % 2]
    return cases


def _cases_w8a16() -> list[tuple[Entry, str]]:
    """Every verifying entry on every chip family with ESPDL_STREAMING_FULL_ZOO=1, else a rotating handful: one
    entry in W8A16_STRIDE, the offset and the chip families turning with the day of the year."""
    entries = [e for e in ENTRIES + EXTRA if e.expect is None]
    if FULL_ZOO:
        return [(e, chip) for e in entries for chip in CHIPS]
    day = datetime.date.today().timetuple().tm_yday
    picked = [e for i, e in enumerate(entries) if i % W8A16_STRIDE == day % W8A16_STRIDE]
    return [(e, CHIPS[(i + day) % len(CHIPS)]) for i, e in enumerate(picked)]


def _case_id(value: object) -> str:
    return value if isinstance(value, str) else value.name  # type: ignore[attr-defined]


@pytest.mark.parametrize(("entry", "chip"), _cases(8), ids=_case_id)
def test_zoo(entry: Entry, chip: str, tmp_path: Path, host_engine: Path) -> None:
    check(entry, chip, 8, tmp_path, host_engine)


@pytest.mark.parametrize(("entry", "chip"), _cases(16), ids=_case_id)
def test_zoo_16_bit(entry: Entry, chip: str, tmp_path: Path, host_engine: Path) -> None:
    check(entry, chip, 16, tmp_path, host_engine)


@pytest.mark.parametrize(("entry", "chip"), _cases_w8a16(), ids=_case_id)
def test_zoo_w8a16(entry: Entry, chip: str, tmp_path: Path, host_engine: Path) -> None:
    check(entry, chip, 16, tmp_path, host_engine, quant="w8a16")


def check(entry: Entry, chip: str, bits: int, tmp_path: Path, host_engine: Path, quant: str | None = None) -> None:
    model = MODEL_FILES.get(entry.name, f"{ZOO_DIR / entry.file}:{entry.name}")
    scheme = ["--quant", quant] if quant else ["--bits", str(bits)]
    r = run_cli(
        *build_args(entry.name, model, entry.input_shape, entry.chunk, chip, tmp_path, "--calib-steps", "8", *scheme)
    )
    if entry.expect is None:
        assert r.returncode == 0, r.stderr
        report = json.loads((tmp_path / f"{entry.name}.report.json").read_text())
        assert report["streaming"]["verified"] is True
        assert report["streaming"]["max_abs_diff"] == 0
        assert report["streaming"]["chunks_checked"] >= 8
        assert report["bits"] == bits
        if quant is not None:
            assert report["quant"] == quant
        # Verified means right: the streaming outputs follow the user's float model, every output of
        # which is still there (floors far below what these models reach, far above a wrong conversion).
        fidelity = report["fidelity"]
        assert fidelity["chunks"] >= 1
        floor = W8A16_FLOOR_DB if quant == "w8a16" else FIDELITY_FLOOR_DB[bits]
        for out in fidelity["outputs"]:
            assert out["snr_db"] is not None and out["snr_db"] >= floor, (out, fidelity["reference"])
        # The C++ host engine computes what the simulator computes, chunk for chunk.
        rounding = rounding_for_target(chip)
        assert_engine_matches_simulator(host_engine, tmp_path / f"{entry.name}.espdl", rounding, chunks=6)
        assert_engine_matches_simulator(host_engine, tmp_path / f"{entry.name}.offline.espdl", rounding, chunks=2)
    else:
        assert r.returncode == 2, (r.stdout, r.stderr)
        assert r.stderr.startswith(f"error: {entry.name}: node '"), r.stderr
        assert entry.expect in r.stderr, r.stderr
        assert list(tmp_path.iterdir()) == []
