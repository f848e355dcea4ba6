"""The layout of the house: the package has no import cycle, and the simulator (the specification) and the
C++ host engine (its port) mirror each other file for file.

- espdl/ops/<kind>.py pairs with src/host/ops_<kind>.cpp (espdl/ops/kernels.py with host_kernels.hpp): each
  Python module implements exactly the ONNX op types its C++ file registers (host_ops.cpp's table names a
  prepare function for every op type, and the prepare function is defined in one ops_*.cpp);
- every op type espdl/validate.py has a rule for is checked by the prepare function of its C++ file too: it
  can refuse the node as unsupported, and it reads every attribute the Python rule looks at.

The C++ is read as text: comments are stripped, each function is a definition at the start of a line whose
body is matched brace for brace, and a prepare function's reach is its body plus the bodies of the functions
of the same file it names, transitively.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from conftest import REPO

from espdl_streaming.espdl import ops, simulator, validate

PACKAGE = REPO / "python" / "espdl_streaming"
HOST = REPO / "src" / "host"
SHARED = {"kernels": "host_kernels.hpp"}  # espdl/ops modules that implement no op type, and their C++ pair

# --------------------------------------------------------------------------- import cycles


def _module_name(path: Path) -> tuple[str, bool]:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    return ".".join(parts[:-1] if is_package else parts), is_package


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement, at any depth (function-level imports too), except under `if TYPE_CHECKING:`
    (those are never executed)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                yield from _runtime_imports(ast.Module(body=[child], type_ignores=[]))
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        yield from _runtime_imports(node)


def import_graph() -> dict[str, dict[str, int]]:
    """module -> {package module it imports: line of the first such import}."""
    files = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}
    modules = {name for name, _ in files}
    graph: dict[str, dict[str, int]] = {}
    for (name, is_package), path in files.items():
        here = name if is_package else name.rpartition(".")[0]
        edges: dict[str, int] = {}
        for node in _runtime_imports(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                if node.level:
                    base = here.split(".")[: len(here.split(".")) - (node.level - 1)]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                # `from package import module` imports the module; `from module import name` the module
                targets = [f"{source}.{a.name}" if f"{source}.{a.name}" in modules else source for a in node.names]
            for target in targets:
                if target in modules and target != name:
                    edges.setdefault(target, node.lineno)
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, dict[str, int]]) -> list[str] | None:
    """One import cycle (its modules, the first repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        path.append(module)
        for target in sorted(graph.get(module, {})):
            if state.get(target) == 1:
                return path[path.index(target) :] + [target]
            if target not in state and (cycle := visit(target)) is not None:
                return cycle
        path.pop()
        state[module] = 2
        return None

    for module in sorted(graph):
        if module not in state and (cycle := visit(module)) is not None:
            return cycle
    return None


def test_the_package_has_no_import_cycle() -> None:
    graph = import_graph()
    assert "espdl_streaming.espdl.simulator" in graph and len(graph) > 30  # the walk found the package
    cycle = find_cycle(graph)
    if cycle is not None:
        steps = [f"{a} (line {graph[a][b]}) -> {b}" for a, b in zip(cycle, cycle[1:])]
        pytest.fail("import cycle: " + "; ".join(steps))


def test_the_cycle_finder_names_a_cycle() -> None:
    graph = {"a": {"b": 3}, "b": {"c": 1}, "c": {"a": 9}, "d": {"a": 1}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b": 1}, "b": {}}) is None


def test_function_level_imports_count_and_type_checking_ones_do_not() -> None:
    tree = ast.parse(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import x\nelse:\n    import y\n"
        "def f():\n    import z\n"
    )
    names = [a.name for node in _runtime_imports(tree) if isinstance(node, ast.Import) for a in node.names]
    assert names == ["y", "z"]


# --------------------------------------------------------------------------- reading the C++


def strip_comments(text: str) -> str:
    """C++ source without its comments; string and character literals are kept as they are."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        if text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            out.append(" ")
            i = n if end < 0 else end + 2
        elif text[i] in "\"'":
            end = _literal_end(text, i)
            out.append(text[i:end])
            i = end
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _literal_end(text: str, start: int) -> int:
    quote, i = text[start], start + 1
    while text[i] != quote:
        i += 2 if text[i] == "\\" else 1
    return i + 1


def _body_end(text: str, start: int) -> int:
    depth, i = 0, start
    while True:
        c = text[i]
        if c in "\"'":
            i = _literal_end(text, i)
            continue
        depth += {"{": 1, "}": -1}.get(c, 0)
        i += 1
        if depth == 0:
            return i


# A definition: at the start of a line, an optional template header, the return type, the name, the
# parameters and the opening brace (this code base's style puts it on the next line).
_DEFINITION = re.compile(
    r"^(?:template\s*<[^>]*>\s*\n)?(?:[A-Za-z_][\w:<>]*[\s*&]+)+(\w+)\(([^;{}]*?)\)\s*(?:const\s*)?\{", re.M
)


def cpp_functions(path: Path) -> dict[str, str]:
    """name -> body (overloads joined) of every function the file defines."""
    text = strip_comments(path.read_text(encoding="utf-8"))
    bodies: dict[str, str] = {}
    for match in _DEFINITION.finditer(text):
        if match.group(1) in ("if", "for", "while", "switch", "return"):
            continue
        start = match.end() - 1
        bodies[match.group(1)] = bodies.get(match.group(1), "") + text[start : _body_end(text, start)]
    return bodies


def reach(functions: dict[str, str], start: str) -> str:
    """The body of `start` and of every function of the same file it names, transitively."""
    seen, todo = set(), [start]
    while todo:
        name = todo.pop()
        if name in seen or name not in functions:
            continue
        seen.add(name)
        todo.extend(re.findall(r"\b(\w+)\b", functions[name]))
    return "".join(functions[name] for name in sorted(seen))


def string_literals(code: str) -> set[str]:
    return set(re.findall(r'"((?:[^"\\\n]|\\.)*)"', code))


def engine_op_table() -> dict[str, str]:
    """ONNX op type -> prepare function, from host_ops.cpp's table."""
    text = strip_comments((HOST / "host_ops.cpp").read_text(encoding="utf-8"))
    table = text[text.index("k_ops[]") :]
    table = table[: table.index("};")]
    entries = re.findall(r'\{\s*"(\w+)"\s*,\s*(\w+)\s*\}', table)
    assert len(entries) == len(re.findall(r"\{\s*\"", table)), "an entry of host_ops.cpp's table is not understood"
    ops = dict(entries)
    assert len(ops) == len(entries), "an op type appears twice in host_ops.cpp's table"
    return ops


def declared_prepare_files() -> dict[str, str]:
    """prepare function -> the ops_*.cpp file host_ops.hpp lists it under."""
    text = (HOST / "host_ops.hpp").read_text(encoding="utf-8")
    declared: dict[str, str] = {}
    current = None
    for line in text.splitlines():
        if header := re.fullmatch(r"\s*/\*\s*(ops_\w+\.cpp)\s*\*/\s*", line):
            current = header.group(1)
        elif decl := re.match(r"\s*esp_err_t\s+(prepare_\w+)\s*\(\s*prep\s*&\s*\w*\s*\)\s*;", line):
            assert current is not None, f"host_ops.hpp declares {decl.group(1)} before any /* ops_*.cpp */ header"
            declared[decl.group(1)] = current
    return declared


CPP_OPS_FILES = sorted(path.name for path in HOST.glob("ops_*.cpp"))


def cpp_ops_by_file() -> dict[str, set[str]]:
    """ops_*.cpp -> the op types whose prepare function (host_ops.cpp's table) it defines."""
    table = engine_op_table()
    defined = {name: {fn for fn in cpp_functions(HOST / name) if fn.startswith("prepare_")} for name in CPP_OPS_FILES}
    by_file: dict[str, set[str]] = {name: set() for name in CPP_OPS_FILES}
    for op, prepare in table.items():
        homes = [name for name, fns in defined.items() if prepare in fns]
        assert len(homes) == 1, f"{op}'s prepare function {prepare} is defined in {homes or 'no ops_*.cpp'}"
        by_file[homes[0]].add(op)
    return by_file


def test_the_cpp_reader_reads_this_code_base() -> None:
    """The readers find what a reader of the sources sees (guards the parsing the other tests rely on)."""
    dense = cpp_functions(HOST / "ops_dense.cpp")
    assert {"prepare_conv", "prepare_pool", "parse_spatial", "for_each_tap"} <= set(dense)  # template too
    assert 'p.unsupported("missing kernel_shape")' in dense["parse_spatial"]
    assert "parse_spatial" in reach(dense, "prepare_max_pool")  # through prepare_pool
    assert "conv_kernel" not in reach(dense, "prepare_gemm")
    assert strip_comments('a /* "x" */ "/* y */" // z\nb') == 'a   "/* y */" \nb'
    table = engine_op_table()
    assert table["Conv"] == "prepare_conv" and table["ReduceSum"] == "prepare_reduce"
    declared = declared_prepare_files()
    assert declared["prepare_conv"] == "ops_dense.cpp" and declared["prepare_gru"] == "ops_recurrent.cpp"


# --------------------------------------------------------------------------- the spec and its port


def ops_modules() -> dict[str, ModuleType]:
    """espdl/ops's modules that implement op types, by name."""
    names = [info.name for info in pkgutil.iter_modules(ops.__path__)]
    return {name: importlib.import_module(f"{ops.__name__}.{name}") for name in names if name not in SHARED}


def test_every_ops_module_pairs_with_one_cpp_file() -> None:
    python = {f"ops_{name}.cpp" for name in ops_modules()}
    assert python == set(CPP_OPS_FILES), "espdl/ops/<kind>.py and src/host/ops_<kind>.cpp come in pairs"
    for name, module in ops_modules().items():
        assert isinstance(getattr(module, "OPS", None), dict), f"espdl/ops/{name}.py exports no OPS table"
        assert f"ops_{name}.cpp" in (module.__doc__ or ""), f"espdl/ops/{name}.py's docstring does not name its port"
    for name, header in SHARED.items():
        module = importlib.import_module(f"{ops.__name__}.{name}")
        assert (HOST / header).is_file() and header in (module.__doc__ or "")
        assert not hasattr(module, "OPS")


def test_each_ops_module_implements_the_op_types_of_its_cpp_file() -> None:
    """Adding an operator to the simulator without porting it to the engine (or to another file of it)
    fails here."""
    cpp = cpp_ops_by_file()
    for name, module in ops_modules().items():
        python = set(module.OPS)
        port = cpp[f"ops_{name}.cpp"]
        assert python == port, (
            f"espdl/ops/{name}.py implements {sorted(python - port)} that ops_{name}.cpp does not register, "
            f"ops_{name}.cpp registers {sorted(port - python)} that espdl/ops/{name}.py does not implement"
        )


def test_the_simulator_dispatches_on_the_ops_tables_as_the_engine_on_its_table() -> None:
    tables = [set(module.OPS) for module in ops_modules().values()]
    assert sum(len(t) for t in tables) == len(set().union(*tables)), "an op type is implemented twice"
    assert set(simulator.KERNELS) == set().union(*tables)
    assert set(engine_op_table()) == set(simulator.KERNELS)
    for name, module in ops_modules().items():
        assert all(simulator.KERNELS[op] is kernel for op, kernel in module.OPS.items()), name


def test_host_ops_hpp_lists_each_prepare_function_under_its_file() -> None:
    declared = declared_prepare_files()
    table = engine_op_table()
    assert set(table.values()) <= set(declared), "a prepare function of the table is not declared in host_ops.hpp"
    for name in CPP_OPS_FILES:
        exported = {fn for fn in declared if declared[fn] == name}
        defined = set(cpp_functions(HOST / name))
        assert exported <= defined, f"host_ops.hpp lists {sorted(exported - defined)} under {name}, defined elsewhere"


# --------------------------------------------------------------------------- the validation rules


def _attribute_sources(function: ast.FunctionDef) -> set[str]:
    """Names bound to a node's attributes in the function (`attrs = node.attributes`)."""
    return {
        target.id
        for node in ast.walk(function)
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Attribute) and node.value.attr == "attributes"
        for target in node.targets
        if isinstance(target, ast.Name)
    }


def _loop_strings(function: ast.FunctionDef) -> dict[str, set[str]]:
    """Loop variables over literal tuples (`for name in ("a", "b")`, `for name, n in (("a", 1), ...)`) -> the
    strings they take."""
    taken: dict[str, set[str]] = {}
    for node in ast.walk(function):
        loops = [(node.target, node.iter)] if isinstance(node, ast.For) else []
        if isinstance(node, ast.GeneratorExp | ast.ListComp | ast.SetComp | ast.DictComp):
            loops = [(g.target, g.iter) for g in node.generators]
        for target, iterable in loops:
            if not isinstance(iterable, ast.Tuple | ast.List):
                continue
            names = [target] if isinstance(target, ast.Name) else list(getattr(target, "elts", []))
            for position, name in enumerate(names):
                if not isinstance(name, ast.Name):
                    continue
                for element in iterable.elts:
                    item = element if isinstance(target, ast.Name) else getattr(element, "elts", [None])[position]
                    if isinstance(item, ast.Constant) and isinstance(item.value, str):
                        taken.setdefault(name.id, set()).add(item.value)
    return taken


def rule_attributes(tree: ast.Module, name: str, seen: set[str] | None = None) -> set[str]:
    """The node attributes a validation function reads (`attrs.get("x")`, `attrs["x"]`, `"x" in attrs`), with
    those of the module's functions it calls."""
    functions = {f.name: f for f in tree.body if isinstance(f, ast.FunctionDef)}
    seen = set() if seen is None else seen
    seen.add(name)
    function = functions[name]
    sources = _attribute_sources(function)
    loops = _loop_strings(function)

    def is_attributes(node: ast.expr) -> bool:
        return (isinstance(node, ast.Attribute) and node.attr == "attributes") or (
            isinstance(node, ast.Name) and node.id in sources
        )

    def strings(node: ast.expr) -> set[str]:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return {node.value}
        return loops.get(node.id, set()) if isinstance(node, ast.Name) else set()

    found: set[str] = set()
    for node in ast.walk(function):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
            if node.func.attr == "get" and is_attributes(node.func.value):
                found |= strings(node.args[0])
        if isinstance(node, ast.Subscript) and is_attributes(node.value):
            found |= strings(node.slice)
        if isinstance(node, ast.Compare) and any(isinstance(op, ast.In | ast.NotIn) for op in node.ops):
            if is_attributes(node.comparators[-1]):
                found |= strings(node.left)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in functions:
            if node.func.id not in seen:
                found |= rule_attributes(tree, node.func.id, seen)
    return found


def validate_tree() -> ast.Module:
    return ast.parse(Path(validate.__file__).read_text(encoding="utf-8"))


def test_the_rule_reader_finds_the_attributes() -> None:
    tree = validate_tree()
    spatial = rule_attributes(tree, "_validate_spatial")
    assert {"kernel_shape", "strides", "dilations", "pads", "ceil_mode", "auto_pad"} == spatial
    recurrent = rule_attributes(tree, "_validate_recurrent")
    assert {"hidden_size", "direction", "activations", "clip", "linear_before_reset"} <= recurrent
    assert "axes" in rule_attributes(tree, "_validate_reduce")  # `"axes" in node.attributes`
    assert spatial <= rule_attributes(tree, "_validate_dense")  # through _validate_spatial


def _op_ports() -> dict[str, tuple[str, dict[str, str]]]:
    """op type -> (its ops_*.cpp, that file's functions)."""
    files = {name: cpp_functions(HOST / name) for name in CPP_OPS_FILES}
    return {op: (f"ops_{name}.cpp", files[f"ops_{name}.cpp"]) for name, m in ops_modules().items() for op in m.OPS}


def test_every_op_with_a_validation_rule_is_checked_by_its_cpp_prepare_function() -> None:
    """An op type the simulator validates is validated by the engine where it prepares the node: its prepare
    function (in the file of its ops module's pair) can refuse it as unsupported (validate.py's
    UnsupportedOpError), and reads every attribute the Python rule looks at."""
    assert validate.RULES, "validate.py has no rules"
    assert set(validate.RULES) <= set(simulator.KERNELS), "a rule for an op type the simulator does not implement"
    table = engine_op_table()
    ports = _op_ports()
    tree = validate_tree()
    ops_of_rule: dict[str, list[str]] = {}
    for op, rule in validate.RULES.items():
        ops_of_rule.setdefault(rule.__name__, []).append(op)
        cpp_file, functions = ports[op]
        assert ".unsupported(" in reach(functions, table[op]), (
            f"validate.py has a rule for {op}, but {table[op]} in {cpp_file} never refuses a node as unsupported"
        )
    # A rule shared by several op types (Conv/Gemm/MatMul) checks per op type what their prepare functions
    # check between them.
    for rule_name, op_types in ops_of_rule.items():
        python = rule_attributes(tree, rule_name)
        cpp = set().union(*(string_literals(reach(ports[op][1], table[op])) for op in op_types))
        missing = python - cpp
        assert not missing, (
            f"validate.py's {rule_name} checks the attributes {sorted(missing)} of {op_types}, which their prepare "
            f"functions in {sorted({ports[op][0] for op in op_types})} never read"
        )


def test_the_node_level_rules_are_the_engines() -> None:
    """validate_node refuses an op type without a kernel and a `lut` attribute that names no constant; the
    engine does both while it plans the graph (outside the ops_*.cpp files)."""
    planner = [path for path in HOST.glob("*.cpp") if not path.name.startswith("ops_")]
    texts = [strip_comments(path.read_text(encoding="utf-8")) for path in planner]
    assert any("find_op(" in text and '"lut"' in text for text in texts)
    assert "lut" in rule_attributes(validate_tree(), "validate_node")
