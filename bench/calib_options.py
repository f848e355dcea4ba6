"""Which esp-ppq calibration/quantization options improve int8 (w8a8) quality on the model zoo?

Every verified zoo architecture (python/tests/zoo/, ``expect is None``) is exported to ONNX and quantized
w8a8 for esp32p4 with esp-ppq's ``espdl_quantize_onnx``, once per option below (each a change to
``QuantizationSettingFactory.espdl_setting(num_of_bits=8)``), on the same 24 seeded random normal
calibration samples (rng seed 0). The quantized graph runs in esp-ppq's TorchExecutor on 8 other samples
(rng seed 1); the SNR (dB) of every output against the user's float torch model is
10*log10(sum(ref^2) / sum((ref - q)^2)) over all samples; a cell is the worst output's SNR.

The reference is the torch model itself, not the dequantized esp-ppq graph: the training passes (bias
correction, LSQ, TQT, AdaRound) and equalization change the graph's float weights, so a dequantized graph
would be a moved target. The dequantized graph's SNR against torch is reported as "float drift" per option.

Each quantized graph is also exported (.espdl, esp-ppq's test values embedded), read back and run in the
project's integer simulator: "x" in a cell means the file does not compute what esp-ppq simulated, i.e. the
option's effect would not reach the chip.

Standalone: python bench/calib_options.py [--models a,b] [--options x,y] [--target esp32s3] [--merge]
                                          [--no-export-check] [--from-json FILE]
Writes build/bench/calib_options.md (and .json; calib_options_<target>.* for another --target) and prints
the markdown. AdaRound (`--options adaround`) is only run when named (the slowest pass by far).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import math
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "build" / "bench"
sys.path.insert(0, str(REPO / "python" / "tests"))
# Ahead of esp-ppq's parser folder, which esp-ppq appends to sys.path and which holds an espdl_streaming.py.
sys.path.insert(0, str(REPO / "python"))

TARGET = "esp32p4"  # the default; --target picks another chip
CALIB_SAMPLES = 24
EVAL_SAMPLES = 8
CALIB_STEPS = 32
GAIN_DB = 1.0  # a change counts when it moves the worst output's SNR by at least this much
DRIFT_DB = 100.0  # the dequantized graph within float rounding of the torch model


@dataclass(frozen=True)
class Option:
    key: str
    how: str  # the attribute paths and values, as a user writes them
    apply: Callable[[Any], None]


def _set(**paths: Any) -> Callable[[Any], None]:
    """A setting mutator from dotted attribute paths (``a__b=v`` sets ``setting.a.b = v``)."""

    def apply(setting: Any) -> None:
        for path, value in paths.items():
            *parents, leaf = path.split("__")
            obj = setting
            for name in parents:
                obj = getattr(obj, name)
            if not hasattr(obj, leaf):
                raise AttributeError(f"{type(obj).__name__} has no attribute {leaf!r}")
            setattr(obj, leaf, value)

    return apply


def _how(**paths: Any) -> str:
    return "; ".join(f"setting.{p.replace('__', '.')} = {v!r}" for p, v in paths.items())


def _option(key: str, **paths: Any) -> Option:
    return Option(key, _how(**paths) or "espdl_setting(num_of_bits=8) as is", _set(**paths))


OPTIONS: list[Option] = [
    _option("baseline"),
    # activation observers (espdl_setting picks 'kl' for 8 bits)
    _option("act_minmax", quantize_activation_setting__calib_algorithm="minmax"),
    _option("act_percentile", quantize_activation_setting__calib_algorithm="percentile"),
    _option("act_mse", quantize_activation_setting__calib_algorithm="mse"),
    # parameter observers (None: Conv/Gemm weights minmax per channel on esp32p4, other parameters percentile)
    _option("param_minmax", quantize_parameter_setting__calib_algorithm="minmax"),
    # layerwise equalization (prequant, rescales weights of Conv/Gemm pairs)
    _option("equalization", equalization=True),
    _option("equalization_l2", equalization=True, equalization_setting__opt_level=2),
    _option(
        "equalization_t0_i3",
        equalization=True,
        equalization_setting__iterations=3,
        equalization_setting__value_threshold=0.0,
    ),
    _option("ssd_equalization", ssd_equalization=True),
    _option("channel_split", channel_split=True),
    # post-calibration passes
    _option("bias_correct", bias_correct=True, bias_correct_setting__collecting_device="cpu"),
    _option("lsq", lsq_optimization=True, lsq_optimization_setting__collecting_device="cpu"),
    _option("tqt", tqt_optimization=True, tqt_optimization_setting__collecting_device="cpu"),
    _option(
        "lsq_lr1e-4",
        lsq_optimization=True,
        lsq_optimization_setting__collecting_device="cpu",
        lsq_optimization_setting__lr=1e-4,
    ),
    # combinations of the passes that helped without hurting (equalization, bias correction, LSQ)
    _option(
        "equalization+bias_correct",
        equalization=True,
        bias_correct=True,
        bias_correct_setting__collecting_device="cpu",
    ),
    _option(
        "equalization+lsq",
        equalization=True,
        lsq_optimization=True,
        lsq_optimization_setting__collecting_device="cpu",
    ),
]
# Run only when named with --options (5000 steps per block): 10-30 s per zoo model on an idle 2-core machine,
# 10x the other passes, and minutes under load.
SLOW_OPTIONS: list[Option] = [
    _option(
        "adaround",
        blockwise_reconstruction=True,
        blockwise_reconstruction_setting__collecting_device="cpu",
    ),
]


@contextlib.contextmanager
def capture_esp_ppq() -> Iterator[Any]:
    """esp-ppq's NaiveLogger errors and warnings, recorded by the tool's own capture (which also silences the
    console); lines esp-ppq prints with "error" in them (ppq_warning prints) count too."""
    from espdl_streaming.quantize import _capture_esp_ppq_log

    with _capture_esp_ppq_log() as capture:
        yield capture
    logged = {line for line in capture.errors + capture.warnings}
    for line in capture.lines:
        low = line.lower()
        if line in logged or "error" not in low or "noise-signal" in low or "[block loss]" in low:
            continue
        (capture.warnings if "warning" in low else capture.errors).append(line.strip())


def _load_factory(entry: Any) -> Callable[[], Any]:
    """The entry's factory, from python/tests/zoo/<entry.file> (imported as part of the zoo package)."""
    module = importlib.import_module(f"zoo.{Path(entry.file).stem}")
    return getattr(module, entry.name)


