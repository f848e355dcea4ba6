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
    quantize,
    read_espdl,
    rounding_for_target,
    state_pairs,
)

STREAM_SEED = 1234
GOLDEN_CHUNKS = 4
MAX_WARMUP_CHUNKS = 64


@dataclass
class TensorSpec:
    name: str
    shape: list[int]
    dtype: str
    exponent: int

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "shape": self.shape, "dtype": self.dtype, "exponent": self.exponent}

    def elements_bytes(self) -> int:
        count = 1
        for d in self.shape:
            count *= d
        return count * (2 if self.dtype == "int16" else 1)


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


def _spec(v: ValueInfo) -> TensorSpec:
    if v.exponent is None:
        raise VerificationError(f"tensor '{v.name}' has no exponent: it is not quantized")
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


def _check_offline_test_values(decl: Declaration, model: EspdlModel, sim: Simulator) -> int:
    if not model.test_inputs or not model.test_outputs:
        raise VerificationError(
            f"{decl.name}: the offline export carries no test values, so the simulator cannot be checked"
        )
    got = sim.run(model.test_inputs)
    for name, want in sorted(model.test_outputs.items()):
        have = got.get(name)
        # esp-ppq's 16-bit reference forward accumulates in float32 and can be one step off the
        # exact result; ESP-DL's own Model::test() accepts +-1 for int16 for the same reason.
        tolerance = 1 if want.dtype == np.int16 else 0
        if (
            have is None
            or have.shape != want.shape
            or np.max(np.abs(have.astype(np.int64) - want.astype(np.int64)), initial=0) > tolerance
        ):
            diff = (
                "missing"
                if have is None
                else (
                    f"shape {list(have.shape)} vs {list(want.shape)}"
                    if have.shape != want.shape
                    else f"{int(np.count_nonzero(have != want))} of {want.size} values differ, max |diff| "
                    f"{int(np.max(np.abs(have.astype(np.int64) - want.astype(np.int64))))}"
                )
            )
            raise VerificationError(
                f"{decl.name}: the host simulator does not reproduce esp-ppq's own test output '{name}' of "
                f"the offline model ({diff}); the model uses something the simulator does not model exactly, so "
                "the streaming model cannot be verified"
            )
    return len(model.test_outputs)


def _comparable(stream_out: np.ndarray, offline_out: np.ndarray) -> np.ndarray | None:
    """The part of the offline output that corresponds to one streaming chunk, or None."""
    if stream_out.shape == offline_out.shape:
        return offline_out
    if stream_out.ndim != offline_out.ndim or stream_out.ndim < 2:
        return None
    same = all(a == b for i, (a, b) in enumerate(zip(stream_out.shape, offline_out.shape)) if i != 1)
    if same and offline_out.shape[1] >= stream_out.shape[1]:
        return offline_out[:, offline_out.shape[1] - stream_out.shape[1] :]
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
    """The offline model with its recurrent state inputs (if any) held at zero."""

    def __init__(self, sim: Simulator, zero_state: dict[str, np.ndarray]) -> None:
        self.sim = sim
        self.zero_state = zero_state

    def run(self, inputs: dict[str, np.ndarray], *, trace: bool = False) -> dict[str, np.ndarray]:
        return self.sim.run({**inputs, **self.zero_state}, trace=trace)


def _runs_on_any_length(sim: _OfflineRunner, name: str, q_stream: np.ndarray, frames: int) -> bool:
    try:
        sim.run({name: q_stream[:, :frames]})
    except (EspdlStreamingError, ValueError):  # the simulator's shape errors, numpy's broadcasting ones
        return False
    return True


def _aligned(stream_out: np.ndarray, offline_out: np.ndarray, lead: int | None, k: int) -> np.ndarray | None:
    """The offline frames streaming chunk k computed: stream frames [k*F, (k+1)*F) are offline frames
    [k*F + lead, (k+1)*F + lead) (lead from the streaming plan); None if the offline run lacks them."""
    if lead is None:
        return offline_out if offline_out.shape == stream_out.shape else None
    frames = stream_out.shape[1]
    start = k * frames + lead
    if (
        stream_out.ndim != offline_out.ndim
        or stream_out.shape[2:] != offline_out.shape[2:]
        or start < 0
        or offline_out.shape[1] < start + frames
    ):
        return None
    return offline_out[:, start : start + frames]


