"""Prove the streaming model computes what the offline model computes, bit for bit.

Both exported files are read back and run in the host integer simulator with the
chip's rounding.  A seeded random stream is fed chunk by chunk to the streaming model
(fresh caches); after chunk k its outputs must equal the offline model's outputs on the
causal prefix [0, (k+1) * chunk) -- the whole output, or its last frames when the output
has a time axis.  Chunks for which the offline model is not defined yet (the prefix is
shorter than the frames the model's head needs) are counted as warm-up, never compared
loosely.  The simulator must first reproduce esp-ppq's own test outputs embedded in the
offline file; otherwise it cannot judge anything.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .declaration import Declaration
from .errors import EspdlFormatError, EspdlStreamingError, VerificationError
from .espdl import (
    EspdlModel,
    LoopedSimulator,
    Simulator,
    StateLoop,
    ValueInfo,
    is_state_input,
    is_state_output,
    quantize_values,
    read_espdl,
    rounding_for_target,
    state_pairs,
)

STREAM_SEED = 1234
GOLDEN_CHUNKS = 4
MAX_WARMUP_CHUNKS = 64


# Output dtypes with real values: ESP-DL's Softmax always writes float32 (no exponent).
FLOAT_DTYPES = ("float32",)
_DTYPE_BYTES = {"int8": 1, "int16": 2, "float32": 4}


@dataclass
class TensorSpec:
    name: str
    shape: list[int]
    dtype: str
    # real = q * 2^exponent; 0 for a float32 tensor, whose values are real (as esp-ppq records it and
    # ESP-DL's tensor carries it), so every q * 2^exponent stays right.  The JSON says null for it.
    exponent: int

    @property
    def is_float(self) -> bool:
        return self.dtype in FLOAT_DTYPES

    def as_json(self) -> dict[str, Any]:
        exponent = None if self.is_float else self.exponent
        return {"name": self.name, "shape": self.shape, "dtype": self.dtype, "exponent": exponent}

    def elements_bytes(self) -> int:
        count = 1
        for d in self.shape:
            count *= d
        return count * _DTYPE_BYTES[self.dtype]

    def real(self, values: np.ndarray) -> np.ndarray:
        """Real values of raw tensor values, float64: q * 2^exponent; a float32 tensor's values as they are."""
        if self.is_float:
            return np.asarray(values, np.float64)
        return np.asarray(values, np.float64) * 2.0**self.exponent


@dataclass
class ComparedChunk:
    """Streaming chunk k, equal to the offline model run on input frames [start, stop)."""

    k: int
    start: int
    stop: int
    outputs: dict[str, np.ndarray]  # dequantized streaming outputs (q * 2^exponent), float64


@dataclass
class VerifyResult:
    verified: bool
    chunks_checked: int
    warmup_chunks: int
    max_abs_diff: int
    offline_test_outputs_checked: int
    input: TensorSpec
    outputs: list[TensorSpec]
    cache_bytes: int
    cache_bytes_by_node: dict[str, int]
    macs_per_chunk: int
    offline_macs: int
    golden_frames: np.ndarray
    golden_outputs: list[np.ndarray]  # per output (sorted by name): [chunks, elements]
    golden_chunks: int
    rounding: str
    reference: str = "prefix"  # "prefix": offline on [0, L); "window": offline on [L-T, L)
    # Recurrent state the glue loops back: (model input, model output) pairs, by index k.
    states: list[tuple[TensorSpec, TensorSpec]] = field(default_factory=list)
    # Per state: the raw integers it starts from (a learned initial state), None for zeros.
    state_initial: list[list[int] | None] = field(default_factory=list)
    # For the float-fidelity measure (fidelity.py): the float stream before quantization
    # ([frames, *features], exported layout) and every compared chunk.
    float_stream: np.ndarray | None = None
    compared: list[ComparedChunk] = field(default_factory=list)
    simulator_check: SimulatorCheck | None = None


def _spec(v: ValueInfo) -> TensorSpec:
    if v.dtype in FLOAT_DTYPES:
        # Real values (ESP-DL's Softmax output): no scale, whatever exponent esp-ppq recorded.
        return TensorSpec(v.name, [int(d) for d in v.shape], v.dtype, 0)
    if v.exponent is None or v.dtype not in _DTYPE_BYTES:
        raise VerificationError(f"tensor '{v.name}' is {v.dtype} without an exponent: it is not quantized")
    return TensorSpec(v.name, [int(d) for d in v.shape], v.dtype, int(v.exponent))


