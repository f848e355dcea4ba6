"""Load the user's model and calibration data (imports torch: called only from quantize)."""

from __future__ import annotations

import importlib.util
import sys
import sysconfig
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from .declaration import CalibrationRef, Declaration
from .errors import CalibrationError, ModelLoadError

#: Samples drawn when no calibration data is given (seeded, so builds are reproducible).
RANDOM_CALIBRATION_SAMPLES = 32
RANDOM_CALIBRATION_SEED = 20240501


def _user_frame(exc: BaseException, path: Path) -> str:
    """The innermost traceback line inside the user's file, for error messages."""
    where = ""
    for frame in traceback.extract_tb(exc.__traceback__):
        if Path(frame.filename).resolve() == path:
            where = f" at {path.name}:{frame.lineno}"
    return where


def _system_dirs() -> list[Path]:
    dirs = set()
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        value = sysconfig.get_paths().get(key)
        if value:
            dirs.add(Path(value).resolve())
    for prefix in {sys.prefix, sys.base_prefix, sys.exec_prefix}:
        dirs.add((Path(prefix) / "lib").resolve())
    dirs.add(Path(__file__).resolve().parent)
    return sorted(dirs)


def local_module_files(modules: dict[str, ModuleType]) -> list[Path]:
    """Files of user (non-installed, non-stdlib) Python modules among `modules`."""
    system = _system_dirs()
    files: set[Path] = set()
    for module in modules.values():
        file = getattr(module, "__file__", None)
        if not file or not file.endswith(".py"):
            continue
        path = Path(file).resolve()
        if any(path.is_relative_to(d) for d in system):
            continue
        files.add(path)
    return sorted(files)


@contextmanager
def _on_sys_path(directory: Path) -> Iterator[None]:
    sys.path.insert(0, str(directory))
    try:
        yield
    finally:
        try:
            sys.path.remove(str(directory))
        except ValueError:
            pass


def _import_file(decl: Declaration, path: Path, what: str) -> ModuleType:
    module_name = f"_espdl_streaming_user_{decl.name}_{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ModelLoadError(f"{decl.name}: {what} {path} cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # the user's code: report, do not crash
        raise ModelLoadError(
            f"{decl.name}: importing {what} {path} failed{_user_frame(exc, path)}: {type(exc).__name__}: {exc}"
        ) from exc
    return module


def load_torch_model(decl: Declaration) -> tuple[Any, list[Path], int]:
    """Import FILE.py, call FACTORY, and check the module runs on the declared input shape.

    Returns the module in eval mode, the local Python files it depends on and its output count.
    """
    import torch

    ref = decl.model
    assert ref.factory is not None
    before = dict(sys.modules)
    with _on_sys_path(ref.path.parent):
        module = _import_file(decl, ref.path, "model file")
        factory = getattr(module, ref.factory, None)
        if factory is None or not callable(factory):
            available = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))
            raise ModelLoadError(
                f"{decl.name}: {ref.path} has no function '{ref.factory}' (callables there: "
                f"{', '.join(available) or 'none'}): name the factory that returns the torch.nn.Module"
            )
        try:
            model = factory()
        except Exception as exc:
            raise ModelLoadError(
                f"{decl.name}: factory {ref} raised{_user_frame(exc, ref.path)}: {type(exc).__name__}: {exc}"
            ) from exc
    if not isinstance(model, torch.nn.Module):
        raise ModelLoadError(f"{decl.name}: factory {ref} returned {type(model).__name__}, not a torch.nn.Module")
    model = model.eval()
    new_modules = {k: v for k, v in sys.modules.items() if k not in before}
    new_modules[module.__name__] = module
    deps = local_module_files(new_modules)
    if ref.path not in deps:
        deps.insert(0, ref.path)
    try:
        with torch.no_grad():
            result = model(torch.zeros(decl.input_shape))
    except Exception as exc:
        raise ModelLoadError(
            f"{decl.name}: the model does not run on --input-shape {list(decl.input_shape)}"
            f"{_user_frame(exc, ref.path)}: {type(exc).__name__}: {exc}: check --input-shape "
            "(torch layout, batch 1, time on dim 2)"
        ) from exc
    outputs = len(result) if isinstance(result, (tuple, list)) else 1
    return model, deps, outputs


def _as_samples(decl: Declaration, array: np.ndarray, where: str, role: str = "calibration") -> list[np.ndarray]:
    shape = tuple(decl.input_shape)
    array = np.asarray(array)
    if array.dtype.kind not in "fiu":
        raise CalibrationError(f"{decl.name}: {role} {where} has dtype {array.dtype}: expected float data")
    if array.shape == shape:
        samples = [array]
    elif array.shape[1:] == shape[1:] and array.ndim == len(shape):
        samples = [array[i : i + 1] for i in range(array.shape[0])]
    elif array.shape[1:] == shape:
        samples = [array[i] for i in range(array.shape[0])]
    else:
        raise CalibrationError(
            f"{decl.name}: {role} {where} has shape {list(array.shape)}; expected "
            f"[N, {', '.join(map(str, shape[1:]))}] (N samples of --input-shape {list(shape)})"
        )
    if not samples:
        raise CalibrationError(f"{decl.name}: {role} {where} holds no samples")
    out = [np.ascontiguousarray(s, dtype=np.float32) for s in samples]
    if not all(np.isfinite(s).all() for s in out):
        raise CalibrationError(f"{decl.name}: {role} {where} contains NaN or infinite values")
    return out


