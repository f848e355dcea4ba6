"""The human-readable quality page of a build: ``NAME.report.html``, and its terminal text.

:func:`render_html` turns a build report (a :class:`~espdl_streaming.report.BuildReport`, or the JSON
object of a ``NAME.report.json``) into one self-contained HTML page:
inline CSS and inline SVG only, no script, no network, readable in light and dark mode, the same
bytes for the same report.  :func:`render_text` is the compact terminal version of the same
content (plain ASCII, lines of at most 100 characters).  :func:`main_report` is
``python -m espdl_streaming report NAME.report.json [--html OUT.html] [--quiet]``.

Both renderers read the report through the same extraction helpers (one per section), so the
page and the text always say the same thing.  Every section degrades to "not measured" when
its keys are absent (reports written before the quality measurement have no ``quality``): that is
why the renderers read the JSON object by key, defensively, rather than the typed BuildReport
(which only accepts reports of this version's exact format).
Every string taken from the report is escaped in the page.
"""

from __future__ import annotations

import argparse
import html
import json
import math
import os
import sys
import tempfile
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .audio.config import FrontendConfig
from .audio.declare import BY_FIELD
from .errors import ReportInputError
from .report import BuildReport, JSONValue, as_json_object

EXIT_USER_ERROR = 2
TEXT_WIDTH = 100
EXACT_DB = 200.0  # the report's SNR for exactly equal values
SNR_AXIS_CAP_DB = 100.0  # the per-layer chart's scale ends here at most
NOT_MEASURED = "not measured"

# --------------------------------------------------------------------------------------------
# Reading the report defensively: a section with missing or ill-typed keys renders as absent.


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _num(value: Any) -> float | None:
    """A finite JSON number as float; None for null, booleans, strings, NaN and infinities."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    f = float(value)
    return f if math.isfinite(f) else None


def _str(value: Any) -> str:
    return "" if value is None else str(value)


# --------------------------------------------------------------------------------------------
# Formatting (ASCII only, shared by the page and the text).


def _fmt_db(value: Any) -> str:
    v = _num(value)
    if v is None:
        return "undefined"
    if v >= EXACT_DB:
        return "exact"
    return f"{v:.1f} dB"


def _fmt_g(value: Any, digits: int = 4) -> str:
    v = _num(value)
    return "n/a" if v is None else f"{v:.{digits}g}"


def _fmt_pct(value: Any, digits: int = 1) -> str:
    v = _num(value)
    return "n/a" if v is None else f"{100.0 * v:.{digits}f}%"


def _fmt_int(value: Any) -> str:
    v = _num(value)
    return "n/a" if v is None else f"{int(v)}" if v == int(v) else f"{v:g}"


def _fmt_bytes(value: Any) -> str:
    v = _num(value)
    if v is None:
        return NOT_MEASURED
    n = int(v)
    return f"{n} B" if n < 1024 else f"{n} B ({n / 1024:.1f} KiB)"


def _fmt_range(value: Any) -> str:
    r = _list(value)
    if len(r) != 2:
        return "n/a"
    return f"[{_fmt_g(r[0])}, {_fmt_g(r[1])}]"


def _fmt_shape(value: Any) -> str:
    shape = _list(value)
    return "[" + ", ".join(_str(d) for d in shape) + "]" if shape else NOT_MEASURED


def _ascii(text: str) -> str:
    return text.encode("ascii", "replace").decode("ascii")


def _shorten(text: str, width: int) -> str:
    """`text` cut in the middle to at most `width` characters (layer names differ at both ends)."""
    if len(text) <= width:
        return text
    if width <= 3:
        return text[:width]
    head = (width - 3 + 1) // 2
    tail = width - 3 - head
    return text[:head] + "..." + (text[-tail:] if tail else "")


# --------------------------------------------------------------------------------------------
# The content, section by section, independent of the output format.


@dataclass(frozen=True)
class Verdict:
    label: str
    status: str  # "pass", "fail", "warn" or "none" (not measured / not set)
    word: str  # what the badge says
    detail: str


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)
    row_classes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Bar:
    label: str
    value: float | None  # None: no bar, only `text`
    text: str  # shown after the bar
    tooltip: str
    kind: str = "normal"  # css class of the bar: normal, worst, low, exact
    tag: str = ""  # an extra word after the text ("worst")


def _name(report: Mapping[str, Any]) -> str:
    return _str(report.get("name")) or "(unnamed)"


def _target(report: Mapping[str, Any]) -> str:
    decl = _dict(report.get("declaration"))
    return _str(decl.get("target") or report.get("target")) or "unknown target"


def _quality(report: Mapping[str, Any]) -> dict[str, Any]:
    return _dict(report.get("quality"))


def _scheme(report: Mapping[str, Any]) -> str:
    scheme = _quality(report).get("scheme")
    if scheme:
        return _str(scheme)
    bits = _dict(report.get("declaration")).get("bits", report.get("bits"))
    return f"{bits}-bit" if bits is not None else "unknown scheme"


def _calibration_text(report: Mapping[str, Any]) -> tuple[str, str | None]:
    """(what the calibration was, its warning or None)."""
    cal = report.get("calibration")
    if cal is None:
        cal = _dict(report.get("declaration")).get("calibration")
    if isinstance(cal, str):
        return cal, None
    c = _dict(cal)
    if not c:
        return NOT_MEASURED, None
    if c.get("random"):
        what = "seeded random normal data"
    else:
        what = _str(c.get("source")) or "unknown source"
    if c.get("samples") is not None:
        what += f", {_fmt_int(c.get('samples'))} samples"
    warning = c.get("warning")
    return what, _str(warning) if warning else None


def warnings(report: Mapping[str, Any]) -> list[str]:
    """The calibration warning, then the build's warnings (saturation, ...)."""
    out = [w for w in [_calibration_text(report)[1]] if w]
    out.extend(_str(w) for w in _list(report.get("warnings")) if w)
    return out


