"""Zoo models for issue 9 (faithful conversion): ops."""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: F401
from torch import nn

try:
    from .zoo_models import Entry, causal
except ImportError:  # loaded by the CLI as a model file, with its folder on sys.path
    from zoo_models import Entry, causal  # type: ignore[no-redef]


class LastFrameGatherHead(nn.Module):
    """A causal conv stack, the last frame as ``x[:, :, -1]`` (a Gather on time), a Linear classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(8, 8, 3)
        self.conv2 = nn.Conv1d(8, 6, 2, dilation=2)
        self.fc = nn.Linear(6, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv1(causal(x, 2)))
        x = torch.relu(self.conv2(causal(x, 2)))
        return self.fc(x[:, :, -1])


class EarlierFrameGatherHead(nn.Module):
    """``x[:, :, -6]``: the frame 5 steps before the last one, more than a 4-frame chunk holds (a tail cache)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(8, 6, 3)
        self.fc = nn.Linear(6, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv1(causal(x, 2)))[:, :, -6])


class SoftmaxPerFrame(nn.Module):
    """A causal conv stack with a per-frame classifier, softmax over the classes (channels, dim=1)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(8, 8, 3)
        self.cls = nn.Conv1d(8, 5, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv1(causal(x, 2)))
        return torch.softmax(self.cls(x), dim=1)


class SoftmaxClassesHead(nn.Module):
    """Last-frame head (``x[:, :, -1]``), a Linear, softmax over the classes."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(8, 8, 3)
        self.fc = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv1(causal(x, 2)))
        return torch.softmax(self.fc(x[:, :, -1]), dim=-1)


class LayerNormPerFrame(nn.Module):
    """Conv, LayerNorm over channels per frame (transpose, LayerNorm(C), transpose back), conv."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(8, 8, 3)
        self.norm = nn.LayerNorm(8)
        with torch.no_grad():  # a trained norm: scale and bias away from 1 and 0
            self.norm.weight.uniform_(0.5, 1.5)
            self.norm.bias.uniform_(-0.5, 0.5)
        self.conv2 = nn.Conv1d(8, 6, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv1(causal(x, 2)))
        x = self.norm(x.transpose(1, 2)).transpose(1, 2)
        return self.conv2(causal(x, 1))


class LayerNormBTC(nn.Module):
    """A per-frame LayerNorm on a [B, T, C] tensor (after x.transpose(1, 2) of an NCW tensor), then a Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(8, 8, 3)
        self.norm = nn.LayerNorm(8)
        with torch.no_grad():  # a trained norm: scale and bias away from 1 and 0
            self.norm.weight.uniform_(0.5, 1.5)
            self.norm.bias.uniform_(-0.5, 0.5)
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv1(causal(x, 2)))
        return self.fc(self.norm(x.transpose(1, 2)))


class GatherChannel(nn.Module):
    """Gather on a non-time axis: pick one channel of a conv output (per frame), then a conv."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(8, 6, 3)
        self.conv2 = nn.Conv1d(1, 4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv1(causal(x, 2)))
        return self.conv2(causal(x[:, 2].unsqueeze(1), 1))


class FirstFrameGather(nn.Module):
    """``x[:, :, 0]`` keeps the first frame of the sequence: no chunk of a stream can compute it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(8, 6, 3)
        self.fc = nn.Linear(6, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv1(causal(x, 2)))[:, :, 0])


class LayerNormOverTime(nn.Module):
    """A LayerNorm over the time axis: each output depends on the whole sequence."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(8, 6, 3)
        self.norm = nn.LayerNorm(16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(torch.relu(self.conv1(causal(x, 2))))


FACTORIES: dict[str, type[nn.Module]] = {
    "last_frame_gather_head": LastFrameGatherHead,
    "earlier_frame_gather_head": EarlierFrameGatherHead,
    "softmax_per_frame": SoftmaxPerFrame,
    "softmax_classes_head": SoftmaxClassesHead,
    "layernorm_per_frame": LayerNormPerFrame,
    "layernorm_btc": LayerNormBTC,
    "gather_channel": GatherChannel,
    "first_frame_gather": FirstFrameGather,
    "layernorm_over_time": LayerNormOverTime,
}

ENTRIES: list[Entry] = [
    Entry("last_frame_gather_head", "1,8,16", 4, None, file="faithful_ops.py"),
    Entry("earlier_frame_gather_head", "1,8,16", 4, None, file="faithful_ops.py"),
    Entry("softmax_per_frame", "1,8,16", 4, None, file="faithful_ops.py"),
    Entry("softmax_classes_head", "1,8,16", 4, None, file="faithful_ops.py"),
    Entry("layernorm_per_frame", "1,8,16", 4, None, file="faithful_ops.py"),
    Entry("layernorm_btc", "1,8,16", 4, None, file="faithful_ops.py"),
    Entry("gather_channel", "1,8,16", 4, None, file="faithful_ops.py"),
    Entry("first_frame_gather", "1,8,16", 4, "depends on where the sequence starts", file="faithful_ops.py"),
    Entry("layernorm_over_time", "1,8,16", 4, "time axis", file="faithful_ops.py"),
]


def _make(name: str) -> nn.Module:
    torch.manual_seed(sum(map(ord, name)))
    return FACTORIES[name]().eval()


def __getattr__(name: str):  # factories addressable as faithful_ops.py:<name>
    if name in FACTORIES:
        return lambda: _make(name)
    raise AttributeError(name)