def load_calibration(decl: Declaration) -> tuple[list[np.ndarray], list[Path], bool]:
    """Return (samples, dependency files, is_random)."""
    ref: CalibrationRef | None = decl.calibration
    if ref is None:
        rng = np.random.default_rng(RANDOM_CALIBRATION_SEED)
        samples = [rng.standard_normal(decl.input_shape).astype(np.float32) for _ in range(RANDOM_CALIBRATION_SAMPLES)]
        return samples, [], True
    samples, deps = load_samples(decl, ref, "calibration")
    return samples, deps, False


def load_evaluation(decl: Declaration) -> tuple[list[np.ndarray], list[Path]]:
    """The EVAL / --eval samples and their dependency files (decl.evaluation must be set)."""
    assert decl.evaluation is not None
    return load_samples(decl, decl.evaluation, "evaluation")


def _audio_dependencies(ref: CalibrationRef) -> list[Path]:
    """The files audio calibration reads, and for a folder the folder and its subfolders (a file added to one
    changes its modification time: the depfile makes the build system rerun the tool, whose cache key holds
    the listing)."""
    deps = list(ref.wav_files)
    if ref.path.is_dir():
        folders = {ref.path}
        for f in ref.wav_files:
            folders.update(p for p in f.parents if p.is_relative_to(ref.path))
        deps = sorted(folders) + deps
    return deps


def _is_pcm_npy(ref: CalibrationRef) -> bool:
    """With a front end, a .npy of 1 or 2 dims is PCM ([samples] or [clips, samples]); one of 3 or more is
    feature frames shaped like the model input (the format without a front end)."""
    if ref.function is not None or ref.path.suffix.lower() != ".npy":
        return False
    try:
        array = np.load(ref.path, mmap_mode="r", allow_pickle=False)
    except Exception:
        return False  # the feature loader reports it
    return isinstance(array, np.ndarray) and array.ndim in (1, 2)


def load_audio_samples(decl: Declaration, ref: CalibrationRef, role: str) -> tuple[list[np.ndarray], list[Path]]:
    """Model inputs computed from audio (FILE.wav, a folder of .wav files, FILE.npy of PCM) by the declared
    front end, as the chip computes them: audio.pcm.audio_model_input (windows of INPUT_SHAPE dim 2 frames)."""
    from .audio.pcm import audio_model_input

    assert decl.frontend is not None
    array, clips = audio_model_input(ref.path, decl.frontend, decl.input_shape, name=decl.name, role=role)
    deps = _audio_dependencies(ref) if ref.wav_files else [ref.path]
    missing = [f for f in clips.files if f not in deps]
    return _as_samples(decl, array, str(ref), role), deps + missing


def load_samples(decl: Declaration, ref: CalibrationRef, role: str) -> tuple[list[np.ndarray], list[Path]]:
    """Samples of the model input from FILE.npy, FILE.npz or FILE.py:FUNC; `role` names the data in errors.
    With a front end also from audio (:func:`load_audio_samples`)."""
    if decl.frontend is not None and (ref.wav_files or _is_pcm_npy(ref)):
        return load_audio_samples(decl, ref, role)
    if ref.function is None:
        try:
            loaded = np.load(ref.path, allow_pickle=False)
        except Exception as exc:
            raise CalibrationError(f"{decl.name}: cannot read {role} file {ref.path}: {exc}") from exc
        if isinstance(loaded, np.lib.npyio.NpzFile):
            with loaded:
                keys = sorted(loaded.files)
                if not keys:
                    raise CalibrationError(f"{decl.name}: {role} file {ref.path} holds no arrays")
                samples = []
                for key in keys:
                    samples += _as_samples(decl, loaded[key], f"{ref.path}[{key}]", role)
        else:
            samples = _as_samples(decl, loaded, str(ref.path), role)
        return samples, [ref.path]
    before = dict(sys.modules)
    with _on_sys_path(ref.path.parent):
        module = _import_file(decl, ref.path, f"{role} file")
        func = getattr(module, ref.function, None)
        if func is None or not callable(func):
            raise CalibrationError(f"{decl.name}: {ref.path} has no function '{ref.function}'")
        try:
            data = func()
        except Exception as exc:
            raise CalibrationError(
                f"{decl.name}: {role} function {ref} raised{_user_frame(exc, ref.path)}: {type(exc).__name__}: {exc}"
            ) from exc
    new_modules = {k: v for k, v in sys.modules.items() if k not in before}
    deps = local_module_files(new_modules)
    if hasattr(data, "detach"):
        data = data.detach().cpu().numpy()
    if isinstance(data, np.ndarray):
        samples = _as_samples(decl, data, str(ref), role)
    else:
        try:
            items = list(data)
        except TypeError:
            raise CalibrationError(
                f"{decl.name}: {role} function {ref} returned {type(data).__name__}: return an array "
                "or a list of arrays"
            ) from None
        samples = []
        for i, item in enumerate(items):
            if hasattr(item, "detach"):
                item = item.detach().cpu().numpy()
            samples += _as_samples(decl, np.asarray(item), f"{ref}[{i}]", role)
    return samples, deps