def declaration_items(report: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The declaration as (key, value) pairs: what the report has, declaration first."""
    decl = _dict(report.get("declaration"))

    def pick(key: str) -> Any:
        return decl.get(key, report.get(key))

    items: list[tuple[str, str]] = [("name", _name(report)), ("target", _target(report))]
    shape = decl.get("input_shape", decl.get("offline_input_shape", report.get("offline_input_shape")))
    if shape is not None:
        items.append(("input shape (offline)", _fmt_shape(shape)))
    if pick("chunk_frames") is not None:
        items.append(("chunk", f"{_fmt_int(pick('chunk_frames'))} frames"))
    if pick("bits") is not None:
        items.append(("bits", _fmt_int(pick("bits"))))
    if pick("quant") is not None:
        items.append(("quantization", _str(pick("quant"))))
    if _str(pick("quant")) != _scheme(report):
        items.append(("scheme", _scheme(report)))
    items.append(("calibration", _calibration_text(report)[0]))
    if "calib_algorithm" in decl or "calib_algorithm" in report:
        algorithm = pick("calib_algorithm")
        items.append(("activation observer", _str(algorithm) if algorithm else "esp-ppq's default for the scheme"))
    options = [_str(o) for o in _list(pick("calib_options"))]
    if options:
        items.append(("calibration passes", ", ".join(options)))
    shown = {"name", "target", "input_shape", "offline_input_shape", "chunk_frames", "bits", "quant", "calibration",
             "calib_algorithm", "calib_options"}  # fmt: skip
    for key, value in decl.items():  # anything else the declaration records, in its order
        if key in shown or key == "command_line" or isinstance(value, (dict, list)) or value is None:
            continue
        items.append((_str(key), _str(value)))
    command = report.get("command_line", decl.get("command_line"))
    if command:
        items.append(("command line", _str(command)))
    return items


def _rewrite_status(rewrite: Mapping[str, Any]) -> str:
    """ "pass", "fail" or "warn" (changed the graph but could not be compared)."""
    if "ok" in rewrite:
        return "pass" if rewrite.get("ok") else "fail"
    if not rewrite.get("changed", True) or rewrite.get("checked"):
        return "pass"
    return "warn"


def _worst_output(outputs: Any) -> tuple[str, float] | None:
    rated = [(_str(o.get("name")), _num(o.get("snr_db"))) for o in _list(outputs) if isinstance(o, dict)]
    known = [(n, v) for n, v in rated if v is not None]
    return min(known, key=lambda item: item[1]) if known else None


def verdicts(report: Mapping[str, Any]) -> list[Verdict]:
    out: list[Verdict] = []

    s = _dict(report.get("streaming"))
    detail = (
        f"{_fmt_int(s.get('chunks_checked'))} chunks checked against the offline model, "
        f"max |diff| {_fmt_g(s.get('max_abs_diff'))}"
    )
    if s.get("verified") is True:
        out.append(Verdict("streaming verified", "pass", "PASS", detail))
    elif s.get("verified") is False:
        out.append(Verdict("streaming verified", "fail", "FAIL", detail))
    else:
        out.append(Verdict("streaming verified", "none", "N/A", NOT_MEASURED))

    fid = report.get("fidelity")
    if not isinstance(fid, dict) or not fid:
        out.append(Verdict("float equivalence", "none", "N/A", NOT_MEASURED))
    else:
        rewrites = [r for r in _list(fid.get("rewrites")) if isinstance(r, dict)]
        statuses = [_rewrite_status(r) for r in rewrites]
        parts: list[str] = []
        if not rewrites:
            parts.append("no graph rewrite")
        for r, st in zip(rewrites, statuses):
            what = _str(r.get("rewrite")) or "rewrite"
            if st == "pass":
                parts.append(f"{what}: equal" if r.get("changed", True) else f"{what}: not needed")
            elif st == "fail":
                parts.append(f"{what}: differs")
            else:
                parts.append(f"{what}: {_str(r.get('note')) or 'not checked'}")
        worst = _worst_output(fid.get("outputs"))
        if worst:
            parts.append(f"worst float SNR {_fmt_db(worst[1])} (output '{worst[0]}')")
        also = _worst_output(_dict(fid.get("verification_stream")).get("outputs"))
        if also:
            parts.append(f"{_fmt_db(also[1])} on the verification stream")
        status = "fail" if "fail" in statuses else "warn" if "warn" in statuses else "pass"
        out.append(Verdict("float equivalence", status, status.upper(), "; ".join(parts)))

    q = _quality(report)
    gate = _dict(q.get("gate"))
    minimum = _num(gate.get("min_snr_db"))
    worst_q = _worst_output(q.get("outputs"))
    measured = f"worst output {_fmt_db(worst_q[1])} ('{worst_q[0]}')" if worst_q else "worst output not measured"
    if not q:
        out.append(Verdict("quality gate", "none", "N/A", NOT_MEASURED))
    elif minimum is None:
        out.append(Verdict("quality gate", "none", "NOT SET", f"no minimum SNR set; {measured}"))
    elif gate.get("passed") is True:
        out.append(Verdict("quality gate", "pass", "PASS", f"{measured} >= {minimum:g} dB"))
    elif gate.get("passed") is False:
        strict = " (strict: the build fails)" if gate.get("strict") else " (not strict: a warning)"
        out.append(Verdict("quality gate", "fail", "FAIL", f"{measured} < {minimum:g} dB{strict}"))
    else:
        out.append(Verdict("quality gate", "none", "N/A", f"minimum {minimum:g} dB, {NOT_MEASURED}"))
    return out


def outputs_table(report: Mapping[str, Any]) -> Table | None:
    q = _quality(report)
    outputs = [o for o in _list(q.get("outputs")) if isinstance(o, dict)]
    if not outputs:
        return None
    worst = _str(q.get("worst_output"))
    table = Table(["output", "SNR", "cosine", "max |error|", "top-1 agreement"])
    for o in outputs:
        name = _str(o.get("name"))
        top1 = _fmt_pct(o.get("top1_agreement")) if _num(o.get("top1_agreement")) is not None else "n/a"
        table.rows.append(
            [
                name + (" (worst)" if name == worst and len(outputs) > 1 else ""),
                _fmt_db(o.get("snr_db")),
                _fmt_g(o.get("cosine"), 6),
                _fmt_g(o.get("max_abs_error")),
                top1,
            ]
        )
        table.row_classes.append("worst" if name == worst and len(outputs) > 1 else "")
    return table


def _eval_source(report: Mapping[str, Any]) -> str:
    q = _quality(report)
    src = _str(q.get("eval_source"))
    frames = q.get("frames")
    if frames is not None:
        src = f"{_fmt_int(frames)} frames: {src}" if src else f"{_fmt_int(frames)} frames"
    return src


def _gate_db(report: Mapping[str, Any]) -> float | None:
    return _num(_dict(_quality(report).get("gate")).get("min_snr_db"))


def layer_bars(report: Mapping[str, Any]) -> list[Bar]:
    q = _quality(report)
    worst = {_str(n) for n in _list(q.get("worst_layers"))}
    gate = _gate_db(report)
    bars: list[Bar] = []
    for layer in _list(q.get("layers")):
        if not isinstance(layer, dict):
            continue
        name = _str(layer.get("name"))
        snr = _num(layer.get("snr_db"))
        facts = [f"node {layer['node']}" if layer.get("node") else "", _str(layer.get("op"))]
        if layer.get("bits") is not None:
            facts.append(f"{_fmt_int(layer.get('bits'))}-bit")
        if _num(layer.get("output_snr_db_alone")) is not None:
            facts.append(f"output {_fmt_db(layer.get('output_snr_db_alone'))} with this layer alone quantized")
        tooltip = f"{name}: {_fmt_db(snr)}" + (f" ({', '.join(f for f in facts if f)})" if any(facts) else "")
        if snr is None:
            bars.append(Bar(name, None, "exact/undefined (reference all zeros)", tooltip, "normal"))
            continue
        if name in worst:
            kind = "worst"
        elif snr >= EXACT_DB:
            kind = "exact"
        elif gate is not None and snr < gate:
            kind = "low"
        else:
            kind = "normal"
        bars.append(Bar(name, snr, _fmt_db(snr), tooltip, kind, "worst" if name in worst else ""))
    return bars


def worst_layers(report: Mapping[str, Any]) -> Table:
    """The worst layers, in the report's order: name, SNR, and the output SNR with that layer alone
    quantized when the report has it."""
    q = _quality(report)
    by_name = {_str(x.get("name")): x for x in _list(q.get("layers")) if isinstance(x, dict)}
    names = [_str(n) for n in _list(q.get("worst_layers"))]
    alone = any("output_snr_db_alone" in by_name.get(n, {}) for n in names)
    table = Table(["layer", "SNR"] + (["output SNR, layer alone quantized"] if alone else []))
    for n in names:
        layer = by_name.get(n, {})
        row = [n, _fmt_db(layer.get("snr_db")) if layer else "n/a"]
        if alone:
            row.append(_fmt_db(layer.get("output_snr_db_alone")) if "output_snr_db_alone" in layer else "n/a")
        table.rows.append(row)
        table.row_classes.append("")
    return table


def saturation_table(report: Mapping[str, Any]) -> Table | None:
    """None when not measured; a table without rows when nothing saturated."""
    q = _quality(report)
    if not q or "saturated" not in q:
        return None
    table = Table(["tensor", "saturated", "count / total", "calibrated range", "evaluation range"])
    for s in _list(q.get("saturated")):
        if not isinstance(s, dict):
            continue
        table.rows.append(
            [
                _str(s.get("name")),
                _fmt_pct(s.get("fraction"), 2),
                f"{_fmt_int(s.get('count'))} / {_fmt_int(s.get('total'))}",
                _fmt_range(s.get("calibrated_range")),
                _fmt_range(s.get("eval_range")),
            ]
        )
        table.row_classes.append("")
    return table


def _auto_step_text(step: Mapping[str, Any], first: bool) -> str:
    """What one QUANT auto step tried, in words."""
    names = [_str(p) for p in _list(step.get("promoted"))]
    if step.get("scheme"):
        text = f"whole model at {_str(step.get('scheme'))}"
        if step.get("compared_for_flash"):
            text += " (compared for flash)"
    elif step.get("calib_algorithm"):
        text = f"w8a8 with esp-ppq's {_str(step.get('calib_algorithm'))} observer"
    elif names:
        text = ", ".join(names) + " to 16 bits"
    else:
        text = "w8a8" if first else "(none)"
    if step.get("skipped"):
        text += f": not used ({_str(step.get('skipped'))})"
    return text


def auto_section(report: Mapping[str, Any]) -> tuple[list[tuple[str, str]], Table] | None:
    """(summary items, steps table) of the automatic mixed precision, or None when not used."""
    auto = _dict(_quality(report).get("auto"))
    if not auto:
        return None
    steps = [s for s in _list(auto.get("steps")) if isinstance(s, dict)]
    promoted = [_str(p) for p in _list(auto.get("promoted"))]
    items = [
        ("target SNR", _fmt_db(auto.get("target_snr_db"))),
        ("reached", "yes" if auto.get("reached") is True else "no" if auto.get("reached") is False else "n/a"),
        ("promoted layers", ", ".join(promoted) if promoted else "none"),
    ]
    if auto.get("calib_algorithm"):
        items.append(("activation observer", _str(auto.get("calib_algorithm"))))
    check = _dict(auto.get("flash_check"))
    if _num(check.get("w16a16_espdl_bytes")) is not None:
        items.append(("flash against w16a16", f"{_fmt_int(check.get('espdl_bytes'))} B before the comparison, "
                      f"{_fmt_int(check.get('w16a16_espdl_bytes'))} B at w16a16"
                      + (f"; kept {_str(check.get('chose'))}" if check.get("chose") else "")))  # fmt: skip
    cost_keys = [k for k in ("espdl_bytes", "cache_bytes", "ram_bytes") if any(k in s for s in steps)]
    titles = {"espdl_bytes": "flash", "cache_bytes": "cache RAM", "ram_bytes": "RAM"}
    table = Table(["step", "what was tried", "SNR after step"] + [titles[k] for k in cost_keys])
    for i, s in enumerate(steps, 1):
        row = [str(i), _auto_step_text(s, first=i == 1), _fmt_db(s.get("snr_db"))]
        for k in cost_keys:
            row.append(_fmt_int(s.get(k)) + " B" if _num(s.get(k)) is not None else "n/a")
        table.rows.append(row)
        table.row_classes.append("")
    for k in cost_keys:
        values = [_num(s.get(k)) for s in steps]
        known = [v for v in values if v is not None]
        result = _num(report.get(k))  # the model the build kept
        if len(known) >= 2 and result is not None:
            delta = int(result - known[0])
            items.append((f"{titles[k]} cost", f"{delta:+d} B (the result against w8a8, step 1)"))
    return items, table


def footprint_items(report: Mapping[str, Any]) -> list[tuple[str, str]]:
    ratio = _num(report.get("streaming_to_offline_macs_ratio"))
    rf = _num(report.get("receptive_field_frames"))
    lat = _num(report.get("latency_frames"))
    return [
        ("flash (model)", _fmt_bytes(report.get("espdl_bytes"))),
        ("cache RAM", _fmt_bytes(report.get("cache_bytes"))),
        ("recurrent state RAM", _fmt_bytes(report.get("state_bytes"))),
        ("receptive field", f"{_fmt_int(rf)} frames" if rf is not None else NOT_MEASURED),
        ("latency", f"{_fmt_int(lat)} frames" if lat is not None else NOT_MEASURED),
        (
            "MACs per chunk",
            _fmt_int(report.get("macs_per_chunk")) if _num(report.get("macs_per_chunk")) is not None else NOT_MEASURED,
        ),
        ("streaming / offline MACs per frame", f"{ratio:.3g}" if ratio is not None else NOT_MEASURED),
    ]


def ram_bars(report: Mapping[str, Any]) -> list[Bar]:
    """Cache RAM per node, then recurrent state per node."""
    bars: list[Bar] = []
    for c in _list(_dict(report.get("streaming")).get("caches")):
        if not isinstance(c, dict):
            continue
        n = _num(c.get("bytes"))
        var, op = _str(c.get("variable")), _str(c.get("op"))
        frames = c.get("cached_frames")
        tip = f"{var} cached for {op}" + (f": {_fmt_int(frames)} frames" if frames is not None else "")
        bars.append(Bar(var, n, f"{_fmt_int(n)} B" if n is not None else "n/a", f"{tip}, {_fmt_int(n)} B"))
    for st in _list(report.get("recurrent_states")):
        if not isinstance(st, dict):
            continue
        n = _num(st.get("bytes"))
        label = f"state {_str(st.get('output') or st.get('node'))}"
        tip = f"recurrent state of {_str(st.get('node'))}, {_fmt_int(n)} B"
        bars.append(Bar(label, n, f"{_fmt_int(n)} B" if n is not None else "n/a", tip, "state"))
    return bars


# The speech front end (FRONTEND): its configuration, its cost per second of audio, its RAM.

_FRONTEND_CLASSES = {"fbank": "dl::audio::Fbank", "mfcc": "dl::audio::MFCC", "spectrogram": "dl::audio::Spectrogram"}
_FRONTEND_DEFAULTS: dict[str, Any] = {
    name: getattr(FrontendConfig(), name) for name in FrontendConfig.__dataclass_fields__
}
_LOG_MODE_TEXT = {0: "0 (linear)", 1: "1 (max: log(max(x, eps)))", 2: "2 (add: log(x + eps))"}
_RAM_WHERE = {"heap": "heap (init)", "class": "class members"}


def _frontend(report: Mapping[str, Any]) -> dict[str, Any]:
    return _dict(report.get("frontend"))


def _fmt_config_value(name: str, value: Any) -> str:
    if isinstance(value, bool):
        return "ON" if value else "OFF"
    if name == "use_log_fbank" and value in _LOG_MODE_TEXT:
        return _LOG_MODE_TEXT[value]
    return _str(value)


def _per_second(per_frame: Any, fps: float | None) -> str:
    v = _num(per_frame)
    return "n/a" if v is None or fps is None else _fmt_int(round(v * fps, 3))


def _fmt_times(ratio: float) -> str:
    """A front end / model ratio: "2.64x" from 1 on, "12% of" below."""
    return f"{ratio:.3g}x" if ratio >= 1 else f"{100 * ratio:.2g}% of"


def _fmt_mega(value: Any) -> str:
    v = _num(value)
    return "n/a" if v is None else f"{v / 1e6:.3g} M"


def frontend_items(report: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The front end in a few lines: what it is, its frames, and its cost and RAM in short."""
    fe = _frontend(report)
    cfg, cost = _dict(fe.get("config")), _dict(fe.get("cost"))
    kind = _str(fe.get("kind"))
    items = [
        ("front end", f"{kind} ({_FRONTEND_CLASSES[kind]})" if kind in _FRONTEND_CLASSES else kind or "n/a"),
        ("features per frame", _fmt_int(fe.get("feature_dim"))),
        ("sample rate", f"{_fmt_int(fe.get('sample_rate'))} Hz"),
        (
            "frames",
            f"{_fmt_int(fe.get('frame_length_samples'))} samples every {_fmt_int(fe.get('frame_shift_samples'))} "
            f"({_str(cfg.get('frame_length'))}/{_str(cfg.get('frame_shift'))} ms), FFT of "
            f"{_fmt_int(fe.get('fft_size'))} points",
        ),
        ("resample other rates", "ON" if fe.get("resample") is True else "OFF"),
    ]
    if not cost:
        items.append(("cost", NOT_MEASURED))
        return items
    items.append(("frames per second", _fmt_g(cost.get("frames_per_second"), 6)))
    ratio = _num(cost.get("frontend_to_model_macs_ratio"))
    versus = (
        f"{_fmt_times(ratio)} the model's {_fmt_mega(cost.get('model_macs_per_second'))}"
        if ratio is not None
        else "the model has no MACs"
    )
    items.append(("MACs per second of audio", f"{_fmt_mega(cost.get('macs_per_second'))} ({versus})"))
    items.append(("log calls per second", _fmt_int(cost.get("logs_per_second"))))
    items.append(
        (
            "RAM",
            f"{_fmt_bytes(cost.get('ram_bytes'))}: {_fmt_int(cost.get('heap_bytes'))} B heap (init) + "
            f"{_fmt_int(cost.get('class_bytes'))} B class members",
        )
    )
    return items


def frontend_config_table(report: Mapping[str, Any]) -> Table:
    """Every SpeechFeatureConfig field the report records: its option, its value, default or set."""
    fe = _frontend(report)
    cfg = _dict(fe.get("config"))
    kind = _str(fe.get("kind") or cfg.get("kind"))
    table = Table(["field", "option", "value", "status"])
    for name, value in cfg.items():
        option = BY_FIELD.get(name)
        if name == "kind":
            status = "set"
        elif option is not None and kind and kind not in option.kinds:
            status = f"not read by {kind}"
        elif name in _FRONTEND_DEFAULTS and value == _FRONTEND_DEFAULTS[name]:
            status = "default"
        else:
            status = "set"
        table.rows.append([_str(name), option.key if option else "-", _fmt_config_value(name, value), status])
        table.row_classes.append("set" if status == "set" else "")
    return table


def frontend_cost_table(report: Mapping[str, Any]) -> Table | None:
    """Per stage of process_frame, its arithmetic per second of audio; the front end's total, then the model's."""
    cost = _dict(_frontend(report).get("cost"))
    if not cost:
        return None
    fps = _num(cost.get("frames_per_second"))
    table = Table(["stage", "MACs/s", "adds/s", "logs/s", "sqrts/s", "what (per frame)"])
    totals = {"macs": 0.0, "adds": 0.0, "logs": 0.0, "sqrts": 0.0}
    for st in _list(cost.get("stages")):
        if not isinstance(st, dict):
            continue
        for k in totals:
            totals[k] += _num(st.get(k)) or 0.0
        row = [_str(st.get("stage"))] + [_per_second(st.get(k), fps) for k in totals] + [_str(st.get("detail"))]
        table.rows.append(row)
        table.row_classes.append("")
    table.rows.append(["front end"] + [_per_second(v, fps) for v in totals.values()] + ["every stage"])
    table.row_classes.append("total")
    chunk = report.get("chunk_frames")
    table.rows.append(
        [
            "model",
            _fmt_int(cost.get("model_macs_per_second")),
            "",
            "",
            "",
            f"{_fmt_int(report.get('macs_per_chunk'))} MACs per chunk of {_fmt_int(chunk)} frames"
            if report.get("macs_per_chunk") is not None and chunk is not None
            else "",
        ]
    )
    table.row_classes.append("total")
    return table


def frontend_cost_bars(report: Mapping[str, Any]) -> list[Bar]:
    """MACs per second of audio: each stage, the front end's total and the model's."""
    cost = _dict(_frontend(report).get("cost"))
    fps = _num(cost.get("frames_per_second"))
    if not cost or fps is None:
        return []
    bars: list[Bar] = []
    for st in _list(cost.get("stages")):
        macs = _num(st.get("macs")) if isinstance(st, dict) else None
        if macs is None:
            continue
        name, text = _str(st.get("stage")), _fmt_int(round(macs * fps, 3))
        bars.append(Bar(name, macs * fps, text, f"{name}: {text} MACs/s; {_str(st.get('detail'))}"))
    for label, key, kind in (("front end", "macs_per_second", "exact"), ("model", "model_macs_per_second", "state")):
        v = _num(cost.get(key))
        if v is not None:
            bars.append(Bar(label, v, _fmt_int(v), f"{label}: {_fmt_int(v)} MACs per second of audio", kind))
    return bars


def frontend_ram_table(report: Mapping[str, Any]) -> Table | None:
    """Each allocation: dl::audio's at init (heap), then the generated class's members; the totals."""
    cost = _dict(_frontend(report).get("cost"))
    if not cost:
        return None
    table = Table(["allocation", "where", "bytes", "what"])
    for r in _list(cost.get("ram")):
        if not isinstance(r, dict):
            continue
        where = _str(r.get("where"))
        table.rows.append(
            [_str(r.get("item")), _RAM_WHERE.get(where, where), _fmt_int(r.get("bytes")), _str(r.get("detail"))]
        )
        table.row_classes.append("")
    for label, key in (("heap (init)", "heap_bytes"), ("class members", "class_bytes"), ("total", "ram_bytes")):
        table.rows.append([label, "", _fmt_int(cost.get(key)), ""])
        table.row_classes.append("total")
    return table


# --------------------------------------------------------------------------------------------
# SVG


_CHART_W = 900
_LABEL_W = 340  # label column; labels end 8 px before the plot
_PLOT_W = 400
_ROW_H = 20
_TOP = 26
_BOTTOM = 30
_LABEL_CHARS = 46  # about what fits in the label column at 12 px monospace


def _nice_step(span: float) -> float:
    raw = span / 5.0
    mag = 10.0 ** math.floor(math.log10(raw))
    for m in (1.0, 2.0, 5.0, 10.0):
        if raw <= m * mag:
            return m * mag
    return 10.0 * mag


def _num_attr(v: float) -> str:
    s = f"{v:.1f}"
    return s[:-2] if s.endswith(".0") else s


def svg_bar_chart(
    bars: Sequence[Bar], *, axis_max: float, unit: str, title: str, marker: tuple[float, str] | None = None
) -> str:
    """A horizontal bar chart: one row per bar, a track behind each, a bottom axis, and an optional
    vertical marker line.  Colours come from CSS variables (light and dark); text is currentColor."""
    e = html.escape
    n = len(bars)
    height = _TOP + n * _ROW_H + _BOTTOM
    x0 = _LABEL_W
    axis_max = max(axis_max, 1e-9)

    def x_of(v: float) -> float:
        return x0 + _PLOT_W * min(max(v, 0.0), axis_max) / axis_max

    def _bar_end(bar: Bar) -> float:  # an exact SNR fills the plot
        v = bar.value or 0.0
        return x0 + _PLOT_W if unit == "dB" and v >= EXACT_DB else x_of(v)

    parts = [
        f'<svg class="chart" viewBox="0 0 {_CHART_W} {height}" '
        f'width="{_CHART_W}" height="{height}" role="img" aria-label="{e(title)}">',
        f"<title>{e(title)}</title>",
    ]
    step = _nice_step(axis_max)
    bottom = _TOP + n * _ROW_H
    tick = 0.0
    while tick <= axis_max + 1e-9:
        x = _num_attr(x_of(tick))
        parts.append(f'<line class="grid" x1="{x}" y1="{_TOP - 4}" x2="{x}" y2="{bottom}"/>')
        parts.append(f'<text class="tick" x="{x}" y="{bottom + 14}" text-anchor="middle">{_num_attr(tick)}</text>')
        tick += step
    parts.append(f'<text class="tick" x="{x0 + _PLOT_W}" y="{bottom + 27}" text-anchor="end">{e(unit)}</text>')
    for i, bar in enumerate(bars):  # tracks and bars first, so the marker line is drawn over them
        y = _TOP + i * _ROW_H
        parts.append(f'<g class="row {e(bar.kind)}"><title>{e(bar.tooltip)}</title>')
        parts.append(f'<rect class="track" x="{x0}" y="{y + 3}" width="{_PLOT_W}" height="{_ROW_H - 6}"/>')
        if bar.value is not None:
            parts.append(
                f'<rect class="bar {e(bar.kind)}" x="{x0}" y="{y + 3}" width="{_num_attr(_bar_end(bar) - x0)}" '
                f'height="{_ROW_H - 6}"/>'
            )
        parts.append("</g>")
    if marker is not None:
        mx = _num_attr(x_of(marker[0]))
        parts.append(f'<line class="marker" x1="{mx}" y1="{_TOP - 6}" x2="{mx}" y2="{bottom}"/>')
        parts.append(f'<text class="marker-label" x="{mx}" y="{_TOP - 10}" text-anchor="middle">{e(marker[1])}</text>')
    for i, bar in enumerate(bars):  # then the text, over the marker (with a halo of the background colour)
        cy = _num_attr(_TOP + i * _ROW_H + _ROW_H / 2 + 4)
        text = bar.text + (f"  {bar.tag}" if bar.tag else "")
        parts.append(f'<g class="row {e(bar.kind)}"><title>{e(bar.tooltip)}</title>')
        parts.append(
            f'<text class="label" x="{x0 - 8}" y="{cy}" text-anchor="end">{e(_shorten(bar.label, _LABEL_CHARS))}</text>'
        )
        end = _bar_end(bar) if bar.value is not None else x0
        cls = "value tag" if bar.tag else "value"
        parts.append(f'<text class="{cls}" x="{_num_attr(end + 6)}" y="{cy}">{e(text)}</text>')
        parts.append("</g>")
    parts.append("</svg>")
    return "\n".join(parts)


def _nice_max(top: float) -> float:
    """`top` rounded up to a whole tick of its axis."""
    top = max(top, 1.0)
    step = _nice_step(top)
    return math.ceil(top / step - 1e-9) * step


def _snr_axis_max(bars: Sequence[Bar], gate: float | None) -> float:
    finite = [b.value for b in bars if b.value is not None and b.value < EXACT_DB]
    if gate is not None:
        finite.append(gate)
    top = max(finite, default=SNR_AXIS_CAP_DB)
    return min(SNR_AXIS_CAP_DB, max(10.0, math.ceil(top / 10.0) * 10.0))


# --------------------------------------------------------------------------------------------
# HTML

_CSS = """
:root {
  color-scheme: light dark;
  --bg: #ffffff; --fg: #1f2328; --muted: #59636e; --border: #d1d9e0; --card: #f6f8fa;
  --accent: #3b6fb6; --pass: #1a7f37; --fail: #cf222e; --warn: #9a6700; --none: #6e7781;
  --worst: #cf222e; --low: #bc4c00; --exact: #8250df; --state: #1b7c83;
  --track: #eef1f4; --grid: #d1d9e0;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #0d1117; --fg: #e6edf3; --muted: #9198a1; --border: #3d444d; --card: #151b23;
    --accent: #4c8fe0; --pass: #3fb950; --fail: #f85149; --warn: #d29922; --none: #8b949e;
    --worst: #f85149; --low: #db6d28; --exact: #a371f7; --state: #39c5cf;
    --track: #1f262f; --grid: #3d444d;
  }
}
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 960px; padding: 24px; background: var(--bg); color: var(--fg);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 28px 0 8px; padding-bottom: 4px; border-bottom: 1px solid var(--border); }
code, .mono, td { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 13px; }
.sub, .note { color: var(--muted); }
.warning { color: var(--warn); }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 0; }
dt { color: var(--muted); }
dd { margin: 0; overflow-wrap: anywhere; }
table { border-collapse: collapse; margin: 4px 0; }
th, td { text-align: left; padding: 3px 10px; border-bottom: 1px solid var(--border); vertical-align: top; }
th { font-weight: 600; background: var(--card); }
td.num { text-align: right; }
tr.worst td { color: var(--worst); font-weight: 600; }
tr.total td { font-weight: 600; }
tr.set td { color: var(--accent); }
ul.verdicts { list-style: none; padding: 0; margin: 0; }
ul.verdicts li { margin: 6px 0; }
.badge { display: inline-block; min-width: 64px; text-align: center; padding: 1px 8px; margin-right: 8px;
  border-radius: 10px; font-weight: 700; font-size: 12px; color: var(--bg); }
.badge.pass { background: var(--pass); } .badge.fail { background: var(--fail); }
.badge.warn { background: var(--warn); } .badge.none { background: var(--none); }
.verdict-label { font-weight: 600; }
svg.chart { display: block; max-width: 100%; height: auto; color: var(--fg); margin: 6px 0; }
svg.chart text { fill: currentColor; font: 12px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
svg.chart text.tick { fill: var(--muted); font-size: 11px; }
svg.chart text.tag { font-weight: 700; }
svg.chart text.value { paint-order: stroke; stroke: var(--bg); stroke-width: 3px; stroke-linejoin: round; }
svg.chart g.worst text.value { fill: var(--worst); }
svg.chart .track { fill: var(--track); }
svg.chart .grid { stroke: var(--grid); stroke-width: 1; }
svg.chart .bar { fill: var(--accent); }
svg.chart .bar.worst { fill: var(--worst); }
svg.chart .bar.low { fill: var(--low); }
svg.chart .bar.exact { fill: var(--exact); }
svg.chart .bar.state { fill: var(--state); }
svg.chart .marker { stroke: var(--fail); stroke-width: 2; stroke-dasharray: 5 3; }
svg.chart text.marker-label { fill: var(--fail); font-weight: 700; }
footer { margin-top: 32px; color: var(--muted); font-size: 12px; }
""".strip()

# No script, no network: even a report string that escaped escaping could not load or run anything.
_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def _h_items(items: Sequence[tuple[str, str]]) -> str:
    e = html.escape
    rows = "\n".join(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in items)
    return f"<dl>\n{rows}\n</dl>"


def _h_cell(text: str, numeric: bool) -> str:
    return f'<td class="num">{html.escape(text)}</td>' if numeric else f"<td>{html.escape(text)}</td>"


def _h_table(table: Table, numeric: Sequence[int] = ()) -> str:
    e = html.escape
    head = "".join(f'<th scope="col">{e(h)}</th>' for h in table.headers)
    rows = []
    for i, row in enumerate(table.rows):
        cls = table.row_classes[i] if i < len(table.row_classes) else ""
        cells = "".join(_h_cell(c, j in numeric) for j, c in enumerate(row))
        rows.append(f'<tr class="{e(cls)}">{cells}</tr>' if cls else f"<tr>{cells}</tr>")
    return "<table>\n<thead><tr>" + head + "</tr></thead>\n<tbody>\n" + "\n".join(rows) + "\n</tbody>\n</table>"


def _h_note(text: str, cls: str = "note") -> str:
    return f'<p class="{cls}">{html.escape(text)}</p>'


def render_html(built: BuildReport | Mapping[str, JSONValue]) -> str:
    """The report as one self-contained, deterministic HTML page (inline CSS and SVG, no script)."""
    report = as_json_object(built)
    e = html.escape
    name, target, scheme = _name(report), _target(report), _scheme(report)
    title = f"{name}: {target}, {scheme}"
    out: list[str] = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="color-scheme" content="light dark">',
        f"<title>{e(title)} - espdl_streaming quality report</title>",
        f"<style>\n{_CSS}\n</style>",
        "</head>",
        "<body>",
        "<header>",
        f'<h1 id="title">{e(name)}</h1>',
        f'<p class="sub">Streaming ESP-DL model for <b>{e(target)}</b>, quantization <b>{e(scheme)}</b>: '
        "espdl_streaming quality report</p>",
        "</header>",
    ]

    # 1. Declaration
    out.append('<section id="declaration">\n<h2>Declaration</h2>')
    out.append(_h_items(declaration_items(report)))
    out.extend(_h_note(f"warning: {w}", "warning") for w in warnings(report))
    out.append("</section>")

    # 2. Verdicts
    out.append('<section id="verdicts">\n<h2>Verdicts</h2>\n<ul class="verdicts">')
    for v in verdicts(report):
        out.append(
            f'<li><span class="badge {e(v.status)}">{e(v.word)}</span>'
            f'<span class="verdict-label">{e(v.label)}</span>: {e(v.detail)}</li>'
        )
    out.append("</ul>\n</section>")

    # 3. Per-output quality
    out.append('<section id="outputs">\n<h2>Output quality against the float model</h2>')
    table = outputs_table(report)
    if table is None:
        out.append(_h_note(NOT_MEASURED))
    else:
        out.append(_h_table(table, numeric=(1, 2, 3, 4)))
        src = _eval_source(report)
        if src:
            out.append(_h_note(f"evaluated on: {src}"))
        if _quality(report).get("note"):
            out.append(_h_note(_str(_quality(report).get("note"))))
    out.append("</section>")

    # 4. Per-layer SNR
    out.append('<section id="layers">\n<h2>Per-layer SNR</h2>')
    bars = layer_bars(report)
    if not bars:
        out.append(_h_note(NOT_MEASURED))
    else:
        gate = _gate_db(report)
        marker = (gate, f"gate {gate:g} dB") if gate is not None else None
        axis = _snr_axis_max(bars, gate)
        out.append(svg_bar_chart(bars, axis_max=axis, unit="dB", title=f"SNR of each layer of {name}", marker=marker))
        note = f"{len(bars)} layers in graph order; the scale ends at {axis:g} dB, 'exact' is bit-exact"
        if gate is not None:
            below = sum(1 for b in bars if b.value is not None and b.value < gate)
            note += f"; {below} layer(s) below the {gate:g} dB gate"
        out.append(_h_note(note))
        worst = worst_layers(report)
        if worst.rows:
            out.append("<h3>Worst layers</h3>")
            out.append(_h_table(worst, numeric=tuple(range(1, len(worst.headers)))))
    out.append("</section>")

    # 5. Saturation
    out.append('<section id="saturation">\n<h2>Saturation</h2>')
    sat = saturation_table(report)
    if sat is None:
        out.append(_h_note(NOT_MEASURED))
    elif not sat.rows:
        out.append(_h_note("none: no tensor saturated on the evaluation data"))
    else:
        out.append(_h_table(sat, numeric=(1, 2)))
    out.append("</section>")

    # 6. Automatic mixed precision
    out.append('<section id="auto">\n<h2>Automatic mixed precision</h2>')
    auto = auto_section(report)
    if auto is None:
        out.append(_h_note("not used" if _quality(report) else NOT_MEASURED))
    else:
        out.append(_h_items(auto[0]))
        if auto[1].rows:
            out.append(_h_table(auto[1], numeric=tuple(range(2, len(auto[1].headers)))))
    out.append("</section>")

    # 7. Footprint
    out.append('<section id="footprint">\n<h2>Footprint</h2>')
    out.append(_h_items(footprint_items(report)))
    rb = ram_bars(report)
    if rb:
        top = max((b.value for b in rb if b.value is not None), default=1.0)
        out.append("<h3>RAM per node</h3>")
        out.append(svg_bar_chart(rb, axis_max=_nice_max(top), unit="bytes", title=f"RAM per node of {name}"))
    out.append("</section>")

    # 8. Speech front end (only for models with one)
    if _frontend(report):
        out.append('<section id="frontend">\n<h2>Speech front end</h2>')
        out.append(_h_items(frontend_items(report)))
        out.append("<h3>Configuration</h3>")
        out.append(_h_table(frontend_config_table(report)))
        cost_table = frontend_cost_table(report)
        if cost_table is None:
            out.append(_h_note(f"cost and RAM: {NOT_MEASURED}"))
        else:
            out.append("<h3>Cost per second of audio</h3>")
            fb = frontend_cost_bars(report)
            if fb:
                top = max((b.value for b in fb if b.value is not None), default=1.0)
                out.append(
                    svg_bar_chart(fb, axis_max=_nice_max(top), unit="MACs/s", title=f"MACs per second of audio, {name}")
                )
            out.append(_h_table(cost_table, numeric=(1, 2, 3, 4)))
            out.append(
                _h_note(
                    "per frame as dl::audio's process_frame computes it, times the frames per second; a MAC is a "
                    "real multiplication with its accumulation; the model: MACs per chunk x frames per second / "
                    "chunk frames"
                )
            )
            ram_table = frontend_ram_table(report)
            if ram_table is not None:
                out.append("<h3>RAM</h3>")
                out.append(_h_table(ram_table, numeric=(2,)))
                out.append(
                    _h_note(
                        "heap (init): what dl::audio's constructors allocate when the class is initialised (the "
                        "allocator's overhead comes on top); class members: the generated class's own buffers"
                    )
                )
        out.append("</section>")

    versions = [
        f"espdl_streaming {report['espdl_streaming_version']}" if report.get("espdl_streaming_version") else "",
        f"esp-ppq {report['esp_ppq_version']}" if report.get("esp_ppq_version") else "",
        f"ESP-DL {report['espdl_versions']}" if report.get("espdl_versions") else "",
        f"model sha256 {report['espdl_sha256']}" if report.get("espdl_sha256") else "",
    ]
    footer = "; ".join(_str(v) for v in versions if v)
    out.append(f"<footer>{e(footer)}</footer>" if footer else "<footer></footer>")
    out.append("</body>\n</html>\n")
    return "\n".join(out)


