"""tools/setup_idf_dev.sh: works with an ordinary ESP-IDF install given by IDF_PATH, and names what is
missing otherwise; no machine-specific default paths."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import REPO

SCRIPT = REPO / "tools" / "setup_idf_dev.sh"


def _run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("IDF_") and k != "UNITY_MIRROR"}
    return subprocess.run(["bash", str(SCRIPT)], env={**base, "ESPDL_STREAMING_NO_APT": "1", **env},
                          capture_output=True, text=True, check=False)  # fmt: skip


def test_no_machine_specific_defaults() -> None:
    text = SCRIPT.read_text()
    assert "/work/" not in text and "/home/" not in text


def test_without_an_esp_idf_it_says_what_to_do() -> None:
    proc = _run({})
    assert proc.returncode == 2
    assert "no ESP-IDF: source an ESP-IDF's export.sh (IDF_PATH)" in proc.stderr
    proc = _run({"IDF_MIRROR": "/nonexistent.git"})
    assert proc.returncode == 2 and "IDF_MIRROR is set: set IDF_DIR too" in proc.stderr


def test_an_ordinary_install_is_used_as_it_is(tmp_path: Path) -> None:
    idf = tmp_path / "esp-idf"
    (idf / "tools").mkdir(parents=True)
    env_dir = tmp_path / "python_env"
    (env_dir / "bin").mkdir(parents=True)
    (env_dir / "bin" / "python").symlink_to(sys.executable)
    proc = _run({"IDF_PATH": str(idf), "IDF_PYTHON_ENV_PATH": str(env_dir)})
    assert proc.returncode == 2 and f"IDF_PATH={idf} has no tools/idf.py" in proc.stderr
    (idf / "tools" / "idf.py").write_text("print('ESP-IDF v5.4.1')\n")
    proc = _run({"IDF_PATH": str(idf)})
    assert proc.returncode == 2 and "source " + str(idf) + "/export.sh first" in proc.stderr
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    proc = _run({"IDF_PATH": str(idf), "IDF_PYTHON_ENV_PATH": str(env_dir)})
    assert proc.returncode == 0, proc.stderr
    assert f"ESP-IDF at {idf} (ESP-IDF v5.4.1) is ready for the linux-target tests" in proc.stdout
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # the install is not touched
