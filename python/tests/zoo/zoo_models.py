"""The model zoo: architectures users bring, each with how it is declared and what must happen.

Every entry is built for esp32p4, esp32s3 and esp32c3 by test_zoo.py and must either verify
bit-exact (``expect=None``) or be refused with a message containing ``expect``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class Entry:
    name: str
    input_shape: str
    chunk: int
    expect: str | None  # None: verified; else a substring of the refusal
    file: str = "zoo_models.py"  # the module under tests/zoo/ that defines the factory


def causal(x: torch.Tensor, left: int) -> torch.Tensor:
    return F.pad(x, (left, 0))


class DwSeparableBN(nn.Module):
    """Depthwise-separable blocks with BatchNorm and ReLU6, like a KWS DS-CNN over time."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Conv1d(10, 16, 1)
        self.dw1 = nn.Conv1d(16, 16, 3, groups=16)
        self.bn1 = nn.BatchNorm1d(16)
        self.pw1 = nn.Conv1d(16, 16, 1)
        self.dw2 = nn.Conv1d(16, 16, 3, dilation=2, groups=16)
        self.bn2 = nn.BatchNorm1d(16)
        self.pw2 = nn.Conv1d(16, 6, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self.inp(x))
        x = F.relu6(self.pw1(F.relu6(self.bn1(self.dw1(causal(x, 2))))))
        return self.pw2(F.relu6(self.bn2(self.dw2(causal(x, 4)))))


