"""The build cache (cache.py) and path-independent outputs (inputs.py).

Builds the example (importing a local module, with calibration data) through the CLI: a cold build fills
a fresh cache; the same declaration from a copy of the project in another directory is replayed with
torch, esp-ppq, onnx and numpy unimportable and gives the same bytes; a build without the cache from that
copy gives the same bytes too (only the report's `seconds` differ). The key, corruption, eviction and
concurrency are checked on the cache itself, and once each through the CLI.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from artifact_project import (
    blocker_dir,
    copy_project,
    make_project,
    model_args,
    outputs,
    run_tool,
    without_seconds,
)
from conftest import REPO

from espdl_streaming.cache import BuildCache, build_key, cache_enabled, default_cache_root
from espdl_streaming.declaration import Declaration, make_declaration
from espdl_streaming.inputs import Hasher, dependency_list, portable_command

HIT = "replayed from the build cache"


@dataclasses.dataclass
class Built:
    project: Path
    cache: Path
    out: Path
    first: object


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    root = tmp_path_factory.mktemp("cache")
    project = make_project(root / "project_a")
    cache = root / "cache"
    first = run_tool([*model_args(), "--out-dir", "out", "--depfile", "out/tcn.d"], project, cache_dir=cache)
    assert first.returncode == 0, first.stderr
    assert HIT not in first.stdout
    return Built(project, cache, project / "out", first)


def _entries(cache: Path) -> list[Path]:
    return sorted(p for p in (cache / "builds" / "v1").glob("*/*/*") if p.is_dir())


def test_hit_in_another_checkout_replays_the_same_bytes_without_the_quantizer(built: Built, tmp_path: Path) -> None:
    other = copy_project(built.project, tmp_path / "elsewhere" / "project_b")
    r = run_tool(
        [*model_args(), "--out-dir", "out", "--depfile", "out/tcn.d"],
        other,
        cache_dir=built.cache,
        no_quantizer=blocker_dir(tmp_path),
    )
    assert r.returncode == 0, r.stderr
    assert HIT in r.stdout, r.stdout
    assert outputs(other / "out") == outputs(built.out)
    # The depfile names this checkout's files (it is not an artifact: it tells the build tool what to watch).
    depfile = (other / "out" / "tcn.d").read_text()
    assert str(other / "model" / "tcn_seed.py") in depfile and str(other / "data" / "calib.npy") in depfile
    assert depfile == (built.out / "tcn.d").read_text().replace(str(built.project), str(other))


def test_outputs_do_not_depend_on_where_the_project_sits(built: Built, tmp_path: Path) -> None:
    other = copy_project(built.project, tmp_path / "a" / "much" / "deeper" / "checkout")
    r = run_tool([*model_args(), "--out-dir", "out", "--no-cache"], other, cache_dir=built.cache)
    assert r.returncode == 0, r.stderr
    assert HIT not in r.stdout
    mine, theirs = outputs(other / "out"), outputs(built.out)
    for suffix in (".espdl", ".offline.espdl", ".hpp", ".cpp", ".report.html"):
        assert mine[suffix] == theirs[suffix], suffix
    assert without_seconds(mine) == without_seconds(theirs)  # `seconds` is the one field that varies
    for suffix, data in mine.items():
        assert str(tmp_path).encode() not in data, suffix
    report = json.loads(mine[".report.json"])
    assert report["calibration"]["source"] == "data/calib.npy"
    assert report["dependencies"] == ["data/calib.npy", "model/model.py", "model/tcn_seed.py"]
    assert "--model model/model.py:build" in mine[".hpp"].decode() and "--out-dir" not in mine[".hpp"].decode()


def test_hit_imports_no_quantizer_module(built: Built, tmp_path: Path) -> None:
    """On a hit, none of torch, esp_ppq, onnx, numpy is even imported (checked in the process itself)."""
    probe = tmp_path / "probe"
    probe.mkdir()
    (probe / "sitecustomize.py").write_text(
        "import atexit, os, sys\n"
        "def _report():\n"
        "    heavy = sorted(m for m in ('torch', 'esp_ppq', 'onnx', 'onnxruntime', 'numpy') if m in sys.modules)\n"
        "    with open(os.environ['PROBE_OUT'], 'a') as f:\n"
        "        f.write(','.join(heavy) + '\\n')\n"
        "atexit.register(_report)\n"
    )
    env = dict(os.environ, PYTHONPATH=f"{probe}{os.pathsep}{REPO / 'python'}", PROBE_OUT=str(tmp_path / "mods"))
    env.update(ESPDL_STREAMING_CACHE="1", ESPDL_STREAMING_CACHE_DIR=str(built.cache), PYTHONHASHSEED="0")
    proc = subprocess.run(
        [sys.executable, "-m", "espdl_streaming", *model_args(), "--out-dir", str(tmp_path / "out")],
        cwd=built.project, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert HIT in proc.stdout
    assert (tmp_path / "mods").read_text().splitlines() == [""]


def test_a_changed_imported_module_misses_then_hits_again(built: Built, tmp_path: Path) -> None:
    other = copy_project(built.project, tmp_path / "project")
    hasher = Hasher()
    decl = make_declaration(
        name="tcn", model=str(other / "model/model.py:build"), input_shape="1,16,24", chunk_frames=3,
        target="esp32p4", out_dir=tmp_path / "out", calibration=str(other / "data/calib.npy"),
    )  # fmt: skip
    cache = BuildCache(built.cache / "builds")
    command = portable_command(model_args(), other)
    key = build_key(decl, other, command, hasher)
    hit = cache.lookup(key, other, hasher)
    assert hit is not None and hit.path == _entries(built.cache)[0]
    (other / "model" / "tcn_seed.py").write_text("SEED = 8\n")
    assert build_key(decl, other, command, Hasher()) == key  # the module is checked per entry, not in the key
    assert cache.lookup(key, other, Hasher()) is None
    (other / "model" / "tcn_seed.py").write_text("SEED = 7\n")
    assert cache.lookup(key, other, Hasher()) is not None


def _decl(project: Path, out: Path, **changes: object) -> Declaration:
    args: dict = dict(
        name="tcn", model=f"{project / 'model/model.py'}:build", input_shape="1,16,24", chunk_frames=3,
        target="esp32p4", out_dir=out, calibration=str(project / "data/calib.npy"),
    )  # fmt: skip
    args.update(changes)
    return make_declaration(**args)


def test_the_key_changes_with_every_input_class(built: Built, tmp_path: Path) -> None:
    project = copy_project(built.project, tmp_path / "p")

    def key(**changes: object) -> str:
        return build_key(_decl(project, tmp_path / "out", **changes), project, "cmd", Hasher())

    base = key()
    assert key(out_dir=tmp_path / "elsewhere") == base  # where the outputs go decides no byte
    others = {
        "target": key(target="esp32s3"),
        "option": key(calib_steps=8),
        "scheme": key(quant="w16a16"),
        "gate": key(min_snr_db=20.0),
        "eval": key(evaluation=str(project / "data/calib.npy")),
        "frontend": key(frontend={"FRONTEND": "fbank", "NUM_MEL_BINS": "16"}),
        "frontend option": key(frontend={"FRONTEND": "fbank", "NUM_MEL_BINS": "16", "PREEMPHASIS": "0"}),
    }
    # A calibration folder of .wav files: its listing is in the key (adding a file changes it).
    audio = project / "data" / "audio"
    audio.mkdir()
    (audio / "a.wav").write_bytes(b"RIFF a")
    fbank = {"FRONTEND": "fbank", "NUM_MEL_BINS": "16"}
    others["audio folder"] = key(frontend=fbank, calibration=str(audio))
    (audio / "b.wav").write_bytes(b"RIFF b")
    others["audio folder + b.wav"] = key(frontend=fbank, calibration=str(audio))
    model = project / "model" / "model.py"
    model.write_text(model.read_text() + "\n# edited\n")
    others["model"] = key()
    calib = project / "data" / "calib.npy"
    calib.write_bytes(calib.read_bytes()[:-4] + b"\0\0\0\0")
    others["calibration"] = key()
    others["command line"] = build_key(_decl(project, tmp_path / "out"), project, "cmd --strict", Hasher())
    assert len(set(others.values()) | {base}) == len(others) + 1, others
    # Every field of the declaration is in the key but the output directory: a new field needs no change.
    # Fields marked FINGERPRINT_WHEN_SET (the front end) are in it only when set, so that declarations
    # without them keep their key and their lock.
    when_set = {f.name for f in dataclasses.fields(Declaration) if f.metadata.get("fingerprint") == "when_set"}
    assert when_set == {"frontend"}
    fields = {f.name for f in dataclasses.fields(Declaration)} - {"out_dir"}
    from espdl_streaming.inputs import declaration_fingerprint

    assert set(declaration_fingerprint(_decl(project, tmp_path / "o"), project, Hasher())) == fields - when_set
    with_fe = _decl(project, tmp_path / "o", frontend=fbank)
    assert set(declaration_fingerprint(with_fe, project, Hasher())) == fields


def _fake_files(n: int, size: int = 1000) -> dict[str, bytes]:
    return {f"tcn{suffix}": bytes([n]) * size for suffix in (".espdl", ".hpp")}


def test_a_corrupt_entry_is_removed_and_never_used(tmp_path: Path) -> None:
    cache = BuildCache(tmp_path / "builds")
    entry = cache.store("ab" * 32, _fake_files(1), [])
    assert entry is not None and cache.lookup("ab" * 32, tmp_path, Hasher()) is not None
    data = bytearray((entry / "tcn.hpp").read_bytes())
    data[10] ^= 1
    (entry / "tcn.hpp").write_bytes(bytes(data))
    assert cache.lookup("ab" * 32, tmp_path, Hasher()) is None
    assert "corrupt" in cache.warnings[0] and "tcn.hpp" in cache.warnings[0]
    assert not entry.exists()
    # A torn entry (a file missing) is corrupt as well.
    entry = cache.store("cd" * 32, _fake_files(2), [])
    assert entry is not None
    (entry / "tcn.espdl").unlink()
    assert cache.lookup("cd" * 32, tmp_path, Hasher()) is None and not entry.exists()


def test_a_corrupt_entry_is_rebuilt_by_the_cli(built: Built, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    import shutil

    shutil.copytree(built.cache, cache)
    (entry,) = _entries(cache)
    espdl = entry / "tcn.espdl"
    espdl.write_bytes(espdl.read_bytes()[:-1] + bytes([espdl.read_bytes()[-1] ^ 0xFF]))
    r = run_tool([*model_args(), "--out-dir", str(tmp_path / "out")], built.project, cache_dir=cache)
    assert r.returncode == 0, r.stderr
    assert HIT not in r.stdout and "is corrupt (tcn.espdl does not match its SHA-256)" in r.stderr
    assert outputs(tmp_path / "out")[".espdl"] == outputs(built.out)[".espdl"]
    (fresh,) = _entries(cache)
    assert (fresh / "tcn.espdl").read_bytes() == outputs(built.out)[".espdl"]


def test_least_recently_used_entries_are_evicted_to_the_cap(tmp_path: Path) -> None:
    cache = BuildCache(tmp_path / "builds", max_bytes=10_000)
    keys = [f"{i:02d}" * 32 for i in range(3)]
    for i, key in enumerate(keys):
        assert cache.store(key, _fake_files(i, 2000), []) is not None  # ~4.3 kB each
        stamp = cache.key_dir(key) / next(p.name for p in cache.key_dir(key).iterdir()) / "used"
        os.utime(stamp, ns=(10**18 + i * 10**9, 10**18 + i * 10**9))
    # Three entries do not fit: the oldest (keys[0]) went when the third was stored... unless used since.
    assert cache.lookup(keys[0], tmp_path, Hasher()) is None
    assert cache.lookup(keys[1], tmp_path, Hasher()) is not None  # now the most recently used
    assert cache.store("ff" * 32, _fake_files(9, 2000), []) is not None
    assert cache.lookup(keys[2], tmp_path, Hasher()) is None  # least recently used of the rest
    assert cache.lookup(keys[1], tmp_path, Hasher()) is not None
    assert cache.lookup("ff" * 32, tmp_path, Hasher()) is not None


def test_concurrent_stores_of_one_key_leave_one_whole_entry(tmp_path: Path) -> None:
    cache_root = tmp_path / "builds"
    results: list[object] = []

    def store() -> None:
        results.append(BuildCache(cache_root).store("ee" * 32, _fake_files(5, 50_000), [["m.py", "0" * 64]]))

    threads = [threading.Thread(target=store) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r is not None for r in results) == 1
    entries = [p for p in (cache_root / "v1").glob("*/*/*")]
    assert len(entries) == 1 and not any((cache_root / "tmp").iterdir())


def test_two_concurrent_cli_builds_of_one_model_both_succeed(built: Built, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    env = dict(os.environ, PYTHONPATH=str(REPO / "python"), ESPDL_STREAMING_CACHE="1")
    env["ESPDL_STREAMING_CACHE_DIR"] = str(cache)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "espdl_streaming", *model_args(), "--out-dir", str(tmp_path / f"out{i}"), "--quiet"],
            cwd=built.project,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for i in range(2)
    ]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
    first, second = outputs(tmp_path / "out0"), outputs(tmp_path / "out1")
    assert without_seconds(first) == without_seconds(second) == without_seconds(outputs(built.out))
    (entry,) = _entries(cache)
    r = run_tool([*model_args(), "--out-dir", str(tmp_path / "out2")], built.project, cache_dir=cache)
    assert r.returncode == 0 and HIT in r.stdout and str(entry) in r.stdout


def test_switches_and_location(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESPDL_STREAMING_CACHE", "0")
    assert not cache_enabled() and BuildCache.from_environment() is None
    monkeypatch.setenv("ESPDL_STREAMING_CACHE", "1")
    monkeypatch.setenv("ESPDL_STREAMING_CACHE_DIR", str(tmp_path / "c"))
    monkeypatch.setenv("ESPDL_STREAMING_CACHE_MAX_MB", "2")
    cache = BuildCache.from_environment()
    assert cache is not None and cache.root == tmp_path / "c" / "builds" and cache.max_bytes == 2 * 1024 * 1024
    monkeypatch.delenv("ESPDL_STREAMING_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_root() == tmp_path / "xdg" / "espdl_streaming"


def test_dependency_list_is_portable(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text("x = 1\n")
    deps = dependency_list([str(tmp_path / "m.py"), "m.py", "/nonexistent/x.py"], tmp_path, Hasher())
    assert deps[0] == ["/nonexistent/x.py", None] and deps[1][0] == "m.py" and len(deps) == 2
