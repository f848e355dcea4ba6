"""The build report, ``NAME.report.json``: a typed view of a documented JSON format.

:class:`BuildReport` is what the build writes and what the CLI's summary and ``run`` read.
:meth:`BuildReport.to_json` gives exactly the bytes the build writes (``json.dumps(..., indent=2)``
plus a newline, keys in the order below) and :meth:`BuildReport.from_json` accepts exactly them:
``from_json(data).to_json() == data`` for every report a build writes (tests/test_report_html.py).

Typed here: the top level, the tensors, ``streaming`` (with its caches and simulator check),
``recurrent_states``, ``calibration``, ``placement``, ``frontend`` (with its ``cost``). The measurement
sections ``fidelity`` and ``quality`` (fidelity.py, quality.py) stay JSON objects: their content depends on
the model and report_html.py renders them defensively (it also renders reports of older builds).

The JSON format is documented in the README (section "Outputs"); the report's own docstrings say
which fields cannot vary.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeAlias

__all__ = [
    "JSONObject",
    "JSONValue",
    "BuildReport",
    "CacheReport",
    "CalibrationReport",
    "FrontendCostReport",
    "FrontendRamReport",
    "FrontendReport",
    "FrontendStageReport",
    "PlacementReport",
    "RecurrentStateReport",
    "SimulatorCheckReport",
    "StreamingReport",
    "TensorReport",
]

#: A JSON value as json.loads returns it (and json.dumps writes it).
JSONValue: TypeAlias = None | bool | int | float | str | list["JSONValue"] | dict[str, "JSONValue"]
JSONObject: TypeAlias = dict[str, JSONValue]


# --------------------------------------------------------------------------- reading JSON values


def _obj(value: JSONValue, what: str) -> JSONObject:
    if isinstance(value, dict):
        return value
    raise ValueError(f"report: {what} is not a JSON object")


def _list(value: JSONValue, what: str) -> list[JSONValue]:
    if isinstance(value, list):
        return value
    raise ValueError(f"report: {what} is not a JSON list")


def _str(value: JSONValue, what: str) -> str:
    if isinstance(value, str):
        return value
    raise ValueError(f"report: {what} is not a string")


def _opt_str(value: JSONValue, what: str) -> str | None:
    return None if value is None else _str(value, what)


def _int(value: JSONValue, what: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ValueError(f"report: {what} is not an integer")


def _opt_int(value: JSONValue, what: str) -> int | None:
    return None if value is None else _int(value, what)


def _float(value: JSONValue, what: str) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    raise ValueError(f"report: {what} is not a number")


def _opt_float(value: JSONValue, what: str) -> float | None:
    return None if value is None else _float(value, what)


def _bool(value: JSONValue, what: str) -> bool:
    if isinstance(value, bool):
        return value
    raise ValueError(f"report: {what} is not a boolean")


def _ints(value: JSONValue, what: str) -> list[int]:
    return [_int(v, what) for v in _list(value, what)]


def _strs(value: JSONValue, what: str) -> list[str]:
    return [_str(v, what) for v in _list(value, what)]


def _keys(obj: JSONObject, what: str, required: Sequence[str], optional: Sequence[str] = ()) -> None:
    """Exactly the keys the format has: a report with others is not one this version wrote."""
    missing = [k for k in required if k not in obj]
    extra = [k for k in obj if k not in required and k not in optional]
    if missing or extra:
        raise ValueError(f"report: {what}: missing keys {missing}, unknown keys {extra}")


# --------------------------------------------------------------------------- parts


@dataclass(frozen=True)
class TensorReport:
    """A model input or output: ``real = q * 2^exponent``; exponent null for a float32 output (real values)."""

    name: str
    shape: list[int]
    dtype: str
    exponent: int | None

    def to_dict(self) -> JSONObject:
        return {"name": self.name, "shape": list[JSONValue](self.shape), "dtype": self.dtype, "exponent": self.exponent}

    @classmethod
    def from_dict(cls, value: JSONValue, what: str) -> TensorReport:
        d = _obj(value, what)
        _keys(d, what, ("name", "shape", "dtype", "exponent"))
        return cls(
            _str(d["name"], what),
            _ints(d["shape"], what),
            _str(d["dtype"], what),
            _opt_int(d["exponent"], what),
        )


@dataclass(frozen=True)
class CacheReport:
    """A StreamingCache the planner put in front of `op` (streaming_table.StreamingPlan.as_json()) and its RAM;
    `frame_axis`: the exported axis its frames are on."""

    variable: str
    op: str
    op_type: str
    window_size: int
    frame_axis: int
    cached_frames: int
    bytes: int

    def to_dict(self) -> JSONObject:
        return {
            "variable": self.variable,
            "op": self.op,
            "op_type": self.op_type,
            "window_size": self.window_size,
            "frame_axis": self.frame_axis,
            "cached_frames": self.cached_frames,
            "bytes": self.bytes,
        }

    @classmethod
    def from_dict(cls, value: JSONValue) -> CacheReport:
        what = "streaming.caches[]"
        d = _obj(value, what)
        _keys(d, what, ("variable", "op", "op_type", "window_size", "frame_axis", "cached_frames", "bytes"))
        return cls(
            _str(d["variable"], what),
            _str(d["op"], what),
            _str(d["op_type"], what),
            _int(d["window_size"], what),
            _int(d["frame_axis"], what),
            _int(d["cached_frames"], what),
            _int(d["bytes"], what),
        )


@dataclass(frozen=True)
class SimulatorCheckReport:
    """How the simulator was checked against esp-ppq (verify.SimulatorCheck): ``method`` "outputs" (every test
    output reproduced), or "layers" (then ``layers`` and ``output_drift`` are written, else absent)."""

    method: str
    outputs: int
    layers: int | None = None
    output_drift: str | None = None

    def to_dict(self) -> JSONObject:
        out: JSONObject = {"method": self.method, "outputs": self.outputs}
        if self.method == "layers":
            out["layers"] = self.layers
            out["output_drift"] = self.output_drift
        return out

    @classmethod
    def from_dict(cls, value: JSONValue) -> SimulatorCheckReport:
        what = "streaming.simulator_check"
        d = _obj(value, what)
        method = _str(d.get("method"), what)
        if method == "layers":
            _keys(d, what, ("method", "outputs", "layers", "output_drift"))
            return cls(method, _int(d["outputs"], what), _int(d["layers"], what), _opt_str(d["output_drift"], what))
        _keys(d, what, ("method", "outputs"))
        return cls(method, _int(d["outputs"], what))


@dataclass(frozen=True)
class StreamingReport:
    """The bit-exact check of the streaming model against the offline model (verify.py).

    Fixed in every report a build writes (any difference stops the build before a report exists):
    ``verified`` is true, ``max_abs_diff`` is 0, ``stream_seed`` is verify.STREAM_SEED (1234). They stay in
    the format: the README documents ``verified`` and ``max_abs_diff`` and the CLI prints them."""

    verified: bool
    chunks_checked: int
    warmup_chunks: int
    max_abs_diff: int
    stream_seed: int
    offline_test_outputs_reproduced: int
    simulator_check: SimulatorCheckReport | None
    rounding: str  # "half_even" or "half_up": the chip's
    reference: str  # "prefix" (offline model on [0, L)) or "window" (on [L-T, L))
    caches: list[CacheReport]

    _KEYS = (
        "verified", "chunks_checked", "warmup_chunks", "max_abs_diff", "stream_seed",
        "offline_test_outputs_reproduced", "simulator_check", "rounding", "reference", "caches",
    )  # fmt: skip

    def to_dict(self) -> JSONObject:
        return {
            "verified": self.verified,
            "chunks_checked": self.chunks_checked,
            "warmup_chunks": self.warmup_chunks,
            "max_abs_diff": self.max_abs_diff,
            "stream_seed": self.stream_seed,
            "offline_test_outputs_reproduced": self.offline_test_outputs_reproduced,
            "simulator_check": None if self.simulator_check is None else self.simulator_check.to_dict(),
            "rounding": self.rounding,
            "reference": self.reference,
            "caches": [c.to_dict() for c in self.caches],
        }

    @classmethod
    def from_dict(cls, value: JSONValue) -> StreamingReport:
        what = "streaming"
        d = _obj(value, what)
        _keys(d, what, cls._KEYS)
        check = d["simulator_check"]
        return cls(
            verified=_bool(d["verified"], what),
            chunks_checked=_int(d["chunks_checked"], what),
            warmup_chunks=_int(d["warmup_chunks"], what),
            max_abs_diff=_int(d["max_abs_diff"], what),
            stream_seed=_int(d["stream_seed"], what),
            offline_test_outputs_reproduced=_int(d["offline_test_outputs_reproduced"], what),
            simulator_check=None if check is None else SimulatorCheckReport.from_dict(check),
            rounding=_str(d["rounding"], what),
            reference=_str(d["reference"], what),
            caches=[CacheReport.from_dict(c) for c in _list(d["caches"], what)],
        )


@dataclass(frozen=True)
class RecurrentStateReport:
    """A GRU/LSTM state the generated class carries across chunks."""

    node: str
    op_type: str
    state: str  # which state of the node ("h", "c")
    input: str  # the model's state input (state_in_K)
    output: str  # the model's state output
    bytes: int
    initial: str  # what a fresh stream starts from: "zeros" or "learned"
    user_output: bool  # a last state the user's model returns stays a user output (the same tensor)

    def to_dict(self) -> JSONObject:
        return {
            "node": self.node,
            "op_type": self.op_type,
            "state": self.state,
            "input": self.input,
            "output": self.output,
            "bytes": self.bytes,
            "initial": self.initial,
            "user_output": self.user_output,
        }

    @classmethod
    def from_dict(cls, value: JSONValue) -> RecurrentStateReport:
        what = "recurrent_states[]"
        d = _obj(value, what)
        _keys(d, what, ("node", "op_type", "state", "input", "output", "bytes", "initial", "user_output"))
        return cls(
            _str(d["node"], what),
            _str(d["op_type"], what),
            _str(d["state"], what),
            _str(d["input"], what),
            _str(d["output"], what),
            _int(d["bytes"], what),
            _str(d["initial"], what),
            _bool(d["user_output"], what),
        )


@dataclass(frozen=True)
class CalibrationReport:
    """The calibration data: `source` (the file or function, null for random data), the samples, and for
    seeded random data (``random`` true) the `warning` the CLI prints (absent otherwise)."""

    source: str | None
    samples: int
    random: bool
    warning: str | None = None

    def to_dict(self) -> JSONObject:
        out: JSONObject = {"source": self.source, "samples": self.samples, "random": self.random}
        if self.random:
            out["warning"] = self.warning
        return out

    @classmethod
    def from_dict(cls, value: JSONValue) -> CalibrationReport:
        what = "calibration"
        d = _obj(value, what)
        random = _bool(d.get("random"), what)
        _keys(d, what, ("source", "samples", "random", "warning") if random else ("source", "samples", "random"))
        return cls(
            _opt_str(d["source"], what),
            _int(d["samples"], what),
            random,
            _opt_str(d["warning"], what) if random else None,
        )


@dataclass(frozen=True)
class PlacementReport:
    """Where the .espdl lives: ``{"kind": "partition", "label"}`` or ``{"kind": "rodata", "symbol"}``."""

    kind: str
    label: str | None = None  # partition
    symbol: str | None = None  # rodata

    def to_dict(self) -> JSONObject:
        if self.kind == "partition":
            return {"kind": self.kind, "label": self.label}
        return {"kind": self.kind, "symbol": self.symbol}

    @classmethod
    def from_dict(cls, value: JSONValue) -> PlacementReport:
        what = "placement"
        d = _obj(value, what)
        kind = _str(d.get("kind"), what)
        if kind == "partition":
            _keys(d, what, ("kind", "label"))
            return cls(kind, label=_str(d["label"], what))
        _keys(d, what, ("kind", "symbol"))
        return cls(kind, symbol=_str(d["symbol"], what))


@dataclass(frozen=True)
class FrontendStageReport:
    """One stage of dl::audio's process_frame and its arithmetic per feature frame (audio/cost.py): MACs (real
    multiplications with their accumulation), other adds, logf and sqrtf calls."""

    stage: str
    detail: str
    macs: int
    adds: int
    logs: int
    sqrts: int

    def to_dict(self) -> JSONObject:
        return {
            "stage": self.stage,
            "detail": self.detail,
            "macs": self.macs,
            "adds": self.adds,
            "logs": self.logs,
            "sqrts": self.sqrts,
        }

    @classmethod
    def from_dict(cls, value: JSONValue) -> FrontendStageReport:
        what = "frontend.cost.stages[]"
        d = _obj(value, what)
        _keys(d, what, tuple(cls.__dataclass_fields__))
        return cls(
            _str(d["stage"], what),
            _str(d["detail"], what),
            _int(d["macs"], what),
            _int(d["adds"], what),
            _int(d["logs"], what),
            _int(d["sqrts"], what),
        )


@dataclass(frozen=True)
class FrontendRamReport:
    """One allocation of the front end: ``where`` is "heap" (dl::audio's constructors, at init) or "class" (the
    generated class's members)."""

    item: str
    detail: str
    where: str
    bytes: int

    def to_dict(self) -> JSONObject:
        return {"item": self.item, "detail": self.detail, "where": self.where, "bytes": self.bytes}

    @classmethod
    def from_dict(cls, value: JSONValue) -> FrontendRamReport:
        what = "frontend.cost.ram[]"
        d = _obj(value, what)
        _keys(d, what, tuple(cls.__dataclass_fields__))
        return cls(_str(d["item"], what), _str(d["detail"], what), _str(d["where"], what), _int(d["bytes"], what))


@dataclass(frozen=True)
class FrontendCostReport:
    """What the front end costs on the chip (audio/cost.py): per frame by stage, per second of audio next to the
    model (``model_macs_per_second`` = macs_per_chunk * frames_per_second / chunk_frames; the ratio is null
    when the model has no MACs), and its RAM (heap allocated at init, plus the class's members)."""

    frames_per_second: float
    stages: list[FrontendStageReport]
    macs_per_frame: int
    logs_per_frame: int
    macs_per_second: float
    logs_per_second: float
    model_macs_per_second: float
    frontend_to_model_macs_ratio: float | None
    ram: list[FrontendRamReport]
    heap_bytes: int
    class_bytes: int
    ram_bytes: int

    def to_dict(self) -> JSONObject:
        return {
            "frames_per_second": self.frames_per_second,
            "stages": [s.to_dict() for s in self.stages],
            "macs_per_frame": self.macs_per_frame,
            "logs_per_frame": self.logs_per_frame,
            "macs_per_second": self.macs_per_second,
            "logs_per_second": self.logs_per_second,
            "model_macs_per_second": self.model_macs_per_second,
            "frontend_to_model_macs_ratio": self.frontend_to_model_macs_ratio,
            "ram": [r.to_dict() for r in self.ram],
            "heap_bytes": self.heap_bytes,
            "class_bytes": self.class_bytes,
            "ram_bytes": self.ram_bytes,
        }

    @classmethod
    def from_dict(cls, value: JSONValue) -> FrontendCostReport:
        what = "frontend.cost"
        d = _obj(value, what)
        _keys(d, what, tuple(cls.__dataclass_fields__))
        return cls(
            frames_per_second=_float(d["frames_per_second"], what),
            stages=[FrontendStageReport.from_dict(s) for s in _list(d["stages"], what)],
            macs_per_frame=_int(d["macs_per_frame"], what),
            logs_per_frame=_int(d["logs_per_frame"], what),
            macs_per_second=_float(d["macs_per_second"], what),
            logs_per_second=_float(d["logs_per_second"], what),
            model_macs_per_second=_float(d["model_macs_per_second"], what),
            frontend_to_model_macs_ratio=_opt_float(d["frontend_to_model_macs_ratio"], what),
            ram=[FrontendRamReport.from_dict(r) for r in _list(d["ram"], what)],
            heap_bytes=_int(d["heap_bytes"], what),
            class_bytes=_int(d["class_bytes"], what),
            ram_bytes=_int(d["ram_bytes"], what),
        )


@dataclass(frozen=True)
class FrontendReport:
    """The declared speech front end (only in the reports of models with one): ESP-DL's configuration
    (``config``: the SpeechFeatureConfig fields, plus ``kind``), the features per frame, the frame
    length, shift and FFT size in samples, and its ``cost`` (arithmetic and RAM)."""

    kind: str
    sample_rate: int
    feature_dim: int
    frame_length_samples: int
    frame_shift_samples: int
    fft_size: int
    resample: bool
    config: JSONObject
    cost: FrontendCostReport

    def to_dict(self) -> JSONObject:
        return {
            "kind": self.kind,
            "sample_rate": self.sample_rate,
            "feature_dim": self.feature_dim,
            "frame_length_samples": self.frame_length_samples,
            "frame_shift_samples": self.frame_shift_samples,
            "fft_size": self.fft_size,
            "resample": self.resample,
            "config": dict(self.config),
            "cost": self.cost.to_dict(),
        }

    @classmethod
    def from_dict(cls, value: JSONValue) -> FrontendReport:
        what = "frontend"
        d = _obj(value, what)
        _keys(d, what, tuple(cls.__dataclass_fields__))
        return cls(
            _str(d["kind"], what),
            _int(d["sample_rate"], what),
            _int(d["feature_dim"], what),
            _int(d["frame_length_samples"], what),
            _int(d["frame_shift_samples"], what),
            _int(d["fft_size"], what),
            _bool(d["resample"], what),
            _obj(d["config"], what),
            FrontendCostReport.from_dict(d["cost"]),
        )


# --------------------------------------------------------------------------- the report


@dataclass(frozen=True)
class BuildReport:
    """``NAME.report.json``. Field order is the JSON's key order.

    Fixed in every report a build writes: ``latency_frames`` is ``chunk_frames - 1`` (a causal model waits
    only for a full chunk); ``streaming.verified``, ``streaming.max_abs_diff`` and ``streaming.stream_seed``
    (see :class:`StreamingReport`). ``seconds`` is the one field that differs between two builds of the same
    inputs."""

    name: str
    target: str  # the ESP-IDF chip
    esp_ppq_target: str
    bits: int  # activation bits of the model's input (QUANT auto: 16 once the first layer was promoted)
    quant: str
    chunk_frames: int
    feature_dim: int
    offline_input_shape: list[int]
    input: TensorReport
    outputs: list[TensorReport]
    streaming: StreamingReport
    receptive_field_frames: int
    # GRU/LSTM nodes whose state the glue carries across chunks: every output frame then depends on the
    # whole stream so far, on top of receptive_field_frames.
    recurrent_states: list[RecurrentStateReport]
    state_bytes: int
    # The integer streaming outputs against the user's float model, and the float equivalence of the graph
    # rewrites made before quantization (fidelity.py).
    fidelity: JSONObject
    # Quantization quality on evaluation data, the gate and QUANT auto's steps (quality.py).
    quality: JSONObject
    latency_frames: int
    espdl_bytes: int
    offline_espdl_bytes: int
    espdl_sha256: str
    cache_bytes: int
    macs_per_chunk: int
    offline_macs: int
    offline_macs_per_frame: float
    streaming_macs_per_frame: float
    streaming_to_offline_macs_ratio: float | None  # null when the offline model has no MACs
    calibration: CalibrationReport
    placement: PlacementReport
    # esp-ppq's calibration choices (CALIB_ALGORITHM, CALIB_OPTIONS); null: esp-ppq's default observer.
    calib_algorithm: str | None
    calib_options: list[str]
    golden_chunks: int
    esp_ppq_version: str
    # The ESP-DL versions whose integer semantics the verification and the golden vectors follow.
    espdl_versions: str
    espdl_streaming_version: str
    dependencies: list[str]
    seconds: dict[str, float]
    warnings: list[str] = field(default_factory=list)  # saturation and other build warnings
    # The speech front end (FRONTEND): the key is absent from the JSON of models without one.
    frontend: FrontendReport | None = None

    def to_dict(self) -> JSONObject:
        out: JSONObject = {
            "name": self.name,
            "target": self.target,
            "esp_ppq_target": self.esp_ppq_target,
            "bits": self.bits,
            "quant": self.quant,
            "chunk_frames": self.chunk_frames,
            "feature_dim": self.feature_dim,
            "offline_input_shape": list[JSONValue](self.offline_input_shape),
            "input": self.input.to_dict(),
            "outputs": [o.to_dict() for o in self.outputs],
            "streaming": self.streaming.to_dict(),
            "receptive_field_frames": self.receptive_field_frames,
            "recurrent_states": [st.to_dict() for st in self.recurrent_states],
            "state_bytes": self.state_bytes,
            "fidelity": self.fidelity,
            "quality": self.quality,
            "latency_frames": self.latency_frames,
            "espdl_bytes": self.espdl_bytes,
            "offline_espdl_bytes": self.offline_espdl_bytes,
            "espdl_sha256": self.espdl_sha256,
            "cache_bytes": self.cache_bytes,
            "macs_per_chunk": self.macs_per_chunk,
            "offline_macs": self.offline_macs,
            "offline_macs_per_frame": self.offline_macs_per_frame,
            "streaming_macs_per_frame": self.streaming_macs_per_frame,
            "streaming_to_offline_macs_ratio": self.streaming_to_offline_macs_ratio,
            "calibration": self.calibration.to_dict(),
            "placement": self.placement.to_dict(),
            "calib_algorithm": self.calib_algorithm,
            "calib_options": list[JSONValue](self.calib_options),
            "golden_chunks": self.golden_chunks,
            "esp_ppq_version": self.esp_ppq_version,
            "espdl_versions": self.espdl_versions,
            "espdl_streaming_version": self.espdl_streaming_version,
            "dependencies": list[JSONValue](self.dependencies),
            "seconds": dict[str, JSONValue](self.seconds),
            "warnings": list[JSONValue](self.warnings),
        }
        if self.frontend is not None:
            out["frontend"] = self.frontend.to_dict()
        return out

    def to_json(self) -> bytes:
        """The bytes of NAME.report.json."""
        return (json.dumps(self.to_dict(), indent=2) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes | str) -> BuildReport:
        """A report from the bytes of NAME.report.json; ValueError when they are not a report of this format."""
        value: JSONValue = json.loads(data)
        return cls.from_dict(value)

    @classmethod
    def from_dict(cls, value: JSONValue) -> BuildReport:
        d = _obj(value, "the report")
        _keys(d, "the report", _REPORT_KEYS, _OPTIONAL_REPORT_KEYS)
        seconds = _obj(d["seconds"], "seconds")
        return cls(
            name=_str(d["name"], "name"),
            target=_str(d["target"], "target"),
            esp_ppq_target=_str(d["esp_ppq_target"], "esp_ppq_target"),
            bits=_int(d["bits"], "bits"),
            quant=_str(d["quant"], "quant"),
            chunk_frames=_int(d["chunk_frames"], "chunk_frames"),
            feature_dim=_int(d["feature_dim"], "feature_dim"),
            offline_input_shape=_ints(d["offline_input_shape"], "offline_input_shape"),
            input=TensorReport.from_dict(d["input"], "input"),
            outputs=[TensorReport.from_dict(o, "outputs[]") for o in _list(d["outputs"], "outputs")],
            streaming=StreamingReport.from_dict(d["streaming"]),
            receptive_field_frames=_int(d["receptive_field_frames"], "receptive_field_frames"),
            recurrent_states=[RecurrentStateReport.from_dict(s) for s in _list(d["recurrent_states"], "states")],
            state_bytes=_int(d["state_bytes"], "state_bytes"),
            fidelity=_obj(d["fidelity"], "fidelity"),
            quality=_obj(d["quality"], "quality"),
            latency_frames=_int(d["latency_frames"], "latency_frames"),
            espdl_bytes=_int(d["espdl_bytes"], "espdl_bytes"),
            offline_espdl_bytes=_int(d["offline_espdl_bytes"], "offline_espdl_bytes"),
            espdl_sha256=_str(d["espdl_sha256"], "espdl_sha256"),
            cache_bytes=_int(d["cache_bytes"], "cache_bytes"),
            macs_per_chunk=_int(d["macs_per_chunk"], "macs_per_chunk"),
            offline_macs=_int(d["offline_macs"], "offline_macs"),
            offline_macs_per_frame=_float(d["offline_macs_per_frame"], "offline_macs_per_frame"),
            streaming_macs_per_frame=_float(d["streaming_macs_per_frame"], "streaming_macs_per_frame"),
            streaming_to_offline_macs_ratio=_opt_float(d["streaming_to_offline_macs_ratio"], "macs ratio"),
            calibration=CalibrationReport.from_dict(d["calibration"]),
            placement=PlacementReport.from_dict(d["placement"]),
            calib_algorithm=_opt_str(d["calib_algorithm"], "calib_algorithm"),
            calib_options=_strs(d["calib_options"], "calib_options"),
            golden_chunks=_int(d["golden_chunks"], "golden_chunks"),
            esp_ppq_version=_str(d["esp_ppq_version"], "esp_ppq_version"),
            espdl_versions=_str(d["espdl_versions"], "espdl_versions"),
            espdl_streaming_version=_str(d["espdl_streaming_version"], "espdl_streaming_version"),
            dependencies=_strs(d["dependencies"], "dependencies"),
            seconds={k: _float(v, "seconds") for k, v in seconds.items()},
            warnings=_strs(d["warnings"], "warnings"),
            frontend=FrontendReport.from_dict(d["frontend"]) if "frontend" in d else None,
        )


_OPTIONAL_REPORT_KEYS = ("frontend",)
_REPORT_KEYS = tuple(k for k in BuildReport.__dataclass_fields__ if k not in _OPTIONAL_REPORT_KEYS)


def as_json_object(report: BuildReport | Mapping[str, JSONValue]) -> JSONObject:
    """A report as its JSON object (a BuildReport's to_dict(), a mapping as it is)."""
    return report.to_dict() if isinstance(report, BuildReport) else dict(report)
