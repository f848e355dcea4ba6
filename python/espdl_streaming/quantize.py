"""Quantize with esp-ppq: calibrate once, export the offline and the streaming model.

This is the only module that imports torch and esp-ppq (about 2 s), and only when
:func:`quantize` runs.  All esp-ppq work happens in a private temporary directory:
esp-ppq simplifies an input ONNX file in place and writes side files next to its outputs.
esp-ppq logs its conversion problems instead of raising them; every ``[ERROR]`` it logs
while we run it becomes a :class:`QuantizeError` here.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import tempfile
import time
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from . import __version__
from .declaration import Declaration
from .errors import DeclarationError, ModelLoadError, QuantizeError, StreamingConversionError
from .espdl.reader import read_espdl
from .espdl.state import is_state_input
from .facts import GATHER_FROM_END_PREFIX, OUTPUT_TIME_AXIS_PREFIX, rounding_for_target
from .quality import LAYER_EVAL_SAMPLES, Evaluation, LayerQuality, measure_layers, split_evaluation
from .recurrent_state import StateSpec, expose_recurrent_state, initial_state_metadata
from .streaming_table import StreamingPlan, apply_plan, plan_streaming

if TYPE_CHECKING:  # numpy is imported when quantize() runs
    import numpy as np
    import numpy.typing as npt

    from .report import JSONObject

# Initial states the calibration data gets for exposed GRU/LSTM states: the exponents esp-ppq picks
# for them do not matter (ESP-DL copies the state in as raw integers), but esp-ppq needs a range.
_STATE_CALIBRATION_SPAN = 0.5


def _calibration_state(spec: StateSpec, rng: Any) -> Any:
    """The state input one calibration sample gets: the learned initial state when there is one (what
    the layer starts from, so the state's range covers it), else small random values."""
    import numpy as np

    if spec.initial is not None:
        return np.asarray(spec.initial, dtype=np.float32).reshape(spec.shape)
    return rng.uniform(-1, 1, spec.shape).astype(np.float32) * _STATE_CALIBRATION_SPAN


@dataclass
class QuantizeResult:
    """What the quantize stage hands to verify, fidelity, quality and the build: both exported models, the
    streaming plan, the calibration facts and esp-ppq's per-layer values and measures."""

    offline_bytes: bytes
    streaming_bytes: bytes
    plan: StreamingPlan
    deps: list[Path]
    random_calibration: bool
    calibration_samples: int
    esp_ppq_version: str
    log: str
    warnings: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    states: list[StateSpec] = field(default_factory=list)
    # The user's float model for the fidelity measure (fidelity.py), and whether it runs on any
    # number of frames (else only on the declared input shape).
    float_onnx: bytes = b""
    float_any_length: bool = False
    float_reference: str = ""
    float_reference_note: str | None = None
    # The float-equivalence check of the graph rewrites (fidelity.check_rewrite's record).
    rewrite_check: JSONObject = field(default_factory=dict)
    # esp-ppq's layout permutation per graph input/output: exported = transpose(float, perm).
    layout_perms: dict[str, list[int]] = field(default_factory=dict)
    # The calibration samples back to back on the time axis (float-model layout): representative
    # frames for the fidelity measure.
    calibration_frames: npt.NDArray[np.float32] | None = None
    # esp-ppq's own value of every intermediate tensor on the offline model's test input, as the
    # exported integers (exported layout): the per-layer reference that localizes a disagreement
    # between the simulator and esp-ppq (verify._check_offline_test_values).
    layer_values: dict[str, np.ndarray] = field(default_factory=dict)
    # Quality (quality.py): the evaluation data and esp-ppq-side per-layer measures on it.
    evaluation: Evaluation | None = None
    layer_quality: LayerQuality | None = None
    promoted: list[str] = field(default_factory=list)  # esp-ppq operations put at 16 bits (QUANT auto)


@dataclass
class _LogCapture:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)


@contextlib.contextmanager
def _capture_esp_ppq_log() -> Iterator[_LogCapture]:
    """Record esp-ppq's NaiveLogger messages (and silence its stdout chatter)."""
    from esp_ppq.log.logger import NaiveLogger

    capture = _LogCapture()
    saved = {name: getattr(NaiveLogger, name) for name in ("debug", "info", "warning", "error")}

    def recorder(level: str) -> Any:
        def record(self: Any, msg: str) -> None:
            line = f"[{level.upper()}][{getattr(self, '_name', '?')}] {msg}"
            capture.lines.append(line)
            if level == "error":
                capture.errors.append(line)
            elif level == "warning":
                capture.warnings.append(line)

        return record

    for name in saved:
        setattr(NaiveLogger, name, recorder(name))
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            yield capture
    finally:
        for name, method in saved.items():
            setattr(NaiveLogger, name, method)
        capture.lines.extend(out.getvalue().splitlines())


