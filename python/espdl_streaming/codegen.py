"""Render the generated C++ class (``NAME.hpp`` / ``NAME.cpp``) of one verified model.

``render_glue(glue)`` turns the description the build assembled from the simulator's results
into source text; writing files is the caller's job. Everything model-specific is decided here
(identifiers, literals, table layout) so the templates stay thin, and the output depends only
on ``glue``: no timestamps, no iteration over unordered data.
"""

from __future__ import annotations

import math
import re
import struct
import zlib
from collections.abc import Iterable, Sequence
from typing import Any

import jinja2
import numpy as np

from .facts import CPP_KEYWORDS, ROUNDINGS

__all__ = ["render_glue", "c_identifier", "output_identifiers", "float_literal", "c_string", "espdl_digest"]

_CPP_KEYWORDS = CPP_KEYWORDS

# Names the generated class declares itself (see templates/model.hpp.j2), plus names its
# members use unqualified; an output identifier must not collide with any of them.
_CLASS_NAMES = frozenset(
    """name target chunk_frames feature_dim input_dtype input_exponent input_elements output_count
    espdl_bytes cache_bytes macs_per_chunk output_index spec golden init push reset self_test deinit
    initialized pending_frames chunks_run model m_runner m_model m_owned m_staging m_output_storage
    m_outputs m_raw output_storage_floats bind dtype rounding model_spec tensor_spec tensor_ref
    golden_set chunk_callback chunk_result stream_runner model_interface model_source placement
    open_model close_model run_self_test quantize dequantize quantize_value dtype_size esp_err_t
    size_t uint32_t uint64_t int8_t int16_t uint8_t engine owned TAG k_spec k_outputs k_golden
    k_golden_frames k_golden_expected models espdl_streaming state_count state_bytes m_state k_states
    k_output_indices state_spec m_partition_map m_partition_mapped espdl_crc32 crc32 espdl_file_size
    check_linked_model check_partition_bytes check_partition_model""".split()
)

_DTYPES = {"int8": ("int8_t", -128, 127), "int16": ("int16_t", -32768, 32767)}
# Real-valued outputs (ESP-DL's Softmax writes float32): no exponent, golden values as exact floats.
_FLOAT_DTYPES = {"float32": "float"}
_ROUNDING = ROUNDINGS
_MAX_NDIM = 4
_FLOATS_PER_LINE = 8
_INTS_PER_LINE = 16


def c_identifier(name: str) -> str:
    """A readable C identifier for a tensor name: ``/model/Gemm_output_0`` -> ``model_Gemm_output_0``."""
    ident = re.sub(r"[^0-9A-Za-z]+", "_", name).strip("_")  # also no "__": reserved in C++
    if not ident:
        ident = "output"
    if ident[0].isdigit():
        ident = "output_" + ident
    return ident


def _derived(ident: str) -> tuple[str, ...]:
    return (ident, f"{ident}_elements", f"{ident}_exponent", f"{ident}_dtype")


def output_identifiers(names: Sequence[str], class_name: str = "") -> list[str]:
    """Distinct identifiers for outputs, avoiding keywords, the class's own members and each other.

    Each output ``x`` becomes the enumerator ``x`` and the constants ``x_elements``,
    ``x_exponent`` and ``x_dtype``; none of these may clash with anything else in the class.
    """
    taken = set(_CPP_KEYWORDS | _CLASS_NAMES)
    taken.add(class_name)
    result = []
    for name in names:
        base = c_identifier(name)
        if base in _CPP_KEYWORDS or base in _CLASS_NAMES or base == class_name or base.startswith("m_"):
            base = "out_" + base
        ident, n = base, 2
        while any(d in taken for d in _derived(ident)):
            ident = f"{base}_{n}"
            n += 1
        taken.update(_derived(ident))
        result.append(ident)
    return result


def float_literal(value: float | np.floating[Any]) -> str:
    """A C++ float literal that parses back to exactly this float32 value."""
    f32 = np.float32(value)
    if not np.isfinite(f32):
        raise ValueError(f"cannot emit non-finite float {f32!r} in a golden table")
    text = str(f32)  # shortest decimal that round-trips as float32 (correctly rounded parse)
    if not any(c in text for c in ".e"):
        text += ".0"
    if np.float32(float(text)) != f32:  # pragma: no cover - guards the numpy formatting contract
        text = f"{float(f32):.9g}"
        if not any(c in text for c in ".e"):
            text += ".0"
    return text + "f"