def _flat(out: Any) -> list[Any]:
    import torch

    if isinstance(out, torch.Tensor):
        return [out]
    flat: list[Any] = []
    for item in out:
        flat += _flat(item)
    return flat


def snr_db(refs: list[Any], outs: list[Any]) -> float:
    signal = sum(float((r.double() ** 2).sum()) for r in refs)
    noise = sum(float(((r.double() - o.double().reshape(r.shape)) ** 2).sum()) for r, o in zip(refs, outs))
    if noise == 0.0:
        return math.inf
    if signal == 0.0:
        return -math.inf
    return 10.0 * math.log10(signal / noise)


def _graph_outputs(executor: Any, names: list[str], feeds: list[list[Any]]) -> list[list[Any]]:
    per_output: list[list[Any]] = [[] for _ in names]
    for feed in feeds:
        for i, value in enumerate(executor.forward(inputs=feed, output_names=names)):
            per_output[i].append(value.detach().cpu())
    return per_output


def export_check(graph: Any, feed: list[Any], path: Path, target: str) -> str:
    """Export `graph` as an .espdl (esp-ppq's test values on `feed` embedded), read it back and run it in the
    project's integer simulator: "exact" when it reproduces esp-ppq's test outputs (bit for bit; a float32
    Softmax output within the project verifier's rounding tolerance), i.e. what TorchExecutor measured is what
    the exported file computes."""
    import esp_ppq.lib as PFL
    import numpy as np
    import torch
    from esp_ppq.api import generate_test_value, get_target_platform
    from espdl_streaming.espdl import Simulator, read_espdl, rounding_for_target
    from espdl_streaming.verify import _test_value_difference

    # As the project's build does: ESP-DL's Gather takes indices as they are, so x[..., -1] becomes T - 1.
    for op in graph.operations.values():
        if op.type == "Gather" and len(op.inputs) > 1 and op.inputs[1].is_parameter:
            idx, data_shape = op.inputs[1].value, op.inputs[0].shape
            if data_shape is not None and bool((idx < 0).any()):
                size = int(data_shape[int(op.attributes.get("axis", 0))])
                op.inputs[1].value = torch.where(idx < 0, idx + size, idx)
    values = generate_test_value(graph, "cpu", feed)
    PFL.Exporter(platform=get_target_platform(target, "w8a8")).export(
        str(path), graph, values_for_test=values, export_config=False
    )
    model = read_espdl(path.read_bytes(), source=path.name)
    got = Simulator(model, rounding_for_target(target)).run(model.test_inputs)
    for name, want in sorted(model.test_outputs.items()):
        have = got.get(name)
        # the tolerance the project's verifier accepts (0 for integers, float32 rounding for a Softmax)
        diff = _test_value_difference(model, name, None if have is None else np.asarray(have), np.asarray(want))
        if diff is not None:
            return f"differs: {name}: {diff}"
    return "exact"


