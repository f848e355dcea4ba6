"""The build job: declaration -> quantize -> verify -> codegen + report, written atomically."""

from __future__ import annotations

import dataclasses
import hashlib
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from .declaration import Declaration
from .espdl_semantics import espdl_range_for, runs_w8a16
from .glue import Glue, GlueFrontend, GlueGolden, GluePlacement, GlueState, GlueTensor
from .report import (
    BuildReport,
    CacheReport,
    CalibrationReport,
    FrontendReport,
    JSONObject,
    PlacementReport,
    RecurrentStateReport,
    SimulatorCheckReport,
    StreamingReport,
    TensorReport,
)
from .verify import STREAM_SEED, SimulatorCheck, TensorSpec, VerifyResult

if TYPE_CHECKING:  # quantize.py is imported when the build runs it
    import numpy as np

    from .quantize import QuantizeResult


@dataclass
class BuildOutputs:
    files: dict[Path, bytes]  # final path -> content
    # The report as its JSON object (BuildReport.to_dict()): artifacts.py makes its paths portable, the CLI
    # reads it back with BuildReport.from_dict().
    report: JSONObject
    depfile: str


def rodata_symbol(name: str) -> str:
    """The symbol the CMake side defines (16-byte aligned) for RODATA placement."""
    return f"espdl_streaming_{name}_espdl"


def _calibration(decl: Declaration, samples: int, random: bool) -> CalibrationReport:
    if random:
        return CalibrationReport(
            None, samples, True,
            "no calibration data given: calibrated on seeded random normal data; the exponents may not "
            "fit real inputs. Pass CALIBRATION (CMake) / --calibration (CLI) with representative frames.",
        )  # fmt: skip
    return CalibrationReport(str(decl.calibration), samples, False)


def _frontend_report(decl: Declaration, macs_per_chunk: int) -> FrontendReport | None:
    front = decl.frontend
    if front is None:
        return None
    from .audio.cost import frontend_report  # standard library only

    return frontend_report(front.config, front.resample, macs_per_chunk, decl.chunk_frames)


def _placement_report(decl: Declaration) -> PlacementReport:
    if decl.placement.kind == "partition":
        return PlacementReport("partition", label=str(decl.placement.label))
    return PlacementReport("rodata", symbol=rodata_symbol(decl.name))


def _tensor_report(spec: TensorSpec) -> TensorReport:
    return TensorReport(spec.name, list(spec.shape), spec.dtype, None if spec.is_float else spec.exponent)


def _simulator_check(check: SimulatorCheck | None) -> SimulatorCheckReport | None:
    if check is None:
        return None
    if check.method == "layers":
        return SimulatorCheckReport(check.method, check.outputs, check.layers, check.output_drift)
    return SimulatorCheckReport(check.method, check.outputs)


def _espdl_versions(q: QuantizeResult) -> str:
    """The ESP-DL versions the streaming model runs on (W8A16 layers need a newer ESP-DL)."""
    from .espdl import read_espdl

    model = read_espdl(q.streaming_bytes, source="the streaming model")
    return espdl_range_for({str(n.attributes.get("quant_type", "")) for n in model.nodes})