# --------------------------------------------------------------------------------------------
# Text


def _t_wrap(text: str, indent: str = "  ", width: int = TEXT_WIDTH) -> list[str]:
    return textwrap.wrap(
        _ascii(text), width=width, initial_indent=indent, subsequent_indent=indent + "  ", break_on_hyphens=False
    ) or [indent.rstrip()]


def _t_table(table: Table, indent: str = "  ", width: int = TEXT_WIDTH) -> list[str]:
    rows = [[_ascii(c) for c in r] for r in table.rows]
    heads = [_ascii(h) for h in table.headers]
    widths = [max([len(heads[j])] + [len(r[j]) for r in rows]) for j in range(len(heads))]
    gap = 2
    # Shrink the widest columns (names) until the table fits.
    while len(indent) + sum(widths) + gap * (len(widths) - 1) > width:
        j = max(range(len(widths)), key=lambda k: widths[k])
        if widths[j] <= 8:
            break
        widths[j] -= 1
    lines = []
    for r in [heads, *rows]:
        cells = [_shorten(c, widths[j]).ljust(widths[j]) for j, c in enumerate(r)]
        lines.append((indent + (" " * gap).join(cells)).rstrip())
    return lines


def _t_items(items: Sequence[tuple[str, str]]) -> list[str]:
    pad = max((len(k) for k, _ in items), default=0)
    lines: list[str] = []
    for k, v in items:
        lines.extend(_t_wrap(f"{k.ljust(pad)}  {v}"))
    return lines


