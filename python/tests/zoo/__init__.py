"""The zoo's entries, gathered from every module under tests/zoo/ (one module per family of models)."""

from __future__ import annotations

from .faithful_axes import ENTRIES as _AXES
from .faithful_float_mid import ENTRIES as _FLOAT_MID
from .faithful_layout import ENTRIES as _LAYOUT
from .faithful_ops import ENTRIES as _OPS
from .faithful_recurrent import ENTRIES as _RECURRENT
from .zoo_models import ENTRIES as _BASE

ALL_ENTRIES = [*_BASE, *_AXES, *_OPS, *_RECURRENT, *_LAYOUT, *_FLOAT_MID]
