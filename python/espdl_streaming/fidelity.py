"""Faithfulness to the user's float model: the graph rewrites keep its meaning, the integer model tracks it.

Verification (verify.py) proves the streaming model equals the offline *integer* model bit for bit;
this module relates both to the model the user wrote, in float, run by onnxruntime:

* :func:`check_rewrite`: every rewrite of the exported float graph made before quantization (today
  the GRU/LSTM state rewrite of recurrent_state.py) must compute what the original graph computes.
  Both run on the same seeded input; a difference beyond float round-off stops the build, because
  the tool would otherwise ship a model that computes something else (a defect of the tool).
* :func:`choose_float_reference`: the float model fidelity is measured against, preferably one that
  runs on any number of frames (a torch factory exported with a dynamic time axis).
* :func:`measure_fidelity`: the dequantized streaming outputs of every verified chunk against the
  float model on the same float frames (the verification stream before quantization): SNR,
  cosine similarity and largest error per output, for the report.

numpy only at import; onnxruntime is imported when a function runs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from .errors import StreamingConversionError
from .verify import STREAM_SEED, ComparedChunk, VerifyResult, _aligned, _comparable

if TYPE_CHECKING:
    from .declaration import Declaration
    from .quantize import QuantizeResult
    from .recurrent_state import StateSpec
    from .report import JSONObject, JSONValue

REWRITE = "the GRU/LSTM state rewrite"
REWRITE_SEED = 2024
# Float equivalence: |rewritten - original| <= ATOL * max|original| + RTOL * |original|, per output.
# Both graphs run the same float32 kernels in the same order (onnxruntime, graph optimizations off,
# one thread); the only legitimate differences are round-off from a different but equivalent graph
# (e.g. an initial state fed instead of computed), a few float32 ulps (1.2e-7) per step, growing at
# most linearly over a recurrence of some hundred frames: about 1e-5 of the output's scale.  A rewrite
# that changes the meaning (a different initial state, a wrong wire) moves outputs by orders more.
REWRITE_RTOL = 1e-4
REWRITE_ATOL = 1e-5
# snr_db when the integer outputs equal the float ones exactly (a finite, JSON-safe stand-in for +inf).
SNR_CAP_DB = 200.0
SNR_NOTE = (
    f"snr_db = 10*log10(sum(ref^2) / sum((ref - q)^2)) over all compared chunks; {SNR_CAP_DB:g} when the "
    "outputs are exactly equal; null when the float output is all zeros (undefined). cosine is null when either "
    "side is all zeros."
)
FLOAT_INPUT = (
    f"the float verification stream (seed {STREAM_SEED}) before quantization: the integer model saw the same "
    "frames quantized at its input exponent, so input quantization is part of the measured error"
)


def _session(onnx_bytes: bytes) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(onnx_bytes, sess_options=options, providers=["CPUExecutionProvider"])


def _run(session: Any, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    quiet = ort.RunOptions()
    quiet.log_severity_level = 4  # a model not defined on a short prefix fails: we handle it, no log
    names = [o.name for o in session.get_outputs()]
    return {n: np.asarray(v) for n, v in zip(names, session.run(names, dict(feeds), quiet))}


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}"


def _initial_state(spec: StateSpec) -> np.ndarray:
    shape = tuple(int(d) for d in spec.shape)
    initial = spec.initial  # the learned initial state; None: zeros
    if initial is None:
        return np.zeros(shape, np.float32)
    return np.asarray(initial, np.float32).reshape(shape)


def _excess(have: np.ndarray, want: np.ndarray) -> tuple[float, float, bool]:
    """(max |have - want|, max |want|, within the rewrite tolerance)."""
    want64 = want.astype(np.float64)
    err = np.abs(have.astype(np.float64) - want64)
    scale = float(np.max(np.abs(want64), initial=0.0))
    bound = REWRITE_ATOL * (scale if scale > 0 else 1.0) + REWRITE_RTOL * np.abs(want64)
    worst = float(np.max(err, initial=0.0))
    ok = bool(np.all(err <= bound)) and bool(np.all(np.isfinite(have) == np.isfinite(want)))
    return worst, scale, ok


def check_rewrite(
    model: str, original: bytes, rewritten: bytes, states: Sequence[StateSpec], input_shape: Sequence[int]
) -> JSONObject:
    """Run the original and the rewritten float graph on one seeded input at `input_shape` (each state
    input fed the state the original starts from) and require every original output to exist in the
    rewritten graph under its name with equal values.  Returns the report record; raises
    StreamingConversionError when the rewrite changed what the model computes."""
    record: JSONObject = {"rewrite": REWRITE, "changed": bool(states), "checked": False}
    tolerance = f"|diff| <= {REWRITE_ATOL:g} * max|output| + {REWRITE_RTOL:g} * |output|"
    if not states:
        record["note"] = "the model has no GRU/LSTM: the graph was not rewritten (nothing to compare)"
        return record
    defect = (
        "this is a defect of espdl_streaming, not of your model: the build stops rather than ship a model that "
        "computes something else; please report it to the espdl_streaming maintainers with the model attached "
        "(the model cannot be converted faithfully until the rewrite is fixed)"
    )
    try:
        orig = _session(original)
    except Exception as exc:  # onnxruntime cannot run the user's graph at all: nothing to compare with
        record["note"] = f"not checked: onnxruntime cannot load the original float model ({_short(exc)})"
        return record
    try:
        new = _session(rewritten)
    except Exception as exc:
        raise StreamingConversionError(
            f"{model}: after {REWRITE} onnxruntime can no longer load the float model ({_short(exc)}), while it loads "
            f"the original; {defect}"
        ) from exc
    x = np.random.default_rng(REWRITE_SEED).standard_normal([int(d) for d in input_shape]).astype(np.float32)
    orig_inputs = [i.name for i in orig.get_inputs()]
    if len(orig_inputs) != 1:
        record["note"] = f"not checked: the original float model has inputs {orig_inputs}, expected one stream"
        return record
    try:
        want = _run(orig, {orig_inputs[0]: x})
    except Exception as exc:
        record["note"] = f"not checked: onnxruntime cannot run the original float model ({_short(exc)})"
        return record
    by_name = {getattr(s, "input_name", ""): s for s in states}
    feeds: dict[str, np.ndarray] = {}
    for arg in new.get_inputs():
        if arg.name == orig_inputs[0]:
            feeds[arg.name] = x
        elif arg.name in by_name:
            feeds[arg.name] = _initial_state(by_name[arg.name])
        else:
            raise StreamingConversionError(
                f"{model}: {REWRITE} left the float model with an input '{arg.name}' that is neither the stream "
                f"'{orig_inputs[0]}' nor a state input; {defect}"
            )
    try:
        have = _run(new, feeds)
    except Exception as exc:
        raise StreamingConversionError(
            f"{model}: after {REWRITE} onnxruntime cannot run the float model ({_short(exc)}), while it runs the "
            f"original; {defect}"
        ) from exc
    outputs: list[JSONValue] = []
    for name, ref in want.items():
        got = have.get(name)
        if got is None:
            raise StreamingConversionError(
                f"{model}: {REWRITE} changed what the model computes: the user's output '{name}' is missing from the "
                f"rewritten graph (its outputs: {sorted(have)}); {defect}"
            )
        if got.shape != ref.shape:
            raise StreamingConversionError(
                f"{model}: {REWRITE} changed what the model computes: output '{name}' has shape {list(got.shape)} "
                f"instead of the user's {list(ref.shape)}; {defect}"
            )
        worst, scale, ok = _excess(got, ref)
        if not ok:
            raise StreamingConversionError(
                f"{model}: {REWRITE} changed what the model computes: on a seeded input of shape "
                f"{list(x.shape)}, output '{name}' differs from the user's float model by up to {worst:.3g} (its "
                f"largest value is {scale:.3g}; float round-off allows {tolerance}); {defect}"
            )
        outputs.append({"name": name, "max_abs_error": float(f"{worst:.3g}"), "max_abs": float(f"{scale:.4g}")})
    record.update(checked=True, tolerance=tolerance, outputs=outputs)
    return record


def without_output_shapes(onnx_bytes: bytes) -> bytes:
    """The ONNX model with its output and intermediate shapes dropped: with a dynamic time axis the
    traced ones are wrong for other lengths (onnxruntime warns on every such run)."""
    import onnx

    proto = onnx.load_from_string(onnx_bytes)
    for out in proto.graph.output:
        out.type.tensor_type.ClearField("shape")
    del proto.graph.value_info[:]
    return cast("bytes", proto.SerializeToString())


@dataclass
class FloatReference:
    onnx: bytes
    any_length: bool
    description: str
    note: str | None = None


def choose_float_reference(
    fixed: bytes,
    dynamic: bytes | None,
    *,
    source: str,
    input_shape: Sequence[int],
    chunk_frames: int,
    dynamic_error: str | None = None,
) -> FloatReference:
    """The float model to measure fidelity against: `dynamic` (the user's model exported with a dynamic
    time axis) when it runs on more frames than declared and equals `fixed` on the declared frames;
    otherwise `fixed` (the user's model at its declared length)."""
    fixed_ref = FloatReference(fixed, False, f"{source} at its declared length ({input_shape[2]} frames)")
    if dynamic is None:
        fixed_ref.note = dynamic_error
        return fixed_ref
    shape = [int(d) for d in input_shape]
    x = np.random.default_rng(REWRITE_SEED).standard_normal(shape).astype(np.float32)
    longer = list(shape)
    longer[2] += chunk_frames
    try:
        fix = _session(fixed)
        want = _run(fix, {fix.get_inputs()[0].name: x})
    except Exception as exc:
        fixed_ref.note = f"onnxruntime cannot run the float model ({_short(exc)})"
        return fixed_ref
    try:
        dyn = _session(dynamic)
        name = dyn.get_inputs()[0].name
        have = _run(dyn, {name: x})
        dyn_longer = _run(dyn, {name: np.random.default_rng(REWRITE_SEED).standard_normal(longer).astype(np.float32)})
    except Exception as exc:
        fixed_ref.note = f"the export with a dynamic time axis does not run on {longer[2]} frames ({_short(exc)})"
        return fixed_ref
    for out_name, ref in want.items():
        got = have.get(out_name)
        if got is None or got.shape != ref.shape or not _excess(got, ref)[2] or out_name not in dyn_longer:
            fixed_ref.note = (
                f"the export with a dynamic time axis computes something else than the model on the declared "
                f"{shape[2]} frames (output '{out_name}')"
            )
            return fixed_ref
    return FloatReference(dynamic, True, f"{source}, exported to ONNX with a dynamic time axis")


@dataclass
class _Sums:
    ref2: float = 0.0
    err2: float = 0.0
    q2: float = 0.0
    dot: float = 0.0
    max_abs_error: float = 0.0
    max_abs: float = 0.0
    chunks: int = 0
    top1_same: int = 0
    top1_total: int = 0

    def add(self, ref: np.ndarray, q: np.ndarray) -> None:
        ref = ref.astype(np.float64)
        q = q.astype(np.float64)
        if ref.ndim >= 1 and ref.shape[-1] >= 2:  # classifier-shaped: the last axis holds the classes
            self.top1_same += int(np.count_nonzero(np.argmax(ref, axis=-1) == np.argmax(q, axis=-1)))
            self.top1_total += int(np.prod(ref.shape[:-1], dtype=np.int64))
        err = ref - q
        self.ref2 += float(np.sum(ref * ref))
        self.err2 += float(np.sum(err * err))
        self.q2 += float(np.sum(q * q))
        self.dot += float(np.sum(ref * q))
        self.max_abs_error = max(self.max_abs_error, float(np.max(np.abs(err), initial=0.0)))
        self.max_abs = max(self.max_abs, float(np.max(np.abs(ref), initial=0.0)))
        self.chunks += 1

    def snr_db(self) -> float | None:
        if self.ref2 <= 0.0:
            return None
        if self.err2 <= 0.0:
            return SNR_CAP_DB
        return round(min(SNR_CAP_DB, 10.0 * math.log10(self.ref2 / self.err2)), 2)

    def top1_agreement(self) -> float | None:
        return round(self.top1_same / self.top1_total, 6) if self.top1_total else None

    def cosine(self) -> float | None:
        if self.ref2 <= 0.0 or self.q2 <= 0.0:
            return None
        return round(self.dot / math.sqrt(self.ref2 * self.q2), 6)


def _to_logical(exported: np.ndarray, perm: Sequence[int] | None) -> np.ndarray:
    """An exported-layout (esp-ppq: NWC / NHWC) tensor in the float model's layout."""
    if not perm or len(perm) != exported.ndim:
        return exported
    return np.transpose(exported, np.argsort(perm))


def _to_exported(logical: np.ndarray, perm: Sequence[int] | None) -> np.ndarray:
    if not perm or len(perm) != logical.ndim:
        return logical
    return np.transpose(logical, perm)


def stream_chunks(
    streaming_bytes: bytes, chip: str, v: VerifyResult, frames: np.ndarray, chunk_frames: int, *, source: str
) -> list[ComparedChunk]:
    """Run the streaming model (fresh state) over the float `frames` ([frames, *features], exported
    layout) chunk by chunk, as the firmware does: each chunk k as a prefix record [0, (k+1)*chunk)."""
    from .espdl import LoopedSimulator, quantize_values, read_espdl, rounding_for_target

    rounding = rounding_for_target(chip)
    sim = LoopedSimulator(read_espdl(streaming_bytes, source=source), rounding, source)
    records = []
    for k in range(frames.shape[0] // chunk_frames):
        chunk = frames[k * chunk_frames : (k + 1) * chunk_frames]
        out = sim.run({v.input.name: quantize_values(chunk, v.input.exponent, v.input.dtype, rounding)[None]})
        records.append(
            ComparedChunk(k, 0, (k + 1) * chunk_frames,
                          {o.name: o.real(out[o.name]) for o in v.outputs})
        )  # fmt: skip
    return records


def measure_fidelity(
    v: VerifyResult,
    reference: FloatReference,
    *,
    perms: Mapping[str, Sequence[int]],
    leads: Mapping[str, int | None] | None,
    offline_frames: int,
    chunk_frames: int,
    receptive_field: int,
    recurrent: bool,
    axes: Mapping[str, int | None] | None = None,
    records: Sequence[ComparedChunk] | None = None,
    frames: np.ndarray | None = None,
    input_text: str = FLOAT_INPUT,
) -> dict[str, Any]:
    """Compare dequantized streaming outputs with the float model run on the same float frames.

    By default the chunks verify compared (`v.compared`, on the verification stream `v.float_stream`);
    `records`/`frames` give other chunks (stream_chunks).  Each chunk's reference is the float model on
    its causal prefix, aligned like verification, or, when the float model only runs at its declared
    length, on the declared-length window that ends with the chunk (only chunks whose output that
    window determines)."""
    records = v.compared if records is None else records
    frames = v.float_stream if frames is None else frames
    result: dict[str, Any] = {"reference": None, "input": input_text, "chunks": 0, "outputs": [], "note": SNR_NOTE}
    if frames is None or not records:
        result["reference"] = "none: no chunk to compare"
        return result
    try:
        session = _session(reference.onnx)
    except Exception as exc:
        result["reference"] = f"none: onnxruntime cannot load the float model ({_short(exc)})"
        return result
    inputs = [i.name for i in session.get_inputs()]
    if len(inputs) != 1:
        result["reference"] = f"none: the float model has inputs {inputs}, expected one stream"
        return result
    # verify's records in window mode already are declared-length windows ("last frames" alignment).
    windows_given = records is v.compared and v.reference == "window"
    if reference.any_length and not windows_given:
        where = "the causal prefix [0, (k+1)*chunk) of each chunk k, aligned like verification"
    elif windows_given:
        where = f"the window of the declared {offline_frames} frames that ends with each chunk"
    else:
        where = (
            f"the window of the declared {offline_frames} frames that ends with each chunk (only chunks whose output "
            + ("that window determines: the one ending at the declared length, the model is recurrent)"
               if recurrent else "that window determines, given the receptive field)")
        )  # fmt: skip
    result["reference"] = f"{reference.description}, in onnxruntime, on {where}"
    if reference.note:
        result["reference_note"] = reference.note
    in_perm = perms.get(v.input.name)
    sums = {o.name: _Sums() for o in v.outputs}
    missing: set[str] = set()
    skipped = 0
    fits = not recurrent and receptive_field + chunk_frames - 1 <= offline_frames
    for c in records:
        if windows_given:
            tries, by_lead = [(c.start, c.stop)], False
        elif reference.any_length:
            # A longer prefix is a valid reference too (causality); an upsampling layer can need it.
            by_lead = leads is not None
            tries = [(c.start, c.stop)]
            timed = leads is not None and all(leads.get(o.name) is not None for o in v.outputs)
            if timed and c.stop + chunk_frames <= len(frames):
                tries.append((c.start, c.stop + chunk_frames))
        else:
            end = (c.k + 1) * chunk_frames
            if end < offline_frames or (end > offline_frames and not fits) or c.stop != end:
                skipped += 1
                continue
            tries, by_lead = [(end - offline_frames, end)], False
        parts: dict[str, np.ndarray | None] | None = None
        for start, stop in tries:
            try:
                out = _run(session, {inputs[0]: _to_logical(frames[start:stop][None], in_perm).astype(np.float32)})
            except Exception:  # the float model is not defined on this many frames: no reference
                break
            parts = _reference_parts(out, c, v, perms, leads, axes or {}, by_lead)
            if parts is not None:
                break
        if parts is None:
            skipped += 1
            continue
        for name, part in parts.items():
            if part is None:
                missing.add(name)
            else:
                sums[name].add(part, c.outputs[name])
        result["chunks"] += 1
    if skipped:
        result["skipped_chunks"] = skipped  # warm-up chunks, or chunks the float model has no reference for
    for spec in v.outputs:
        s = sums[spec.name]
        entry: dict[str, Any] = {
            "name": spec.name,
            "snr_db": s.snr_db() if s.chunks else None,
            "cosine": s.cosine() if s.chunks else None,
            "max_abs_error": float(f"{s.max_abs_error:.6g}") if s.chunks else None,
            "max_abs_reference": float(f"{s.max_abs:.6g}") if s.chunks else None,
            "top1_agreement": s.top1_agreement() if s.chunks else None,
        }
        if spec.name in missing:
            entry["note"] = "not an output of the float model"
        result["outputs"].append(entry)
    return result


def _reference_parts(
    out: Mapping[str, np.ndarray],
    c: ComparedChunk,
    v: VerifyResult,
    perms: Mapping[str, Sequence[int]],
    leads: Mapping[str, int | None] | None,
    axes: Mapping[str, int | None],
    by_lead: bool,
) -> dict[str, np.ndarray | None] | None:
    """The float outputs `out` cut to chunk `c`'s outputs (None for an output the float model lacks),
    or None when they do not line up with the chunk's."""
    parts: dict[str, np.ndarray | None] = {}
    for spec in v.outputs:
        if spec.name not in out:
            parts[spec.name] = None
            continue
        have = c.outputs[spec.name]
        ref = _to_exported(out[spec.name], perms.get(spec.name))
        if by_lead and leads is not None:
            part = _aligned(have, ref, leads.get(spec.name), c.k, axes.get(spec.name))
        else:
            part = _comparable(have, ref, axes.get(spec.name))
        if part is None or part.shape != have.shape:
            return None
        parts[spec.name] = part
    return parts


def _exported_frames(logical: np.ndarray, perm: Sequence[int] | None) -> np.ndarray:
    """[1, C, T(, F)] float-model layout -> [T, *features] frames in the exported (streaming) layout."""
    return np.ascontiguousarray(_to_exported(logical, perm)[0])


def _common(decl: Declaration, q: QuantizeResult) -> dict[str, Any]:
    return {
        "perms": q.layout_perms,
        "leads": q.plan.output_leads(),
        "axes": q.plan.output_axes(),
        "offline_frames": decl.offline_frames,
        "chunk_frames": decl.chunk_frames,
        "receptive_field": q.plan.receptive_field,
        "recurrent": bool(q.states),
    }


def measure_on_frames(
    decl: Declaration, q: QuantizeResult, v: VerifyResult, logical: np.ndarray, max_frames: int, what: str
) -> dict[str, Any]:
    """The streaming model against the float model on float frames `logical` ([1, C, T(, F)], the float
    model's layout), at most `max_frames` of them, streamed chunk by chunk from a fresh state."""
    reference = FloatReference(q.float_onnx, q.float_any_length, q.float_reference, q.float_reference_note)
    frames = _exported_frames(logical, q.layout_perms.get(v.input.name))
    count = min(frames.shape[0], max_frames)
    count -= count % decl.chunk_frames
    records = stream_chunks(q.streaming_bytes, decl.chip, v, frames[:count], decl.chunk_frames, source=decl.name)
    result = measure_fidelity(
        v,
        reference,
        records=records,
        frames=frames[:count],
        input_text=f"{count} frames of {what}, streamed chunk by chunk from a fresh state (input quantization is "
        "part of the measured error)",
        **_common(decl, q),
    )
    result["frames"] = count
    return result


def fidelity_report(decl: Declaration, q: QuantizeResult, v: VerifyResult) -> JSONObject:
    """The report's `fidelity`: the streaming model against the user's float model on the calibration
    frames (representative inputs, the ones the exponents were chosen for) and on the verification
    stream, plus the float-equivalence record of every graph rewrite."""
    reference = FloatReference(q.float_onnx, q.float_any_length, q.float_reference, q.float_reference_note)
    common: dict[str, Any] = {
        "perms": q.layout_perms,
        "leads": q.plan.output_leads(),
        "axes": q.plan.output_axes(),
        "offline_frames": decl.offline_frames,
        "chunk_frames": decl.chunk_frames,
        "receptive_field": q.plan.receptive_field,
        "recurrent": bool(q.states),
    }
    on_verify = measure_fidelity(v, reference, **common)
    result = on_verify
    if q.calibration_frames is not None and q.float_onnx:
        frames = _exported_frames(q.calibration_frames, q.layout_perms.get(v.input.name))
        want = decl.offline_frames + decl.verify_chunks * decl.chunk_frames
        count = min(frames.shape[0], -(-want // decl.chunk_frames) * decl.chunk_frames)
        count -= count % decl.chunk_frames
        records = stream_chunks(q.streaming_bytes, decl.chip, v, frames[:count], decl.chunk_frames, source=decl.name)
        what = "the user's calibration data" if not q.random_calibration else "the seeded random calibration data"
        result = measure_fidelity(
            v,
            reference,
            records=records,
            frames=frames[:count],
            input_text=f"{count} frames of {what}, samples back to back on the time axis, streamed chunk by chunk "
            "from a fresh state (the integer model quantizes them at its input exponent, so input quantization "
            "is part of the measured error)",
            **common,
        )
        result["verification_stream"] = {k: val for k, val in on_verify.items() if k not in ("note",)}
    result["rewrites"] = [q.rewrite_check] if q.rewrite_check else []
    return result