def _looped_pairs(decl: Declaration, model: EspdlModel, which: str) -> list[tuple[ValueInfo, ValueInfo]]:
    """The (state_in_k, state_out_k) pairs of a model, checked to be a pure loop-back: the input feeds
    only the initial-state slot of one GRU/LSTM, whose matching last-state output is the output."""
    try:
        pairs = state_pairs(model, f"the {which} model")
    except EspdlFormatError as exc:
        raise VerificationError(f"{decl.name}: {exc}") from exc
    for state_in, state_out in pairs:
        readers = [(n, i) for n in model.nodes for i, x in enumerate(n.inputs) if x == state_in.name]
        node, slot = readers[0] if len(readers) == 1 else (None, -1)
        if (
            node is None
            or node.op_type not in ("GRU", "LSTM")
            or slot not in (5, 6)
            or len(node.outputs) <= slot - 4
            or node.outputs[slot - 4] != state_out.name
        ):
            raise VerificationError(
                f"{decl.name}: the {which} model's recurrent state input '{state_in.name}' is not looped back from "
                f"the matching GRU/LSTM state output '{state_out.name}' (esp-ppq changed the graph around it); the "
                "streaming model would not carry its state across chunks"
            )
    return pairs


def _float_test_rtol(model: EspdlModel, name: str, want: np.ndarray) -> float:
    """Relative tolerance for esp-ppq's test values of float32 output `name` against the simulator.

    Only ESP-DL's Softmax writes float32.  ESP-DL (and the simulator) and esp-ppq's torch reference
    compute it from the same integers in float32, differently rounded: ESP-DL rounds exp (the C
    library's, correctly rounded: u = 2^-24 relative), sums the n terms of the axis in order
    ((n - 1) u) and divides (u); torch's vectorised exp is within 1 ulp (2u), its sum has the same
    (n - 1) u bound in any order, and it may multiply by the reciprocal of the sum (2u).  To first
    order the two results differ by at most (n + 1) u + (n + 3) u = (2n + 4) u; 4u more covers
    the second-order terms.  n = 5 gives 1.1e-6, above the 2.2e-7 (2 ulps) measured on the zoo's
    Softmax models at 8 and 16 bits.  An int16 Softmax input may itself be one step s = 2^e off in
    esp-ppq's reference (the +-1 accepted for int16 outputs): inputs within +-s change every output
    by a factor within exp(+-2s), so exp(2s) - 1 is added then.  Any other float32 output has no
    known reason to differ: 0."""
    producer = next((n for n in model.nodes if name in n.outputs), None)
    if producer is None or producer.op_type != "Softmax" or want.ndim == 0:
        return 0.0
    axis = int(producer.attributes.get("axis", -1))
    axis = axis + want.ndim if axis < 0 else axis
    length = want.shape[axis] if 0 <= axis < want.ndim else 1
    rtol = (2 * length + 8) * 2.0**-24
    source = producer.inputs[0] if producer.inputs else ""
    info = next((v for v in model.inputs if v.name == source), None) or model.value_info.get(source)
    exponent = model.exponent_of(source)
    if info is not None and info.dtype == "int16" and exponent is not None:
        rtol += math.expm1(2.0 * 2.0**exponent)
    return float(rtol)


def _test_value_difference(model: EspdlModel, name: str, have: np.ndarray | None, want: np.ndarray) -> str | None:
    """None when the simulator's `have` reproduces esp-ppq's test output `want`, else what differs."""
    if have is None:
        return "missing"
    if have.shape != want.shape:
        return f"shape {list(have.shape)} vs {list(want.shape)}"
    if want.dtype.kind == "f" or have.dtype.kind == "f":
        if have.dtype != want.dtype:
            return f"dtype {have.dtype} vs {want.dtype}"
        a, b = have.astype(np.float64), want.astype(np.float64)
        rtol = _float_test_rtol(model, name, want)
        same = (a == b) | (np.isnan(a) & np.isnan(b))
        with np.errstate(invalid="ignore"):
            bad = ~same & ~(np.abs(a - b) <= rtol * np.abs(b))
        if not bad.any():
            return None
        with np.errstate(invalid="ignore", divide="ignore"):
            rel = np.abs(a - b)[bad] / np.abs(b)[bad]
        return (
            f"{int(np.count_nonzero(bad))} of {want.size} float32 values differ by more than the relative tolerance "
            f"{rtol:.3g}, max relative diff {float(np.max(rel)):.3g}"
        )
    # esp-ppq's 16-bit reference forward accumulates in float32 and can be one step off the
    # exact result; ESP-DL's own Model::test() accepts +-1 for int16 for the same reason.
    tolerance = 1 if want.dtype == np.int16 else 0
    diff = np.abs(have.astype(np.int64) - want.astype(np.int64))
    if np.max(diff, initial=0) <= tolerance:
        return None
    return f"{int(np.count_nonzero(have != want))} of {want.size} values differ, max |diff| {int(np.max(diff))}"