def verify(
    decl: Declaration,
    offline_bytes: bytes,
    streaming_bytes: bytes,
    *,
    receptive_field: int = 1,
    leads: dict[str, int | None] | None = None,
) -> VerifyResult:
    """`leads`: per output, offline frame index - streaming frame index (StreamingPlan.output_leads());
    without it, the last frames of the offline output are compared."""
    rounding = rounding_for_target(decl.chip)
    off_model = read_espdl(offline_bytes, source=f"{decl.name}.offline.espdl")
    st_model = read_espdl(streaming_bytes, source=f"{decl.name}.espdl")
    off_sim = Simulator(off_model, rounding, any_frames=True)
    checked_test_outputs = _check_offline_test_values(decl, off_model, off_sim)
    st_pairs = _looped_pairs(decl, st_model, "streaming")
    off_pairs = _looped_pairs(decl, off_model, "offline")
    st_stream = LoopedSimulator(st_model, rounding, f"{decl.name}.espdl")
    # The offline model starts every run from zero state (a fresh stream), like the streaming one.
    off_zero = StateLoop(off_pairs).initial()
    off_stream = _OfflineRunner(off_sim, off_zero)

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
    state_names = {o.name for _, o in st_pairs}
    out_specs = sorted((_spec(v) for v in st_model.outputs if v.name not in state_names), key=lambda s: s.name)
    state_specs = [(_spec(i), _spec(o)) for i, o in st_pairs]
    feature_shape = in_spec.shape[2:]
    chunk = decl.chunk_frames

    total_chunks = decl.verify_chunks + MAX_WARMUP_CHUNKS
    stream = _random_stream(in_spec, total_chunks * chunk, feature_shape)
    q_stream = quantize(stream, in_spec.exponent, in_spec.dtype, rounding)[None]  # [1, frames, ...]

    # Reference for chunk k: the offline model on the causal prefix [0, L), L = (k+1)*chunk.  A
    # model with constant reshapes over time only runs on its declared length T: then the
    # reference is the offline model on the window [L-T, L), valid once the receptive field and
    # a chunk fit in it (what the window cannot see does not reach the compared frames).
    offline_frames = decl.offline_frames
    prefix_mode = _runs_on_any_length(off_stream, off_in.name, q_stream, offline_frames + chunk)
    if not prefix_mode and receptive_field + chunk - 1 > offline_frames:
        raise VerificationError(
            f"{decl.name}: the offline model only runs on its declared {offline_frames} frames, which is shorter "
            f"than its receptive field ({receptive_field} frames) plus a chunk: declare a longer --input-shape "
            "(time on dim 2) so the streaming model can be checked against it"
        )

    st_stream.reset()
    checked = warmup = 0
    golden: list[list[np.ndarray]] = [[] for _ in out_specs]
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
            refs = [_aligned(np.asarray(st_out[s.name]), np.asarray(off_out[s.name]), leads.get(s.name), k)
                    for s in out_specs]  # fmt: skip
            if any(r is None for r in refs) and (k + 2) * chunk <= q_stream.shape[1]:
                # An upsampling layer can need the next input frame before the offline model emits the
                # frames this chunk produced; causality makes the longer prefix a valid reference.
                prefix = q_stream[:, : (k + 2) * chunk]
                longer = off_stream.run({off_in.name: prefix})
                refs = [_aligned(np.asarray(st_out[s.name]), np.asarray(longer[s.name]), leads.get(s.name), k)
                        for s in out_specs]  # fmt: skip
        elif off_out is not None:
            refs = [_comparable(np.asarray(st_out[s.name]), np.asarray(off_out[s.name])) for s in out_specs]
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
                diff = np.abs(have.astype(np.int64) - ref.astype(np.int64))
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
                    f"{int(np.count_nonzero(diff))} differing values "
                    f"(max |diff| {int(diff.max())}); first differing: {where}"
                )
        checked += 1
        k += 1
    golden_chunks = min(GOLDEN_CHUNKS, k)
    return VerifyResult(
        reference="prefix" if prefix_mode else "window",
        verified=True,
        chunks_checked=checked,
        warmup_chunks=warmup,
        max_abs_diff=0,  # any difference stops the build above
        offline_test_outputs_checked=checked_test_outputs,
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
