"""Zoo models for issue 9 (faithful conversion): float32 results in the middle of a model.

ESP-DL's Softmax writes float32; when more integer layers follow, esp-ppq inserts a QuantizeLinear
(PPQ_Operation_N) that brings the tensor back to int8/int16 at the next layer's exponent."""

from __future__ import annotations

import torch
from torch import nn

try:
    from .zoo_models import Entry, causal
except ImportError:  # loaded by the CLI as a model file, with its folder on sys.path
    from zoo_models import Entry, causal  # type: ignore[no-redef]


class SoftmaxMidStack(nn.Module):
    """A causal conv, a softmax over the channels of each frame (float32 in ESP-DL, quantized again by a
    QuantizeLinear), and another causal conv on the probabilities."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Conv1d(8, 12, 3)
        self.out = nn.Conv1d(12, 6, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = torch.softmax(self.inp(causal(x, 2)), dim=1)
        return self.out(causal(p, 1))


class SoftmaxMidLinear(nn.Module):
    """A dilated causal conv, a softmax over channels per frame, then a per-frame Linear on [B, T, C] and a
    ReLU: the QuantizeLinear feeds a Gemm instead of a Conv."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(8, 10, 2, dilation=3)
        self.fc = nn.Linear(10, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = torch.softmax(self.conv(causal(x, 3)), dim=1)
        return torch.relu(self.fc(p.transpose(1, 2)))


FACTORIES: dict[str, type[nn.Module]] = {
    "softmax_mid_stack": SoftmaxMidStack,
    "softmax_mid_linear": SoftmaxMidLinear,
}

_F = "faithful_float_mid.py"
ENTRIES: list[Entry] = [
    Entry("softmax_mid_stack", "1,8,16", 4, None, file=_F),
    Entry("softmax_mid_linear", "1,8,16", 4, None, file=_F),
]


def _make(name: str) -> nn.Module:
    torch.manual_seed(sum(map(ord, name)))
    return FACTORIES[name]().eval()


def __getattr__(name: str):  # factories addressable as faithful_float_mid.py:<name>
    if name in FACTORIES:
        return lambda: _make(name)
    raise AttributeError(name)
