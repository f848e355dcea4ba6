"""Example streaming model: a small causal temporal convolutional network (TCN).

Input is a stream of 16-dimensional feature frames in torch layout ``[1, 16, T]``
(batch, features, time).  Every layer only looks at the past: convolutions and the
pooling layer pad on the left of the time axis only, so the model can be run chunk
by chunk with ``espdl_streaming``.

``build()`` is the factory named in ``MODEL examples/tcn/model.py:build``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

FEATURES = 16
HIDDEN = 24
CLASSES = 8
HEAD_FRAMES = 4


class CausalDepthwise(nn.Module):
    """Depthwise conv over time that reads only the current and past frames."""

    def __init__(self, channels: int, kernel: int, dilation: int) -> None:
        super().__init__()
        self.left = dilation * (kernel - 1)
        self.conv = nn.Conv1d(channels, channels, kernel, dilation=dilation, groups=channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.pad(x, (self.left, 0)))


class ResidualBlock(nn.Module):
    """Depthwise-separable causal block with a residual connection."""

    def __init__(self, channels: int, kernel: int, dilation: int) -> None:
        super().__init__()
        self.depthwise = CausalDepthwise(channels, kernel, dilation)
        self.pointwise = nn.Conv1d(channels, channels, 1)
        self.act = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        return x + self.act(self.pointwise(self.act(self.depthwise(x))))


class CausalAvgPool(nn.Module):
    def __init__(self, kernel: int) -> None:
        super().__init__()
        self.left = kernel - 1
        self.pool = nn.AvgPool1d(kernel, stride=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(F.pad(x, (self.left, 0)))


class TinyTCN(nn.Module):
    def __init__(self, head_frames: int = HEAD_FRAMES) -> None:
        super().__init__()
        self.head_frames = head_frames
        self.stem = nn.Conv1d(FEATURES, HIDDEN, 1)
        self.blocks = nn.Sequential(
            ResidualBlock(HIDDEN, kernel=3, dilation=1),
            ResidualBlock(HIDDEN, kernel=3, dilation=2),
        )
        self.pool = CausalAvgPool(2)
        self.proj = nn.Conv1d(HIDDEN, FEATURES, 1)
        self.classifier = nn.Linear(FEATURES * head_frames, CLASSES)

    def forward(self, x: Tensor) -> Tensor:
        x = torch.relu(self.stem(x))
        x = self.blocks(x)
        x = self.proj(self.pool(x))
        x = x[:, :, -self.head_frames :]
        return self.classifier(torch.flatten(x, 1))


def build() -> nn.Module:
    torch.manual_seed(7)
    return TinyTCN().eval()
