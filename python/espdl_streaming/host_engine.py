"""The C++ host engine (``host/`` and ``src/host/`` of the component), from Python.

ESP-DL runs only on chips.  The host engine is our own C++ implementation of the
simulator's integer semantics (:mod:`espdl_streaming.espdl.simulator`): it opens the same
``.espdl`` bytes and computes the same integers, so the generated glue can run on a host
(ESP-IDF's ``linux`` target, plain CMake builds) and the two implementations can check
each other.

* :func:`build_host_engine` configures and builds ``host/`` with CMake and Ninja (once per
  change of the engine's sources) and returns the ``espdl_run`` executable.
* :func:`model_info` and :func:`run_int_chunks` speak ``espdl_run``'s protocol: raw
  integer chunks in, raw outputs out: integers, or float32 values for a float32 output
  (ESP-DL's Softmax) (see ``host/espdl_run.cpp``).
* :func:`compute_features_host` speaks ``espdl_features``' (``host/espdl_features.cpp``, built next
  to ``espdl_run``): PCM pushed in pieces through the runtime's ``audio_frontend`` and the C++ port
  of ESP-DL's speech front end (``src/host/frontend/``), feature frames out: what the linux target
  and host builds compute from PCM, to compare with :func:`espdl_streaming.audio.compute_features`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from .errors import HostEngineError, HostEngineUnavailableError

if TYPE_CHECKING:
    from .audio.config import FrontendConfig

__all__ = [
    "HostEngineError",
    "HostEngineUnavailableError",
    "build_host_engine",
    "compute_features_host",
    "features_tool",
    "model_info",
    "run_int_chunks",
]

# python/espdl_streaming/host_engine.py -> the component's root.
_ROOT = Path(__file__).resolve().parents[2]
_STAMP = "espdl_streaming_host_engine.stamp"
_TIMEOUT = 600
_INT_DTYPES = ("int8", "int16")
# Outputs may also hold real values: ESP-DL's Softmax writes float32 (raw little-endian floats in OUT.bin).
_OUTPUT_DTYPES = (*_INT_DTYPES, "float32")


# --------------------------------------------------------------------------- build


def _engine_sources() -> list[Path]:
    """Every file the engine build reads: its hash decides whether to rebuild."""
    files = [_ROOT / "cmake" / "espdl_streaming.cmake", _ROOT / "cmake" / "espdl_streaming_sources.cmake"]
    for folder, patterns in (
        (_ROOT / "host", ("*.cpp", "*.hpp", "CMakeLists.txt")),
        (_ROOT / "src", ("*.cpp", "*.hpp")),
        (_ROOT / "include", ("*.hpp",)),
    ):
        for pattern in patterns:
            files.extend(folder.rglob(pattern))
    return sorted(set(files))


def _sources_hash(sanitize: bool) -> str:
    digest = hashlib.sha256(f"sanitize={sanitize}\n".encode())
    for path in _engine_sources():
        digest.update(str(path.relative_to(_ROOT)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def _find_tool(name: str) -> str | None:
    """On PATH, or next to this interpreter (pip installs cmake and ninja into the venv)."""
    found = shutil.which(name)
    if found:
        return found
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else None


def _tools() -> tuple[str, str]:
    cmake = _find_tool("cmake")
    if cmake is None:
        raise HostEngineUnavailableError(
            "cmake not found: the host engine is built with CMake >= 3.20 "
            f"(install it with `{sys.executable} -m pip install cmake` or your package manager)"
        )
    ninja = _find_tool("ninja")
    if ninja is None:
        raise HostEngineUnavailableError(
            "ninja not found: the host engine is built with Ninja "
            f"(install it with `{sys.executable} -m pip install ninja`)"
        )
    if not any(shutil.which(c) for c in (os.environ.get("CXX", ""), "c++", "g++", "clang++") if c):
        raise HostEngineUnavailableError(
            "no C++ compiler found (c++, g++ or clang++, or $CXX): install one, e.g. `apt-get install g++`"
        )
    return cmake, ninja


@contextlib.contextmanager
def _locked(build_dir: Path) -> Iterator[None]:
    """One build at a time per build directory (test sessions may run side by side)."""
    build_dir.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no locking
        yield
        return
    with open(build_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _run_build_step(cmd: list[str], what: str) -> None:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=_TIMEOUT)
    except OSError as exc:
        raise HostEngineUnavailableError(f"cannot run {cmd[0]}: {exc.strerror}") from exc
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
        if "No CMAKE_CXX_COMPILER could be found" in tail or "is not a full path to an existing compiler" in tail:
            raise HostEngineUnavailableError(
                f"{what} failed: CMake found no working C++ compiler: install one, e.g. `apt-get install g++`\n{tail}"
            )
        raise HostEngineError(f"{what} failed:\n{tail}")


def _default_build_dir(sanitize: bool) -> Path:
    name = "host-engine-sanitize" if sanitize else "host-engine"
    if (_ROOT / "tests" / "host").is_dir():  # a checkout: build next to the other build outputs
        return _ROOT / "build" / name
    cache = os.environ.get("ESPDL_STREAMING_CACHE_DIR") or str(
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "espdl_streaming"
    )
    return Path(cache) / f"{name}-{hashlib.sha256(str(_ROOT).encode()).hexdigest()[:12]}"


def build_host_engine(build_dir: Path | None = None, *, sanitize: bool = False) -> Path:
    """Build ``host/`` (the engine, the runtime and the tools) and return ``espdl_run``.

    The build is skipped when the engine's sources are unchanged since the last build in
    ``build_dir`` (default: ``build/host-engine`` or ``build/host-engine-sanitize`` in a checkout of
    the component; in an installed copy, which is read-only to us, a directory under
    ``$ESPDL_STREAMING_CACHE_DIR``, else ``$XDG_CACHE_HOME/espdl_streaming`` or
    ``~/.cache/espdl_streaming``, named after the copy's path).  ``sanitize`` builds with
    AddressSanitizer and UBSan.  ``espdl_features``, ``espdl_fuzz`` and ``engine_check`` are built next
    to ``espdl_run``.
    """
    source = _ROOT / "host"
    if not (source / "CMakeLists.txt").is_file():
        raise HostEngineUnavailableError(
            f"the host engine's sources are not next to this package ({source} is missing): "
            "use the espdl_streaming component's checkout, where python/ sits next to host/ and src/"
        )
    if build_dir is None:
        build_dir = _default_build_dir(sanitize)
    build_dir = Path(build_dir).resolve()
    exe = build_dir / "espdl_run"
    want = _sources_hash(sanitize)
    stamp = build_dir / _STAMP
    if exe.is_file() and stamp.is_file() and stamp.read_text() == want:
        return exe
    cmake, ninja = _tools()
    with _locked(build_dir):
        if exe.is_file() and stamp.is_file() and stamp.read_text() == want:
            return exe  # built meanwhile by another process
        stamp.unlink(missing_ok=True)
        _run_build_step(
            [
                cmake,
                "-S",
                str(source),
                "-B",
                str(build_dir),
                "-G",
                "Ninja",
                f"-DCMAKE_MAKE_PROGRAM={ninja}",
                f"-DESPDL_STREAMING_SANITIZE={'ON' if sanitize else 'OFF'}",
            ],
            "configuring the host engine",
        )
        _run_build_step([cmake, "--build", str(build_dir)], "building the host engine")
        stamp.write_text(want)
    return exe


# --------------------------------------------------------------------------- run


def _call(exe: Path, args: list[str], espdl: Path) -> subprocess.CompletedProcess[bytes]:
    try:
        proc = subprocess.run([str(exe), str(espdl), *args], capture_output=True, timeout=_TIMEOUT)
    except OSError as exc:
        raise HostEngineUnavailableError(f"cannot run the host engine {exe}: {exc.strerror}") from exc
    except subprocess.TimeoutExpired as exc:
        raise HostEngineError(f"{espdl}: the host engine did not finish within {_TIMEOUT} s") from exc
    if proc.returncode == 2:
        message = proc.stderr.decode(errors="replace").strip().splitlines()
        text = message[-1] if message else "failed without a message"
        raise HostEngineError(text.removeprefix("error: "))
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.decode(errors="replace").strip().splitlines()[-30:])
        raise HostEngineError(f"{espdl}: the host engine crashed (exit status {proc.returncode}):\n{tail}")
    return proc


def model_info(exe: Path, espdl: Path) -> dict[str, Any]:
    """Inputs and outputs (name, dtype, exponent, shape; in name order) and recurrent state pairs.

    ``{"inputs": [...], "outputs": [...], "states": [{"input": "state_in_0", "output":
    "state_out_0"}], "work": ..., "bytes": ...}`` (``work``: operations per run; ``bytes``:
    memory the engine allocated)."""
    info: dict[str, Any] = json.loads(_call(Path(exe), ["--info"], Path(espdl)).stdout)
    return info


def _checked_chunk(chunk: dict[str, np.ndarray], inputs: list[dict[str, Any]], states: set[str], k: int) -> bytes:
    names = {i["name"] for i in inputs}
    for name in chunk:
        if name in states:
            raise HostEngineError(
                f"chunk {k}: input '{name}' is a recurrent state, fed from the previous chunk's output"
            )
        if name not in names:
            raise HostEngineError(f"chunk {k}: the model has no input '{name}' (inputs: {', '.join(sorted(names))})")
    parts = []
    for info in inputs:
        if info["name"] not in chunk:
            raise HostEngineError(f"chunk {k}: input '{info['name']}' is missing")
        data = np.asarray(chunk[info["name"]])
        if tuple(data.shape) != tuple(info["shape"]):
            raise HostEngineError(
                f"chunk {k}: input '{info['name']}' has shape {list(data.shape)}, the model expects {info['shape']}"
            )
        limits = np.iinfo(info["dtype"])
        if data.size and (
            not np.issubdtype(data.dtype, np.integer) or data.min() < limits.min or data.max() > limits.max
        ):
            raise HostEngineError(f"chunk {k}: input '{info['name']}' must hold {info['dtype']} integers")
        parts.append(np.ascontiguousarray(data, dtype=np.dtype(info["dtype"]).newbyteorder("<")).tobytes())
    return b"".join(parts)


def run_int_chunks(
    exe: Path, espdl: Path, rounding: str, chunks: list[dict[str, np.ndarray]]
) -> list[dict[str, np.ndarray]]:
    """Run the model on consecutive chunks of integer inputs; every output of every chunk.

    Each chunk maps every input name (except recurrent ``state_in_K`` inputs, which the
    engine feeds from the previous chunk's ``state_out_K``, zeros first) to an integer
    array of the input's shape.  The model's caches start empty, as after ``reset()``.
    Returns, per chunk, every output (including ``state_out_K``) by name: the raw integers, or
    the float32 values of a float32 output (ESP-DL's Softmax), bit for bit as the engine wrote them."""
    if rounding not in ("half_even", "half_up"):
        raise HostEngineError(f"rounding must be 'half_even' or 'half_up', not {rounding!r}")
    info = model_info(exe, espdl)
    states = {s["input"] for s in info["states"]}
    inputs = [i for i in info["inputs"] if i["name"] not in states]
    for tensor in info["inputs"]:
        if tensor["dtype"] not in _INT_DTYPES:
            raise HostEngineError(f"{espdl}: input '{tensor['name']}' is {tensor['dtype']}, not int8 or int16")
    for tensor in info["outputs"]:
        if tensor["dtype"] not in _OUTPUT_DTYPES:
            raise HostEngineError(
                f"{espdl}: output '{tensor['name']}' is {tensor['dtype']}, not int8, int16 or float32"
            )
    payload = b"".join(_checked_chunk(chunk, inputs, states, k) for k, chunk in enumerate(chunks))
    with tempfile.TemporaryDirectory(prefix="espdl_run_") as tmp:
        in_path, out_path = Path(tmp) / "in.bin", Path(tmp) / "out.bin"
        in_path.write_bytes(payload)
        _call(
            Path(exe),
            ["--rounding", rounding, "--in", str(in_path), "--out", str(out_path), "--chunks", str(len(chunks))],
            Path(espdl),
        )
        raw = out_path.read_bytes()
    results: list[dict[str, np.ndarray]] = []
    offset = 0
    for _ in chunks:
        outputs = {}
        for out in info["outputs"]:
            dtype = np.dtype(out["dtype"]).newbyteorder("<")
            count = int(np.prod(out["shape"], dtype=np.int64))
            if offset + count * dtype.itemsize > len(raw):
                raise HostEngineError(f"{espdl}: the host engine wrote only {len(raw)} bytes of outputs")
            data = np.frombuffer(raw, dtype=dtype, count=count, offset=offset)
            outputs[out["name"]] = data.astype(np.dtype(out["dtype"])).reshape(out["shape"])
            offset += count * dtype.itemsize
        results.append(outputs)
    if offset != len(raw):
        raise HostEngineError(f"{espdl}: the host engine wrote {len(raw)} bytes of outputs, expected {offset}")
    return results


# --------------------------------------------------------------------------- features (espdl_features)


def features_tool(engine: Path | None = None) -> Path:
    """``espdl_features``, next to ``engine`` (an ``espdl_run`` that :func:`build_host_engine` returned;
    default: build the default engine)."""
    exe = Path(engine if engine is not None else build_host_engine()).with_name("espdl_features")
    if not exe.is_file():
        raise HostEngineUnavailableError(
            f"{exe} is missing: the host engine's build directory holds no espdl_features; rebuild it with "
            "espdl_streaming.host_engine.build_host_engine()"
        )
    return exe


def _setting(name: str, value: object) -> str:
    if isinstance(value, bool):
        return f"{name}={int(value)}"
    if isinstance(value, float):
        return f"{name}={value!r}"  # repr: the shortest text that reads back as the same double
    return f"{name}={value}"


def compute_features_host(
    config: FrontendConfig,
    pcm: npt.ArrayLike,
    pieces: list[int] | npt.ArrayLike | None = None,
    *,
    engine: Path | None = None,
) -> npt.NDArray[np.float32]:
    """The feature frames ``[frames, feature_dim]`` (float32) the C++ front end computes from ``pcm``.

    ``pcm``: int16 (scaled by 1/32768, as ESP-DL does) or float samples in [-1, 1) (sent as float32).
    ``pieces``: the sizes of the consecutive pushes (summing to the sample count; empty pieces allowed),
    default one push of everything.  ``engine``: an ``espdl_run`` from :func:`build_host_engine`, whose
    ``espdl_features`` is used (default: the default build).  Every field of ``config`` is passed; the
    tool fills the runtime's ``frontend_spec`` from them.  A configuration the C++ refuses, or a failing
    push, raises :class:`HostEngineError` with the tool's message (the ``esp_err_t`` and the log)."""
    import dataclasses

    samples = np.asarray(pcm).reshape(-1)
    if samples.dtype == np.int16:
        fmt, data = "int16", samples.astype("<i2")
    elif samples.dtype.kind == "f":
        fmt, data = "float32", samples.astype("<f4")
    else:
        raise HostEngineError(f"PCM must be int16 or float samples, got {samples.dtype}")
    sizes = np.asarray([samples.size] if pieces is None else pieces, dtype=np.int64).reshape(-1)
    if sizes.size and (sizes.min() < 0 or sizes.max() > 0xFFFFFFFF):
        raise HostEngineError("piece sizes must be in [0, 2^32 - 1]")
    if int(sizes.sum()) != samples.size:
        raise HostEngineError(f"the pieces sum to {int(sizes.sum())} samples, the PCM holds {samples.size}")
    exe = features_tool(engine)
    settings = [_setting(f.name, getattr(config, f.name)) for f in dataclasses.fields(config)]
    with tempfile.TemporaryDirectory(prefix="espdl_features_") as tmp:
        pcm_path, pieces_path, out_path = Path(tmp) / "pcm.bin", Path(tmp) / "pieces.bin", Path(tmp) / "out.bin"
        pcm_path.write_bytes(np.ascontiguousarray(data).tobytes())
        pieces_path.write_bytes(sizes.astype("<u4").tobytes())
        cmd = [str(exe), "--format", fmt, "--pcm", str(pcm_path), "--pieces", str(pieces_path), "--out", str(out_path)]
        try:
            proc = subprocess.run([*cmd, *settings], capture_output=True, timeout=_TIMEOUT)
        except OSError as exc:
            raise HostEngineUnavailableError(f"cannot run {exe}: {exc.strerror}") from exc
        except subprocess.TimeoutExpired as exc:
            raise HostEngineError(f"{exe} did not finish within {_TIMEOUT} s") from exc
        lines = proc.stderr.decode(errors="replace").strip().splitlines()
        if proc.returncode in (1, 2):
            errors = [line.removeprefix("error: ") for line in lines if line.startswith("error: ")]
            log = [line for line in lines if not line.startswith("error: ")]
            what = errors[-1] if errors else "failed without a message"
            detail = f" (log: {'; '.join(log)})" if log else ""
            kind = "the C++ front end failed" if proc.returncode == 1 else "espdl_features refused its arguments"
            raise HostEngineError(f"{kind}: {what}{detail}")
        if proc.returncode != 0:
            tail = "\n".join(lines[-30:])
            raise HostEngineError(f"{exe} crashed (exit status {proc.returncode}):\n{tail}")
        raw = np.fromfile(out_path, dtype="<f4")
    dim = int(config.feature_dim)
    if raw.size % dim:
        raise HostEngineError(f"{exe} wrote {raw.size} floats, not a whole number of {dim}-feature frames")
    return raw.astype(np.float32).reshape(-1, dim)
