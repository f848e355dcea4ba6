"""The ESP-DL versions whose integer semantics the simulator (and so every golden vector) follows.

ESP-DL 3.3.8 changed the int16 LUT from interpolation to a nearest-pivot lookup
(``dl_module_lut.hpp``); the simulator implements the new one, so the floor is 3.3.8, and the
major version is bounded.  The same range is in ``cmake/espdl_version.cmake`` (checked at
configure time against the ESP-DL a project builds with) and in ``idf_component.yml``;
``tests/test_espdl_version.py`` keeps the three equal.
"""

from __future__ import annotations

ESPDL_MIN = "3.3.8"
ESPDL_BELOW = "4.0.0"
ESPDL_RANGE = f">={ESPDL_MIN},<{ESPDL_BELOW}"

# ESP-DL loads W8A16 layers (int8 weights, int16 activations: QUANT w8a16, and QUANT auto's promoted
# layers) only from 3.3.11 on (its release notes; 3.3.9's loader rejects the quant type).
ESPDL_W8A16_MIN = "3.3.11"


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def runs_w8a16(espdl_version: str | None) -> bool:
    """Whether the project's ESP-DL (None: not known, e.g. the linux target's host engine) loads W8A16."""
    return espdl_version is None or version_tuple(espdl_version) >= version_tuple(ESPDL_W8A16_MIN)


def espdl_range_for(quant_types: set[str]) -> str:
    """The ESP-DL versions a model with these node quant types runs on, with our semantics."""
    if "W8A16" in quant_types:
        return f">={ESPDL_W8A16_MIN},<{ESPDL_BELOW}"
    return ESPDL_RANGE
