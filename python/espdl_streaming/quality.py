"""Quantization quality: how far the deployed integer model is from the user's float model.

Three measures, all on evaluation data kept apart from calibration (EVAL / --eval, else a
held-out part of the calibration data, said in the report):

- per output: the streaming integer model, run chunk by chunk as the firmware runs it, against the
  float model on the same frames (SNR, cosine, max abs error, top-1 agreement on the last axis);
- per layer: every quantized tensor of esp-ppq's quantized graph against the same tensor with
  quantization off (graph-wise SNR), and, per operation, the SNR at the model outputs when only
  that operation is quantized (what promoting it to 16 bits can win): the worst layers;
- saturation: tensors whose float evaluation values leave the range their exponent represents.

The quality gate (MIN_SNR_DB / --min-snr-db) and QUANT auto read these figures.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .declaration import Declaration
from .errors import QualityGateError

if TYPE_CHECKING:  # quantize.py imports this module
    from .quantize import QuantizeResult
    from .verify import VerifyResult

#: Evaluation data held out of the calibration data when no EVAL is given: this fraction, at least one.
HELD_OUT_FRACTION = 0.25
#: Seeded random evaluation samples when no calibration data is given either.
RANDOM_EVAL_SAMPLES = 8
RANDOM_EVAL_SEED = 20261203
#: At most this many evaluation samples go through esp-ppq's executor (per-layer SNR, saturation), and
#: the first ALONE_EVAL_SAMPLES of them through the one-layer-quantized runs (one graph run per layer each).
LAYER_EVAL_SAMPLES = 4
ALONE_EVAL_SAMPLES = 2
#: A tensor is reported as saturated when more than this fraction of its evaluation values is clipped.
SATURATION_FRACTION = 1e-3
#: The streaming per-output measure runs on at most this many evaluation frames.
MAX_EVAL_FRAMES = 512
SNR_CAP_DB = 200.0
WORST_LAYERS = 3


@dataclass
class Evaluation:
    """The evaluation samples (float-model layout) and where they come from."""

    samples: list[np.ndarray]
    source: str
    held_out: int = 0  # calibration samples held out (not used to calibrate)


def split_evaluation(
    decl: Declaration, calibration: list[np.ndarray], random_calibration: bool, loaded: list[np.ndarray] | None
) -> tuple[list[np.ndarray], Evaluation]:
    """(calibration samples to calibrate with, evaluation data). `loaded`: the EVAL samples, if given."""
    if loaded is not None:
        return calibration, Evaluation(loaded, f"{decl.evaluation}: {len(loaded)} sample(s)")
    if random_calibration:
        rng = np.random.default_rng(RANDOM_EVAL_SEED)
        samples = [rng.standard_normal(decl.input_shape).astype(np.float32) for _ in range(RANDOM_EVAL_SAMPLES)]
        return calibration, Evaluation(
            samples,
            f"{RANDOM_EVAL_SAMPLES} seeded random normal samples (no calibration or evaluation data given): the "
            "figures say little about real inputs; pass EVAL (CMake) / --eval (CLI)",
        )
    n = len(calibration)
    if n < 2:
        return calibration, Evaluation(
            list(calibration),
            "the only calibration sample, also used to calibrate: pass EVAL (CMake) / --eval (CLI) with other data",
        )
    held = max(1, int(math.floor(n * HELD_OUT_FRACTION)))
    first = n - held
    return calibration[:first], Evaluation(
        calibration[first:],
        f"held-out calibration: samples {first + 1}-{n} of {n} (not used to calibrate); pass EVAL (CMake) / "
        "--eval (CLI) for separate evaluation data",
        held_out=held,
    )


def _snr_db(ref2: float, err2: float) -> float | None:
    if ref2 <= 0.0:
        return None
    if err2 <= 0.0:
        return SNR_CAP_DB
    return round(min(SNR_CAP_DB, 10.0 * math.log10(ref2 / err2)), 2)


@dataclass
class _Acc:
    ref2: float = 0.0
    err2: float = 0.0

    def add(self, ref: Any, q: Any) -> None:
        r = ref.detach().double()
        e = r - q.detach().double()
        self.ref2 += float((r * r).sum())
        self.err2 += float((e * e).sum())


@dataclass
class LayerQuality:
    """esp-ppq-side measures of one quantization (see the module docstring)."""

    layers: list[dict[str, Any]] = field(default_factory=list)
    saturated: list[dict[str, Any]] = field(default_factory=list)
    # esp-ppq operation names, worst first (lowest output SNR when quantized alone).
    ranking: list[str] = field(default_factory=list)


def _config(op: Any) -> Any:
    configs = getattr(op, "output_quant_config", None) or []
    return configs[0] if configs else None


def measure_layers(graph: Any, items: Sequence[Any]) -> LayerQuality:
    """Per-layer SNR and saturation of esp-ppq's quantized `graph` on evaluation `items` (each a
    tensor or a list of tensors in graph-input order). Leaves the graph's quantization as it was."""
    import torch
    from esp_ppq.core import QuantizationStates
    from esp_ppq.executor import TorchExecutor
    from esp_ppq.IR import QuantableOperation

    items = list(items)[:LAYER_EVAL_SAMPLES]
    executor = TorchExecutor(graph=graph, device="cpu")
    quantable = [op for op in graph.topological_sort() if isinstance(op, QuantableOperation)]
    measured = []  # (op, output variable, config)
    for op in quantable:
        config = _config(op)
        if config is None or config.state != QuantizationStates.ACTIVATED or not op.outputs:
            continue
        measured.append((op, op.outputs[0], config))
    names = [var.name for _, var, _ in measured]
    outputs = list(graph.outputs)

    def forward(batch: Any, wanted: list[str]) -> list[Any]:
        with torch.no_grad():
            return list(executor.forward(inputs=batch if isinstance(batch, list) else [batch], output_names=wanted))

    def set_quantized(on: bool, ops: Sequence[Any]) -> None:
        for op in ops:
            if on:
                op.restore_quantize_state()
            else:
                op.dequantize()

    result = LayerQuality()
    if not measured or not items:
        return result
    graphwise = {name: _Acc() for name in names}
    clipped = {name: 0 for name in names}
    totals = {name: 0 for name in names}
    eval_min = {name: math.inf for name in names}
    eval_max = {name: -math.inf for name in names}
    alone = {op.name: _Acc() for op, _, _ in measured}
    try:
        for index, item in enumerate(items):
            quantized = forward(item, names)
            set_quantized(False, quantable)
            floats = forward(item, names)
            float_out = forward(item, outputs)
            for (_op, var, config), q, f in zip(measured, quantized, floats):
                graphwise[var.name].add(f, q)
                scale = config.scale.detach().double()
                if scale.numel() > 1:  # per channel: along the config's channel axis
                    shape = [1] * f.dim()
                    shape[int(config.channel_axis)] = -1
                    scale = scale.reshape(shape)
                low = (float(config.quant_min) - 0.5) * scale
                high = (float(config.quant_max) + 0.5) * scale
                fd = f.detach().double()
                clipped[var.name] += int(((fd < low) | (fd > high)).sum())
                totals[var.name] += int(fd.numel())
                if fd.numel():
                    eval_min[var.name] = min(eval_min[var.name], float(fd.min()))
                    eval_max[var.name] = max(eval_max[var.name], float(fd.max()))
            for op, _, _ in measured if index < ALONE_EVAL_SAMPLES else ():
                set_quantized(True, [op])
                for ref, q in zip(float_out, forward(item, outputs)):
                    alone[op.name].add(ref, q)
                set_quantized(False, [op])
            set_quantized(True, quantable)
    finally:
        set_quantized(True, quantable)

    for op, var, config in measured:
        scale = config.scale.detach().double()
        step = float(scale.max())
        entry = {
            "name": var.name,
            "node": op.name,
            "op": op.type,
            "bits": int(config.num_of_bits),
            "snr_db": _snr_db(graphwise[var.name].ref2, graphwise[var.name].err2),
            "output_snr_db_alone": _snr_db(alone[op.name].ref2, alone[op.name].err2),
        }
        result.layers.append(entry)
        fraction = clipped[var.name] / totals[var.name] if totals[var.name] else 0.0
        if fraction > SATURATION_FRACTION:
            result.saturated.append(
                {
                    "name": var.name,
                    "node": op.name,
                    "fraction": round(fraction, 6),
                    "count": clipped[var.name],
                    "total": totals[var.name],
                    "calibrated_range": [
                        float(f"{float(config.quant_min) * step:.6g}"),
                        float(f"{float(config.quant_max) * step:.6g}"),
                    ],
                    "eval_range": [float(f"{eval_min[var.name]:.6g}"), float(f"{eval_max[var.name]:.6g}")],
                }
            )

    def badness(entry: dict[str, Any]) -> tuple[float, int]:
        snr = entry["output_snr_db_alone"]
        return (SNR_CAP_DB if snr is None else float(snr), names.index(entry["name"]))

    ordered = sorted(result.layers, key=badness)
    result.ranking = [e["node"] for e in ordered]
    return result