def measure_model(entry: Any, options: list[Option], target: str, check_export: bool = True) -> dict[str, Any]:
    import numpy as np
    import torch
    from esp_ppq.api import QuantizationSettingFactory, espdl_quantize_onnx
    from esp_ppq.executor import TorchExecutor
    from esp_ppq.IR import QuantableOperation

    shape = [int(d) for d in entry.input_shape.split(",")]
    result: dict[str, Any] = {"name": entry.name, "shape": entry.input_shape, "options": {}}
    torch.manual_seed(0)
    model = _load_factory(entry)().eval()
    rng = np.random.default_rng(0)
    calib = [torch.from_numpy(rng.standard_normal(shape).astype(np.float32)) for _ in range(CALIB_SAMPLES)]
    rng = np.random.default_rng(1)
    evals = [torch.from_numpy(rng.standard_normal(shape).astype(np.float32)) for _ in range(EVAL_SAMPLES)]
    with torch.no_grad():
        ref_runs = [_flat(model(x)) for x in evals]
    n_out = len(ref_runs[0])
    refs = [[run[i] for run in ref_runs] for i in range(n_out)]
    output_names = ["output"] if n_out == 1 else [f"output{i}" for i in range(n_out)]

    with tempfile.TemporaryDirectory(prefix=f"calib_options_{entry.name}_") as tmp_text:
        tmp = Path(tmp_text)
        onnx_bytes_path = tmp / "model.onnx"
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            torch.onnx.export(
                model,
                (torch.zeros(shape),),
                str(onnx_bytes_path),
                opset_version=18,
                input_names=["input"],
                output_names=output_names,
                do_constant_folding=True,
                dynamo=False,
            )
        # A GRU/LSTM's state becomes a graph input, as the project's own build does (esp-ppq fails on the
        # plain export); every sample starts from the layer's initial state (learned, or zeros).
        from espdl_streaming.recurrent_state import expose_recurrent_state

        states = expose_recurrent_state(entry.name, onnx_bytes_path, shape[0])
        initial = [
            torch.from_numpy(np.asarray(st.initial or np.zeros(st.shape), np.float32).reshape(st.shape))
            for st in states
        ]
        feeds_calib: list[Any] = [[x, *initial] for x in calib] if states else calib
        feeds_eval = [[x, *initial] for x in evals]
        input_shapes = [shape, *(list(st.shape) for st in states)]
        result["states"] = len(states)
        onnx_bytes = onnx_bytes_path.read_bytes()
        for opt in options:
            cell: dict[str, Any] = {}
            result["options"][opt.key] = cell
            onnx_path = tmp / f"{opt.key}.onnx"
            onnx_path.write_bytes(onnx_bytes)  # esp-ppq overwrites its input with the simplified model
            setting = QuantizationSettingFactory.espdl_setting(num_of_bits=8)
            opt.apply(setting)
            torch.manual_seed(0)
            np.random.seed(0)
            t0 = time.perf_counter()
            with capture_esp_ppq() as log:
                try:
                    graph = espdl_quantize_onnx(
                        onnx_import_file=str(onnx_path),
                        espdl_export_file=str(tmp / f"{opt.key}.espdl"),
                        calib_dataloader=feeds_calib,
                        calib_steps=CALIB_STEPS,
                        input_shape=input_shapes,
                        target=target,
                        quant_type="w8a8",
                        setting=setting,
                        device="cpu",
                        error_report=False,
                        skip_export=True,
                        verbose=0,
                    )
                except Exception as exc:  # noqa: BLE001 - any esp-ppq failure is a result
                    frame = traceback.extract_tb(exc.__traceback__)[-1]
                    cell["error"] = f"{type(exc).__name__}: {exc} ({Path(frame.filename).name}:{frame.lineno})"[:300]
                    graph = None
            cell["seconds"] = time.perf_counter() - t0
            cell["log_errors"] = sorted(set(log.errors))[:5]
            cell["log_warnings"] = sorted(set(log.warnings))[:5]
            if graph is None:
                continue
            if len(graph.inputs) != len(input_shapes):
                cell["error"] = f"skipped: the graph has {len(graph.inputs)} inputs"
                continue
            names = list(graph.outputs.keys())
            if not set(output_names) <= set(names):  # the model's outputs, not the exposed state outputs
                cell["error"] = f"graph outputs {names} do not include the model's {output_names}"
                continue
            try:
                with capture_esp_ppq(), torch.no_grad():
                    executor = TorchExecutor(graph=graph, device="cpu")
                    quant = _graph_outputs(executor, output_names, feeds_eval)
                    for op in graph.operations.values():
                        if isinstance(op, QuantableOperation):
                            op.dequantize()
                    floats = _graph_outputs(executor, output_names, feeds_eval)
                    for op in graph.operations.values():
                        if isinstance(op, QuantableOperation):
                            op.restore_quantize_state()
            except Exception as exc:  # noqa: BLE001
                cell["error"] = f"executing: {type(exc).__name__}: {exc}"[:300]
                continue
            cell["snr"] = [snr_db(r, q) for r, q in zip(refs, quant)]
            cell["float_drift"] = [snr_db(r, f) for r, f in zip(refs, floats)]
            cell["quant_ops"] = sum(isinstance(op, QuantableOperation) for op in graph.operations.values())
            if check_export:
                try:
                    with capture_esp_ppq() as log:
                        cell["export"] = export_check(graph, feeds_eval[0], tmp / f"{opt.key}.espdl", target)
                    if log.errors:
                        cell["export"] += f" (esp-ppq logged: {log.errors[0][:120]})"
                except Exception as exc:  # noqa: BLE001
                    cell["export"] = f"failed: {type(exc).__name__}: {exc}"[:300]
    return result