def make_report(
    decl: Declaration,
    q: QuantizeResult,
    v: VerifyResult,
    seconds: dict[str, float],
    fidelity: JSONObject | None = None,
    quality: JSONObject | None = None,
    warnings: Sequence[str] = (),
) -> BuildReport:
    offline_frames = decl.offline_frames
    return BuildReport(
        name=decl.name,
        target=decl.chip,
        esp_ppq_target=decl.ppq_target,
        # Activation bits of the model's input (QUANT auto: 16 once the first layer was promoted).
        bits=16 if v.input.dtype == "int16" else decl.bits,
        quant=decl.quant,
        chunk_frames=decl.chunk_frames,
        feature_dim=decl.feature_dim,
        offline_input_shape=list(decl.input_shape),
        input=_tensor_report(v.input),
        outputs=[_tensor_report(o) for o in v.outputs],
        streaming=StreamingReport(
            verified=v.verified,
            chunks_checked=v.chunks_checked,
            warmup_chunks=v.warmup_chunks,
            max_abs_diff=v.max_abs_diff,
            stream_seed=STREAM_SEED,
            offline_test_outputs_reproduced=v.offline_test_outputs_checked,
            simulator_check=_simulator_check(v.simulator_check),
            rounding=v.rounding,
            reference=v.reference,
            caches=[
                CacheReport(
                    variable=e.var,
                    op=e.op,
                    op_type=e.op_type,
                    window_size=e.window,
                    frame_axis=e.frame_axis,
                    cached_frames=e.cache_frames(),
                    bytes=v.cache_bytes_by_node.get(f"{e.var}_{e.op}_SCache", 0),
                )
                for e in q.plan.entries
            ],
        ),
        receptive_field_frames=q.plan.receptive_field,
        recurrent_states=[
            RecurrentStateReport(
                node=st.node,
                op_type=st.op_type,
                state=st.kind,
                input=i.name,
                output=o.name,
                bytes=o.elements_bytes(),
                # What a fresh stream (init(), reset()) starts from: zeros, or the model's learned state.
                initial="learned" if st.initial is not None else "zeros",
                user_output=bool(st.user_output),
            )
            for st, (i, o) in zip(q.states, v.states)
        ],
        state_bytes=sum(o.elements_bytes() for _, o in v.states),
        fidelity=fidelity or {},
        quality=quality or {},
        # Causal model: the only algorithmic latency is waiting for a full chunk.
        latency_frames=decl.chunk_frames - 1,
        espdl_bytes=len(q.streaming_bytes),
        offline_espdl_bytes=len(q.offline_bytes),
        espdl_sha256=hashlib.sha256(q.streaming_bytes).hexdigest(),
        cache_bytes=v.cache_bytes,
        macs_per_chunk=v.macs_per_chunk,
        offline_macs=v.offline_macs,
        offline_macs_per_frame=round(v.offline_macs / offline_frames, 3),
        streaming_macs_per_frame=round(v.macs_per_chunk / decl.chunk_frames, 3),
        streaming_to_offline_macs_ratio=round(
            (v.macs_per_chunk / decl.chunk_frames) / (v.offline_macs / offline_frames), 3
        )
        if v.offline_macs
        else None,
        calibration=_calibration(decl, q.calibration_samples, q.random_calibration),
        placement=_placement_report(decl),
        calib_algorithm=decl.calib_algorithm,
        calib_options=list(decl.calib_options),
        golden_chunks=v.golden_chunks,
        esp_ppq_version=q.esp_ppq_version,
        espdl_versions=_espdl_versions(q),
        espdl_streaming_version=__version__,
        dependencies=[str(p) for p in q.deps],
        seconds={k: round(val, 3) for k, val in seconds.items()},
        warnings=list(warnings),
        frontend=_frontend_report(decl, v.macs_per_chunk),
    )


def make_glue(decl: Declaration, v: VerifyResult, q: QuantizeResult, command_line: str) -> Glue:
    """The glue description codegen renders; its constructor checks it (ValueError: a bug here, not the user's)."""
    placement = (
        GluePlacement.partition(str(decl.placement.label))
        if decl.placement.kind == "partition"
        else GluePlacement.rodata(rodata_symbol(decl.name))
    )
    return Glue(
        name=decl.name,
        target=decl.chip,
        command_line=command_line,
        espdl_versions=_espdl_versions(q),
        chunk_frames=decl.chunk_frames,
        feature_dim=decl.feature_dim,
        rounding=v.rounding,
        input=_glue_tensor(v.input),
        outputs=tuple(_glue_tensor(o) for o in v.outputs),
        states=tuple(
            GlueState(_glue_tensor(i), _glue_tensor(o), None if initial is None else tuple(initial))
            for (i, o), initial in zip(v.states, v.state_initial or [None] * len(v.states))
        ),
        placement=placement,
        golden=GlueGolden(v.golden_frames, v.golden_chunks, tuple(v.golden_outputs)),
        espdl_bytes=len(q.streaming_bytes),
        espdl=q.streaming_bytes,  # the stale-model check: codegen embeds its CRC-32
        cache_bytes=v.cache_bytes,
        macs_per_chunk=v.macs_per_chunk,
        frontend=_glue_frontend(decl, v, q),
    )