def _check_errors(decl: Declaration, capture: _LogCapture, phase: str, start: int) -> None:
    new = capture.errors[start:]
    if new:
        listing = "\n  ".join(new)
        raise QuantizeError(
            f"{decl.name}: esp-ppq reported {len(new)} error(s) while {phase} (esp-ppq only logs these and "
            f"exports a broken model anyway; espdl_streaming stops here):\n  {listing}"
        )


def _onnx_input_shape(decl: Declaration, path: Path) -> list[int]:
    import onnx

    try:
        model = onnx.load(str(path))
    except Exception as exc:
        raise ModelLoadError(f"{decl.name}: cannot read ONNX file {path}: {exc}") from exc
    init = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in init]
    if len(inputs) != 1:
        raise ModelLoadError(
            f"{decl.name}: ONNX file {path} has {len(inputs)} inputs; streaming models take exactly one"
        )
    dims = inputs[0].type.tensor_type.shape.dim
    return [d.dim_value if d.HasField("dim_value") else -1 for d in dims]


def _stream_input_name(path: Path) -> str:
    import onnx

    graph = onnx.load(str(path)).graph
    init = {i.name for i in graph.initializer}
    return cast("str", next(i.name for i in graph.input if i.name not in init and not is_state_input(i.name)))


def _metadata(decl: Declaration, plan: StreamingPlan | None, esp_ppq_version: str) -> dict[str, str]:
    meta = {
        "espdl_streaming.version": __version__,
        "espdl_streaming.name": decl.name,
        "espdl_streaming.chip": decl.chip,
        "espdl_streaming.bits": str(decl.bits),
        "espdl_streaming.quant": decl.quant,
        "espdl_streaming.esp_ppq": esp_ppq_version,
        "espdl_streaming.offline_input_shape": ",".join(map(str, decl.input_shape)),
    }
    if plan is not None:
        meta["espdl_streaming.chunk_frames"] = str(decl.chunk_frames)
        meta["espdl_streaming.frame_axis"] = "1"
        meta["espdl_streaming.receptive_field"] = str(plan.receptive_field)
        for name, axis in sorted(plan.output_axes().items()):
            if axis is not None:  # per-frame outputs: where their frames are (run concatenates along it)
                meta[f"{OUTPUT_TIME_AXIS_PREFIX}{name}"] = str(axis)
    return meta


def _layer_values(graph: Any, platform: Any, path: Path, inputs: Any) -> dict[str, Any]:
    """esp-ppq's value of every computed tensor of `graph` on `inputs`, as exported integers.

    esp-ppq's executor runs the quantized graph; its exporter then quantizes and transposes each
    value as it does for the test outputs it embeds (a scratch export, read back)."""
    import esp_ppq.lib as PFL
    from esp_ppq.api import generate_test_value

    names = [v.name for v in graph.variables.values() if not v.is_parameter and v.source_op is not None]
    values = generate_test_value(graph, "cpu", inputs, output_names=names)
    PFL.Exporter(platform=platform).export(str(path), graph, values_for_test=values, export_config=False)
    model = read_espdl(path.read_bytes(), source="layers.espdl")
    return dict(model.test_outputs)


def _setting(decl: Declaration, scheme: str) -> Any:
    """esp-ppq's ESP-DL setting for the scheme, as espdl_quantize_onnx makes it when given none, with the
    declaration's calibration choices (CALIB_ALGORITHM, CALIB_OPTIONS) applied."""
    from esp_ppq.api import QuantizationSettingFactory

    setting = QuantizationSettingFactory.espdl_setting(num_of_bits=16 if scheme in ("w8a16", "w16a16") else 8)
    if decl.calib_algorithm is not None:
        setting.quantize_activation_setting.calib_algorithm = decl.calib_algorithm
    if "equalization" in decl.calib_options:
        setting.equalization = True
    if "bias_correction" in decl.calib_options:
        setting.bias_correct = True
        setting.bias_correct_setting.collecting_device = "cpu"
    return setting