def worst(values: list[float] | None) -> float | None:
    return min(values) if values else None


def _fmt(value: float | None) -> str:
    if value is None:
        return "fail"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.1f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _gain(base: float, value: float) -> float:
    """value - base in dB, with +-inf (an exact output) handled: equal infinities are no change."""
    if math.isinf(base) or math.isinf(value):
        return 0.0 if base == value else (math.inf if value > base else -math.inf)
    return value - base


def _per_option(results: list[dict[str, Any]], key: str) -> list[str]:
    gains: list[float] = []
    better, worse, failed, logged, not_exact = [], [], [], [], []
    same = 0
    for r in results:
        cell = r["options"].get(key)
        if cell is None:
            continue
        if cell.get("log_errors"):
            logged.append(r["name"])
        if cell.get("export") and cell["export"] != "exact":
            not_exact.append(r["name"])
        base = worst(r["options"].get("baseline", {}).get("snr"))
        value = worst(cell.get("snr"))
        if value is None:
            failed.append(r["name"])
            continue
        if base is None:
            continue
        same += cell.get("snr") == r["options"]["baseline"].get("snr")
        diff = _gain(base, value)
        gains.append(diff)
        if diff >= GAIN_DB:
            better.append(f"{r['name']} {diff:+.1f}")
        elif diff <= -GAIN_DB:
            worse.append(f"{r['name']} {diff:+.1f}")
    finite = [g for g in gains if math.isfinite(g)]
    median = f"{statistics.median(finite):+.2f}" if finite else "-"
    return [
        key,
        f"{len(better)}/{len(gains)}",
        median,
        f"{same}/{len(gains)}",
        "; ".join(better) or "-",
        "; ".join(worse) or "-",
        ", ".join(failed) or "-",
        ", ".join(logged) or "-",
        ", ".join(not_exact) or "-",
    ]