def render_text(built: BuildReport | Mapping[str, JSONValue]) -> str:
    """The same content as the page, compact, for a terminal: plain ASCII, lines <= 100 characters."""
    report = as_json_object(built)
    name, target, scheme = _name(report), _target(report), _scheme(report)
    lines: list[str] = _t_wrap(f"{name}: {target}, {scheme} -- quality report", indent="")
    lines.append("declaration")
    lines.extend(_t_items(declaration_items(report)))
    for w in warnings(report):
        lines.extend(_t_wrap(f"warning: {w}"))

    lines.append("verdicts")
    for v in verdicts(report):
        lines.extend(_t_wrap(f"[{v.word}] {v.label}: {v.detail}"))

    table = outputs_table(report)
    lines.append("outputs against the float model" + ("" if table is not None else f": {NOT_MEASURED}"))
    if table is not None:
        lines.extend(_t_table(table))
        src = _eval_source(report)
        if src:
            lines.extend(_t_wrap(f"evaluated on: {src}"))

    bars = layer_bars(report)
    worst = worst_layers(report)
    gate = _gate_db(report)
    if not bars:
        lines.append(f"layers: {NOT_MEASURED}")
    else:
        below = (
            f", {sum(1 for b in bars if b.value is not None and b.value < gate)} below the {gate:g} dB gate"
            if gate is not None
            else ""
        )
        head = f"layers: {len(bars)} in the graph{below}"
        lines.append(f"{head}; worst:" if worst.rows else head)
        if worst.rows:
            lines.extend(_t_table(worst))

    sat = saturation_table(report)
    if sat is None:
        lines.append(f"saturation: {NOT_MEASURED}")
    elif not sat.rows:
        lines.append("saturation: none")
    else:
        lines.append("saturation")
        lines.extend(_t_table(sat))

    auto = auto_section(report)
    if auto is None:
        lines.append("automatic mixed precision: " + ("not used" if _quality(report) else NOT_MEASURED))
    else:
        lines.append("automatic mixed precision")
        lines.extend(_t_items(auto[0]))
        if auto[1].rows:
            lines.extend(_t_table(auto[1]))

    lines.append("footprint")
    lines.extend(_t_items(footprint_items(report)))
    if _frontend(report):
        lines.append("speech front end")
        lines.extend(_t_items(frontend_items(report)))
        set_fields = [row for row in frontend_config_table(report).rows if row[3] == "set"]
        lines.extend(_t_wrap("set: " + ", ".join(f"{row[0]}={row[2]}" for row in set_fields)))
        cost_table = frontend_cost_table(report)
        if cost_table is not None:
            lines.append("  cost per second of audio")
            lines.extend(_t_table(Table(cost_table.headers[:5], [r[:5] for r in cost_table.rows]), indent="    "))
        ram_table = frontend_ram_table(report)
        if ram_table is not None:
            lines.append("  RAM")
            lines.extend(_t_table(Table(ram_table.headers[:3], [r[:3] for r in ram_table.rows]), indent="    "))
    return "\n".join(line[:TEXT_WIDTH] for line in lines) + "\n"


