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

from espdl_streaming.audio.config import FrontendConfig
from espdl_streaming.audio.cost import frontend_cost, frontend_report
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
    report["frontend"] = _frontend_section(FrontendConfig(num_mel_bins=40, window_type="povey", low_freq=20))
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
    assert dom.count("<svg") == 3  # per-layer SNR, RAM per node, the front end's MACs per second
    layers = report["quality"]["layers"]
    stages = report["frontend"]["cost"]["stages"]
    assert dom.count("<rect") >= len(layers) + len(report["streaming"]["caches"]) + len(stages) + 2
    assert '<section id="frontend">' in dom and "Speech front end" in dom and "590100" in dom
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


# ---------------------------------------------------------------- the speech front end (FRONTEND)


def _frontend_section(config: FrontendConfig, macs_per_chunk: int = 6704, chunk_frames: int = 3) -> dict[str, Any]:
    """The report's `frontend` section as build._frontend_report writes it (no model built)."""
    section = frontend_report(config, False, macs_per_chunk, chunk_frames).to_dict()
    return json.loads(json.dumps(section))  # as the JSON file holds it


def _rows(section: str, heading: str) -> list[list[str]]:
    """The cells of the table after <h3>heading</h3>."""
    table = section[section.index(f"<h3>{heading}</h3>") :]
    table = table[: table.index("</table>")]
    return [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in re.findall(r"<tr[^>]*>(.*?)</tr>", table)[1:]]


def test_frontend_section(report: dict[str, Any]) -> None:
    config = FrontendConfig(num_mel_bins=40, window_type="povey", low_freq=20)
    report["frontend"] = _frontend_section(config)
    page = render_html(report)
    ids = re.findall(r'<section id="([a-z]+)">', page)
    assert ids == ["declaration", "verdicts", "outputs", "layers", "saturation", "auto", "footprint", "frontend"]
    assert page.count("<svg") == 3
    fe = _section(page, "frontend")
    assert "<h2>Speech front end</h2>" in fe
    for item in ("fbank (dl::audio::Fbank)", "400 samples every 160 (25/10 ms), FFT of 512 points", "16000 Hz"):
        assert item in fe, item
    # every field of the configuration, with its option, value and whether it was set
    rows = {r[0]: r[1:] for r in _rows(fe, "Configuration")}
    assert list(rows) == list(FrontendConfig.__dataclass_fields__)
    assert rows["kind"] == ["FRONTEND", "fbank", "set"]
    assert rows["num_mel_bins"] == ["NUM_MEL_BINS", "40", "set"]
    assert rows["window_type"] == ["WINDOW", "povey", "set"] and rows["low_freq"][2] == "set"
    assert rows["sample_rate"] == ["SAMPLE_RATE", "16000", "default"]
    assert rows["use_int16_fft"] == ["-", "OFF", "default"]
    assert rows["num_ceps"][2] == "not read by fbank"
    assert sum(1 for r in rows.values() if r[2] == "set") == 4
    # cost per second of audio: each stage, the front end, the model
    cost = {r[0]: r[1:] for r in _rows(fe, "Cost per second of audio")}
    assert list(cost) == ["dc_removal", "preemphasis", "window", "fft", "spectrum", "mel", "log", "front end", "model"]
    assert cost["fft"][:4] == ["409600", "614600", "0", "0"] and "radix-4" in cost["fft"][4]
    assert cost["log"][2] == "4000"
    total = sum(int(r[0]) for name, r in cost.items() if name not in ("front end", "model"))
    assert cost["front end"][0] == str(total) == "590100"
    assert cost["model"][0] == "223467" and "6704 MACs per chunk of 3 frames" in cost["model"][4]
    assert "0.59 M (2.64x the model&#x27;s 0.223 M)" in fe
    report["macs_per_chunk"] = 6704 * 10
    report["frontend"] = _frontend_section(config, macs_per_chunk=6704 * 10)
    assert "0.59 M (26% of the model&#x27;s 2.23 M)" in _section(render_html(report), "frontend")
    # RAM: each allocation, heap (init) and class members, the totals
    ram = {r[0]: r[1:] for r in _rows(fe, "RAM")}
    assert ram["fft_table"][:2] == ["heap (init)", "4096"] and ram["frame_buffer"][:2] == ["class members", "1600"]
    heap = sum(int(r[1]) for r in ram.values() if r[0] == "heap (init)")
    members = sum(int(r[1]) for r in ram.values() if r[0] == "class members")
    assert (ram["heap (init)"][1], ram["class members"][1], ram["total"][1]) == (
        str(heap), str(members), str(heap + members),
    )  # fmt: skip
    assert heap + members == frontend_cost(config).ram_bytes == 13964


def test_frontend_section_of_each_kind(report: dict[str, Any]) -> None:
    report["frontend"] = _frontend_section(FrontendConfig(kind="mfcc", cepstral_lifter=0.0))
    fe = _section(render_html(report), "frontend")
    rows = {r[0]: r[1:] for r in _rows(fe, "Configuration")}
    assert rows["use_power"][2] == "not read by mfcc" and rows["cepstral_lifter"] == ["CEPSTRAL_LIFTER", "0.0", "set"]
    stages = [r[0] for r in _rows(fe, "Cost per second of audio")]
    assert stages[-4:] == ["log", "dct", "front end", "model"]  # no lifter
    assert "dct_matrix" in fe and ">lifter<" not in fe
    report["frontend"] = _frontend_section(FrontendConfig(kind="spectrogram"), macs_per_chunk=0)
    fe = _section(render_html(report), "frontend")
    assert "mel" not in [r[0] for r in _rows(fe, "Cost per second of audio")]
    assert "the model has no MACs" in fe


def test_frontend_section_is_escaped_and_degrades(report: dict[str, Any]) -> None:
    section = _frontend_section(FrontendConfig())
    section["cost"]["stages"][0]["detail"] = EVIL
    section["cost"]["ram"][0]["item"] = EVIL
    section["config"]["window_type"] = EVIL
    report["frontend"] = section
    page = render_html(report)
    assert "<img" not in page and page.count("&lt;img src=x onerror=alert(1)&gt;") >= 3
    del section["cost"]  # a report written before the cost was counted
    page = render_html(report)
    fe = _section(page, "frontend")
    assert "cost and RAM: not measured" in fe and "<h3>Configuration</h3>" in fe
    assert page.count("<svg") == 2
    report["frontend"] = {"kind": "fbank"}  # and nothing else
    assert "Speech front end" in render_html(report)
    assert "speech front end" in render_text(report)


def test_frontend_text_version(report: dict[str, Any]) -> None:
    report["frontend"] = _frontend_section(FrontendConfig(kind="mfcc", num_mel_bins=40))
    text = render_text(report)
    tail = text[text.index("speech front end") :]
    for expect in ("mfcc (dl::audio::MFCC)", "set: kind=mfcc, num_mel_bins=40", "cost per second of audio", "RAM"):
        assert expect in tail, expect
    assert re.search(r"^    dct\s+52000\s", tail, re.M)  # 13 x 40 per frame, 100 frames/s
    assert re.search(r"^    total\s+\d+$", tail, re.M)
    text.encode("ascii")
    assert max(len(line) for line in text.splitlines()) <= 100


def test_report_without_frontend_has_no_section(report: dict[str, Any]) -> None:
    assert "frontend" not in report
    page = render_html(report)
    assert 'id="frontend"' not in page and "Speech front end" not in page
    assert "speech front end" not in render_text(report)
