"""Facts several stages share live once, in espdl_streaming/facts.py; the copies other languages need
(CMake's configure-time checks) are held equal to it here."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from conftest import REPO

from espdl_streaming import facts

PACKAGE = REPO / "python" / "espdl_streaming"


def test_cmake_knows_the_same_cpp_keywords() -> None:
    text = (REPO / "cmake" / "espdl_streaming.cmake").read_text()
    block = re.search(r"set\(keywords\s+(.*?)\)", text, re.S)
    assert block is not None
    assert set(block.group(1).split()) == set(facts.CPP_KEYWORDS)


def test_facts_imports_nothing_of_the_package() -> None:
    tree = ast.parse((PACKAGE / "facts.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0 and not (node.module or "").startswith("espdl_streaming"), ast.dump(node)


def test_each_fact_is_defined_once() -> None:
    """No other module of the package assigns these names (a second definition would drift)."""
    names = {"CHIP_TO_PPQ_TARGET", "Rounding", "HALF_EVEN_TARGETS", "CPP_KEYWORDS",
             "STATE_INPUT_PREFIX", "STATE_OUTPUT_PREFIX", "META_STATE_INITIAL", "META_STATE_OUTPUT",
             "RECURRENT_STATE_SLOTS", "OUTPUT_TIME_AXIS_PREFIX", "GATHER_FROM_END_PREFIX"}  # fmt: skip
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "facts.py":
            continue
        tree = ast.parse(path.read_text())
        assigned = {t.id for n in ast.walk(tree) if isinstance(n, ast.Assign) for t in n.targets
                    if isinstance(t, ast.Name)}  # fmt: skip
        assigned |= {n.target.id for n in ast.walk(tree) if isinstance(n, ast.AnnAssign)
                     and isinstance(n.target, ast.Name)}  # fmt: skip
        assert not names & assigned, f"{path.relative_to(REPO)} defines {sorted(names & assigned)}"
    # Literal copies of the chip rounding table or the state prefixes elsewhere in the package.
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "facts.py":
            continue
        text = path.read_text()
        assert '"state_in_"' not in text and '"state_out_"' not in text, path
        assert 'frozenset({"esp32p4", "esp32s31"})' not in text, path


def test_rounding_follows_the_chip_table() -> None:
    assert {c for c in facts.CHIP_TO_PPQ_TARGET if facts.rounding_for_target(c) == "half_even"} == {
        "esp32p4",
        "esp32s31",
    }
    assert facts.rounding_for_target("ESP32P4") == "half_even"
    assert set(facts.ROUNDINGS) == {"half_even", "half_up"}


def test_declaration_and_codegen_use_the_shared_keywords(tmp_path: Path) -> None:
    from espdl_streaming import codegen, declaration

    assert codegen._CPP_KEYWORDS is facts.CPP_KEYWORDS
    for word in ("class", "co_await", "xor_eq"):
        try:
            declaration.validate_name(word)
        except declaration.DeclarationError as exc:
            assert "not a C++ keyword" in str(exc)
        else:
            raise AssertionError(f"{word} accepted as a model name")


def test_error_classes_live_in_errors_py() -> None:
    """Every public exception class of the package is defined in errors.py (private helpers aside)."""
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                bases = {b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases}
                is_error = node.name.endswith("Error") or any(b.endswith(("Error", "Exception")) for b in bases)
                assert not is_error, f"{path.relative_to(REPO)}: class {node.name} belongs in errors.py"