def _check_calib_options(decl: Declaration, onnx_path: Path) -> None:
    """Refuse, before calibrating, an option esp-ppq 1.3.12 cannot run on this graph."""
    if "bias_correction" not in decl.calib_options:
        return
    import onnx

    for node in onnx.load(str(onnx_path), load_external_data=False).graph.node:
        if node.op_type == "LSTM":
            raise QuantizeError(
                f"{decl.name}: CALIB_OPTIONS bias_correction: node '{node.name}' (LSTM): esp-ppq 1.3.12's bias "
                "correction runs the graph in its training executor, which fails on LSTM layers (it expects every "
                "LSTM output to be a tensor); build this model without bias_correction (equalization and "
                "CALIB_ALGORITHM still apply)"
            )


def quantize(decl: Declaration, promoted: Sequence[str] = ()) -> QuantizeResult:
    """Quantize `decl`'s model with its scheme and export the offline and streaming models.

    `promoted`: esp-ppq operation names put at 16-bit activations (w8a16) on top of a w8a8 model (the
    steps of QUANT auto)."""
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    from importlib.metadata import version

    import numpy as np
    import torch

    with contextlib.redirect_stdout(io.StringIO()):  # esp-ppq prints a banner on import
        import esp_ppq.lib as PFL
        from esp_ppq.api import espdl_quantize_onnx, generate_test_value, get_target_platform
        from esp_ppq.parser.espdl.espdl_streaming import insert_streaming_cache_op
        from esp_ppq.parser.espdl.espdl_typedef import ExporterPatternInfo
    esp_ppq_version = version("esp-ppq")

    from .fidelity import check_rewrite, choose_float_reference, without_output_shapes
    from .loading import load_calibration, load_evaluation, load_torch_model

    seconds["import"] = time.perf_counter() - t0
    torch.manual_seed(0)
    np.random.seed(0)

    with tempfile.TemporaryDirectory(prefix=f"espdl_streaming_{decl.name}_") as tmp_text:
        tmp = Path(tmp_text)
        onnx_path = tmp / "model.onnx"
        dynamic_onnx: bytes | None = None
        dynamic_error: str | None = "the model is an ONNX file: it is run at its declared length"
        t = time.perf_counter()
        if decl.model.is_onnx:
            shutil.copyfile(decl.model.path, onnx_path)
            deps = [decl.model.path]
            shape = _onnx_input_shape(decl, onnx_path)
            if len(shape) != len(decl.input_shape) or any(
                d not in (-1, 0, want) for d, want in zip(shape, decl.input_shape)
            ):
                raise DeclarationError(
                    f"{decl.name}: --input-shape {list(decl.input_shape)} does not match the ONNX model's input "
                    f"{shape} ({decl.model.path}): declare the ONNX input shape"
                )
        else:
            model, deps, n_outputs = load_torch_model(decl)
            # Stable, readable tensor names: they become the generated class's constants.
            output_names = ["output"] if n_outputs == 1 else [f"output{i}" for i in range(n_outputs)]
            try:
                with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                    torch.onnx.export(
                        model,
                        (torch.zeros(decl.input_shape),),
                        str(onnx_path),
                        opset_version=18,
                        input_names=["input"],
                        output_names=output_names,
                        do_constant_folding=True,
                        dynamo=False,
                    )
            except Exception as exc:
                raise ModelLoadError(
                    f"{decl.name}: torch.onnx.export failed for {decl.model}: {type(exc).__name__}: {exc}"
                ) from exc
            # The same model with a dynamic time axis: the float reference on causal prefixes.
            dynamic_path = tmp / "float_dynamic.onnx"
            try:
                with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                    torch.onnx.export(
                        model,
                        (torch.zeros(decl.input_shape),),
                        str(dynamic_path),
                        opset_version=18,
                        input_names=["input"],
                        output_names=output_names,
                        dynamic_axes={"input": {decl.time_axis: "frames"}},
                        do_constant_folding=True,
                        dynamo=False,
                    )
                dynamic_onnx = without_output_shapes(dynamic_path.read_bytes())
                dynamic_error = None
            except Exception as exc:  # only the fidelity reference degrades to the declared length
                dynamic_error = f"the export with a dynamic time axis failed: {type(exc).__name__}: {exc}"[:400]
        seconds["load"] = time.perf_counter() - t
        original_onnx = onnx_path.read_bytes()
        states = expose_recurrent_state(decl.name, onnx_path, decl.input_shape[0])
        t = time.perf_counter()
        rewrite_check = check_rewrite(
            decl.name, original_onnx, onnx_path.read_bytes() if states else original_onnx, states, decl.input_shape
        )
        float_ref = choose_float_reference(
            original_onnx,
            dynamic_onnx,
            source="the user's ONNX model" if decl.model.is_onnx else "the user's torch model",
            input_shape=decl.input_shape,
            chunk_frames=decl.chunk_frames,
            dynamic_error=dynamic_error,
        )
        seconds["float_check"] = time.perf_counter() - t

        samples, calib_deps, random_calibration = load_calibration(decl)
        calibration_samples = len(samples)
        loaded_eval = None
        if decl.evaluation is not None:
            loaded_eval, eval_deps = load_evaluation(decl)
            calib_deps = [*calib_deps, *eval_deps]
        samples, evaluation = split_evaluation(decl, samples, random_calibration, loaded_eval)
        calibration_frames = np.concatenate(samples[:64], axis=decl.time_axis)
        deps = sorted(set(deps) | set(calib_deps))
        calib: list[Any] = [torch.from_numpy(s) for s in samples]
        eval_items: list[Any] = [torch.from_numpy(s) for s in evaluation.samples[:LAYER_EVAL_SAMPLES]]
        input_shapes = [list(decl.input_shape)]
        streaming_shapes: dict[str, list[int]] | list[int] = list(decl.streaming_input_shape)
        if states:
            rng = np.random.default_rng(0)
            calib = [
                [x] + [torch.from_numpy(_calibration_state(st, rng)) for st in states]
                for x in calib
            ]  # fmt: skip
            # A fresh stream: each recurrent layer starts from its initial state (zeros or the learned one).
            eval_items = [
                [x] + [torch.from_numpy(np.asarray(st.initial or np.zeros(st.shape), np.float32).reshape(st.shape))
                       for st in states]
                for x in eval_items
            ]  # fmt: skip
            input_shapes += [list(st.shape) for st in states]
            streaming_shapes = {_stream_input_name(onnx_path): list(decl.streaming_input_shape)}
        steps = min(decl.calib_steps, len(calib))
        scheme = "w8a8" if decl.quant == "auto" else decl.quant
        platform = get_target_platform(decl.ppq_target, scheme)
        setting = _setting(decl, scheme)
        if promoted:
            # int16 activations, int8 weights where ESP-DL has W8A16 kernels (less flash than w16a16)
            wide = get_target_platform(decl.ppq_target, "w8a16")
            for op_name in promoted:
                setting.dispatching_table.append(op_name, wide)
        _check_calib_options(decl, onnx_path)
        plan_box: dict[str, StreamingPlan] = {}
        streaming_meta: dict[str, str] = {}
        layout_perms: dict[str, list[int]] = {}

        def streaming_pass(graph: Any) -> None:
            info = ExporterPatternInfo()
            plan = plan_streaming(
                graph,
                model=decl.name,
                chunk_frames=decl.chunk_frames,
                input_time_axis=decl.time_axis,
                get_perm=info.get_var_permute,
            )
            apply_plan(graph, plan, insert_streaming_cache_op, info.get_var_permute)
            plan_box["plan"] = plan
            for var_name in [*graph.inputs, *graph.outputs]:
                layout_perms[var_name] = [int(p) for p in info.get_var_permute(var_name) or []]
            # The exporter writes metadata after this pass: record the derived contract.
            streaming_meta.update(_metadata(decl, plan, esp_ppq_version))

        with _capture_esp_ppq_log() as capture:
            t = time.perf_counter()
            try:
                graph = espdl_quantize_onnx(
                    onnx_import_file=str(onnx_path),
                    espdl_export_file=str(tmp / "offline.espdl"),
                    calib_dataloader=calib,
                    calib_steps=steps,
                    input_shape=input_shapes,
                    target=decl.ppq_target,
                    quant_type=scheme,
                    setting=setting,
                    device="cpu",
                    error_report=False,
                    skip_export=True,
                    verbose=0,
                )
            except Exception as exc:  # esp-ppq's own failure on this model: report where, keep the cause
                frame = traceback.extract_tb(exc.__traceback__)[-1]
                raise QuantizeError(
                    f"{decl.name}: esp-ppq could not quantize {decl.model}: {type(exc).__name__}: {exc} (in "
                    f"{Path(frame.filename).name}:{frame.lineno} {frame.name}); the model uses something esp-ppq "
                    "1.3.12 does not handle: simplify that layer or export it differently"
                ) from exc
            _check_errors(decl, capture, "calibrating", 0)
            t_quality = time.perf_counter()
            layer_quality = measure_layers(graph, eval_items)
            seconds["layer_quality"] = time.perf_counter() - t_quality
            # ESP-DL's Gather uses indices as they are (no wrap-around): give the offline export x[..., -1] as
            # T - 1; the streaming export keeps -1, which the planner rewrites to count from the chunk's start.
            # The offline file records the indices as the user wrote them (GATHER_FROM_END_PREFIX), so the
            # verifier can run it on other lengths (the causal prefixes) as the user's model would.
            negative_gathers = []
            gathers_from_end: dict[str, str] = {}
            for gop in graph.operations.values():
                if gop.type == "Gather" and len(gop.inputs) > 1 and gop.inputs[1].is_parameter:
                    idx = gop.inputs[1].value
                    shape = gop.inputs[0].shape
                    if shape is not None and bool((idx < 0).any()):
                        size = int(shape[int(gop.attributes.get("axis", 0))])
                        gop.inputs[1].value = torch.where(idx < 0, idx + size, idx)
                        negative_gathers.append((gop.inputs[1], idx))
                        written = ",".join(str(int(v)) for v in idx.reshape(-1).tolist())
                        gathers_from_end[f"{GATHER_FROM_END_PREFIX}{gop.name}"] = written
            seconds["calibrate"] = time.perf_counter() - t - seconds["layer_quality"]

            t = time.perf_counter()
            mark = len(capture.errors)
            values = generate_test_value(graph, "cpu", calib[0] if states else [calib[0]])
            offline_meta = {**_metadata(decl, None, esp_ppq_version), **gathers_from_end}
            for st in states:
                offline_meta.update(st.metadata())

            def export_offline() -> None:
                PFL.Exporter(platform=platform).export(
                    str(tmp / "offline.espdl"),
                    graph,
                    values_for_test=values,
                    export_config=False,
                    metadata_props=offline_meta,
                )

            export_offline()
            if any(st.initial is not None for st in states):
                # A learned initial state is stored as the raw integers the layer reads, at the exponent
                # of its state output: known once exported (export is cheap: export again with it).
                offline_model = read_espdl((tmp / "offline.espdl").read_bytes(), source=f"{decl.name}.offline.espdl")
                try:
                    initial_meta = initial_state_metadata(states, offline_model, rounding_for_target(decl.chip))
                except StreamingConversionError as exc:
                    raise StreamingConversionError(f"{decl.name}: {exc}") from exc
                offline_meta.update(initial_meta)
                export_offline()
            streaming_meta.update({k: v for k, v in offline_meta.items() if k.startswith("espdl_streaming.state_")})
            _check_errors(decl, capture, "exporting the offline model", mark)
            layer_values = _layer_values(graph, platform, tmp / "layers.espdl", calib[0] if states else [calib[0]])
            for var, idx in negative_gathers:
                var.value = idx
            mark = len(capture.errors)
            PFL.Exporter(platform=platform).export(
                str(tmp / "streaming.espdl"),
                graph,
                export_config=False,
                streaming_input_shape=streaming_shapes,
                streaming_custom_passes=[streaming_pass],
                metadata_props=streaming_meta,
            )
            _check_errors(decl, capture, "converting to streaming", mark)
            seconds["export"] = time.perf_counter() - t

        return QuantizeResult(
            offline_bytes=(tmp / "offline.espdl").read_bytes(),
            streaming_bytes=(tmp / "streaming.espdl").read_bytes(),
            plan=plan_box["plan"],
            deps=deps,
            random_calibration=random_calibration,
            calibration_samples=calibration_samples,
            esp_ppq_version=str(esp_ppq_version),
            log="\n".join(capture.lines),
            warnings=capture.warnings,
            seconds=seconds,
            states=states,
            float_onnx=float_ref.onnx,
            float_any_length=float_ref.any_length,
            float_reference=float_ref.description,
            float_reference_note=float_ref.note,
            rewrite_check=rewrite_check,
            layout_perms=layout_perms,
            calibration_frames=calibration_frames,
            layer_values=layer_values,
            evaluation=evaluation,
            layer_quality=layer_quality,
            promoted=list(promoted),
        )
