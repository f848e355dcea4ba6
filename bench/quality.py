"""Figure 6: quantization quality per scheme on the model zoo.

Every verified zoo architecture (python/tests/zoo/) is built for esp32p4 with QUANT w8a8, w8a16,
w16a16 and auto (MIN_SNR_DB 30), each with the same seeded random calibration data, evaluated on the
tool's held-out evaluation data. Deterministic counts: one build per cell, no repetitions.
  snr      the worst output's SNR (dB) against the float model (report quality.outputs)
  flash    the streaming .espdl's bytes (espdl_bytes); RAM: cache + recurrent state bytes
Standalone: python bench/quality.py [--limit N] (writes build/bench/quality.md and prints it).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from common import PYTHON, REPO, WORK, table

sys.path.insert(0, str(REPO / "python" / "tests"))
from zoo import ALL_ENTRIES  # noqa: E402

SCHEMES = ("w8a8", "w8a16", "w16a16", "auto")
TARGET_SNR_DB = 30.0
CHIP = "esp32p4"


@dataclass
class Row:
    name: str
    cells: dict[str, dict[str, object]] = field(default_factory=dict)


def _build(entry: object, scheme: str, out: Path, reuse: bool = False) -> dict[str, object]:
    if reuse:  # the reports of an earlier run in `out`; a refused build wrote none
        if not (out / f"{entry.name}.report.json").exists():  # type: ignore[attr-defined]
            return {"error": "refused (no report)"}
        return _cell_from(entry, out)
    model = f"{REPO / 'python' / 'tests' / 'zoo' / entry.file}:{entry.name}"  # type: ignore[attr-defined]
    cmd = [str(PYTHON), "-m", "espdl_streaming", "build", "--name", entry.name, "--model", model,  # type: ignore[attr-defined]
           "--input-shape", entry.input_shape, "--chunk-frames", str(entry.chunk), "--target", CHIP,  # type: ignore[attr-defined]
           "--quant", scheme, "--out-dir", str(out), "--quiet"]  # fmt: skip
    if scheme == "auto":
        cmd += ["--min-snr-db", f"{TARGET_SNR_DB:g}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**__import__("os").environ, "PYTHONHASHSEED": "0"})
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1][:160] if proc.stderr.strip() else "failed"}
    return _cell_from(entry, out)


def _cell_from(entry: object, out: Path) -> dict[str, object]:
    report = json.loads((out / f"{entry.name}.report.json").read_text())  # type: ignore[attr-defined]
    q = report["quality"]
    snrs = [o["snr_db"] for o in q["outputs"] if o["snr_db"] is not None]
    auto = q.get("auto") or {}
    return {
        "snr": min(snrs) if snrs else None,
        "flash": report["espdl_bytes"],
        "ram": report["cache_bytes"] + report.get("state_bytes", 0),
        "promoted": len(auto.get("promoted", [])) if auto else None,
        "choice": _choice(q["scheme"]) if auto else None,
    }


def _choice(scheme: str) -> str:
    """What QUANT auto kept, from the report's quality.scheme ("auto: ..." or "auto")."""
    text = scheme.removeprefix("auto").removeprefix(": ")
    return text.replace("operation(s) at w8a16", "layer(s) at w8a16") or "w8a8"


def run(limit: int | None = None, reuse: Path | None = None) -> list[Row]:
    """Build every cell, or (reuse) read the reports an earlier run left in reuse/<model>/<scheme>/."""
    rows = []
    seen = set()
    entries = [e for e in ALL_ENTRIES if e.expect is None and e.name not in seen and not seen.add(e.name)]
    for entry in entries[:limit]:
        row = Row(entry.name)
        for scheme in SCHEMES:
            if reuse is None:
                print(f"bench: quality {entry.name} {scheme}", flush=True)
            base = reuse if reuse is not None else WORK / "quality"
            row.cells[scheme] = _build(entry, scheme, base / entry.name / scheme, reuse=reuse is not None)
        rows.append(row)
    return rows


def _cell(c: dict[str, object]) -> str:
    if "error" in c:
        return "refused"
    snr = c["snr"]
    return f"{snr:.1f} dB, {c['flash']} B" if isinstance(snr, float) else f"n/a, {c['flash']} B"


def markdown(rows: list[Row]) -> str:
    body = []
    reached_where_wide = 0
    wide_reaches = 0
    cheaper = 0
    for r in rows:
        a, w = r.cells["auto"], r.cells["w16a16"]
        wide_ok = isinstance(w.get("snr"), float) and float(w["snr"]) >= TARGET_SNR_DB  # type: ignore[arg-type]
        auto_ok = isinstance(a.get("snr"), float) and float(a["snr"]) >= TARGET_SNR_DB  # type: ignore[arg-type]
        wide_reaches += wide_ok
        reached_where_wide += wide_ok and auto_ok
        cheaper += bool(wide_ok and auto_ok and int(a["flash"]) < int(w["flash"]))  # type: ignore[call-overload]
        body.append(
            [r.name, *(_cell(r.cells[s]) for s in SCHEMES),
             str(a.get("choice")) if "error" not in a else "-",
             f"{r.cells['w8a8'].get('ram', '-')} / {a.get('ram', '-')}"]
        )  # fmt: skip
    lines = [
        "## 6. Quantization quality per scheme",
        "",
        f"`{Path(__file__).relative_to(REPO)}`: every verified zoo architecture built for {CHIP} with each "
        f"scheme; `auto` is QUANT auto with MIN_SNR_DB {TARGET_SNR_DB:g}. Cells: the worst output's SNR against "
        "the float model on the evaluation data, and the streaming .espdl's flash bytes.",
        "",
        table(["model", *SCHEMES, "auto kept", "RAM w8a8 / auto (B)"], body),
        "",
        f"QUANT auto reaches {TARGET_SNR_DB:g} dB on {reached_where_wide} of the {wide_reaches} models where "
        f"w16a16 does, with less flash than w16a16 on {cheaper} of them.",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, help="only the first N zoo architectures")
    args = parser.parse_args()
    text = markdown(run(args.limit))
    (WORK).mkdir(parents=True, exist_ok=True)
    (WORK / "quality.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