def worst_layers(layers: Sequence[dict[str, Any]], count: int = WORST_LAYERS) -> list[dict[str, Any]]:
    """The layers whose quantization alone costs the outputs most (lowest output SNR), worst first."""
    rated = [e for e in layers if e.get("output_snr_db_alone") is not None]
    rated.sort(key=lambda e: (e["output_snr_db_alone"], e["name"]))
    return rated[:count]


def with_top1(outputs: list[dict[str, Any]], top1: dict[str, float | None]) -> list[dict[str, Any]]:
    return [{**o, "top1_agreement": top1.get(o["name"])} for o in outputs]


def worst_output(outputs: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    rated = [o for o in outputs if o.get("snr_db") is not None]
    return min(rated, key=lambda o: (o["snr_db"], o["name"])) if rated else None


def gate(decl: Declaration, quality: dict[str, Any]) -> dict[str, Any]:
    """The gate record; with a target set and an output below it, QualityGateError naming the output,
    its SNR, the worst layers and the remedies."""
    record: dict[str, Any] = {"min_snr_db": decl.min_snr_db, "passed": None, "strict": decl.strict}
    if decl.min_snr_db is None:
        return record
    worst = worst_output(quality["outputs"])
    if worst is None:
        raise QualityGateError(
            f"{decl.name}: MIN_SNR_DB {decl.min_snr_db:g} cannot be checked: no output could be compared with the "
            "float model on the evaluation data (see the report's quality.outputs)"
        )
    record["passed"] = worst["snr_db"] >= decl.min_snr_db
    if not record["passed"]:
        layers = worst_layers(quality["layers"])
        named = ", ".join(
            f"'{e['name']}' ({e['op']}, {e['bits']}-bit: {e['output_snr_db_alone']:.1f} dB alone)" for e in layers
        )
        remedies = [
            "more or more representative calibration data (CALIBRATION / --calibration)",
            "16-bit activations (QUANT w8a16 or w16a16)" if decl.quant in ("w8a8", "auto") else None,
            "QUANT auto, which moves the worst layers to 16 bits until MIN_SNR_DB holds"
            if decl.quant == "w8a8"
            else None,
        ]
        raise QualityGateError(
            f"{decl.name}: output '{worst['name']}' reaches {worst['snr_db']:.1f} dB SNR against the float model on "
            f"{quality['eval_source']}, below MIN_SNR_DB {decl.min_snr_db:g} ({decl.quant}). Worst layers: "
            f"{named or 'none measured'}. Remedies: " + "; ".join(r for r in remedies if r)
        )
    return record


def saturation_problems(decl: Declaration, quality: dict[str, Any]) -> list[str]:
    """One message per saturated tensor (a warning, or an error with STRICT)."""
    return [
        f"{decl.name}: tensor '{s['name']}' (node '{s['node']}') saturates on {100 * s['fraction']:.2f}% of the "
        f"evaluation values ({s['count']} of {s['total']}): its calibrated range {s['calibrated_range']} does not "
        f"cover {s['eval_range']}; calibrate with data like the evaluation data, or use 16-bit activations"
        for s in quality.get("saturated", [])
    ]


def quality_report(decl: Declaration, q: QuantizeResult, v: VerifyResult) -> dict[str, Any]:
    """The report's `quality` (without `gate` and `auto`, which the build adds)."""
    from .fidelity import measure_on_frames

    ev = q.evaluation
    assert ev is not None  # quantize() always measures on evaluation data
    logical = np.concatenate(ev.samples, axis=decl.time_axis)
    measured = measure_on_frames(decl, q, v, logical, MAX_EVAL_FRAMES, "the evaluation data, samples back to back")
    outputs = [
        {k: o.get(k) for k in ("name", "snr_db", "cosine", "max_abs_error", "top1_agreement")}
        for o in measured["outputs"]
    ]
    worst = worst_output(outputs)
    lq: LayerQuality = q.layer_quality or LayerQuality()
    scheme = decl.quant
    if q.promoted:
        scheme = f"auto: w8a8 with {len(q.promoted)} operation(s) at w8a16"
    return {
        "scheme": scheme,
        "eval_source": ev.source,
        "frames": measured["frames"],
        "chunks": measured["chunks"],
        "reference": measured["reference"],
        "outputs": outputs,
        "worst_output": worst["name"] if worst else None,
        "layers": lq.layers,
        "worst_layers": [e["name"] for e in worst_layers(lq.layers)],
        "saturated": lq.saturated,
        "note": "outputs: the streaming integer model against the float model on the evaluation frames "
        "(snr_db = 10*log10(sum(ref^2)/sum((ref-q)^2)), 200 when equal; top1_agreement: the share of frames whose "
        "argmax over the last axis agrees, for outputs with 2 or more values on it). layers: each quantized tensor of "
        "esp-ppq's quantized graph against the same graph with quantization off (snr_db), and the SNR at the model "
        "outputs when only that layer is quantized (output_snr_db_alone: what moving it to 16 bits can win); "
        f"saturated: tensors with more than {100 * SATURATION_FRACTION:g}% of their evaluation values outside "
        "their calibrated range.",
    }
