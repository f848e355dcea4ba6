"""The package's version, written in one place: the component manifest ``idf_component.yml``.

``compote component pack`` (the ESP Component Registry) reads the manifest's top-level ``version``;
pip reads this module (``[tool.setuptools.dynamic]`` in ``python/pyproject.toml``), and so does the
tool.  The manifest sits two levels up wherever the package is used from the component (a checkout,
an editable install, a managed component); an sdist of python/ carries it in PKG-INFO, and an
installed wheel answers from its own metadata.
Kept free of imports outside the standard library: setuptools executes it alone while building.
"""

from __future__ import annotations

import re
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent
# python/espdl_streaming/_version.py -> the component's root, where idf_component.yml is.
_MANIFEST = _PACKAGE_DIR.parents[1] / "idf_component.yml"
# The top-level key only (nested `version:` keys, as a dependency's range, are indented), quoted or not.
_VERSION_LINE = re.compile(r"""^version:[ \t]*(["']?)([^"'\s#]+)\1[ \t]*(?:#.*)?$""", re.MULTILINE)


def manifest_version(manifest: Path) -> str | None:
    """The top-level ``version`` of an ``idf_component.yml``, or None when it has none."""
    match = _VERSION_LINE.search(manifest.read_text(encoding="utf-8"))
    return match.group(2) if match else None


def _read_version() -> str:
    if _PACKAGE_DIR.parent.name == "python" and _MANIFEST.is_file():
        found = manifest_version(_MANIFEST)
        if found:
            return found
    pkg_info = _PACKAGE_DIR.parent / "PKG-INFO"  # building a wheel from an sdist
    if pkg_info.is_file():
        match = re.search(r"^Version:[ \t]*(\S+)", pkg_info.read_text(encoding="utf-8"), re.MULTILINE)
        if match:
            return match.group(1)
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("espdl-streaming")
    except PackageNotFoundError:
        return "0+unknown"


__version__ = _read_version()