@dataclass
class SimulatorCheck:
    """How the simulator was checked against esp-ppq on the offline model's test input."""

    outputs: int  # esp-ppq test outputs compared
    # "outputs": every output reproduced within the tolerance; "layers": the outputs drift further
    # (esp-ppq's float32 reference, accumulated over the graph) but every layer, run on esp-ppq's
    # own inputs, reproduces esp-ppq's value of that layer.
    method: str = "outputs"
    layers: int = 0  # layers compared one by one ("layers")
    output_drift: str | None = None  # what differed at the outputs ("layers")

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"method": self.method, "outputs": self.outputs}
        if self.method == "layers":
            out["layers"] = self.layers
            out["output_drift"] = self.output_drift
        return out


def _check_offline_test_values(
    decl: Declaration, model: EspdlModel, sim: Simulator, layer_values: Mapping[str, np.ndarray] | None = None
) -> SimulatorCheck:
    """The simulator must reproduce esp-ppq's test outputs embedded in the offline file.

    At 16 bits esp-ppq's reference computes in float32 and may be one step off ESP-DL's integer
    result at any layer; over a deep graph those steps add up and can be amplified (a LayerNorm, a
    Softmax). When the outputs differ beyond one step and esp-ppq's per-layer values are known
    (`layer_values`), each layer is run on esp-ppq's own inputs instead: every layer must then
    reproduce esp-ppq's value of it, else the error names the first layer that does not."""
    if not model.test_inputs or not model.test_outputs:
        raise VerificationError(
            f"{decl.name}: the offline export carries no test values, so the simulator cannot be checked"
        )
    got = sim.run(model.test_inputs)
    drift: list[str] = []
    for name, want in sorted(model.test_outputs.items()):
        have = got.get(name)
        diff = _test_value_difference(model, name, None if have is None else np.asarray(have), np.asarray(want))
        if diff is not None:
            drift.append(f"'{name}': {diff}")
    if not drift:
        return SimulatorCheck(outputs=len(model.test_outputs))
    if not layer_values:
        raise VerificationError(
            f"{decl.name}: the host simulator does not reproduce esp-ppq's own test output {drift[0]} of "
            "the offline model; the model uses something the simulator does not model exactly, so the "
            "streaming model cannot be verified"
        )
    compared: list[str] = []
    wrong: list[tuple[Any, str, str]] = []

    def on_forced(node: Any, name: str, have: np.ndarray, want: np.ndarray) -> None:
        compared.append(name)
        diff = _test_value_difference(model, name, have, want)
        if diff is not None:
            wrong.append((node, name, diff))

    sim.run(model.test_inputs, forced=layer_values, on_forced=on_forced)
    if wrong:
        node, name, diff = wrong[0]
        raise VerificationError(
            f"{decl.name}: node '{node.name}' ({node.op_type}): the host simulator does not reproduce esp-ppq's "
            f"value of '{name}' on esp-ppq's own inputs ({diff}); the model's outputs differ too ({drift[0]}). "
            f"The simulator does not model this {node.op_type} exactly, so the streaming model cannot be "
            "verified: replace the layer or report it with this model"
        )
    outputs = {o.name for o in model.outputs}
    if not outputs <= set(compared) | {i.name for i in model.inputs}:
        missing = sorted(outputs - set(compared))
        raise VerificationError(
            f"{decl.name}: the host simulator does not reproduce esp-ppq's own test output {drift[0]} of the "
            f"offline model, and esp-ppq's per-layer values do not reach output(s) {missing} to tell which layer "
            "differs; the streaming model cannot be verified"
        )
    return SimulatorCheck(
        outputs=len(model.test_outputs), method="layers", layers=len(compared), output_drift="; ".join(drift)
    )