ORACLE = ("baseline", "act_minmax", "act_percentile")  # the activation observers a per-model choice picks from


def _with_oracle(results: list[dict[str, Any]], options: list[Option]) -> tuple[list[dict[str, Any]], list[Option]]:
    """Add the derived column "best_observer": per model, the best of ORACLE's observers on the evaluation data
    (an upper bound for choosing the observer per model; its time is the three quantizations')."""
    if not all(any(k in r["options"] for r in results) for k in ORACLE):
        return results, options
    out = []
    for r in results:
        cells = [r["options"].get(k) or {} for k in ORACLE]
        if all(c.get("snr") for c in cells):
            best = max(cells, key=lambda c: min(c["snr"]))
            derived = {**best, "seconds": sum(c["seconds"] for c in cells), "log_errors": []}
            r = {**r, "options": {**r["options"], "best_observer": derived}}
        out.append(r)
    how = f"per model, the best of {' / '.join(ORACLE)} on the evaluation data (derived, an upper bound)"
    return out, [*options, Option("best_observer", how, lambda setting: None)]


def markdown(results: list[dict[str, Any]], options: list[Option], target: str) -> str:
    results, options = _with_oracle(results, options)
    keys = [o.key for o in options if any(o.key in r["options"] for r in results)]
    rows = []
    for r in results:
        row = [r["name"]]
        base = worst(r["options"].get("baseline", {}).get("snr"))
        for k in keys:
            cell = r["options"].get(k)
            if cell is None:
                row.append("-")
                continue
            value = worst(cell.get("snr"))
            text = _fmt(value)
            if k != "baseline" and value is not None and base is not None:
                diff = _gain(base, value)
                if abs(diff) >= GAIN_DB:
                    text += f" ({diff:+.1f})"
            if cell.get("log_errors"):
                text += " E"
            if cell.get("export") and cell["export"] != "exact":
                text += " x"
            row.append(text)
        rows.append(row)

    time_rows, drift_rows = [], []
    for k in keys:
        cells = [r["options"][k] for r in results if k in r["options"]]
        secs = [c["seconds"] for c in cells]
        time_rows.append([k, f"{statistics.median(secs):.1f}", f"{max(secs):.1f}", f"{sum(secs):.0f}"])
        drifts = [worst(c.get("float_drift")) for c in cells if c.get("float_drift")]
        moved = [d for d in drifts if d is not None and d < DRIFT_DB]
        worst_moved = _fmt(min(moved)) if moved else "-"
        drift_rows.append([k, str(len(drifts) - len(moved)), str(len(moved)), worst_moved])
    summary_rows = [_per_option(results, k) for k in keys if k != "baseline"]

    how_rows = [[o.key, f"`{o.how}`"] for o in options if o.key in keys]
    errors = []
    for r in results:
        for k in keys:
            cell = r["options"].get(k) or {}
            if cell.get("error"):
                errors.append(f"- {r['name']} / {k}: {cell['error']}")
            for e in cell.get("log_errors", []):
                errors.append(f"- {r['name']} / {k}: esp-ppq logged: {e[:200]}")
            if cell.get("export") and cell["export"] != "exact":
                errors.append(f"- {r['name']} / {k}: export check: {cell['export']}")
    summary_header = [
        "option",
        f"improves >= {GAIN_DB:g} dB",
        "median gain (dB)",
        "identical to baseline",
        "improved",
        f"worse by >= {GAIN_DB:g} dB",
        "failed",
        "esp-ppq logged errors",
        "export not exact",
    ]
    lines = [
        f"## esp-ppq calibration options, w8a8 on {target}",
        "",
        (
            f"`bench/calib_options.py`: {len(results)} verified zoo architectures, each quantized w8a8 for "
            f"{target} with `espdl_quantize_onnx` ({CALIB_SAMPLES} seeded random normal calibration samples, "
            f"calib_steps {CALIB_STEPS}), once per option. Cells: the worst output's SNR (dB) against the float "
            f"torch model on {EVAL_SAMPLES} other samples, esp-ppq TorchExecutor; (+x) marks a change of at least "
            f"{GAIN_DB:g} dB against the baseline; E: esp-ppq logged an error; fail: the quantization raised "
            "(see below); x: the exported .espdl does not reproduce esp-ppq's simulation bit for bit (see below)."
        ),
        "",
        _table(["option", "setting (on espdl_setting(num_of_bits=8))"], how_rows),
        "",
        _table(["model", *keys], rows),
        "",
        "### Per option",
        "",
        _table(summary_header, summary_rows),
        "",
        "### Quantization time (s, wall clock of espdl_quantize_onnx alone, 2-core machine; several-fold under load)",
        "",
        _table(["option", "median", "max", "total"], time_rows),
        "",
        "### Float drift",
        "",
        (
            "esp-ppq's dequantized graph (the float values it stored when it quantized each layer, i.e. after "
            f"the prequant passes such as equalization) against the torch model: >= {DRIFT_DB:g} dB counts as "
            "unchanged (float rounding); below, the option changed the float function (the worst SNR shown)."
        ),
        "",
        _table(["option", "unchanged", "changed", "worst drift SNR (dB)"], drift_rows),
    ]
    if errors:
        lines += ["", "### Failures, esp-ppq errors, export mismatches", "", *errors]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", help="comma-separated zoo entry names (default: every verified one)")
    parser.add_argument(
        "--options",
        help="comma-separated option keys (default: all but the slow ones: "
        f"{', '.join(o.key for o in SLOW_OPTIONS)}); baseline is always run",
    )
    parser.add_argument("--target", default=TARGET, help=f"chip (default {TARGET}; others write *_<target>.md)")
    parser.add_argument("--merge", action="store_true", help="add these cells to the JSON of earlier runs")
    parser.add_argument("--no-export-check", action="store_true", help="skip the .espdl export check")
    parser.add_argument("--from-json", type=Path, help="only render the markdown from an earlier run's JSON")
    args = parser.parse_args()
    every = OPTIONS + SLOW_OPTIONS
    options = OPTIONS
    if args.options:
        wanted = {"baseline", *args.options.split(",")}
        unknown = wanted - {o.key for o in every}
        if unknown:
            parser.error(f"unknown options: {', '.join(sorted(unknown))}")
        options = [o for o in every if o.key in wanted]
    WORK.mkdir(parents=True, exist_ok=True)
    stem = "calib_options" if args.target == TARGET else f"calib_options_{args.target}"
    json_path = WORK / f"{stem}.json"
    if args.from_json:
        results = json.loads(args.from_json.read_text())
    else:
        from zoo import ALL_ENTRIES

        entries = [e for e in ALL_ENTRIES if e.expect is None]
        if args.models:
            names = args.models.split(",")
            entries = [e for e in entries if e.name in names]
        with contextlib.redirect_stdout(io.StringIO()):  # esp-ppq prints a banner on import
            import esp_ppq.api  # noqa: F401
        results = json.loads(json_path.read_text()) if args.merge and json_path.exists() else []
        by_name = {r["name"]: r for r in results}
        for i, entry in enumerate(entries):
            print(f"calib_options: [{i + 1}/{len(entries)}] {entry.name}", file=sys.stderr, flush=True)
            try:
                measured = measure_model(entry, options, args.target, check_export=not args.no_export_check)
            except Exception as exc:  # noqa: BLE001 - the ONNX export or the float model itself
                error = f"{type(exc).__name__}: {exc}"[:300]
                measured = {"name": entry.name, "shape": entry.input_shape, "options": {}, "error": error}
            for key, cell in measured["options"].items():
                snr = _fmt(worst(cell.get("snr")))
                note = f"  {cell['error'][:100]}" if cell.get("error") else ""
                line = f"  {key:24s} {snr:>6s} dB {cell['seconds']:6.1f} s  {cell.get('export', '')[:60]}{note}"
                print(line, file=sys.stderr, flush=True)
            if entry.name in by_name:
                by_name[entry.name]["options"].update(measured["options"])
            else:
                by_name[entry.name] = measured
                results.append(measured)
            json_path.write_text(json.dumps(results, indent=1, default=str))
    shown = [o for o in every if any(o.key in r["options"] for r in results)]
    text = markdown([r for r in results if r["options"]], shown, args.target)
    failed_models = [f"- {r['name']}: {r['error']}" for r in results if not r["options"] and r.get("error")]
    if failed_models:
        text += "\n\n### Models not measured\n\n" + "\n".join(failed_models)
    (WORK / f"{stem}.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
