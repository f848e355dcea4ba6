"""The generated class's contract: what Python code and the C++ callers assume the templates declare.

``templates/model.{hpp,cpp}.j2`` are rendered (rodata, partition with and without the digest, a
recurrent state) and their class is read back; then

- the public API the README documents and test_apps/, the tests and the benchmark call is declared,
  every per-output constant codegen derives (``x``, ``x_elements``, ``x_exponent``, ``x_dtype``) too,
  and the ``esp_err_t`` methods are ``[[nodiscard]]``;
- ``glue.CLASS_NAMES`` (the names codegen keeps output identifiers away from) holds every name the
  class declares and every name from outside the class its member functions use unqualified: an
  output named like one of them would shadow it;
- every ``<model class>::name`` and ``<instance>.name(`` in the repository's C++ callers exists.

Renaming a member in a template without its users fails here, not in an ESP-IDF build.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import jinja2
import pytest
from glue_fixture import example_frontend_glue, example_glue, example_glue_dict

from espdl_streaming import codegen
from espdl_streaming.codegen import output_identifiers, render_glue
from espdl_streaming.facts import CPP_KEYWORDS
from espdl_streaming.glue import CLASS_NAMES, Glue

ROOT = Path(__file__).resolve().parents[2]

#: The class's public API, as the README documents it and the callers use it (name -> kind).
PUBLIC_METHODS = {
    "init",  # README, test_apps, test_idf.py, test_codegen.py
    "push",
    "reset",
    "self_test",
    "deinit",
    "initialized",
    "pending_frames",
    "chunks_run",
    "model",  # test_float_outputs.py binds a second runner to the loaded engine
    "spec",  # test_apps, bench/glue_bench.cpp
    "golden",  # test_codegen.py, test_float_outputs.py
}
PUBLIC_CONSTANTS = {
    "name",
    "target",
    "chunk_frames",
    "feature_dim",
    "input_dtype",
    "input_exponent",
    "input_elements",
    "output_count",
    "espdl_bytes",  # README, tests/cmake_project/check_tcn.cpp
    "cache_bytes",
    "macs_per_chunk",
    "espdl_versions",
    "state_count",  # test_apps (gru)
    "state_bytes",
    "output_index",
}
#: Methods returning esp_err_t: all [[nodiscard]] (README: every call's result is checked).
NODISCARD = {"init", "push", "reset", "self_test"}
#: Output identifiers of the models the scanned callers declare (examples/tcn, examples/gru): members of
#: those classes, not of every class.
CALLER_OUTPUTS = {"output", "output0", "output1"}


def _state_glue() -> Glue:
    glue = example_glue_dict()
    glue["states"] = [
        {
            "input": {"name": "state_in_0", "shape": [1, 2, 3], "dtype": "int16", "exponent": -7},
            "output": {"name": "state/h:0", "shape": [1, 2, 3], "dtype": "int16", "exponent": -7},
            "initial": [1, 2, 3, 4, 5, 6],
        }
    ]
    return Glue.from_dict(glue)


def _variants() -> dict[str, Glue]:
    partition = example_glue(placement={"kind": "partition", "label": "model"})
    return {
        "rodata": example_glue(),
        "partition": partition,
        "partition_without_digest": dataclasses.replace(partition, espdl=None),
        "recurrent_state": _state_glue(),
        "frontend": example_frontend_glue("mfcc", name="kws"),
    }


VARIANTS = _variants()


def _strip(code: str) -> str:
    """Code without comments and string literals."""
    code = re.sub(r"/\*.*?\*/", " ", code, flags=re.S)
    code = re.sub(r"//[^\n]*", "", code)
    return re.sub(r'"(?:\\.|[^"\\])*"', '""', code)


@dataclasses.dataclass
class RenderedClass:
    name: str
    hpp: str
    cpp: str
    body: str  # the class body, comments stripped
    public: str  # its public part
    outputs: list[str]  # the output identifiers codegen chose

    @property
    def constants(self) -> set[str]:
        return set(re.findall(r"static constexpr [^=;(]*?\b(\w+)\s*=", self.body))

    @property
    def enums(self) -> set[str]:
        names = set()
        for enum, values in re.findall(r"enum (\w+)\s*:\s*\w+\s*\{(.*?)\}", self.body, re.S):
            names.add(enum)
            names.update(re.findall(r"(\w+)\s*=", values))
        return names

    @staticmethod
    def _methods(code: str) -> set[str]:
        decl = r"^\s*(?:\[\[nodiscard\]\]\s*)?(?:static\s+)?(?:const\s+)?[\w:]+(?:\s+|\s*[*&]\s*)(\w+)\("
        return set(re.findall(decl, code, re.M))

    @property
    def methods(self) -> set[str]:
        return self._methods(self.body)

    @property
    def public_methods(self) -> set[str]:
        return self._methods(self.public)

    @property
    def data_members(self) -> set[str]:
        return set(re.findall(r"\b(m_\w+)\b", self.body))

    @property
    def declared(self) -> set[str]:
        return self.constants | self.enums | self.methods | self.data_members

    def member_functions(self) -> list[tuple[str, str, str]]:
        """(method, parameter list, body) of every member function defined in the .cpp and inline in the .hpp."""
        code = _strip(self.cpp)
        found = re.findall(
            rf"^[^\n;{{}}]*?\b{self.name}::(\w+)\(([^)]*)\)(?: const)?\n\{{\n(.*?)^\}}", code, re.S | re.M
        )
        inline = re.findall(r"\b(\w+)\(([^)]*)\)(?: const)?\s*\{([^{}]*)\}", self.body)
        return found + inline


def render(glue: Glue) -> RenderedClass:
    hpp, cpp = render_glue(glue)
    match = re.search(rf"^class {glue.name} \{{\n(.*?)^\}};", hpp, re.S | re.M)
    assert match, f"no class {glue.name} in the rendered header"
    body = _strip(match[1])
    public = body.split("private:")[0]
    return RenderedClass(glue.name, hpp, cpp, body, public, output_identifiers(list(glue.output_names), glue.name))


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def rendered(request: pytest.FixtureRequest) -> RenderedClass:
    return render(VARIANTS[request.param])


def _derived(ident: str) -> set[str]:
    return {ident, f"{ident}_elements", f"{ident}_exponent", f"{ident}_dtype"}


def test_public_api_is_declared(rendered: RenderedClass) -> None:
    assert PUBLIC_METHODS <= rendered.public_methods, PUBLIC_METHODS - rendered.public_methods
    assert PUBLIC_CONSTANTS <= rendered.constants | rendered.enums, (
        PUBLIC_CONSTANTS - rendered.constants - rendered.enums
    )
    for ident in rendered.outputs:  # codegen.output_identifiers() reserves exactly these per output
        assert _derived(ident) <= rendered.constants | rendered.enums, ident
    # espdl_crc32 exists exactly when the build knew the .espdl's bytes (README: the partition check)
    digest = "espdl_crc32" in rendered.constants
    assert digest == ("static constexpr uint32_t espdl_crc32 = 0x" in rendered.hpp)


def test_error_returning_methods_are_nodiscard(rendered: RenderedClass) -> None:
    returning = set(re.findall(r"\besp_err_t\s+(\w+)\(", rendered.public))
    nodiscard = set(re.findall(r"\[\[nodiscard\]\]\s+esp_err_t\s+(\w+)\(", rendered.public))
    # A class with a speech front end also takes PCM (push_samples).
    assert returning == nodiscard == NODISCARD | ({"push_samples"} if "push_samples" in returning else set())


def test_class_names_hold_every_declared_name(rendered: RenderedClass) -> None:
    outputs = set().union(*(_derived(i) for i in rendered.outputs))
    missing = rendered.declared - outputs - {rendered.name} - CLASS_NAMES
    assert not missing, f"declared by the class but not in glue.CLASS_NAMES (an output could take them): {missing}"


def test_class_names_hold_every_outside_name_the_members_use(rendered: RenderedClass) -> None:
    """An output identifier is a member: inside the class it hides a namespace-scope name of the same
    spelling (TAG, k_spec, load_model, ...), so those must be reserved too."""
    used: set[str] = set()
    functions = rendered.member_functions()
    assert {"init", "bind", "self_test", "deinit", "spec", "golden"} <= {f for f, _, _ in functions}
    for _, params, body in functions:
        local = {p.split()[-1].lstrip("*&") for p in params.split(",") if p.strip() and "=" not in p}
        local |= {p.split("=")[0].split()[-1].lstrip("*&") for p in params.split(",") if "=" in p}
        local |= set(re.findall(r"\b[\w:]+\s*[*&]?\s*(\w+)\s*=[^=]", body))
        tokens = set(re.findall(r"(?<![\w.>:])([A-Za-z_]\w*)", body))
        used |= tokens - local
    macros = {t for t in used if re.fullmatch(r"(ESP|ESPDL)_[A-Z0-9_]+", t)}
    outside = used - macros - CPP_KEYWORDS - rendered.declared
    missing = outside - CLASS_NAMES
    assert not missing, f"used unqualified by member functions but not in glue.CLASS_NAMES: {missing}"
    assert {"TAG", "k_spec", "k_source", "load_model", "unload_model"} <= outside  # the parse found them


def _caller_sources() -> dict[Path, str]:
    files = [
        *ROOT.joinpath("test_apps").rglob("*.cpp"),
        *ROOT.joinpath("bench").glob("*.cpp"),
        *ROOT.joinpath("tests", "cmake_project").glob("*.cpp"),
        *(f for f in ROOT.joinpath("python", "tests").glob("*.py") if f.name != Path(__file__).name),
        ROOT / "README.md",
    ]
    sources = {}
    for f in files:
        text = f.read_text(encoding="utf-8")
        if f.suffix == ".py":  # only the C++ programs the tests write
            text = "\n".join(s for s in re.findall(r'"""(.*?)"""', text, re.S) if "#include" in s)
        sources[f] = text
    return sources


def _caller_uses() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(names used as `<class>::name`, methods called as `<instance>.name(`), each with the files."""
    types = r"(?:model_t|M|model|tcn|tcn_part|gru|kws)"  # the generated classes' names and aliases there
    statics: dict[str, set[str]] = {}
    calls: dict[str, set[str]] = {}
    for path, text in _caller_sources().items():
        where = str(path.relative_to(ROOT))
        if "espdl_streaming::models" not in text and "model_t" not in text:
            continue
        for name in re.findall(rf"(?<![\w.:])(?:espdl_streaming::)?(?:models::)?{types}::(\w+)", text):
            statics.setdefault(name, set()).add(where)
        for name in re.findall(r"\bmodels::\w+::(\w+)", text):
            statics.setdefault(name, set()).add(where)
        instances = set(re.findall(rf"\b(?:espdl_streaming::models::\w+|{types}|Model)\s*&?\s*(\w+)\s*[;,)]", text))
        instances |= set(re.findall(r"static espdl_streaming::models::\w+ (\w+);", text))
        for inst in instances:
            for name in re.findall(rf"(?<![\w.>]){re.escape(inst)}\.(\w+)\(", text):
                calls.setdefault(name, set()).add(where)
    return statics, calls


