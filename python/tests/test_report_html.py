"""The quality page NAME.report.html and its text version (report_html.py), and the `report` command."""

from __future__ import annotations

import copy
import json
import re
import struct
import subprocess
import zlib
from pathlib import Path
from typing import Any

import pytest

from espdl_streaming.report import BuildReport
from espdl_streaming.report_html import main_report, render_html, render_text

SAMPLE = Path(__file__).resolve().parent / "data" / "report_sample.json"
EVIL = "<img src=x onerror=alert(1)>"


@pytest.fixture
def report() -> dict[str, Any]:
    """A real build report of examples/tcn (esp32p4, 8-bit) with a synthetic `quality` block."""
    data: dict[str, Any] = json.loads(SAMPLE.read_text())
    return data


def _section(page: str, section_id: str) -> str:
    match = re.search(rf'<section id="{section_id}">(.*?)</section>', page, re.S)
    assert match, f"no section {section_id}"
    return match.group(1)


def test_page_is_self_contained(report: dict[str, Any]) -> None:
    page = render_html(report)
    for forbidden in ("http://", "https://", "<script", "<link", "@import", "url(", " src="):
        assert forbidden not in page.lower(), forbidden
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    assert "@media (prefers-color-scheme: dark)" in page
    assert page.count("<svg") == 2  # per-layer SNR and RAM per node
    ids = re.findall(r'<section id="([a-z]+)">', page)
    assert ids == ["declaration", "verdicts", "outputs", "layers", "saturation", "auto", "footprint"]


def test_every_report_string_is_escaped(report: dict[str, Any]) -> None:
    report["name"] = EVIL
    report["command_line"] = f"build --name '{EVIL}'"
    q = report["quality"]
    q["eval_source"] = EVIL
    q["outputs"][0]["name"] = EVIL
    q["worst_output"] = EVIL
    q["layers"][0]["name"] = EVIL
    q["worst_layers"][0] = EVIL
    q["saturated"][0]["name"] = EVIL
    q["auto"]["promoted"] = [EVIL]
    report["streaming"]["caches"][0]["variable"] = EVIL
    page = render_html(report)
    assert "<img" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    # The malicious layer is still the worst one and still drawn.
    assert page.count('class="bar worst"') == 3


def test_page_and_text_are_deterministic(report: dict[str, Any]) -> None:
    again = json.loads(json.dumps(report))
    assert render_html(report) == render_html(again)
    assert render_text(report) == render_text(again)


def test_verdicts_and_tables(report: dict[str, Any]) -> None:
    page = render_html(report)
    verdicts = _section(page, "verdicts")
    assert verdicts.count('class="badge pass"') == 3
    assert "8 chunks checked" in verdicts and "26.6 dB" in verdicts
    outputs = _section(page, "outputs")
    assert "31.2 dB" in outputs and "97.0%" in outputs and "held-out calibration" in outputs
    assert "1.30%" in _section(page, "saturation") and "12 / 900" in _section(page, "saturation")
    auto = _section(page, "auto")
    assert "/blocks/blocks.1/pointwise/Conv" in auto and "+576 B" in auto
    footprint = _section(page, "footprint")
    for value in ("19680 B", "184 B", "11 frames", "2 frames", "6704", "0.954"):
        assert value in footprint, value
    assert footprint.count('<rect class="bar') == len(report["streaming"]["caches"])
    assert "examples/tcn/model.py:build" in _section(page, "declaration")


def test_worst_layers_are_marked(report: dict[str, Any]) -> None:
    layers = _section(render_html(report), "layers")
    q = report["quality"]
    assert layers.count('<rect class="track"') == len(q["layers"])
    drawn = [x for x in q["layers"] if x["snr_db"] is not None]
    assert layers.count('<rect class="bar') == len(drawn)
    assert layers.count('<rect class="bar worst"') == 3
    assert layers.count("dB  worst</text>") == 3
    assert "exact/undefined" in layers  # the layer with a null SNR
    assert ">exact</text>" in layers  # 200 dB
    table = layers[layers.index("<h3>Worst layers</h3>") :]
    assert table.count("<tr><td>") == 3 and "layer alone quantized" in table
    for name in q["worst_layers"]:
        assert f"<td>{name}</td>" in table