def _comparable(stream_out: np.ndarray, offline_out: np.ndarray, axis: int | None = 1) -> np.ndarray | None:
    """The part of the offline output that corresponds to one streaming chunk (its last frames on the
    output's time axis `axis`), or None."""
    if stream_out.shape == offline_out.shape:
        return offline_out
    axis = 1 if axis is None else axis
    if stream_out.ndim != offline_out.ndim or stream_out.ndim <= axis:
        return None
    same = all(a == b for i, (a, b) in enumerate(zip(stream_out.shape, offline_out.shape)) if i != axis)
    frames, total = stream_out.shape[axis], offline_out.shape[axis]
    if same and total >= frames:
        return np.take(offline_out, range(total - frames, total), axis=axis)
    return None


def _random_stream(spec: TensorSpec, frames: int, feature_shape: list[int]) -> np.ndarray:
    rng = np.random.default_rng(STREAM_SEED)
    span = (32.0 if spec.dtype == "int8" else 8192.0) * 2.0**spec.exponent
    data = rng.standard_normal([frames, *feature_shape]) * span
    return data.astype(np.float32)


def _first_bad_node(st_model: EspdlModel, st_trace: dict[str, np.ndarray], off_trace: dict[str, np.ndarray]) -> str:
    for node in st_model.nodes:
        for var in node.outputs:
            if var not in st_trace or var not in off_trace:
                continue
            ref = _comparable(st_trace[var], off_trace[var])
            if ref is not None and not np.array_equal(ref, st_trace[var]):
                return f"node '{node.name}' ({node.op_type}) output '{var}'"
    return "no single node (the difference builds up across nodes)"


class _OfflineRunner:
    """The offline model with its recurrent state inputs (if any) held at the initial state."""

    def __init__(self, sim: Simulator, start_state: dict[str, np.ndarray]) -> None:
        self.sim = sim
        self.start_state = start_state

    def run(self, inputs: dict[str, np.ndarray], *, trace: bool = False) -> dict[str, np.ndarray]:
        return self.sim.run({**inputs, **self.start_state}, trace=trace)


def _check_same_initial_state(decl: Declaration, offline: dict[str, np.ndarray], stream: dict[str, np.ndarray]) -> None:
    for name in sorted(set(offline) | set(stream)):
        if name not in offline or name not in stream or not np.array_equal(offline[name], stream[name]):
            raise VerificationError(
                f"{decl.name}: the offline and the streaming model start recurrent state '{name}' from different "
                "values; they were not exported from the same graph"
            )


def _length_problem(sim: _OfflineRunner, name: str, q_stream: np.ndarray, frames: int) -> str | None:
    """Why the offline model cannot run on `frames` frames (None: it can)."""
    try:
        sim.run({name: q_stream[:, :frames]})
    except (EspdlStreamingError, ValueError) as exc:  # the simulator's shape errors, numpy's broadcasting ones
        return str(exc)
    return None


def _aligned(
    stream_out: np.ndarray, offline_out: np.ndarray, lead: int | None, k: int, axis: int | None = 1
) -> np.ndarray | None:
    """The offline frames streaming chunk k computed: stream frames [k*F, (k+1)*F) are offline frames
    [k*F + lead, (k+1)*F + lead) on the output's time axis `axis` (lead and axis from the streaming
    plan); None if the offline run lacks them."""
    if lead is None:
        return offline_out if offline_out.shape == stream_out.shape else None
    axis = 1 if axis is None else axis
    if stream_out.ndim != offline_out.ndim or stream_out.ndim <= axis:
        return None
    frames = stream_out.shape[axis]
    start = k * frames + lead
    others_match = all(a == b for i, (a, b) in enumerate(zip(stream_out.shape, offline_out.shape)) if i != axis)
    if not others_match or start < 0 or offline_out.shape[axis] < start + frames:
        return None
    return np.take(offline_out, range(start, start + frames), axis=axis)


