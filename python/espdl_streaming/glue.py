"""The glue description: everything the generated C++ class of one verified model says.

:class:`Glue` is what the build hands to codegen (``codegen.render_glue``): the model's name and
target, its input, outputs and recurrent states (name, shape, dtype, exponent), the chunking, where
the ``.espdl`` lives, the golden vectors of the self test and the figures the class records. The
types are frozen and their constructors hold every consistency check, so a ``Glue`` that exists is
one codegen can render: an inconsistent description is a bug in the caller and raises ``ValueError``
when it is built, not when it is rendered. Arrays are copied and made read-only.

:meth:`Glue.from_dict` builds one from the JSON-like dict the build used to pass (``input``/
``outputs`` as ``{"name", "shape", "dtype", "exponent"}``, ``placement`` as ``{"kind": "rodata",
"symbol"}`` or ``{"kind": "partition", "label"}``, ``golden`` as ``{"frames", "chunks", "outputs"}``):
convenient for tests and tools.
"""

from __future__ import annotations

import math
import re
import struct
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from .audio.config import WINDOW_TYPES, FrontendConfig
from .facts import CPP_KEYWORDS, ROUNDINGS

__all__ = [
    "CLASS_NAMES",
    "GLUE_INT_DTYPES",
    "GLUE_FLOAT_DTYPES",
    "MAX_NDIM",
    "Glue",
    "GlueFrontend",
    "GlueGolden",
    "GluePlacement",
    "GlueState",
    "GlueTensor",
    "espdl_digest",
    "espdl_file_size",
]

#: Names the generated class declares itself (see templates/model.hpp.j2), plus names its members use
#: unqualified; neither the class name nor an output identifier may be one of them.
CLASS_NAMES = frozenset(
    """name target chunk_frames feature_dim input_dtype input_exponent input_elements output_count
    espdl_bytes cache_bytes macs_per_chunk output_index spec golden init push reset self_test deinit
    initialized pending_frames chunks_run model m_runner m_model m_owned m_staging m_output_storage
    m_outputs m_raw output_storage_floats bind dtype rounding model_spec tensor_spec tensor_ref
    golden_set chunk_callback chunk_result stream_runner model_interface model_source placement
    open_model close_model run_self_test quantize dequantize quantize_value dtype_size esp_err_t
    size_t uint32_t uint64_t int8_t int16_t uint8_t engine owned TAG k_spec k_outputs k_golden
    k_golden_frames k_golden_expected models espdl_streaming state_count state_bytes m_state k_states
    k_output_indices state_spec m_partition_map m_partition_mapped espdl_crc32 crc32 espdl_file_size
    check_linked_model check_partition_bytes check_partition_model k_source m_loaded loaded_model load_model
    unload_model espdl_versions sample_rate frame_length_samples frame_shift_samples push_samples
    pending_samples frontend m_frontend m_window m_features audio_frontend frontend_spec frontend_golden
    feature_callback run_frontend_self_test k_frontend k_frontend_golden k_golden_pcm k_golden_features
    k_golden_audio k_golden_audio_expected sample_sink push_features push_pcm""".split()
)

#: Quantized dtypes: (C type, lowest, highest value).
GLUE_INT_DTYPES: dict[str, tuple[str, int, int]] = {"int8": ("int8_t", -128, 127), "int16": ("int16_t", -32768, 32767)}
#: Real-valued outputs (ESP-DL's Softmax writes float32): no exponent, golden values as exact floats.
GLUE_FLOAT_DTYPES: dict[str, str] = {"float32": "float"}
MAX_NDIM = 4
_C_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def espdl_digest(data: bytes) -> int:
    """The digest the generated init() checks a partition's model against: zlib's CRC-32 of the .espdl
    (the runtime computes the same with ESP-IDF's esp_rom_crc32_le; see include/espdl_streaming/model_check.hpp)."""
    return zlib.crc32(data)


def espdl_file_size(data: bytes) -> int:
    """What the runtime's espdl_file_size() reads from an .espdl header (0: not an .espdl)."""
    if len(data) < 16:
        return 0
    header = {b"EDL1": 12, b"EDL2": 16}.get(data[:4])
    return 0 if header is None else header + int(struct.unpack_from("<I", data, 8)[0])


