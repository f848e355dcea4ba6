"""Figure 2: incremental builds through the plain-CMake core (tests/cmake_project, which declares
the example model) against the same operation on bench/baseline_project (no model).

Operations, alternated project by project in every repetition: a no-op rebuild, and a rebuild
after touching the project's own C++ source (check_tcn.cpp / main.cpp). Quantizer runs are
counted from ninja's output ("espdl_streaming: quantizing").
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from common import (
    BENCH,
    EXAMPLE_MODEL,
    PYTHON,
    REPO,
    WORK,
    Stats,
    code,
    command_text,
    find_ninja,
    fmt_ratio,
    fmt_seconds,
    fresh_dir,
    run_timed,
    table,
)

QUANTIZING = "espdl_streaming: quantizing"
NO_WORK = "ninja: no work to do"


@dataclass
class Project:
    src: Path
    build: Path
    touched: Path
    configure_cmd: list = field(default_factory=list)

    def build_cmd(self) -> list:
        return ["cmake", "--build", self.build]


def setup(root: Path) -> tuple[Project, Project, dict[str, float], int]:
    ninja = find_ninja()
    model_dir = fresh_dir(root / "model")
    shutil.copyfile(EXAMPLE_MODEL, model_dir / "model.py")
    ours = Project(root / "model_project", root / "model_project-build", root / "model_project" / "check_tcn.cpp")
    base = Project(root / "baseline_project", root / "baseline_project-build", root / "baseline_project" / "main.cpp")
    shutil.copytree(REPO / "tests" / "cmake_project", ours.src)
    shutil.copytree(BENCH / "baseline_project", base.src)
    common = ["-G", "Ninja", f"-DCMAKE_MAKE_PROGRAM={ninja}"]
    ours.configure_cmd = [
        "cmake",
        *common,
        "-S",
        ours.src,
        "-B",
        ours.build,
        f"-DESPDL_STREAMING_ROOT={REPO}",
        f"-DESPDL_STREAMING_PYTHON={PYTHON}",
        f"-DTCN_MODEL={model_dir / 'model.py'}:build",
    ]
    base.configure_cmd = ["cmake", *common, "-S", base.src, "-B", base.build]
    first: dict[str, float] = {}
    for name, project in (("ours", ours), ("baseline", base)):
        run_timed(project.configure_cmd)
        out = run_timed(project.build_cmd())
        first[name] = out.seconds
        if name == "ours":
            first_quantize = out.stdout.count(QUANTIZING)
    return ours, base, first, first_quantize


def touch(path: Path) -> None:
    now = time.time()
    os.utime(path, (now, now))


@dataclass
class IncrResult:
    noop_ours: Stats
    noop_base: Stats
    noop_ratio: Stats
    touch_ours: Stats
    touch_base: Stats
    touch_ratio: Stats
    noop_quantize: list[int]
    touch_quantize: list[int]
    first: dict[str, float]
    first_quantize: int
    verify_globs: dict[str, bool]
    cmds: dict[str, str]
    raw: dict[str, list[float]]
    markdown: str = ""


def run(reps: int) -> IncrResult:
    root = fresh_dir(WORK / "incremental")
    ours, base, first, first_quantize = setup(root)
    noop: dict[str, list[float]] = {"ours": [], "base": []}
    touched: dict[str, list[float]] = {"ours": [], "base": []}
    noop_q: list[int] = []
    touch_q: list[int] = []
    for i in range(reps):
        order = (("ours", ours), ("base", base)) if i % 2 == 0 else (("base", base), ("ours", ours))
        for name, project in order:
            out = run_timed(project.build_cmd())
            if NO_WORK not in out.stdout:
                raise RuntimeError(f"{name}: a rebuild with nothing changed did work:\n{out.stdout}")
            noop[name].append(out.seconds)
            if name == "ours":
                noop_q.append(out.stdout.count(QUANTIZING))
        for name, project in order:
            touch(project.touched)
            out = run_timed(project.build_cmd())
            if project.touched.name + ".o" not in out.stdout:
                raise RuntimeError(f"{name}: touching {project.touched.name} did not recompile it:\n{out.stdout}")
            touched[name].append(out.seconds)
            if name == "ours":
                touch_q.append(out.stdout.count(QUANTIZING))
        print(
            f"  incremental rep {i + 1}/{reps}: no-op {noop['ours'][-1]:.3f}/{noop['base'][-1]:.3f} s, "
            f"touch {touched['ours'][-1]:.3f}/{touched['base'][-1]:.3f} s",
            flush=True,
        )
    cmds = {
        "configure_ours": command_text(ours.configure_cmd),
        "configure_base": command_text(base.configure_cmd),
        "build_ours": command_text(ours.build_cmd()),
        "build_base": command_text(base.build_cmd()),
        "touch_ours": f"touch {command_text([ours.touched])} && {command_text(ours.build_cmd())}",
        "touch_base": f"touch {command_text([base.touched])} && {command_text(base.build_cmd())}",
    }
    res = IncrResult(
        Stats.of(noop["ours"]),
        Stats.of(noop["base"]),
        Stats.of([o / b for o, b in zip(noop["ours"], noop["base"])]),
        Stats.of(touched["ours"]),
        Stats.of(touched["base"]),
        Stats.of([o / b for o, b in zip(touched["ours"], touched["base"])]),
        noop_q,
        touch_q,
        first,
        first_quantize,
        {n: "cmake.verify_globs" in (p.build / "build.ninja").read_text() for n, p in (("ours", ours), ("base", base))},
        cmds,
        {
            "no-op model": noop["ours"],
            "no-op baseline": noop["base"],
            "touch model": touched["ours"],
            "touch baseline": touched["base"],
        },
    )
    res.markdown = markdown(res, reps)
    return res


def markdown(r: IncrResult, reps: int) -> str:
    c = r.cmds
    rows = [
        [
            "no-op rebuild, model project",
            fmt_seconds(r.noop_ours),
            f"quantizer runs: {sum(r.noop_quantize)} in {reps}",
            code(c["build_ours"]),
        ],
        ["no-op rebuild, baseline project", fmt_seconds(r.noop_base), "-", code(c["build_base"])],
        ["**no-op ratio model / baseline**", fmt_ratio(r.noop_ratio), "", "the two rows above, same repetition"],
        [
            "touch check_tcn.cpp, rebuild (model project)",
            fmt_seconds(r.touch_ours),
            f"quantizer runs: {sum(r.touch_quantize)} in {reps}",
            code(c["touch_ours"]),
        ],
        ["touch main.cpp, rebuild (baseline project)", fmt_seconds(r.touch_base), "-", code(c["touch_base"])],
        ["**touch ratio model / baseline**", fmt_ratio(r.touch_ratio), "", "the two rows above, same repetition"],
    ]
    return "\n".join(
        [
            "## 2. Incremental build",
            "",
            "A copy of `tests/cmake_project/` (declares the example model through `cmake/espdl_streaming.cmake`,",
            "a copy of `examples/tcn/model.py` as `TCN_MODEL`) against `bench/baseline_project/` (one trivial",
            "executable with the same standard headers, no model), both configured with the same generator,",
            "C++ standard and flags, built once, then timed (`cmake --build`, whole process) in",
            f"{reps} repetitions, alternating which project goes first. Quantizer runs are the lines",
            f"`{QUANTIZING}` in ninja's output; every no-op build printed `{NO_WORK}`.",
            "",
            "Configure: " + code(c["configure_ours"]) + " and " + code(c["configure_base"]) + ".",
            f"First build (not a ratio, one run): model project {r.first['ours']:.2f} s with"
            f" {r.first_quantize} quantizer run, baseline {r.first['baseline']:.2f} s.",
            "",
            table(["operation", "wall time", "quantizer", "command"], rows),
            "",
            "Quantizer runs per repetition: no-op "
            + ", ".join(map(str, r.noop_quantize))
            + "; touch "
            + ", ".join(map(str, r.touch_quantize))
            + " (must all be 0).",
            "",
            "Per repetition (s): "
            + "; ".join(f"{k} " + ", ".join(f"{x:.3f}" for x in v) for k, v in r.raw.items())
            + ".",
            "",
            "Where the no-op difference comes from: the model project's `build.ninja` "
            + ("runs" if r.verify_globs["ours"] else "does not run")
            + " CMake's `VerifyGlobs` step on every build (the `file(GLOB ... CONFIGURE_DEPENDS)` of the tool's"
            " and the runtime's sources in `cmake/espdl_streaming.cmake`); the baseline's "
            + ("does too" if r.verify_globs["base"] else "does not")
            + ". Both are otherwise `ninja: no work to do`.",
        ]
    )