def test_gate_line_only_when_set(report: dict[str, Any]) -> None:
    layers = _section(render_html(report), "layers")
    assert layers.count('<line class="marker"') == 1 and "gate 30 dB" in layers
    report["quality"]["gate"] = {"min_snr_db": None, "passed": None, "strict": False}
    page = render_html(report)
    assert 'class="marker"' not in page
    assert "NOT SET" in _section(page, "verdicts")
    report["quality"]["gate"] = {"min_snr_db": 35.0, "passed": False, "strict": True}
    page = render_html(report)
    assert 'class="badge fail">FAIL</span><span class="verdict-label">quality gate' in page
    assert "gate 35 dB" in page


@pytest.mark.parametrize("quality", ["absent", "empty"])
def test_sections_degrade_without_quality(report: dict[str, Any], quality: str) -> None:
    if quality == "absent":
        del report["quality"]
    else:
        report["quality"] = {}  # what a build that measured nothing writes
    page = render_html(report)
    for section in ("outputs", "layers", "saturation", "auto"):
        assert "not measured" in _section(page, section), section
    assert "8-bit" in page  # the scheme falls back to the bits
    assert page.count("<svg") == 1  # only RAM per node
    text = render_text(report)
    assert "[N/A] quality gate: not measured" in text
    assert "layers: not measured" in text


def test_build_warnings_are_shown(report: dict[str, Any]) -> None:
    report["warnings"] = ["tcn: tensor '/x' saturates on 1.3% of the evaluation values"]
    assert "warning: tcn: tensor &#x27;/x&#x27; saturates" in _section(render_html(report), "declaration")
    assert "  warning: tcn: tensor '/x' saturates" in render_text(report)


def test_minimal_report_renders() -> None:
    minimal: dict[str, Any] = {"name": "m", "streaming": {}}
    page = render_html(minimal)
    assert "<h1" in page and "not measured" in _section(page, "footprint")
    assert "<svg" not in page
    assert render_text(minimal).startswith("m: ")


def test_text_version(report: dict[str, Any]) -> None:
    text = render_text(report)
    assert "[PASS] streaming verified" in text and "[PASS] quality gate" in text
    worst = next(o for o in report["quality"]["outputs"] if o["name"] == report["quality"]["worst_output"])
    assert re.search(rf"^  {worst['name']}\s+{worst['snr_db']:.1f} dB", text, re.M)
    for name in report["quality"]["worst_layers"]:
        assert name in text
    assert "/blocks/blocks.1/Add_output_0" in text  # saturation
    assert "19680 B" in text
    # Plain ASCII and short lines, even with long and non-ASCII names.
    report["name"] = "mod\u00e8le_" + "x" * 150
    report["quality"]["layers"][0]["name"] = "/\u00fc" * 80
    report["quality"]["worst_layers"][0] = "/\u00fc" * 80
    text = render_text(report)
    text.encode("ascii")
    assert max(len(line) for line in text.splitlines()) <= 100


def _write(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


def test_report_command_writes_the_page(report: dict[str, Any], tmp_path: Path, capsys: Any) -> None:
    src = _write(tmp_path / "tcn.report.json", report)
    assert main_report([str(src)]) == 0
    out = capsys.readouterr().out
    page = tmp_path / "tcn.report.html"
    assert page.read_text() == render_html(report)
    assert out == render_text(report) + f"report page: {page}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tcn.report.html", "tcn.report.json"]  # no temp left
    other = tmp_path / "sub" / "page.html"
    other.parent.mkdir()
    assert main_report([str(src), "--html", str(other), "--quiet"]) == 0
    assert capsys.readouterr().out == f"report page: {other}\n"
    assert other.read_bytes() == page.read_bytes()


