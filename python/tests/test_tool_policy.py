"""The tests' policy for a missing external tool (conftest.require_tool) and the tier markers."""

from __future__ import annotations

from pathlib import Path

import conftest
import pytest
from conftest import REQUIRE_TOOLS_ENV, TOOLS, require_tool

HERE = Path(__file__).resolve().parent


@pytest.fixture
def fake_tools(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(TOOLS, "there", (lambda: "/usr/bin/there", "never shown"))
    monkeypatch.setitem(TOOLS, "absent", (lambda: None, "apt-get install absent"))
    monkeypatch.delenv(REQUIRE_TOOLS_ENV, raising=False)


@pytest.mark.usefixtures("fake_tools")
def test_a_found_tool_is_returned() -> None:
    assert require_tool("there") == "/usr/bin/there"


@pytest.mark.usefixtures("fake_tools")
def test_a_missing_tool_skips_naming_the_fix() -> None:
    with pytest.raises(pytest.skip.Exception, match=r"absent is not available: apt-get install absent"):
        require_tool("absent")


@pytest.mark.usefixtures("fake_tools")
@pytest.mark.parametrize("value", ["absent", "cmake, absent", "all", " all "])
def test_a_missing_tool_fails_when_the_environment_requires_it(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(REQUIRE_TOOLS_ENV, value)
    with pytest.raises(pytest.fail.Exception, match=rf"apt-get install absent \({REQUIRE_TOOLS_ENV} requires it\)"):
        require_tool("absent")


@pytest.mark.usefixtures("fake_tools")
def test_requiring_another_tool_still_skips(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(REQUIRE_TOOLS_ENV, "chromium,cmake")
    with pytest.raises(pytest.skip.Exception):
        require_tool("absent")


def test_every_tool_names_its_fix() -> None:
    assert {"c++", "g++", "cmake", "ninja", "assemblers", "chromium", "kaldi-native-fbank", "idf"} <= set(TOOLS)
    for name, (_, fix) in TOOLS.items():
        assert fix and name not in ("all", ""), name


def test_the_tiers_name_existing_modules() -> None:
    modules = {p.stem for p in HERE.glob("test_*.py")}
    assert conftest.FAST_MODULES <= modules, "conftest.FAST_MODULES names a module that is gone"
    assert set(conftest.MODULE_MARKERS) <= modules


def test_this_module_is_in_the_fast_tier(request: pytest.FixtureRequest) -> None:
    assert request.node.get_closest_marker("slow") is None
