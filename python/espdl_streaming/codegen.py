"""Render the generated C++ class (``NAME.hpp`` / ``NAME.cpp``) of one verified model.

``render_glue(glue)`` turns the description the build assembled from the simulator's results
(a checked :class:`~espdl_streaming.glue.Glue`) into source text; writing files is the caller's
job. Everything model-specific is decided here (identifiers, literals, table layout) so the
templates stay thin, and the output depends only on ``glue``: no timestamps, no iteration over
unordered data. Nothing here checks the description: ``Glue``'s constructor did.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

import jinja2
import numpy as np

from .audio.cost import frontend_cost
from .facts import CPP_KEYWORDS
from .glue import (
    CLASS_NAMES,
    GLUE_FLOAT_DTYPES,
    GLUE_INT_DTYPES,
    MAX_NDIM,
    Glue,
    GlueFrontend,
    GluePlacement,
    GlueTensor,
    espdl_digest,
)

#: A value the templates read (jinja2 renders it; nested dicts and lists of these).
TemplateValue = object

__all__ = ["render_glue", "c_identifier", "output_identifiers", "float_literal", "c_string", "espdl_digest"]

_CPP_KEYWORDS = CPP_KEYWORDS

_CLASS_NAMES = CLASS_NAMES
_MAX_NDIM = MAX_NDIM
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


def _tensor(t: GlueTensor) -> dict[str, TemplateValue]:
    """The template's view of one (checked) tensor."""
    shape = list(t.shape)
    if t.is_float:
        exponent = 0  # what ESP-DL's float tensor carries; nothing is scaled by it
        comment = f'"{t.name}": {t.dtype} {shape}, real values (no exponent)'
        ctype = GLUE_FLOAT_DTYPES[t.dtype]
    else:
        assert t.exponent is not None  # GlueTensor.check
        exponent = t.exponent
        comment = f'"{t.name}": {t.dtype} {shape}, real = q * 2^{exponent}'
        ctype = GLUE_INT_DTYPES[t.dtype][0]
    return {
        "name": t.name,
        "c_name": c_string(t.name),
        "comment": _comment(comment),
        "dtype": t.dtype,
        "ctype": ctype,
        "is_float": t.is_float,
        "exponent": exponent,
        "ndim": len(shape),
        "shape": ", ".join(str(d) for d in shape + [0] * (_MAX_NDIM - len(shape))),
        "elements": t.elements,
    }


def _placement(placement: GluePlacement) -> dict[str, TemplateValue]:
    if placement.kind == "rodata":
        return {"kind": "rodata", "symbol": placement.symbol}
    return {"kind": "partition", "label": _comment(placement.label), "c_label": c_string(placement.label)}


def _golden_lines(tensor: GlueTensor, values: np.ndarray) -> list[str]:
    """One output's golden table: exact float32 literals, or the integers."""
    if tensor.is_float:
        # The values the float32 output holds, bit for bit: the self test compares them exactly.
        floats = np.asarray(values, np.float32).reshape(-1)
        return _table_lines((float_literal(v) for v in floats), _FLOATS_PER_LINE)
    return _table_lines((str(int(v)) for v in values.reshape(-1)), _INTS_PER_LINE)


def _frontend(front: GlueFrontend | None) -> dict[str, TemplateValue] | None:
    """The template's view of the speech front end: frontend_spec's fields and the golden PCM and features."""
    if front is None:
        return None
    c = front.config

    def flag(value: bool) -> str:
        return "true" if value else "false"

    fields = [
        ("kind", f"frontend_kind::{c.kind}"),
        ("sample_rate", str(c.sample_rate)),
        ("frame_length", str(c.frame_length)),
        ("frame_shift", str(c.frame_shift)),
        ("num_mel_bins", str(c.num_mel_bins)),
        ("num_ceps", str(c.num_ceps)),
        ("preemphasis", float_literal(c.preemphasis)),
        ("cepstral_lifter", float_literal(c.cepstral_lifter)),
        ("window", f"frontend_window::{c.window_type}"),
        ("low_freq", float_literal(c.low_freq)),
        ("high_freq", float_literal(c.high_freq)),
        ("log_epsilon", float_literal(c.log_epsilon)),
        ("use_log_fbank", str(c.use_log_fbank)),
        ("raw_energy", flag(c.raw_energy)),
        ("use_power", flag(c.use_power)),
        ("use_energy", flag(c.use_energy)),
        ("remove_dc_offset", flag(c.remove_dc_offset)),
        ("win_len", str(c.win_len)),
        ("win_step", str(c.win_step)),
        ("feature_dim", str(c.feature_dim)),
        ("init_heap_bytes", str(frontend_cost(c).heap_bytes)),
    ]
    return {
        "kind": c.kind,
        "fields": [{"name": n, "value": v} for n, v in fields],
        "sample_rate": c.sample_rate,
        "win_len": c.win_len,
        "win_step": c.win_step,
        "frame_length_ms": c.frame_length,
        "frame_shift_ms": c.frame_shift,
        "pcm_samples": front.pcm.size,
        "pcm_lines": _table_lines((str(int(v)) for v in front.pcm), _INTS_PER_LINE),
        "feature_frames": front.features.shape[0],
        "feature_lines": _table_lines((float_literal(v) for v in front.features.reshape(-1)), _FLOATS_PER_LINE),
        "chunks": front.chunks,
        "abs_tol": float_literal(front.abs_tol),
        "rel_tol": float_literal(front.rel_tol),
    }