def verify(
    decl: Declaration,
    offline_bytes: bytes,
    streaming_bytes: bytes,
    *,
    receptive_field: int = 1,
    total_stride: int = 1,
    reshape_frames: dict[str, tuple[int, int]] | None = None,
    leads: dict[str, int | None] | None = None,
    axes: dict[str, int | None] | None = None,
    layer_values: Mapping[str, np.ndarray] | None = None,
) -> VerifyResult:
    """`leads`: per output, offline frame index - streaming frame index (StreamingPlan.output_leads());
    without it, the last frames of the offline output are compared. `axes`: per output, its exported
    time axis (StreamingPlan.output_axes()); 1 when absent."""
    axes = axes or {}
    rounding = rounding_for_target(decl.chip)
    off_model = read_espdl(offline_bytes, source=f"{decl.name}.offline.espdl")
    st_model = read_espdl(streaming_bytes, source=f"{decl.name}.espdl")
    off_sim = Simulator(off_model, rounding, any_frames=True, reshape_frames=reshape_frames)
    simulator_check = _check_offline_test_values(decl, off_model, off_sim, layer_values)
    st_pairs = _looped_pairs(decl, st_model, "streaming")
    _looped_pairs(decl, off_model, "offline")  # checked like the streaming model's; the start state comes below
    st_stream = LoopedSimulator(st_model, rounding, f"{decl.name}.espdl")
    # The offline model starts every run from the initial state (a fresh stream), like the streaming one.
    off_start = StateLoop.of(off_model, f"{decl.name}.offline.espdl").initial()
    off_stream = _OfflineRunner(off_sim, off_start)
    _check_same_initial_state(decl, off_start, st_stream.loop.initial())

    stream_inputs = [v for v in st_model.inputs if not is_state_input(v.name)]
    off_inputs = [v for v in off_model.inputs if not is_state_input(v.name)]
    if len(stream_inputs) != 1 or len(off_inputs) != 1:
        raise VerificationError(
            f"{decl.name}: the streaming model has inputs {[v.name for v in stream_inputs]}, expected one stream"
        )
    in_spec = _spec(stream_inputs[0])
    off_in = off_inputs[0]
    if in_spec.shape[1] != decl.chunk_frames:
        raise VerificationError(
            f"{decl.name}: the streaming input '{in_spec.name}' has shape {in_spec.shape}; expected "
            f"{decl.chunk_frames} frames on axis 1"
        )
    if off_in.exponent != in_spec.exponent:
        raise VerificationError(f"{decl.name}: offline and streaming inputs have different exponents")
    # User outputs: everything but the state-only outputs (a last state the user's model returns is both).
    out_specs = sorted((_spec(v) for v in st_model.outputs if not is_state_output(v.name)), key=lambda s: s.name)
    state_specs = [(_spec(i), _spec(o)) for i, o in st_pairs]
    feature_shape = in_spec.shape[2:]
    chunk = decl.chunk_frames

    total_chunks = decl.verify_chunks + MAX_WARMUP_CHUNKS
    stream = _random_stream(in_spec, total_chunks * chunk, feature_shape)
    q_stream = quantize_values(stream, in_spec.exponent, in_spec.dtype, rounding)[None]  # [1, frames, ...]

    # Reference for chunk k: the offline model on the causal prefix [0, L), L = (k+1)*chunk.  A
    # model with constant reshapes over time only runs on its declared length T: then the
    # reference is the offline model on the window [L-T, L), valid once the receptive field and
    # a chunk fit in it (what the window cannot see does not reach the compared frames).
    offline_frames = decl.offline_frames
    length_problem = _length_problem(off_stream, off_in.name, q_stream, offline_frames + chunk)
    prefix_mode = length_problem is None
    if not prefix_mode and st_pairs:
        raise VerificationError(
            f"{decl.name}: the offline model only runs on its declared {offline_frames} frames ({length_problem}), "
            "and its GRU/LSTM state carries the whole stream, so no run of it reproduces what a streaming chunk "
            "has seen: espdl_streaming cannot verify this model (a limit of the tool's reference, not of the "
            "model); open an issue with the model"
        )
    if not prefix_mode and total_stride > 1 and offline_frames % total_stride:
        raise VerificationError(
            f"{decl.name}: the offline model only runs on its declared {offline_frames} frames ({length_problem}); "
            f"windows of them line up with the streaming frames only when the length is a multiple of the total "
            f"stride {total_stride}: declare --input-shape with {offline_frames - offline_frames % total_stride} "
            f"or {offline_frames - offline_frames % total_stride + total_stride} frames so espdl_streaming can "
            "check the streaming model"
        )
    if not prefix_mode and receptive_field + chunk - 1 > offline_frames:
        raise VerificationError(
            f"{decl.name}: the offline model only runs on its declared {offline_frames} frames, which is shorter "
            f"than its receptive field ({receptive_field} frames) plus a chunk: declare a longer --input-shape "
            "(time on dim 2) so the streaming model can be checked against it"
        )

    st_stream.reset()
    checked = warmup = 0
    golden: list[list[np.ndarray]] = [[] for _ in out_specs]
    compared: list[ComparedChunk] = []
    k = 0
    while checked < decl.verify_chunks:
        if k >= total_chunks:
            raise VerificationError(
                f"{decl.name}: after {warmup} warm-up chunks the offline model still cannot be compared with the "
                "streaming model (their output shapes never line up)"
            )
        q_chunk = q_stream[:, k * chunk : (k + 1) * chunk]
        try:
            st_out = st_stream.run({in_spec.name: q_chunk})
        except EspdlStreamingError as exc:
            raise VerificationError(
                f"{decl.name}: streaming chunk {k} cannot be computed: {exc} (ESP-DL does not check shapes and "
                "would compute garbage here)"
            ) from exc
        if k == 0:
            # esp-ppq records the offline shapes for a streaming model's outputs; ESP-DL infers the
            # real per-chunk shapes at load time, and so does the simulator.
            for spec in out_specs:
                spec.shape = [int(d) for d in np.asarray(st_out[spec.name]).shape]
        if k < GOLDEN_CHUNKS:
            for i, spec in enumerate(out_specs):
                golden[i].append(np.asarray(st_out[spec.name]).reshape(-1))
        prefix_len = (k + 1) * chunk
        start = 0 if prefix_mode else prefix_len - offline_frames
        prefix = q_stream[:, max(start, 0) : prefix_len]
        try:
            off_out = off_stream.run({off_in.name: prefix}) if start >= 0 else None
        except (EspdlStreamingError, ValueError) as exc:
            if prefix_len >= offline_frames:
                raise VerificationError(
                    f"{decl.name}: the offline model cannot run on {prefix_len} frames: {exc}"
                ) from exc
            off_out = None
        refs = None
        if off_out is not None and prefix_mode and leads is not None:
            refs = [_aligned(np.asarray(st_out[s.name]), np.asarray(off_out[s.name]), leads.get(s.name), k,
                             axes.get(s.name)) for s in out_specs]  # fmt: skip
            if any(r is None for r in refs) and (k + 2) * chunk <= q_stream.shape[1]:
                # An upsampling layer can need the next input frame before the offline model emits the
                # frames this chunk produced; causality makes the longer prefix a valid reference.
                prefix = q_stream[:, : (k + 2) * chunk]
                longer = off_stream.run({off_in.name: prefix})
                refs = [_aligned(np.asarray(st_out[s.name]), np.asarray(longer[s.name]), leads.get(s.name), k,
                                 axes.get(s.name)) for s in out_specs]  # fmt: skip
        elif off_out is not None:
            refs = [_comparable(np.asarray(st_out[s.name]), np.asarray(off_out[s.name]), axes.get(s.name))
                    for s in out_specs]  # fmt: skip
        if refs is None or any(r is None for r in refs):
            if prefix_len >= decl.offline_frames or checked:
                raise VerificationError(
                    f"{decl.name}: chunk {k}: the streaming outputs "
                    f"{[list(np.asarray(st_out[s.name]).shape) for s in out_specs]} cannot be lined up with the "
                    f"offline outputs on {prefix_len} frames"
                )
            warmup += 1
            k += 1
            continue
        for spec, ref in zip(out_specs, refs):
            have = np.asarray(st_out[spec.name])
            assert ref is not None
            if not np.array_equal(have, ref):
                wide = np.float64 if have.dtype.kind == "f" else np.int64  # float32 outputs (Softmax) too
                diff = np.abs(have.astype(wide) - ref.astype(wide))
                where = _locate(
                    st_model,
                    rounding,
                    off_stream,
                    [q_stream[:, n * chunk : (n + 1) * chunk] for n in range(k + 1)],
                    in_spec.name,
                    {off_in.name: prefix},
                )
                raise VerificationError(
                    f"{decl.name}: streaming chunk {k} differs from the offline model run on input frames "
                    f"[{max(start, 0)}, {max(start, 0) + prefix.shape[1]}): output '{spec.name}' has "
                    f"{int(np.count_nonzero(have != ref))} differing values "
                    f"(max |diff| {diff.max():g}); first differing: {where}"
                )
        compared.append(
            ComparedChunk(k, max(start, 0), max(start, 0) + prefix.shape[1],
                          {s.name: np.asarray(st_out[s.name], np.float64) * 2.0**s.exponent for s in out_specs})
        )  # fmt: skip
        checked += 1
        k += 1
    golden_chunks = min(GOLDEN_CHUNKS, k)
    return VerifyResult(
        reference="prefix" if prefix_mode else "window",
        verified=True,
        chunks_checked=checked,
        warmup_chunks=warmup,
        max_abs_diff=0,  # any difference stops the build above
        offline_test_outputs_checked=simulator_check.outputs,
        simulator_check=simulator_check,
        input=in_spec,
        outputs=out_specs,
        cache_bytes=int(st_stream.sim.cache_bytes),
        cache_bytes_by_node=st_stream.sim.cache_bytes_by_node(),
        macs_per_chunk=int(st_stream.sim.macs()),
        offline_macs=int(off_sim.macs()),
        golden_frames=stream[: golden_chunks * chunk].reshape(golden_chunks * chunk, -1),
        golden_outputs=[np.stack(g[:golden_chunks]) for g in golden],
        golden_chunks=golden_chunks,
        rounding=rounding,
        states=state_specs,
        state_initial=[
            [int(v) for v in st_stream.loop.start[i.name].reshape(-1)] if i.name in st_stream.loop.start else None
            for i, _ in st_pairs
        ],
        float_stream=stream,
        compared=compared,
    )


