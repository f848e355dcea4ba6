"""Zoo models for issue 9 (faithful conversion): recurrent."""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: F401
from torch import nn

try:
    from .zoo_models import Entry, causal  # noqa: F401
except ImportError:  # loaded by the CLI as a model file, with its folder on sys.path
    from zoo_models import Entry, causal  # type: ignore[no-redef]  # noqa: F401

FACTORIES: dict[str, type[nn.Module]] = {}

ENTRIES: list[Entry] = []


def _make(name: str) -> nn.Module:
    torch.manual_seed(sum(map(ord, name)))
    return FACTORIES[name]().eval()


def __getattr__(name: str):  # factories addressable as faithful_recurrent.py:<name>
    if name in FACTORIES:
        return lambda: _make(name)
    raise AttributeError(name)