def _context(glue: Glue) -> dict[str, TemplateValue]:
    """What the templates render: identifiers, literals and table lines of a checked glue description."""
    name = glue.name
    model_input = _tensor(glue.input)
    names = list(glue.output_names)
    outputs: list[dict[str, TemplateValue]] = []
    offset = 0
    for tensor, ident, values in zip(glue.outputs, output_identifiers(names, name), glue.golden.outputs, strict=True):
        output = _tensor(tensor)
        output["ident"] = ident
        output["offset"] = offset
        offset += -(-tensor.elements // 4) * 4  # every buffer 16-byte aligned
        output["golden_lines"] = _golden_lines(tensor, values)
        output["golden_size"] = values.size
        if glue.frontend is not None:
            output["audio_golden_lines"] = _golden_lines(tensor, glue.frontend.outputs[len(outputs)])
        outputs.append(output)

    input_order, output_order = glue.input_order, glue.output_order
    states: list[dict[str, TemplateValue]] = []
    state_bytes = 0
    for k, st in enumerate(glue.states):
        initial = None
        if st.initial is not None:
            initial = {"lines": _table_lines((str(v) for v in st.initial), _INTS_PER_LINE), "size": len(st.initial)}
        states.append(
            {
                "input": _tensor(st.input),
                "output": _tensor(st.output),
                "initial": initial,
                "k": k,
                "input_index": input_order.index(st.input.name),
                "output_index": output_order.index(st.output.name),
            }
        )
        state_bytes += st.output.elements * (2 if st.output.dtype == "int16" else 1)
    output_indices = [output_order.index(n) for n in names]
    digest = glue.digest
    frames = glue.golden.frames

    return {
        "name": name,
        "c_name": c_string(name),
        "target": glue.target,
        "c_target": c_string(glue.target),
        "c_espdl_versions": c_string(glue.espdl_versions),
        "c_assumes": c_string(f"ESP-DL {glue.espdl_versions} on {glue.target}"),
        "command_line": _comment(glue.command_line),
        "chunk_frames": glue.chunk_frames,
        "feature_dim": glue.feature_dim,
        "rounding": glue.rounding,
        "input": model_input,
        "outputs": outputs,
        "output_storage_floats": offset,
        "states": states,
        "state_bytes": state_bytes,
        "input_index": input_order.index(glue.input.name),
        "output_indices": ", ".join(str(i) for i in output_indices),
        "output_indices_identity": output_indices == list(range(len(outputs))),
        "placement": _placement(glue.placement),
        "golden_frame_count": frames.shape[0],
        "golden_chunks": glue.golden.chunks,
        "golden_frame_lines": _table_lines((float_literal(v) for v in frames.reshape(-1)), _FLOATS_PER_LINE),
        "espdl_bytes": glue.espdl_bytes,
        "espdl_crc32": None if digest is None else f"0x{digest:08x}u",
        "cache_bytes": glue.cache_bytes,
        "macs_per_chunk": glue.macs_per_chunk,
        "frontend": _frontend(glue.frontend),
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


def render_glue(glue: Glue) -> tuple[str, str]:
    """Return the text of ``NAME.hpp`` and ``NAME.cpp`` for one model.

    ``glue`` was checked when it was built (:class:`~espdl_streaming.glue.Glue` raises ``ValueError`` for an
    inconsistent description, a bug in the caller, not a user error): rendering it does not fail.
    """
    context = _context(glue)
    env = _environment()
    hpp = env.get_template("model.hpp.j2").render(context)
    cpp = env.get_template("model.cpp.j2").render(context)
    return hpp, cpp