# --------------------------------------------------------------------------------------------
# Command line: python -m espdl_streaming report NAME.report.json [--html OUT.html] [--quiet]


class _ArgError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise _ArgError(message)


def _report_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="python -m espdl_streaming report",
        description="Write the human-readable quality page NAME.report.html of a build's NAME.report.json "
        "(self-contained: no network, no script) and print its text version.",
    )
    p.add_argument("report", type=Path, metavar="NAME.report.json", help="the report written by build")
    p.add_argument("--html", type=Path, metavar="OUT.html", help="where to write the page (default: next to the JSON)")
    p.add_argument("--quiet", action="store_true", help="print only the page's path (and errors)")
    return p


_FIX = "pass the NAME.report.json that `python -m espdl_streaming build` writes in its --out-dir"


def load_report(path: Path) -> dict[str, Any]:
    """The report at `path`; ReportInputError with the reason and the fix."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ReportInputError(f"no such file: {_FIX}") from None
    except IsADirectoryError:
        raise ReportInputError(f"is a directory, not a report file: {_FIX}") from None
    except OSError as exc:
        raise ReportInputError(f"cannot read it ({exc.strerror or exc}): {_FIX}") from None
    try:
        report = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ReportInputError(f"not JSON (not UTF-8 text): {_FIX}") from None
    except json.JSONDecodeError as exc:
        raise ReportInputError(f"not JSON ({exc.msg} at line {exc.lineno} column {exc.colno}): {_FIX}") from None
    if not isinstance(report, dict):
        raise ReportInputError(f"not an espdl_streaming report (a JSON {type(report).__name__}, not an object): {_FIX}")
    missing = [k for k in ("name", "streaming") if k not in report]
    if missing:
        keys = " and ".join(f'"{k}"' for k in missing)
        raise ReportInputError(f"not an espdl_streaming report (no {keys} key): {_FIX}")
    return report


def default_html_path(report_path: Path) -> Path:
    """NAME.report.json -> NAME.report.html in the same directory (other names: STEM.report.html)."""
    file = report_path.name
    base = file[: -len(".report.json")] if file.endswith(".report.json") else report_path.stem
    return report_path.with_name(f"{base}.report.html")


def write_atomic(path: Path, data: bytes) -> bool:
    """Write `data` to `path` through a temporary file in the same directory and a rename; leave an
    identical file untouched.  Returns whether the file changed."""
    try:
        if path.read_bytes() == data:
            return False
    except OSError:
        pass
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return True


def main_report(argv: list[str]) -> int:
    """``report NAME.report.json [--html OUT.html] [--quiet]``: write the page, print the text.
    User mistakes print ``error: <file>: <reason and fix>`` to stderr, write nothing and return 2."""
    parser = _report_parser()
    try:
        args = parser.parse_args(argv)
    except _ArgError as exc:
        parser.print_usage(sys.stderr)
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else 0
    src: Path = args.report
    try:
        report = load_report(src)
    except ReportInputError as exc:
        print(f"error: {src}: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    out: Path = args.html if args.html is not None else default_html_path(src)
    if not out.parent.is_dir():
        print(
            f"error: {out}: the directory {out.parent} does not exist: create it or pass another --html path",
            file=sys.stderr,
        )
        return EXIT_USER_ERROR
    if out.is_dir():
        print(f"error: {out}: is a directory: pass a file path to --html", file=sys.stderr)
        return EXIT_USER_ERROR
    page = render_html(report).encode("utf-8")
    text = "" if args.quiet else render_text(report)
    try:
        write_atomic(out, page)
    except OSError as exc:
        print(f"error: {out}: cannot write the page ({exc.strerror or exc}): pass another --html path", file=sys.stderr)
        return EXIT_USER_ERROR
    if text:
        sys.stdout.write(text)
    print(f"report page: {out}")
    return 0
