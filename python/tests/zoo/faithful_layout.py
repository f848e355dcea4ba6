"""Zoo models for issue 9 (faithful conversion): output layouts and convolution variants."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

try:
    from .zoo_models import Entry, causal
except ImportError:  # loaded by the CLI as a model file, with its folder on sys.path
    from zoo_models import Entry, causal  # type: ignore[no-redef]


class LinearNcwOutput(nn.Module):
    """A conv stack, a per-frame Linear on [B, T, C], and the result transposed back to [B, C, T]: the
    exported output keeps time on axis 2."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(8, 12, 3)
        self.fc = nn.Linear(12, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.conv(causal(x, 2))).transpose(1, 2)
        return self.fc(y).transpose(1, 2)


class GroupedConv(nn.Module):
    """A grouped (not depthwise) convolution: ESP-DL runs group != 1 only as a depthwise one."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Conv1d(8, 8, 1)
        self.grouped = nn.Conv1d(8, 8, 3, groups=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.grouped(F.pad(torch.relu(self.inp(x)), (2, 0)))


FACTORIES: dict[str, type[nn.Module]] = {
    "linear_ncw_output": LinearNcwOutput,
    "grouped_conv": GroupedConv,
}

_F = "faithful_layout.py"
ENTRIES: list[Entry] = [
    Entry("linear_ncw_output", "1,8,16", 4, None, file=_F),
    Entry("grouped_conv", "1,8,16", 4, "ESP-DL's Conv runs group != 1 only as a depthwise convolution", file=_F),
]


def _make(name: str) -> nn.Module:
    torch.manual_seed(sum(map(ord, name)))
    return FACTORIES[name]().eval()


def __getattr__(name: str):  # factories addressable as faithful_layout.py:<name>
    if name in FACTORIES:
        return lambda: _make(name)
    raise AttributeError(name)