def c_string(text: str) -> str:
    """A C string literal (with quotes) for arbitrary text."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "?":
            out.append("\\?")  # no trigraphs
        elif 0x20 <= ord(ch) < 0x7F:
            out.append(ch)
        else:
            out.extend(f"\\{b:03o}" for b in ch.encode("utf-8"))
    return '"' + "".join(out) + '"'


def _comment(text: str) -> str:
    """Text safe inside any comment: one line, no ``*/``, no line splice at the end."""
    line = re.sub(r"[\x00-\x1f\x7f]+", " ", str(text)).replace("*/", "* /").rstrip()
    if line.endswith("\\"):
        line += " #"
    return line


def _table_lines(literals: Iterable[str], per_line: int) -> list[str]:
    items = list(literals)
    return [", ".join(items[i : i + per_line]) + "," for i in range(0, len(items), per_line)]


def _tensor(t: dict[str, Any], what: str, *, real_ok: bool = False) -> dict[str, Any]:
    """One tensor; `real_ok`: a float32 tensor (a model output) is allowed, its exponent null or 0."""
    shape = [int(d) for d in t["shape"]]
    if not 1 <= len(shape) <= _MAX_NDIM or any(d <= 0 for d in shape):
        raise ValueError(f"{what} '{t['name']}': shape {shape} needs 1 to {_MAX_NDIM} positive dimensions")
    dtypes = sorted([*_DTYPES, *_FLOAT_DTYPES]) if real_ok else sorted(_DTYPES)
    if t["dtype"] not in dtypes:
        raise ValueError(f"{what} '{t['name']}': dtype {t['dtype']!r} is not one of {dtypes}")
    is_float = t["dtype"] in _FLOAT_DTYPES
    if is_float:
        if t["exponent"] not in (None, 0):
            raise ValueError(f"{what} '{t['name']}': a {t['dtype']} tensor has no exponent, got {t['exponent']}")
        exponent = 0  # what ESP-DL's float tensor carries; nothing is scaled by it
        comment = f'"{t["name"]}": {t["dtype"]} {shape}, real values (no exponent)'
    else:
        exponent = int(t["exponent"])
        if not -128 <= exponent <= 127:
            raise ValueError(f"{what} '{t['name']}': exponent {exponent} does not fit int8_t")
        comment = f'"{t["name"]}": {t["dtype"]} {shape}, real = q * 2^{exponent}'
    return {
        "name": str(t["name"]),
        "c_name": c_string(str(t["name"])),
        "comment": _comment(comment),
        "dtype": t["dtype"],
        "ctype": _FLOAT_DTYPES[t["dtype"]] if is_float else _DTYPES[t["dtype"]][0],
        "is_float": is_float,
        "exponent": exponent,
        "ndim": len(shape),
        "shape": ", ".join(str(d) for d in shape + [0] * (_MAX_NDIM - len(shape))),
        "elements": math.prod(shape),
    }


def espdl_digest(data: bytes) -> int:
    """The digest the generated init() checks a partition's model against: zlib's CRC-32 of the .espdl
    (the runtime computes the same with ESP-IDF's esp_rom_crc32_le; see include/espdl_streaming/model_check.hpp)."""
    return zlib.crc32(data)


def _espdl_file_size(data: bytes) -> int:
    """What the runtime's espdl_file_size() reads from an .espdl header (0: not an .espdl)."""
    if len(data) < 16:
        return 0
    header = {b"EDL1": 12, b"EDL2": 16}.get(data[:4])
    return 0 if header is None else header + struct.unpack_from("<I", data, 8)[0]


def _digest(glue: dict[str, Any], espdl_bytes: int) -> int | None:
    """CRC-32 of the streaming .espdl, from its bytes (glue["espdl"]) or given (glue["espdl_crc32"]).

    None when the glue carries neither: the generated code then has no espdl_crc32 and does not check
    a partition's model (build.make_glue passes the bytes; older callers may not).
    """
    given = glue.get("espdl_crc32")
    data = glue.get("espdl")
    if data is None:
        return None if given is None else int(given) & 0xFFFFFFFF
    data = bytes(data)
    if len(data) != espdl_bytes:
        raise ValueError(f"the .espdl has {len(data)} bytes, espdl_bytes says {espdl_bytes}")
    if _espdl_file_size(data) != len(data):
        # init() of a RODATA model checks the linked bytes' header against espdl_bytes.
        raise ValueError(
            f"the .espdl header describes {_espdl_file_size(data)} bytes (EDL1/EDL2 header + FlatBuffer), "
            f"the file has {len(data)}"
        )
    digest = espdl_digest(data)
    if given is not None and int(given) != digest:
        raise ValueError(f"espdl_crc32 {int(given):#010x} is not the CRC-32 of the .espdl bytes ({digest:#010x})")
    return digest


def _context(glue: dict[str, Any]) -> dict[str, Any]:
    name = str(glue["name"])
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) or name in _CPP_KEYWORDS or name in _CLASS_NAMES:
        raise ValueError(f"model name {name!r} is not usable as a C++ class name")
    chunk_frames, feature_dim = int(glue["chunk_frames"]), int(glue["feature_dim"])
    if chunk_frames <= 0 or feature_dim <= 0:
        raise ValueError("chunk_frames and feature_dim must be positive")
    if glue["rounding"] not in _ROUNDING:
        raise ValueError(f"rounding {glue['rounding']!r} is not one of {_ROUNDING}")

    model_input = _tensor(glue["input"], "input")
    if model_input["elements"] != chunk_frames * feature_dim:
        raise ValueError(
            f"input '{model_input['name']}' has {model_input['elements']} elements, "
            f"chunk_frames * feature_dim = {chunk_frames * feature_dim}"
        )
    outputs = [_tensor(t, "output", real_ok=True) for t in glue["outputs"]]
    if not outputs:
        raise ValueError("the model has no outputs")
    names = [o["name"] for o in outputs]
    if names != sorted(names) or len(set(names)) != len(names):
        raise ValueError(f"outputs must be sorted by name and distinct (ESP-DL's order): {names}")
    offset = 0
    for output, ident in zip(outputs, output_identifiers(names, name), strict=True):
        output["ident"] = ident
        output["offset"] = offset
        offset += -(-output["elements"] // 4) * 4  # every buffer 16-byte aligned

    states: list[dict[str, Any]] = []
    state_bytes = 0
    for k, pair in enumerate(glue.get("states", [])):
        state_in, state_out = _tensor(pair["input"], "state input"), _tensor(pair["output"], "state output")
        if state_in["dtype"] != state_out["dtype"] or state_in["elements"] != state_out["elements"]:
            raise ValueError(f"state {k}: '{state_in['name']}' and '{state_out['name']}' differ in dtype or size")
        initial = pair.get("initial")
        if initial is not None:
            _, lo, hi = _DTYPES[state_out["dtype"]]
            values = [int(v) for v in initial]
            if len(values) != state_out["elements"] or any(v < lo or v > hi for v in values):
                raise ValueError(
                    f"state {k}: the initial state must be {state_out['elements']} {state_out['dtype']} values"
                )
            initial = {"lines": _table_lines((str(v) for v in values), _INTS_PER_LINE), "size": len(values)}
        shared = state_out["name"] in names
        if shared and next(o for o in outputs if o["name"] == state_out["name"])["dtype"] != state_out["dtype"]:
            raise ValueError(f"state {k}: output '{state_out['name']}' is a user output of another dtype")
        states.append({"input": state_in, "output": state_out, "initial": initial, "k": k})
        state_bytes += state_out["elements"] * (2 if state_out["dtype"] == "int16" else 1)
    # The model's tensors in dl::Model's order (std::map: by name), states included; a last state the
    # user's model returns is one tensor, both a user output and the state output.
    input_order = sorted([model_input["name"], *(st["input"]["name"] for st in states)])
    output_order = sorted({*names, *(st["output"]["name"] for st in states)})
    state_outputs = [st["output"]["name"] for st in states]
    if len(set(input_order)) != len(input_order) or len(set(state_outputs)) != len(state_outputs):
        raise ValueError(f"tensor names must be distinct: {input_order}, {state_outputs}")
    for st in states:
        st["input_index"] = input_order.index(st["input"]["name"])
        st["output_index"] = output_order.index(st["output"]["name"])
    output_indices = [output_order.index(n) for n in names]

    placement = glue["placement"]
    if placement["kind"] == "rodata":
        symbol = str(placement["symbol"])
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", symbol):
            raise ValueError(f"rodata symbol {symbol!r} is not a C identifier")
        placement = {"kind": "rodata", "symbol": symbol}
    elif placement["kind"] == "partition":
        placement = {
            "kind": "partition",
            "label": _comment(placement["label"]),
            "c_label": c_string(str(placement["label"])),
        }
    else:
        raise ValueError(f"unknown placement {placement['kind']!r}")

    espdl_bytes = int(glue["espdl_bytes"])
    if not 16 <= espdl_bytes < 2**32:
        raise ValueError(f"espdl_bytes {espdl_bytes} is not the size of an .espdl file")
    digest = _digest(glue, espdl_bytes)

    golden = glue["golden"]
    chunks = int(golden["chunks"])
    frames = np.asarray(golden["frames"], dtype=np.float32)
    enough = chunks > 0 and frames.ndim == 2 and frames.shape[0] >= chunks * chunk_frames
    if not enough or frames.shape[1] != feature_dim:
        raise ValueError(f"golden frames {frames.shape} must be [n >= {chunks} * {chunk_frames}, {feature_dim}]")
    if len(golden["outputs"]) != len(outputs):
        raise ValueError("golden data must hold one array per output")
    for output, values in zip(outputs, golden["outputs"], strict=True):
        array = np.asarray(values)
        if output["is_float"]:
            # The values the float32 output holds, bit for bit: the self test compares them exactly.
            if array.shape != (chunks, output["elements"]) or array.dtype != np.float32:
                raise ValueError(
                    f"golden output '{output['name']}' must be float32 of shape {(chunks, output['elements'])}, "
                    f"got {array.dtype} {array.shape}"
                )
            output["golden_lines"] = _table_lines((float_literal(v) for v in array.reshape(-1)), _FLOATS_PER_LINE)
            output["golden_size"] = array.size
            continue
        _, lo, hi = _DTYPES[output["dtype"]]
        if array.shape != (chunks, output["elements"]) or not np.issubdtype(array.dtype, np.integer):
            raise ValueError(
                f"golden output '{output['name']}' must be integers of shape {(chunks, output['elements'])}, "
                f"got {array.dtype} {array.shape}"
            )
        if array.size and (array.min() < lo or array.max() > hi):
            raise ValueError(f"golden output '{output['name']}' does not fit {output['dtype']}")
        output["golden_lines"] = _table_lines((str(int(v)) for v in array.reshape(-1)), _INTS_PER_LINE)
        output["golden_size"] = array.size

    return {
        "name": name,
        "c_name": c_string(name),
        "target": str(glue["target"]),
        "c_target": c_string(str(glue["target"])),
        "c_espdl_versions": c_string(str(glue["espdl_versions"])),
        "c_assumes": c_string(f"ESP-DL {glue['espdl_versions']} on {glue['target']}"),
        "command_line": _comment(glue["command_line"]),
        "chunk_frames": chunk_frames,
        "feature_dim": feature_dim,
        "rounding": glue["rounding"],
        "input": model_input,
        "outputs": outputs,
        "output_storage_floats": offset,
        "states": states,
        "state_bytes": state_bytes,
        "input_index": input_order.index(model_input["name"]),
        "output_indices": ", ".join(str(i) for i in output_indices),
        "output_indices_identity": output_indices == list(range(len(outputs))),
        "placement": placement,
        "golden_frame_count": frames.shape[0],
        "golden_chunks": chunks,
        "golden_frame_lines": _table_lines((float_literal(v) for v in frames.reshape(-1)), _FLOATS_PER_LINE),
        "espdl_bytes": espdl_bytes,
        "espdl_crc32": None if digest is None else f"0x{digest:08x}u",
        "cache_bytes": int(glue["cache_bytes"]),
        "macs_per_chunk": int(glue["macs_per_chunk"]),
    }


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("espdl_streaming", "templates"),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
        autoescape=False,
    )


def render_glue(glue: dict[str, Any]) -> tuple[str, str]:
    """Return the text of ``NAME.hpp`` and ``NAME.cpp`` for one model.

    Raises ``ValueError`` when ``glue`` is inconsistent (a bug in the caller, not a user error).
    """
    context = _context(glue)
    env = _environment()
    hpp = env.get_template("model.hpp.j2").render(context)
    cpp = env.get_template("model.cpp.j2").render(context)
    return hpp, cpp
