"""Zoo models for issue 9 (faithful conversion): axes."""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: F401
from torch import nn

try:
    from .zoo_models import Entry, causal  # noqa: F401
except ImportError:  # loaded by the CLI as a model file, with its folder on sys.path
    from zoo_models import Entry, causal  # type: ignore[no-redef]  # noqa: F401


class PoolThenConv(nn.Module):
    """A causal MaxPool in the middle of the stack, then a conv and a ReLU."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(8, 8, 2)
        self.pool = nn.MaxPool1d(3, stride=1)
        self.conv2 = nn.Conv1d(8, 6, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(causal(torch.relu(self.conv1(causal(x, 1))), 2))
        return torch.relu(self.conv2(causal(x, 1)))


class AvgPoolStridedMid(nn.Module):
    """A causal average pool with stride 2 in the middle, then a conv and another (max) pool."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(8, 8, 3)
        self.pool = nn.AvgPool1d(2, stride=2)
        self.conv2 = nn.Conv1d(8, 6, 2)
        self.pool2 = nn.MaxPool1d(2, stride=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(causal(torch.relu(self.conv1(causal(x, 2))), 1))
        x = torch.tanh(self.conv2(causal(x, 1)))
        return self.pool2(causal(x, 1))


class GatedSharedPad(nn.Module):
    """A WaveNet-style gated block: filter and gate convs read ONE padded tensor; residual add."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Conv1d(8, 8, 1)
        self.filt = nn.Conv1d(8, 8, 2, dilation=2)
        self.gate = nn.Conv1d(8, 8, 2, dilation=2)
        self.out = nn.Conv1d(8, 8, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.inp(x)
        p = causal(x, 2)
        y = torch.tanh(self.filt(p)) * torch.sigmoid(self.gate(p))
        return x + self.out(y)


class FreqMean2d(nn.Module):
    """A Conv2d front end over (time, frequency), the mean over frequency (keepdim=False), a Conv1d head."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, (3, 3), padding=(0, 1))
        self.conv2 = nn.Conv1d(4, 6, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv1(F.pad(x, (0, 0, 2, 0))))
        x = x.mean(dim=3)
        return self.conv2(causal(x, 1))


class FreqMax2d(nn.Module):
    """A Conv2d front end over (time, frequency), the maximum over frequency (amax, keepdim=False), a Conv1d head."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, (3, 3), padding=(0, 1))
        self.conv2 = nn.Conv1d(4, 6, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.tanh(self.conv1(F.pad(x, (0, 0, 2, 0))))
        x = x.amax(dim=3)
        return self.conv2(causal(x, 1))


class FreqPool2d(nn.Module):
    """Conv2d over (time, frequency), a max pool over frequency only, another Conv2d, an average pool
    over the whole frequency axis, squeeze(3) to [N, C, T], a Conv1d head."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, (3, 3), padding=(0, 1))
        self.pool1 = nn.MaxPool2d((1, 2))
        self.conv2 = nn.Conv2d(4, 6, (2, 3), padding=(0, 1))
        self.pool2 = nn.AvgPool2d((1, 6))
        self.head = nn.Conv1d(6, 5, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(torch.relu(self.conv1(F.pad(x, (0, 0, 2, 0)))))
        x = self.pool2(torch.relu(self.conv2(F.pad(x, (0, 0, 1, 0)))))
        return self.head(causal(x.squeeze(3), 1))


class MaxPoolStridedMid(nn.Module):
    """A causal max pool with stride 2 between convs, the second conv dilated."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(8, 8, 2)
        self.pool = nn.MaxPool1d(3, stride=2)
        self.conv2 = nn.Conv1d(8, 6, 2, dilation=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(causal(torch.relu(self.conv1(causal(x, 1))), 2))
        return torch.relu(self.conv2(causal(x, 2)))


class ConcatSharedPad(nn.Module):
    """Two convs with different kernels read one padded tensor; their outputs are concatenated."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Conv1d(8, 8, 1)
        self.a = nn.Conv1d(8, 4, 3)
        self.b = nn.Conv1d(8, 4, 2, dilation=2)
        self.mix = nn.Conv1d(8, 6, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = causal(torch.relu(self.inp(x)), 2)
        return self.mix(torch.cat([torch.tanh(self.a(p)), torch.relu(self.b(p))], dim=1))


class ResidualSharedPad(nn.Module):
    """A causal conv on the padded tensor plus a 1x1 conv skip on the unpadded one; a pool also reads the pad."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Conv1d(8, 8, 1)
        self.conv = nn.Conv1d(8, 8, 3)
        self.skip = nn.Conv1d(8, 8, 1)
        self.pool = nn.MaxPool1d(3, stride=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.inp(x))
        p = causal(x, 2)
        return torch.relu(self.conv(p)) + self.skip(x) + self.pool(p)


class PerChannelAffine(nn.Module):
    """Per-channel constants: x * scale[C, 1] + shift[1, C, 1] between convs, a per-channel gate."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(8, 8, 2)
        self.scale = nn.Parameter(torch.rand(8, 1) + 0.5)
        self.shift = nn.Parameter(torch.randn(1, 8, 1) * 0.1)
        self.conv2 = nn.Conv1d(8, 6, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv1(causal(x, 1))) * self.scale + self.shift
        return self.conv2(causal(x, 1))


class UnsqueezeTo2d(nn.Module):
    """A Conv1d front end, then its channels become a frequency axis: [N, C, T] -> [N, 1, T, C] via
    transpose + unsqueeze, a causal Conv2d over (time, frequency), a pool over frequency, squeeze."""

    def __init__(self) -> None:
        super().__init__()
        self.front = nn.Conv1d(8, 8, 2)
        self.conv = nn.Conv2d(1, 4, (2, 3), padding=(0, 1))
        self.pool = nn.AvgPool2d((1, 8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.front(causal(x, 1)))
        x = x.transpose(1, 2).unsqueeze(1)
        x = torch.relu(self.conv(F.pad(x, (0, 0, 1, 0))))
        return self.pool(x).squeeze(3)


class PadThenActivation(nn.Module):
    """An explicit Pad over time read by an activation before the conv: refused (the pad must feed the conv)."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Conv1d(8, 8, 1)
        self.conv = nn.Conv1d(8, 6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.sigmoid(causal(self.inp(x), 2)))


class TimeMean2d(nn.Module):
    """A Conv2d front end, then the mean over time (keepdim=False): refused, it needs every frame."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, (2, 3), padding=(0, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(F.pad(x, (0, 0, 1, 0)))).mean(dim=2)


class FreqToChannels(nn.Module):
    """CRNN-style: Conv2d over (time, frequency), then frequency folded into channels,
    [N, C, T, F] -> [N, C * F, T] (permute + flatten), a Conv1d head."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, (3, 3), padding=(0, 1))
        self.pool = nn.MaxPool2d((1, 2))
        self.head = nn.Conv1d(24, 6, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(torch.relu(self.conv(F.pad(x, (0, 0, 2, 0)))))
        x = x.permute(0, 1, 3, 2).flatten(1, 2)
        return self.head(causal(x, 1))


class FreqToFeatures(nn.Module):
    """Conv2d over (time, frequency), then [N, C, T, F] -> [N, T, C * F] and a per-frame Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, (2, 3), padding=(0, 1), stride=(1, 2))
        self.fc = nn.Linear(24, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv(F.pad(x, (0, 0, 1, 0))))
        return self.fc(x.permute(0, 2, 1, 3).flatten(2))


FACTORIES: dict[str, type[nn.Module]] = {
    "pool_then_conv": PoolThenConv,
    "avgpool_strided_mid": AvgPoolStridedMid,
    "gated_shared_pad": GatedSharedPad,
    "freq_mean_2d": FreqMean2d,
    "freq_max_2d": FreqMax2d,
    "freq_pool_2d": FreqPool2d,
    "maxpool_strided_mid": MaxPoolStridedMid,
    "concat_shared_pad": ConcatSharedPad,
    "residual_shared_pad": ResidualSharedPad,
    "per_channel_affine": PerChannelAffine,
    "unsqueeze_to_2d": UnsqueezeTo2d,
    "pad_then_activation": PadThenActivation,
    "time_mean_2d": TimeMean2d,
    "freq_to_channels": FreqToChannels,
    "freq_to_features": FreqToFeatures,
}

_F = "faithful_axes.py"
ENTRIES: list[Entry] = [
    Entry("pool_then_conv", "1,8,16", 4, None, file=_F),
    Entry("avgpool_strided_mid", "1,8,16", 4, None, file=_F),
    Entry("maxpool_strided_mid", "1,8,16", 4, None, file=_F),
    Entry("gated_shared_pad", "1,8,16", 4, None, file=_F),
    Entry("concat_shared_pad", "1,8,16", 4, None, file=_F),
    Entry("residual_shared_pad", "1,8,16", 4, None, file=_F),
    Entry("freq_pool_2d", "1,1,16,12", 4, None, file=_F),
    Entry("unsqueeze_to_2d", "1,8,16", 4, None, file=_F),
    Entry("freq_to_channels", "1,1,16,12", 4, None, file=_F),
    Entry("freq_to_features", "1,1,16,12", 4, None, file=_F),
    # Reductions over frequency (keepdim=False): the planner streams them, the simulator and the host
    # engine run ESP-DL's ReduceMean/ReduceMax.
    Entry("freq_mean_2d", "1,1,16,12", 4, None, file=_F),
    Entry("freq_max_2d", "1,1,16,12", 4, None, file=_F),
    Entry("time_mean_2d", "1,1,16,12", 4, "time axis", file=_F),
    Entry("pad_then_activation", "1,8,16", 4, "but is not a Conv or pool", file=_F),
    Entry("per_channel_affine", "1,8,16", 4, "keeps in the torch layout", file=_F),
]


def _make(name: str) -> nn.Module:
    torch.manual_seed(sum(map(ord, name)))
    return FACTORIES[name]().eval()


def __getattr__(name: str):  # factories addressable as faithful_axes.py:<name>
    if name in FACTORIES:
        return lambda: _make(name)
    raise AttributeError(name)