def _frozen_array(values: npt.ArrayLike, dtype: npt.DTypeLike | None = None) -> npt.NDArray[np.generic]:
    array: npt.NDArray[np.generic] = np.array(values, dtype=dtype)
    array.setflags(write=False)
    return array


# --------------------------------------------------------------------------- parts


@dataclass(frozen=True, slots=True)
class GlueTensor:
    """One tensor of the model: ``real = q * 2^exponent``; a float32 tensor (a model output) has real values
    and no exponent (None). Which dtypes a tensor may have depends on its role: :class:`Glue` checks."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    exponent: int | None

    @property
    def is_float(self) -> bool:
        return self.dtype in GLUE_FLOAT_DTYPES

    @property
    def elements(self) -> int:
        return math.prod(self.shape)

    def check(self, what: str, *, real_ok: bool = False) -> None:
        """`what`: its role in messages; `real_ok`: a float32 tensor is allowed, its exponent None or 0."""
        shape = list(self.shape)
        if not 1 <= len(shape) <= MAX_NDIM or any(d <= 0 for d in shape):
            raise ValueError(f"{what} '{self.name}': shape {shape} needs 1 to {MAX_NDIM} positive dimensions")
        dtypes = sorted([*GLUE_INT_DTYPES, *GLUE_FLOAT_DTYPES]) if real_ok else sorted(GLUE_INT_DTYPES)
        if self.dtype not in dtypes:
            raise ValueError(f"{what} '{self.name}': dtype {self.dtype!r} is not one of {dtypes}")
        if self.is_float:
            if self.exponent not in (None, 0):
                raise ValueError(f"{what} '{self.name}': a {self.dtype} tensor has no exponent, got {self.exponent}")
        elif self.exponent is None:
            raise ValueError(f"{what} '{self.name}': a {self.dtype} tensor needs an exponent")
        elif not -128 <= self.exponent <= 127:
            raise ValueError(f"{what} '{self.name}': exponent {self.exponent} does not fit int8_t")

    @classmethod
    def from_dict(cls, t: Mapping[str, object]) -> GlueTensor:
        """From ``{"name", "shape", "dtype", "exponent"}`` (TensorSpec.as_json())."""
        exponent = t["exponent"]
        shape = tuple(_ints(t["shape"]))
        return cls(str(t["name"]), shape, str(t["dtype"]), None if exponent is None else _int(exponent))


@dataclass(frozen=True, slots=True)
class GlueState:
    """A recurrent state the class loops back from `output` to `input` after every chunk; `initial`: the raw
    integers a fresh stream starts from (a learned initial state), None for zeros."""

    input: GlueTensor
    output: GlueTensor
    initial: tuple[int, ...] | None = None


@dataclass(frozen=True, slots=True)
class GluePlacement:
    """Where the .espdl lives: ``rodata`` (linked into the app as `symbol`) or ``partition`` (`label`)."""

    kind: Literal["rodata", "partition"]
    symbol: str = ""
    label: str = ""

    def __post_init__(self) -> None:
        if self.kind == "rodata":
            if not _C_IDENTIFIER.fullmatch(self.symbol):
                raise ValueError(f"rodata symbol {self.symbol!r} is not a C identifier")
        elif self.kind != "partition":
            raise ValueError(f"unknown placement {self.kind!r}")

    @classmethod
    def rodata(cls, symbol: str) -> GluePlacement:
        return cls("rodata", symbol=symbol)

    @classmethod
    def partition(cls, label: str) -> GluePlacement:
        return cls("partition", label=label)

    @classmethod
    def from_dict(cls, placement: Mapping[str, object]) -> GluePlacement:
        kind = placement["kind"]
        if kind == "rodata":
            return cls.rodata(str(placement["symbol"]))
        if kind == "partition":
            return cls.partition(str(placement["label"]))
        raise ValueError(f"unknown placement {kind!r}")


@dataclass(frozen=True, slots=True, eq=False)
class GlueGolden:
    """The self test's data: `frames` ([n, feature_dim] float32, n >= chunks * chunk_frames) and, per output
    (sorted by name), the values of the first `chunks` chunks ([chunks, elements]): integers, or float32 for a
    float32 output. Read-only copies."""

    frames: npt.NDArray[np.float32]
    chunks: int
    outputs: tuple[npt.NDArray[np.generic], ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "frames", _frozen_array(self.frames, np.float32))
        object.__setattr__(self, "outputs", tuple(_frozen_array(v) for v in self.outputs))


@dataclass(frozen=True, slots=True, eq=False)
class GlueFrontend:
    """The speech front end the class runs on PCM (a validated `config`) and its self test's data: `pcm`
    (int16) gives `features` ([n, feature_dim] float32: the build's front end, n = config.num_frames(len(pcm)))
    and, per output (sorted by name), the model's values on those features for the first `chunks` chunks.
    The target's features pass when ``|got - want| <= abs_tol + rel_tol * max|want of the frame|``."""

    config: FrontendConfig
    pcm: npt.NDArray[np.int16]
    features: npt.NDArray[np.float32]
    chunks: int
    outputs: tuple[npt.NDArray[np.generic], ...]
    abs_tol: float
    rel_tol: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "pcm", _frozen_array(self.pcm, np.int16))
        object.__setattr__(self, "features", _frozen_array(self.features, np.float32))
        object.__setattr__(self, "outputs", tuple(_frozen_array(v) for v in self.outputs))
        c = self.config
        if c.window_type not in WINDOW_TYPES or c.use_int16_fft:
            raise ValueError(f"front end window {c.window_type!r} / use_int16_fft {c.use_int16_fft}: not renderable")
        frames = c.num_frames(self.pcm.size)
        if self.features.shape != (frames, c.feature_dim):
            raise ValueError(
                f"front end golden features {self.features.shape} must be [{frames}, {c.feature_dim}] for "
                f"{self.pcm.size} samples"
            )
        if not (self.abs_tol >= 0 and self.rel_tol >= 0 and math.isfinite(self.abs_tol + self.rel_tol)):
            raise ValueError(f"front end tolerance {self.abs_tol}, {self.rel_tol}")