@pytest.mark.parametrize(
    ("content", "expect"),
    [
        (None, "no such file"),
        ("{not json", "not JSON"),
        ('{"name": "x", "target": "esp32p4"}', 'not an espdl_streaming report (no "streaming" key)'),
        ("[1, 2]", "not an espdl_streaming report"),
    ],
)
def test_report_command_errors(tmp_path: Path, capsys: Any, content: str | None, expect: str) -> None:
    src = tmp_path / "x.report.json"
    if content is not None:
        src.write_text(content)
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main_report([str(src)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"error: {src}: {expect}")
    assert "NAME.report.json" in captured.err  # the fix
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written


def test_report_command_bad_html_dir(report: dict[str, Any], tmp_path: Path, capsys: Any) -> None:
    src = _write(tmp_path / "tcn.report.json", report)
    assert main_report([str(src), "--html", str(tmp_path / "missing" / "p.html")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tcn.report.json"]


# --------------------------------------------------------------------------------------------
# A real browser renders the page.


def _png_size_and_distinct_rows(png: bytes) -> tuple[int, int, int]:
    """(width, height, distinct filtered scanlines): a blank single-colour image has a handful at most."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height, stride = 8, b"", 0, 0, 0
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind, body = png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
            channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[colour]
            stride = 1 + (width * channels * depth + 7) // 8
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    assert len(raw) == stride * height
    rows = {raw[i : i + stride] for i in range(0, len(raw), stride)}
    return width, height, len(rows)


def _headless(browser: str, profile: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", f"--user-data-dir={profile}", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )


def test_browser_renders_the_page(report: dict[str, Any], tmp_path: Path, chromium: str) -> None:
    browser = chromium  # chromium, chromium-browser or google-chrome (conftest.require_tool)
    report["name"] = "tcn_browser_check"
    page = tmp_path / "tcn.report.html"
    page.write_text(render_html(report))
    shot = tmp_path / "shot.png"
    url = page.as_uri()
    # Both at once (about a second each).
    dom_run = _headless(browser, tmp_path / "p1", "--dump-dom", url)
    shot_run = _headless(
        browser, tmp_path / "p2", "--hide-scrollbars", f"--screenshot={shot}", "--window-size=1200,2000", url
    )
    dom = dom_run.communicate(timeout=60)[0].decode("utf-8", "replace")
    shot_run.communicate(timeout=60)
    assert dom_run.returncode == 0 and shot_run.returncode == 0

    assert "tcn_browser_check" in dom
    assert dom.count("<svg") == 2
    layers = report["quality"]["layers"]
    assert dom.count("<rect") >= len(layers) + len(report["streaming"]["caches"])
    assert dom.count('<rect class="bar worst"') == 3
    assert 'class="marker"' in dom

    assert shot.is_file() and shot.stat().st_size > 10_000
    width, height, rows = _png_size_and_distinct_rows(shot.read_bytes())
    assert (width, height) == (1200, 2000)
    assert rows > 100, "the screenshot is (nearly) blank"


def test_copy_is_not_modified(report: dict[str, Any]) -> None:
    before = copy.deepcopy(report)
    render_html(report)
    render_text(report)
    assert report == before


# ---------------------------------------------------------------- the typed report (report.py)


def test_built_reports_round_trip_byte_for_byte(example_builds: dict[str, Path]) -> None:
    """BuildReport.from_json accepts exactly what a build writes and to_json gives the same bytes back."""
    for target, out in example_builds.items():
        data = (out / "tcn.report.json").read_bytes()
        report = BuildReport.from_json(data)
        assert report.to_json() == data, target
        assert report.target == target and report.streaming.verified and report.streaming.max_abs_diff == 0
        assert render_html(report) == (out / "tcn.report.html").read_text(encoding="utf-8")


def test_report_variants_round_trip(example_builds: dict[str, Path]) -> None:
    """The optional parts: partition placement, calibration data given, the per-layer simulator check."""
    data = json.loads((example_builds["esp32p4"] / "tcn.report.json").read_bytes())
    data["placement"] = {"kind": "partition", "label": "model"}
    data["calibration"] = {"source": "calib.npy", "samples": 6, "random": False}
    data["streaming"]["simulator_check"] = {"method": "layers", "outputs": 1, "layers": 9, "output_drift": "x"}
    data["streaming_to_offline_macs_ratio"] = None
    text = (json.dumps(data, indent=2) + "\n").encode()
    report = BuildReport.from_json(text)
    assert report.to_json() == text
    assert report.placement.label == "model" and report.calibration.warning is None
    assert report.streaming.simulator_check is not None and report.streaming.simulator_check.layers == 9


def test_report_of_another_format_is_refused(report: dict[str, Any]) -> None:
    """The sample is a report of an older build (a `command_line`, no `dependencies`): the typed report refuses
    it, naming the keys; the page still renders it (report_html reads reports defensively)."""
    with pytest.raises(ValueError, match=r"missing keys \['calib_algorithm', 'calib_options', 'dependencies'\]"):
        BuildReport.from_dict(report)
    assert "<html" in render_html(report)