def _locate(
    st_model: EspdlModel,
    rounding: str,
    off_sim: _OfflineRunner,
    chunks: list[np.ndarray],
    in_name: str,
    reference: dict[str, np.ndarray],
) -> str:
    """Re-run the streaming model over `chunks` with tracing and the offline model on `reference`;
    name the first node whose output differs."""
    sim = LoopedSimulator(st_model, rounding)  # type: ignore[arg-type]
    trace: dict[str, np.ndarray] = {}
    for q_chunk in chunks:
        trace = sim.run({in_name: q_chunk}, trace=True)
    return _first_bad_node(st_model, trace, off_sim.run(reference, trace=True))


def stream_outputs(decl: Declaration, streaming_bytes: bytes, frames: np.ndarray, chunks: int) -> list[np.ndarray]:
    """The raw outputs (sorted by name, user outputs only: [chunks, elements] each) of the streaming model on
    the first `chunks` chunks of float `frames` ([n, feature_dim]) from a fresh stream: quantized at the
    input's exponent with the chip's rounding, as the generated class's push() does. The golden outputs of
    the front end's self test (the model on the features of the golden PCM)."""
    rounding = rounding_for_target(decl.chip)
    st_model = read_espdl(streaming_bytes, source=f"{decl.name}.espdl")
    st_stream = LoopedSimulator(st_model, rounding, f"{decl.name}.espdl")
    stream_inputs = [v for v in st_model.inputs if not is_state_input(v.name)]
    in_spec = _spec(stream_inputs[0])
    out_specs = sorted((_spec(v) for v in st_model.outputs if not is_state_output(v.name)), key=lambda s: s.name)
    chunk = decl.chunk_frames
    shaped = np.asarray(frames, np.float32)[: chunks * chunk].reshape(chunks * chunk, *in_spec.shape[2:])
    q_stream = quantize_values(shaped, in_spec.exponent, in_spec.dtype, rounding)[None]
    st_stream.reset()
    golden: list[list[np.ndarray]] = [[] for _ in out_specs]
    for k in range(chunks):
        st_out = st_stream.run({in_spec.name: q_stream[:, k * chunk : (k + 1) * chunk]})
        for i, spec in enumerate(out_specs):
            golden[i].append(np.asarray(st_out[spec.name]).reshape(-1))
    return [np.stack(g) for g in golden]