# --------------------------------------------------------------------------- the whole description


@dataclass(frozen=True, slots=True, eq=False)
class Glue:
    """What the generated class of one model says; every check of its consistency runs here."""

    name: str  # the C++ class
    target: str  # the chip
    command_line: str  # the build's command line, recorded in a comment
    espdl_versions: str  # the ESP-DL versions whose semantics the golden vectors follow
    chunk_frames: int
    feature_dim: int
    rounding: str  # one of facts.ROUNDINGS
    input: GlueTensor
    outputs: tuple[GlueTensor, ...]  # sorted by name (ESP-DL's order)
    placement: GluePlacement
    golden: GlueGolden
    espdl_bytes: int
    cache_bytes: int
    macs_per_chunk: int
    states: tuple[GlueState, ...] = ()
    # The stale-model check: the .espdl's bytes (codegen embeds their CRC-32) or only their CRC-32;
    # with neither, the generated code does not check a partition's model.
    espdl: bytes | None = field(default=None, repr=False)
    espdl_crc32: int | None = None
    # The speech front end (FRONTEND): the class gains push_samples() and a self test over PCM.
    frontend: GlueFrontend | None = None

    def __post_init__(self) -> None:
        name = self.name
        if not _C_IDENTIFIER.fullmatch(name) or name in CPP_KEYWORDS or name in CLASS_NAMES:
            raise ValueError(f"model name {name!r} is not usable as a C++ class name")
        chunk_frames, feature_dim = self.chunk_frames, self.feature_dim
        if chunk_frames <= 0 or feature_dim <= 0:
            raise ValueError("chunk_frames and feature_dim must be positive")
        if self.rounding not in ROUNDINGS:
            raise ValueError(f"rounding {self.rounding!r} is not one of {ROUNDINGS}")
        self.input.check("input")
        if self.input.elements != chunk_frames * feature_dim:
            raise ValueError(
                f"input '{self.input.name}' has {self.input.elements} elements, "
                f"chunk_frames * feature_dim = {chunk_frames * feature_dim}"
            )
        for output in self.outputs:
            output.check("output", real_ok=True)
        if not self.outputs:
            raise ValueError("the model has no outputs")
        names = self.output_names
        if list(names) != sorted(names) or len(set(names)) != len(names):
            raise ValueError(f"outputs must be sorted by name and distinct (ESP-DL's order): {list(names)}")
        self._check_states()
        if not 16 <= self.espdl_bytes < 2**32:
            raise ValueError(f"espdl_bytes {self.espdl_bytes} is not the size of an .espdl file")
        self._check_espdl()
        self._check_golden()
        self._check_frontend()

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.outputs)

    @property
    def input_order(self) -> list[str]:
        """The model's inputs in dl::Model's order (std::map: by name), states included."""
        return sorted([self.input.name, *(st.input.name for st in self.states)])

    @property
    def output_order(self) -> list[str]:
        """The model's outputs in dl::Model's order; a last state the user's model returns is one tensor, both a
        user output and the state output."""
        return sorted({*self.output_names, *(st.output.name for st in self.states)})

    @property
    def digest(self) -> int | None:
        """CRC-32 of the streaming .espdl, from its bytes or as given; None when the glue carries neither."""
        if self.espdl is not None:
            return espdl_digest(self.espdl)
        return None if self.espdl_crc32 is None else self.espdl_crc32 & 0xFFFFFFFF

    def _check_states(self) -> None:
        names = self.output_names
        for k, st in enumerate(self.states):
            state_in, state_out = st.input, st.output
            state_in.check("state input")
            state_out.check("state output")
            if state_in.dtype != state_out.dtype or state_in.elements != state_out.elements:
                raise ValueError(f"state {k}: '{state_in.name}' and '{state_out.name}' differ in dtype or size")
            if st.initial is not None:
                _, lo, hi = GLUE_INT_DTYPES[state_out.dtype]
                if len(st.initial) != state_out.elements or any(v < lo or v > hi for v in st.initial):
                    raise ValueError(
                        f"state {k}: the initial state must be {state_out.elements} {state_out.dtype} values"
                    )
            shared = state_out.name in names
            if shared and next(o for o in self.outputs if o.name == state_out.name).dtype != state_out.dtype:
                raise ValueError(f"state {k}: output '{state_out.name}' is a user output of another dtype")
        input_order = self.input_order
        state_outputs = [st.output.name for st in self.states]
        if len(set(input_order)) != len(input_order) or len(set(state_outputs)) != len(state_outputs):
            raise ValueError(f"tensor names must be distinct: {input_order}, {state_outputs}")

    def _check_espdl(self) -> None:
        data = self.espdl
        if data is None:
            return
        if len(data) != self.espdl_bytes:
            raise ValueError(f"the .espdl has {len(data)} bytes, espdl_bytes says {self.espdl_bytes}")
        if espdl_file_size(data) != len(data):
            # init() of a RODATA model checks the linked bytes' header against espdl_bytes.
            raise ValueError(
                f"the .espdl header describes {espdl_file_size(data)} bytes (EDL1/EDL2 header + FlatBuffer), "
                f"the file has {len(data)}"
            )
        digest = espdl_digest(data)
        if self.espdl_crc32 is not None and self.espdl_crc32 != digest:
            raise ValueError(
                f"espdl_crc32 {self.espdl_crc32:#010x} is not the CRC-32 of the .espdl bytes ({digest:#010x})"
            )

    def _check_golden(self) -> None:
        golden = self.golden
        chunks, frames = golden.chunks, golden.frames
        enough = chunks > 0 and frames.ndim == 2 and frames.shape[0] >= chunks * self.chunk_frames
        if not enough or frames.shape[1] != self.feature_dim:
            raise ValueError(
                f"golden frames {frames.shape} must be [n >= {chunks} * {self.chunk_frames}, {self.feature_dim}]"
            )
        self._check_golden_outputs("golden", chunks, golden.outputs)

    def _check_golden_outputs(self, what: str, chunks: int, values: tuple[npt.NDArray[np.generic], ...]) -> None:
        if len(values) != len(self.outputs):
            raise ValueError(f"{what} data must hold one array per output")
        for output, array in zip(self.outputs, values, strict=True):
            if output.is_float:
                # The values the float32 output holds, bit for bit: the self test compares them exactly.
                if array.shape != (chunks, output.elements) or array.dtype != np.float32:
                    raise ValueError(
                        f"{what} output '{output.name}' must be float32 of shape {(chunks, output.elements)}, "
                        f"got {array.dtype} {array.shape}"
                    )
                continue
            _, lo, hi = GLUE_INT_DTYPES[output.dtype]
            if array.shape != (chunks, output.elements) or not np.issubdtype(array.dtype, np.integer):
                raise ValueError(
                    f"{what} output '{output.name}' must be integers of shape {(chunks, output.elements)}, "
                    f"got {array.dtype} {array.shape}"
                )
            if array.size and (array.min() < lo or array.max() > hi):
                raise ValueError(f"{what} output '{output.name}' does not fit {output.dtype}")

    def _check_frontend(self) -> None:
        front = self.frontend
        if front is None:
            return
        if front.config.feature_dim != self.feature_dim:
            raise ValueError(
                f"the front end outputs {front.config.feature_dim} features per frame, the model takes "
                f"{self.feature_dim}"
            )
        if front.chunks <= 0 or front.features.shape[0] < front.chunks * self.chunk_frames:
            raise ValueError(
                f"front end golden: {front.features.shape[0]} frames do not fill {front.chunks} chunks of "
                f"{self.chunk_frames}"
            )
        self._check_golden_outputs("front end golden", front.chunks, front.outputs)

    @classmethod
    def from_dict(cls, glue: Mapping[str, object]) -> Glue:
        """From the JSON-like dict (see the module's docstring); the checks are the constructor's."""
        golden = _mapping(glue["golden"])
        states = []
        for pair in _sequence(glue.get("states", [])):
            pair = _mapping(pair)
            initial = pair.get("initial")
            states.append(
                GlueState(
                    GlueTensor.from_dict(_mapping(pair["input"])),
                    GlueTensor.from_dict(_mapping(pair["output"])),
                    None if initial is None else tuple(_ints(initial)),
                )
            )
        espdl, crc = glue.get("espdl"), glue.get("espdl_crc32")
        if espdl is not None and not isinstance(espdl, (bytes, bytearray, memoryview)):
            raise TypeError(f"espdl must be bytes, got {type(espdl).__name__}")
        return cls(
            name=str(glue["name"]),
            target=str(glue["target"]),
            command_line=str(glue["command_line"]),
            espdl_versions=str(glue["espdl_versions"]),
            chunk_frames=_int(glue["chunk_frames"]),
            feature_dim=_int(glue["feature_dim"]),
            rounding=str(glue["rounding"]),
            input=GlueTensor.from_dict(_mapping(glue["input"])),
            outputs=tuple(GlueTensor.from_dict(_mapping(t)) for t in _sequence(glue["outputs"])),
            placement=GluePlacement.from_dict(_mapping(glue["placement"])),
            golden=GlueGolden(
                np.asarray(golden["frames"], dtype=np.float32),
                _int(golden["chunks"]),
                tuple(np.asarray(v) for v in _sequence(golden["outputs"])),
            ),
            espdl_bytes=_int(glue["espdl_bytes"]),
            cache_bytes=_int(glue["cache_bytes"]),
            macs_per_chunk=_int(glue["macs_per_chunk"]),
            states=tuple(states),
            espdl=None if espdl is None else bytes(espdl),
            espdl_crc32=None if crc is None else _int(crc),
        )


# --------------------------------------------------------------------------- loose input


def _int(value: object) -> int:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    raise TypeError(f"expected an integer, got {value!r}")


def _ints(values: object) -> list[int]:
    if isinstance(values, np.ndarray):
        values = values.reshape(-1).tolist()
    return [_int(v) for v in _sequence(values)]


def _sequence(value: object) -> Sequence[object]:
    if isinstance(value, (list, tuple)):
        return value
    raise TypeError(f"expected a list, got {type(value).__name__}")


def _mapping(value: object) -> Mapping[str, object]:
    if isinstance(value, Mapping):
        return value
    raise TypeError(f"expected a dict, got {type(value).__name__}")