def _glue_frontend(decl: Declaration, v: VerifyResult, q: QuantizeResult) -> GlueFrontend | None:
    """The front end's self-test data: synthesized PCM, the features the build's front end computes from it and
    the streaming model's outputs on them (the simulator, from a fresh stream)."""
    if decl.frontend is None:
        return None
    from .audio.frontend import compute_features
    from .audio.golden import feature_tolerance, golden_pcm
    from .verify import stream_outputs

    config = decl.frontend.config
    chunks = v.golden_chunks
    pcm = golden_pcm(config, chunks * decl.chunk_frames)
    features = compute_features(config, pcm)
    abs_tol, rel_tol = feature_tolerance(config)
    outputs = stream_outputs(decl, q.streaming_bytes, features, chunks)
    return GlueFrontend(config, pcm, features, chunks, tuple(outputs), abs_tol, rel_tol)


def _glue_tensor(spec: TensorSpec) -> GlueTensor:
    return GlueTensor(spec.name, tuple(spec.shape), spec.dtype, None if spec.is_float else spec.exponent)


def _escape_make(path: Path) -> str:
    return str(path).replace("\\", "\\\\").replace(" ", "\\ ").replace("#", "\\#").replace("$", "$$")


def make_depfile(decl: Declaration, deps: list[Path]) -> str:
    target = _escape_make(decl.output_path(".espdl"))
    return f"{target}: " + " \\\n  ".join(_escape_make(p) for p in deps) + "\n"


def verify_quantized(
    decl: Declaration, q: QuantizeResult, layer_values: Mapping[str, np.ndarray] | None = None
) -> VerifyResult:
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


def _quantize_and_verify(
    decl: Declaration, promoted: list[str]
) -> tuple[QuantizeResult, VerifyResult, dict[str, float]]:
    from .quantize import quantize

    q = quantize(decl, promoted)
    seconds = dict(q.seconds)
    t = time.perf_counter()
    v = verify_quantized(decl, q)
    seconds["verify"] = time.perf_counter() - t
    return q, v, seconds


#: esp-ppq's activation observers QUANT auto tries at 8 bits before it moves layers to 16 bits (unless the
#: declaration chose one): kl is esp-ppq's default, mse picks what minmax picks on the zoo (bench/calib_options.py).
AUTO_OBSERVERS = ("percentile", "minmax")


@dataclasses.dataclass
class _Candidate:
    """One quantization QUANT auto tried: verified, with its quality measured."""

    decl: Declaration
    q: QuantizeResult
    v: VerifyResult
    seconds: dict[str, float]
    quality: dict[str, Any]

    @property
    def snr(self) -> float | None:
        from .quality import worst_output

        worst = worst_output(self.quality["outputs"])
        return None if worst is None else float(worst["snr_db"])

    @property
    def flash(self) -> int:
        return len(self.q.streaming_bytes)

    def reaches(self, target: float) -> bool:
        return self.snr is not None and self.snr >= target

    def step(self, **what: Any) -> dict[str, Any]:
        return {**what, "snr_db": self.snr, "espdl_bytes": self.flash, "cache_bytes": self.v.cache_bytes}


def _candidate(decl: Declaration, promoted: list[str], label: str | None = None) -> _Candidate:
    from .quality import quality_report

    q, v, seconds = _quantize_and_verify(decl, promoted)
    t = time.perf_counter()
    quality = quality_report(decl, q, v)
    seconds["quality"] = time.perf_counter() - t
    if label:
        quality["scheme"] = label
    return _Candidate(decl, q, v, seconds, quality)