class ConcatBranches(nn.Module):
    """Two branches with different receptive fields concatenated on channels."""

    def __init__(self) -> None:
        super().__init__()
        self.short = nn.Conv1d(8, 6, 2)
        self.long = nn.Conv1d(8, 6, 3, dilation=3)
        self.mix = nn.Conv1d(12, 5, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = torch.tanh(self.short(causal(x, 1)))
        b = torch.sigmoid(self.long(causal(x, 6)))
        return self.mix(torch.cat([a, b], dim=1))


class Strided(nn.Module):
    """Stride 2 over time, then a per-frame projection."""

    def __init__(self) -> None:
        super().__init__()
        self.down = nn.Conv1d(8, 12, 4, stride=2)
        self.proj = nn.Conv1d(12, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(F.relu(self.down(causal(x, 3))))


class TimeFreqConv2d(nn.Module):
    """Conv2d over (time, frequency) with time on H: input [1, 1, T, 12]."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, (3, 3), padding=(0, 1))
        self.conv2 = nn.Conv2d(4, 4, (2, 3), padding=(0, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(F.pad(x, (0, 0, 2, 0))))
        return self.conv2(F.pad(x, (0, 0, 1, 0)))


class PerFrameLinear(nn.Module):
    """A per-frame MLP on [1, T, C] (transpose, Linear over channels, transpose back)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(8, 8, 3)
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv(causal(x, 2)))
        return self.fc(x.transpose(1, 2))


class HeadLast2(nn.Module):
    """Slice the last 2 frames of a 3-frame chunk, flatten, classify (no tail cache needed)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(8, 6, 3, dilation=2)
        self.fc = nn.Linear(12, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv(causal(x, 4)))
        return self.fc(torch.flatten(x[:, :, -2:], 1))


class CausalMaxPool(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(8, 8, 1)
        self.pool = nn.MaxPool1d(3, stride=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(causal(F.relu(self.conv(x)), 2))


class SymmetricPad(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(8, 8, 5, padding=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class SoftmaxOverTime(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(8, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.conv(x), dim=2)


class GlobalPool(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(8, 4, 3)
        self.pool = nn.AdaptiveAvgPool1d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.conv(causal(x, 2)))


class Upsample(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.up = nn.ConvTranspose1d(8, 4, 2, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(x)


class UpsampleOverlap(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.up = nn.ConvTranspose1d(8, 4, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(x)


class Recurrent(nn.Module):
    """A per-frame Conv1d projection, a GRU over the frames (batch_first on [1, T, C]), a Linear head.
    The GRU's state is carried across chunks by the glue."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Conv1d(8, 8, 1)
        self.gru = nn.GRU(8, 6, batch_first=True)
        self.fc = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, _ = self.gru(torch.relu(self.proj(x)).transpose(1, 2))
        return self.fc(y)


class GruFirst(nn.Module):
    """A GRU straight on the input: esp-ppq keeps the input in NCW, time is not on the frame axis."""

    def __init__(self) -> None:
        super().__init__()
        self.gru = nn.GRU(8, 6, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gru(x.transpose(1, 2))[0]


class StackedGruHead(nn.Module):
    """A dilated causal conv, two stacked GRU layers, and a head on the last hidden state h_n."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(8, 8, 2, dilation=2)
        self.gru1 = nn.GRU(8, 6, batch_first=True)
        self.gru2 = nn.GRU(6, 5, batch_first=True)
        self.fc = nn.Linear(5, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y, _ = self.gru1(torch.relu(self.conv(causal(x, 2))).transpose(1, 2))
        y, h = self.gru2(y)
        return y, self.fc(h.squeeze(0))


class PlainRnn(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Conv1d(8, 8, 1)
        self.rnn = nn.RNN(8, 4, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rnn(self.proj(x).transpose(1, 2))[0]


class BidirectionalGru(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Conv1d(8, 8, 1)
        self.gru = nn.GRU(8, 4, batch_first=True, bidirectional=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gru(self.proj(x).transpose(1, 2))[0]


class RecurrentLSTM(nn.Module):
    """A causal conv front end, then an LSTM over the frames."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(8, 8, 3)
        self.lstm = nn.LSTM(8, 5, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, _ = self.lstm(torch.relu(self.conv(causal(x, 2))).transpose(1, 2))
        return y


class UpsamplePadded(nn.Module):
    """ConvTranspose with padding: the offline model drops frames at the start."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(8, 8, 2)
        self.up = nn.ConvTranspose1d(8, 4, 4, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(torch.relu(self.conv(causal(x, 1))))


FACTORIES: dict[str, type[nn.Module]] = {
    "upsample_padded": UpsamplePadded,
    "recurrent_gru": Recurrent,
    "recurrent_lstm": RecurrentLSTM,
    "gru_first": GruFirst,
    "stacked_gru_head": StackedGruHead,
    "bidirectional_gru": BidirectionalGru,
    "plain_rnn": PlainRnn,
    "upsample_overlap": UpsampleOverlap,
    "dw_separable_bn": DwSeparableBN,
    "concat_branches": ConcatBranches,
    "strided": Strided,
    "time_freq_conv2d": TimeFreqConv2d,
    "per_frame_linear": PerFrameLinear,
    "head_last2": HeadLast2,
    "causal_maxpool": CausalMaxPool,
    "symmetric_pad": SymmetricPad,
    "softmax_over_time": SoftmaxOverTime,
    "global_pool": GlobalPool,
    "upsample": Upsample,
}

ENTRIES = [
    Entry("dw_separable_bn", "1,10,20", 4, None),
    Entry("concat_branches", "1,8,18", 3, None),
    Entry("strided", "1,8,16", 4, None),
    Entry("strided", "1,8,16", 3, "multiple of the total stride 2 up to this layer: 2, 4, 6"),
    Entry("time_freq_conv2d", "1,1,16,12", 4, None),
    Entry("per_frame_linear", "1,8,16", 4, None),
    Entry("head_last2", "1,8,15", 3, None),
    Entry("causal_maxpool", "1,8,16", 4, None),
    Entry("symmetric_pad", "1,8,16", 4, "2 future frame(s)"),
    Entry("softmax_over_time", "1,8,16", 4, "time axis"),
    Entry("global_pool", "1,8,16", 4, "every frame"),
    Entry("upsample", "1,8,16", 4, None),
    Entry("recurrent_gru", "1,8,16", 4, None),
    Entry("recurrent_lstm", "1,8,16", 4, None),
    Entry("stacked_gru_head", "1,8,16", 4, None),
    Entry("gru_first", "1,8,16", 4, "keeps time on axis 2"),
    Entry("bidirectional_gru", "1,8,16", 4, "bidirectional over time"),
    Entry("plain_rnn", "1,8,16", 4, "ESP-DL does not implement"),
    Entry("upsample_overlap", "1,8,16", 4, None),
    Entry("upsample_padded", "1,8,16", 4, None),
]


def _make(name: str) -> nn.Module:
    torch.manual_seed(sum(map(ord, name)))
    return FACTORIES[name]().eval()


def __getattr__(name: str):  # factories addressable as zoo_models.py:<name>
    if name in FACTORIES:
        return lambda: _make(name)
    raise AttributeError(name)