def test_callers_use_declared_members() -> None:
    classes = [render(glue) for glue in VARIANTS.values()]
    declared = set().union(*(c.declared for c in classes))
    methods = set().union(*(c.public_methods for c in classes))
    statics, calls = _caller_uses()
    assert {"chunk_frames", "feature_dim", "output_count", "spec"} <= set(statics), statics  # the scan works
    assert {"init", "self_test", "push", "reset", "deinit"} <= set(calls), calls
    outputs = CALLER_OUTPUTS | {"logits", "state_h_0"}  # + the outputs of glue_fixture's model
    per_output = set().union(*(_derived(o) for o in outputs))
    unknown = {name: files for name, files in statics.items() if name not in declared | per_output}
    assert not unknown, f"<class>::name used by callers but not declared by the template: {unknown}"
    not_methods = {name: files for name, files in calls.items() if name not in methods}
    assert not not_methods, f"methods called on a generated class but not declared public: {not_methods}"


@pytest.mark.parametrize(
    ("old", "new", "check"),
    [
        ("self_test()", "selftest()", "test_public_api_is_declared"),
        ("m_runner", "m_stream", "test_class_names_hold_every_declared_name"),
        ("k_source", "k_where", "test_class_names_hold_every_outside_name_the_members_use"),
    ],
)
def test_a_renamed_template_member_fails_the_contract(
    old: str, new: str, check: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real templates with one name changed everywhere in them (so they still render and compile):
    the contract sees it."""
    templates = ROOT / "python" / "espdl_streaming" / "templates"
    for template in templates.glob("*.j2"):
        (tmp_path / template.name).write_text(template.read_text().replace(old, new))
    environment = codegen._environment

    def renamed_environment() -> jinja2.Environment:
        env = environment()
        env.loader = jinja2.FileSystemLoader(tmp_path)
        return env

    monkeypatch.setattr(codegen, "_environment", renamed_environment)
    renamed = render(VARIANTS["rodata"])
    assert new.rstrip("()") in renamed.hpp + renamed.cpp
    with pytest.raises(AssertionError):
        globals()[check](renamed)