def w16a16_flash_floor(espdl: bytes) -> int:
    """A lower bound on the bytes of the same model quantized w16a16: its weight tensors alone at 16 bits
    (every scheme keeps the same Conv/Gemm/MatMul/GRU/LSTM weights, only their element size changes)."""
    from .espdl import read_espdl

    model = read_espdl(espdl, source="the streaming model")
    weight_slots = {"Conv": (1,), "Gemm": (1,), "MatMul": (1,), "GRU": (1, 2), "LSTM": (1, 2)}
    names: set[str] = set()
    for node in model.nodes:
        slots = weight_slots.get(node.op_type, ())
        names.update(node.inputs[i] for i in slots if i < len(node.inputs) and node.inputs[i] in model.initializers)
    return sum(2 * int(math.prod(model.initializers[n].dims)) for n in sorted(names))


def _auto(decl: Declaration) -> tuple[_Candidate, dict[str, Any]]:
    """QUANT auto. w8a8; below MIN_SNR_DB, esp-ppq's other activation observers at 8 bits (the best kept);
    still below, the worst layer (lowest output SNR when quantized alone) moved to 16-bit activations, one
    step at a time; when every layer was tried, the whole model at w8a16, then at w16a16. A result that
    reaches the target and might not cost less flash than w16a16 is compared with the whole model at w8a16
    and w16a16, and the smallest that reaches the target is kept. Deterministic: same inputs, same choice."""
    from .errors import EspdlStreamingError

    assert decl.min_snr_db is not None
    target = decl.min_snr_db
    steps: list[dict[str, Any]] = []

    def skipped_text(exc: Exception) -> str:
        return str(exc).removeprefix(f"{decl.name}: ")[:300]

    best = _candidate(decl, [])  # the w8a8 model itself: its errors are the user's to see as they are
    steps.append(best.step(promoted=[]))
    if not best.reaches(target) and decl.calib_algorithm is None:
        for algorithm in AUTO_OBSERVERS:
            observed = dataclasses.replace(decl, calib_algorithm=algorithm)
            try:
                c = _candidate(observed, [], f"auto: w8a8 ({algorithm} observer)")
            except EspdlStreamingError as exc:
                steps.append({"calib_algorithm": algorithm, "promoted": [], "skipped": skipped_text(exc)})
                continue
            steps.append(c.step(calib_algorithm=algorithm, promoted=[]))
            if (c.snr if c.snr is not None else float("-inf")) > (best.snr if best.snr is not None else float("-inf")):
                best = c
    base = best.decl
    # Promoted layers and whole-model w8a16 are W8A16 layers: only for an ESP-DL that loads them.
    w8a16 = runs_w8a16(decl.espdl_version)
    ranking = list(best.q.layer_quality.ranking if best.q.layer_quality and w8a16 else [])
    promoted: list[str] = []
    skipped: list[str] = []
    current = best
    while not current.reaches(target):
        left = [name for name in ranking if name not in promoted and name not in skipped]
        if not left:
            break
        layer = left[0]
        try:
            c = _candidate(base, [*promoted, layer])
        except EspdlStreamingError as exc:
            # esp-ppq cannot export this mix, or exports it in a form ESP-DL would misread or that does not
            # verify: keep the layer at 8 bits and go on with the next.
            skipped.append(layer)
            steps.append({"promoted": [layer], "skipped": skipped_text(exc)})
            continue
        promoted.append(layer)
        current = c
        steps.append(c.step(promoted=[layer]))

    whole: dict[str, _Candidate] = {}

    def whole_model(scheme: str, compared: bool) -> _Candidate:
        if scheme not in whole:
            # The declaration's own observer choice: esp-ppq's default at 16 bits is minmax.
            whole[scheme] = _candidate(dataclasses.replace(decl, quant=scheme), [], f"auto: {scheme} (every layer)")
            step = whole[scheme].step(scheme=scheme, promoted=["every layer"])
            if compared:
                step["compared_for_flash"] = True
            steps.append(step)
        return whole[scheme]

    whole_scheme = None
    if not current.reaches(target):
        # Layer by layer did not get there (a layer's int8 input or a mix esp-ppq re-quantizes): every layer at
        # 16-bit activations, int8 weights where ESP-DL has W8A16 kernels, then w16a16.
        for scheme in ("w8a16", "w16a16") if w8a16 else ("w16a16",):
            current = whole_model(scheme, compared=False)
            whole_scheme = scheme
            if current.reaches(target):
                break
    flash_check: dict[str, Any] | None = None
    if current.reaches(target) and whole_scheme != "w16a16":
        floor = w16a16_flash_floor(current.q.streaming_bytes)
        flash_check = {"espdl_bytes": current.flash, "w16a16_weight_bytes": floor}
        if current.flash >= floor:
            # Small models: the file's fixed part outweighs the weights and int8 weights are padded to 16 lanes,
            # so 8 bits need not cost less flash. Measure the whole-model schemes and keep the smallest.
            options = [current]
            for scheme in ("w16a16", "w8a16") if w8a16 else ("w16a16",):
                if scheme == whole_scheme:
                    continue
                try:
                    options.append(whole_model(scheme, compared=True))
                except EspdlStreamingError as exc:
                    steps.append({"scheme": scheme, "promoted": ["every layer"], "skipped": skipped_text(exc)})
            reaching = [c for c in options if c.reaches(target)]
            chosen = min(reaching, key=lambda c: (c.flash, -(c.snr or 0.0), options.index(c)))
            flash_check["w16a16_espdl_bytes"] = whole["w16a16"].flash if "w16a16" in whole else None
            if chosen is not current:
                flash_check["chose"] = chosen.quality["scheme"]
                current = chosen
                whole_scheme = chosen.decl.quant
    if whole_scheme is not None and current.decl.quant == whole_scheme:
        promoted = ["every layer"]
    auto = {
        "target_snr_db": target,
        "reached": current.reaches(target),
        "promoted": list(promoted),
        "kept_at_8_bits": skipped,
        "calib_algorithm": current.decl.calib_algorithm,
        # W8A16 layers (promotions, whole-model w8a16) only for an ESP-DL that loads them (None: not known).
        "espdl_version": decl.espdl_version,
        "w8a16_used": w8a16,
        "steps": steps,
        "layers": len(ranking),
        "flash_check": flash_check,
    }
    return current, auto


