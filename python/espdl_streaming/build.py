"""The build job: declaration -> quantize -> verify -> codegen + report, written atomically."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import __version__
from .declaration import Declaration
from .espdl_semantics import espdl_range_for
from .verify import STREAM_SEED, VerifyResult


@dataclass
class BuildOutputs:
    files: dict[Path, bytes]  # final path -> content
    report: dict[str, Any]
    depfile: str


def rodata_symbol(name: str) -> str:
    """The symbol the CMake side defines (16-byte aligned) for RODATA placement."""
    return f"espdl_streaming_{name}_espdl"


def _placement(decl: Declaration) -> dict[str, str]:
    if decl.placement.kind == "partition":
        return {"kind": "partition", "label": str(decl.placement.label)}
    return {"kind": "rodata", "symbol": rodata_symbol(decl.name)}


def _calibration_json(decl: Declaration, samples: int, random: bool) -> dict[str, Any]:
    if random:
        return {
            "source": None, "samples": samples, "random": True,
            "warning": "no calibration data given: calibrated on seeded random normal data; the exponents may not "
            "fit real inputs. Pass CALIBRATION (CMake) / --calibration (CLI) with representative frames.",
        }  # fmt: skip
    return {"source": str(decl.calibration), "samples": samples, "random": False}


def _espdl_versions(q: Any) -> str:
    """The ESP-DL versions the streaming model runs on (W8A16 layers need a newer ESP-DL)."""
    from .espdl import read_espdl

    model = read_espdl(q.streaming_bytes, source="the streaming model")
    return espdl_range_for({str(n.attributes.get("quant_type", "")) for n in model.nodes})


def make_report(
    decl: Declaration,
    q: Any,
    v: VerifyResult,
    seconds: dict[str, float],
    fidelity: dict[str, Any] | None = None,
    quality: dict[str, Any] | None = None,
) -> dict[str, Any]:
    offline_frames = decl.offline_frames
    return {
        "name": decl.name,
        "target": decl.chip,
        "esp_ppq_target": decl.ppq_target,
        # Activation bits of the model's input (QUANT auto: 16 once the first layer was promoted).
        "bits": 16 if v.input.dtype == "int16" else decl.bits,
        "quant": decl.quant,
        "chunk_frames": decl.chunk_frames,
        "feature_dim": decl.feature_dim,
        "offline_input_shape": list(decl.input_shape),
        "input": v.input.as_json(),
        "outputs": [o.as_json() for o in v.outputs],
        "streaming": {
            "verified": v.verified,
            "chunks_checked": v.chunks_checked,
            "warmup_chunks": v.warmup_chunks,
            "max_abs_diff": v.max_abs_diff,
            "stream_seed": STREAM_SEED,
            "offline_test_outputs_reproduced": v.offline_test_outputs_checked,
            "simulator_check": v.simulator_check.as_json() if v.simulator_check else None,
            "rounding": v.rounding,
            "reference": v.reference,
            "caches": [
                {**c, "bytes": v.cache_bytes_by_node.get(f"{c['variable']}_{c['op']}_SCache", 0)}
                for c in q.plan.as_json()
            ],
        },
        "receptive_field_frames": q.plan.receptive_field,
        # GRU/LSTM nodes whose state the glue carries across chunks: every output frame then
        # depends on the whole stream so far, on top of receptive_field_frames.
        "recurrent_states": [
            {
                "node": st.node,
                "op_type": st.op_type,
                "state": st.kind,
                "input": i.name,
                "output": o.name,
                "bytes": o.elements_bytes(),
                # What a fresh stream (init(), reset()) starts from: zeros, or the model's learned state.
                "initial": "learned" if st.initial is not None else "zeros",
                # A last state the user's model returns stays a user output (the same tensor).
                "user_output": bool(st.user_output),
            }
            for st, (i, o) in zip(q.states, v.states)
        ],
        "state_bytes": sum(o.elements_bytes() for _, o in v.states),
        # The integer streaming outputs against the user's float model, and the float equivalence
        # of the graph rewrites made before quantization (fidelity.py).
        "fidelity": fidelity or {},
        # Quantization quality on evaluation data, the gate and QUANT auto's steps (quality.py).
        "quality": quality or {},
        # Causal model: the only algorithmic latency is waiting for a full chunk.
        "latency_frames": decl.chunk_frames - 1,
        "espdl_bytes": len(q.streaming_bytes),
        "offline_espdl_bytes": len(q.offline_bytes),
        "espdl_sha256": hashlib.sha256(q.streaming_bytes).hexdigest(),
        "cache_bytes": v.cache_bytes,
        "macs_per_chunk": v.macs_per_chunk,
        "offline_macs": v.offline_macs,
        "offline_macs_per_frame": round(v.offline_macs / offline_frames, 3),
        "streaming_macs_per_frame": round(v.macs_per_chunk / decl.chunk_frames, 3),
        "streaming_to_offline_macs_ratio": round(
            (v.macs_per_chunk / decl.chunk_frames) / (v.offline_macs / offline_frames), 3
        )
        if v.offline_macs
        else None,
        "calibration": _calibration_json(decl, q.calibration_samples, q.random_calibration),
        "placement": _placement(decl),
        "golden_chunks": v.golden_chunks,
        "esp_ppq_version": q.esp_ppq_version,
        # The ESP-DL versions whose integer semantics the verification and the golden vectors follow.
        "espdl_versions": _espdl_versions(q),
        "espdl_streaming_version": __version__,
        "dependencies": [str(p) for p in q.deps],
        "seconds": {k: round(val, 3) for k, val in seconds.items()},
    }


def make_glue(decl: Declaration, v: VerifyResult, q: Any, command_line: str) -> dict[str, Any]:
    return {
        "name": decl.name,
        "target": decl.chip,
        "command_line": command_line,
        "espdl_versions": _espdl_versions(q),
        "chunk_frames": decl.chunk_frames,
        "feature_dim": decl.feature_dim,
        "rounding": v.rounding,
        "input": v.input.as_json(),
        "outputs": [o.as_json() for o in v.outputs],
        "states": [
            {"input": i.as_json(), "output": o.as_json(), "initial": initial}
            for (i, o), initial in zip(v.states, v.state_initial or [None] * len(v.states))
        ],
        "placement": _placement(decl),
        "golden": {"frames": v.golden_frames, "chunks": v.golden_chunks, "outputs": v.golden_outputs},
        "espdl_bytes": len(q.streaming_bytes),
        "espdl": q.streaming_bytes,  # the stale-model check: codegen embeds its CRC-32
        "cache_bytes": v.cache_bytes,
        "macs_per_chunk": v.macs_per_chunk,
    }


def _escape_make(path: Path) -> str:
    return str(path).replace("\\", "\\\\").replace(" ", "\\ ").replace("#", "\\#").replace("$", "$$")


def make_depfile(decl: Declaration, deps: list[Path]) -> str:
    target = _escape_make(decl.output_path(".espdl"))
    return f"{target}: " + " \\\n  ".join(_escape_make(p) for p in deps) + "\n"


def verify_quantized(decl: Declaration, q: Any, layer_values: Any = None) -> VerifyResult:
    """verify() on a quantize() result, with everything its plan knows; `layer_values` replaces esp-ppq's
    per-layer values (q.layer_values) when given."""
    from .verify import verify

    return verify(
        decl,
        q.offline_bytes,
        q.streaming_bytes,
        receptive_field=q.plan.receptive_field,
        leads=q.plan.output_leads(),
        axes=q.plan.output_axes(),
        total_stride=q.plan.total_stride,
        reshape_frames=q.plan.reshape_frames,
        layer_values=q.layer_values if layer_values is None else layer_values,
    )


def _quantize_and_verify(decl: Declaration, promoted: list[str]) -> tuple[Any, VerifyResult, dict[str, float]]:
    from .quantize import quantize

    q = quantize(decl, promoted)
    seconds = dict(q.seconds)
    t = time.perf_counter()
    v = verify_quantized(decl, q)
    seconds["verify"] = time.perf_counter() - t
    return q, v, seconds


def _auto(decl: Declaration) -> tuple[Any, VerifyResult, dict[str, float], dict[str, Any], dict[str, Any]]:
    """QUANT auto: w8a8, then the worst layer (lowest output SNR when quantized alone) moved to 16-bit
    activations, one step at a time, until the worst output reaches MIN_SNR_DB; when every layer was tried,
    the whole model at w8a16, then at w16a16."""
    from .errors import EspdlStreamingError
    from .quality import quality_report, worst_output

    assert decl.min_snr_db is not None
    promoted: list[str] = []
    steps: list[dict[str, Any]] = []
    skipped: list[str] = []
    ranking: list[str] | None = None
    best: tuple[Any, VerifyResult, dict[str, float]] | None = None
    while True:
        try:
            q, v, seconds = _quantize_and_verify(decl, promoted)
        except EspdlStreamingError as exc:
            if best is None:
                raise  # the w8a8 model itself: the user's problem to see as it is
            # esp-ppq cannot export this mix, or exports it in a form ESP-DL would misread or that does not
            # verify: keep the layer at 8 bits and go on with the next.
            layer = promoted.pop()
            skipped.append(layer)
            steps.append({"promoted": [layer], "skipped": str(exc).removeprefix(f"{decl.name}: ")[:300]})
            q, v, seconds = best
        else:
            best = (q, v, seconds)
        t = time.perf_counter()
        quality = quality_report(decl, q, v)
        seconds["quality"] = time.perf_counter() - t
        worst = worst_output(quality["outputs"])
        snr = worst["snr_db"] if worst else None
        if not steps or "skipped" not in steps[-1]:
            steps.append(
                {
                    "promoted": list(promoted[-1:]),
                    "snr_db": snr,
                    "espdl_bytes": len(q.streaming_bytes),
                    "cache_bytes": v.cache_bytes,
                }
            )
        if ranking is None:  # measured on the w8a8 model: each layer alone, the rest in float
            ranking = list(q.layer_quality.ranking if q.layer_quality else [])
        left = [name for name in ranking if name not in promoted and name not in skipped]
        reached = snr is not None and snr >= decl.min_snr_db
        if not reached and not left:
            # Layer by layer did not get there (a layer's int8 input or a mix esp-ppq re-quantizes): every
            # layer at 16-bit activations, int8 weights where ESP-DL has W8A16 kernels, then w16a16.
            for scheme in ("w8a16", "w16a16"):
                whole = dataclasses.replace(decl, quant=scheme)
                q, v, seconds = _quantize_and_verify(whole, [])
                quality = quality_report(whole, q, v)
                quality["scheme"] = f"auto: {scheme} (every layer)"
                worst = worst_output(quality["outputs"])
                snr = worst["snr_db"] if worst else None
                steps.append({"scheme": scheme, "promoted": ["every layer"], "snr_db": snr,
                              "espdl_bytes": len(q.streaming_bytes), "cache_bytes": v.cache_bytes})  # fmt: skip
                reached = snr is not None and snr >= decl.min_snr_db
                if reached:
                    promoted = ["every layer"]
                    break
        if reached or not left:
            auto = {
                "target_snr_db": decl.min_snr_db,
                "reached": reached,
                "promoted": list(promoted),
                "kept_at_8_bits": skipped,
                "steps": steps,
                "layers": len(ranking),
            }
            return q, v, seconds, quality, auto
        promoted.append(left[0])


def run_build(decl: Declaration, command_line: str) -> BuildOutputs:
    from .codegen import render_glue
    from .errors import QualityGateError
    from .fidelity import fidelity_report
    from .quality import gate, quality_report, saturation_problems

    t0 = time.perf_counter()
    auto = None
    if decl.quant == "auto":
        q, v, seconds, quality, auto = _auto(decl)
    else:
        q, v, seconds = _quantize_and_verify(decl, [])
        t = time.perf_counter()
        quality = quality_report(decl, q, v)
        seconds["quality"] = time.perf_counter() - t
    quality["auto"] = auto
    quality["gate"] = gate(decl, quality)
    problems = saturation_problems(decl, quality)
    if problems and decl.strict:
        raise QualityGateError(problems[0] + " (STRICT / --strict makes saturation an error)")
    t = time.perf_counter()
    fidelity = fidelity_report(decl, q, v)
    seconds["fidelity"] = time.perf_counter() - t
    t = time.perf_counter()
    hpp, cpp = render_glue(make_glue(decl, v, q, command_line))
    seconds["codegen"] = time.perf_counter() - t
    seconds["total"] = time.perf_counter() - t0
    report = make_report(decl, q, v, seconds, fidelity, quality)
    report["warnings"] = problems
    from .report_html import render_html

    files = {
        decl.output_path(".espdl"): q.streaming_bytes,
        decl.output_path(".offline.espdl"): q.offline_bytes,
        decl.output_path(".hpp"): hpp.encode(),
        decl.output_path(".cpp"): cpp.encode(),
        decl.output_path(".report.json"): (json.dumps(report, indent=2) + "\n").encode(),
        decl.output_path(".report.html"): render_html(report).encode("utf-8"),
    }
    return BuildOutputs(files, report, make_depfile(decl, q.deps))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomically(files: dict[Path, bytes]) -> list[Path]:
    """Write every file through a temp file + rename; leave files whose content is unchanged untouched.

    All temp files are written before any rename, so a failure while writing leaves every
    earlier output as it was.  Returns the paths actually (re)written.
    """
    staged: list[tuple[Path, Path]] = []
    mode = 0o666 & ~_umask()
    try:
        for path, data in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.is_file() and path.read_bytes() == data:
                continue
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.chmod(tmp, mode)
            staged.append((Path(tmp), path))
        for tmp_path, path in staged:
            os.replace(tmp_path, path)
    finally:
        for tmp_path, _ in staged:
            if tmp_path.exists():
                tmp_path.unlink()
    return [p for _, p in staged]
