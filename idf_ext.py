"""idf.py extension of the espdl_streaming component: `idf.py espdl-streaming-setup`.

Runs tools/espdl_streaming_env.py (the same code, loaded by path): creates the model tool's own Python
environment, per user and component version, which the build then finds without any variable. ESP-IDF's
Python is not modified.

ESP-IDF loads a component's idf_ext.py from v6.0 on, once the project has been configured (it reads
build/project_description.json), and from v6.0.2 / v6.1 only from trusted components: the project's
components/ directory, EXTRA_COMPONENT_DIRS, or the registry's espressif/ namespace (others need
IDF_EXTENSION_ALLOW_UNTRUSTED=1). Everywhere else run the script itself:

    python <component>/tools/espdl_streaming_env.py

Loaded on every idf.py start of a project with this component: it only defines the action here.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

_SCRIPT = Path(__file__).resolve().parent / "tools" / "espdl_streaming_env.py"


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("espdl_streaming_env", _SCRIPT)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {_SCRIPT}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def action_extensions(base_actions: dict, project_path: str) -> dict:
    def setup(action: str, ctx: Any, args: Any, venv: str | None = None, torch_index: str | None = None,
              python: str | None = None, force: bool = False, **_: Any) -> None:  # fmt: skip
        script = _load_script()
        code = script.run(
            venv=Path(venv) if venv else None, torch_index=torch_index, python=python or None, force=force
        )
        if code != 0:
            try:
                from idf_py_actions.errors import FatalError
            except ImportError:  # pragma: no cover - outside idf.py
                raise SystemExit(code) from None
            raise FatalError(f"{action} failed (exit {code})")

    return {
        "version": "1",  # the extension format (ESP-IDF >= 6.0 requires it)
        "actions": {
            "espdl-streaming-setup": {
                "callback": setup,
                "short_help": "Create the espdl_streaming model tool's Python environment (once per user).",
                "help": "Create (or update) the Python environment of the espdl_streaming model tool: a venv per "
                "user and component version with pinned requirements and CPU-only torch, which the build finds "
                "without any variable. ESP-IDF's Python is not modified. Same as running "
                "tools/espdl_streaming_env.py of the component.",
                "options": [
                    {
                        "names": ["--venv"],
                        "default": None,
                        "help": "Where to create it (default: $ESPDL_STREAMING_VENV, else per user and version).",
                    },
                    {
                        "names": ["--torch-index"],
                        "default": None,
                        "help": "Extra index for CPU-only torch (default: $ESPDL_STREAMING_TORCH_INDEX, else the "
                        "PyTorch CPU wheel index; '' for pip's configured indexes only).",
                    },
                    {
                        "names": ["--python"],
                        "default": None,
                        "help": "Base interpreter of the venv (default: the one running idf.py; >= 3.11).",
                    },
                    {"names": ["--force"], "is_flag": True, "default": False, "help": "Rebuild even when up to date."},
                ],  # fmt: skip
            }
        },
    }