def run_build(decl: Declaration, command_line: str) -> BuildOutputs:
    from .codegen import render_glue
    from .errors import QualityGateError
    from .fidelity import fidelity_report
    from .quality import gate, quality_report, saturation_problems

    if decl.frontend is not None:
        from .audio.declare import check_filters

        check_filters(decl.frontend, decl.name)  # the mel-filter checks the declaration left out (numpy)
    t0 = time.perf_counter()
    auto = None
    if decl.quant == "auto":
        chosen, auto = _auto(decl)
        q, v, seconds, quality = chosen.q, chosen.v, chosen.seconds, chosen.quality
        # The report and the glue record the observer QUANT auto settled on.
        decl = dataclasses.replace(decl, calib_algorithm=chosen.decl.calib_algorithm)
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
    report = make_report(decl, q, v, seconds, fidelity, quality, problems)
    from .report_html import render_html

    files = {
        decl.output_path(".espdl"): q.streaming_bytes,
        decl.output_path(".offline.espdl"): q.offline_bytes,
        decl.output_path(".hpp"): hpp.encode(),
        decl.output_path(".cpp"): cpp.encode(),
        decl.output_path(".report.json"): report.to_json(),
        decl.output_path(".report.html"): render_html(report).encode("utf-8"),
    }
    return BuildOutputs(files, report.to_dict(), make_depfile(decl, q.deps))
