"""Small torch models that, together, exercise every operator the simulator supports.

Used by test_simulator.py and test_host_engine.py.  Channel counts are chosen so filters hit both the
aligned and the unaligned weight layouts for 16 lanes (int8) and 8 lanes (int16).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class Activations1d(nn.Module):
    """Conv front end, then every element-wise activation and binary op, pooling, Gemm."""

    input_shape = (1, 8, 12)

    def __init__(self) -> None:
        super().__init__()
        self.front = nn.Conv1d(8, 20, 3, padding=1)
        self.prelu = nn.PReLU(20, init=0.2)
        self.depthwise = nn.Conv1d(20, 20, 3, dilation=2, groups=20)
        self.strided = nn.Conv1d(20, 12, 3, stride=2, padding=1)
        self.head = nn.Linear(12, 5)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = self.front(x)
        a = F.leaky_relu(x, 0.1) + torch.sigmoid(x)
        b = torch.tanh(x) - F.hardsigmoid(x)
        c = F.hardswish(x) * F.silu(x)
        d = self.prelu(x) + torch.clamp(x, -0.5, 0.75)
        y = torch.relu(a + b) + c - d
        y = self.depthwise(F.pad(y, (4, 0)))
        y = F.max_pool1d(y, 2, stride=2)
        y = F.avg_pool1d(y, 3, stride=1, padding=1)
        y = self.strided(y)
        return y, self.head(torch.flatten(F.adaptive_avg_pool1d(y, 1), 1))


class Shapes1d(nn.Module):
    """Data movement: Slice, Concat, Transpose, Reshape, (Un)Squeeze, MatMul (constant and
    dynamic operand), Linear on a 3-D tensor (esp-ppq: Reshape + Gemm + Reshape)."""

    input_shape = (1, 6, 10)

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv1d(6, 16, 1)
        self.b = nn.Conv1d(6, 8, 3, padding=(2,))
        self.proj = nn.Linear(24, 16)
        self.mix = nn.Parameter(torch.randn(8, 16) * 0.3)

    def forward(self, x: Tensor) -> Tensor:
        a = torch.relu(self.a(x))
        b = self.b(x)[:, :, 1:-1]
        y = torch.cat([a, b], dim=1)
        y = y + 0.5 * torch.cat([b, a], dim=1)
        t = y.transpose(1, 2)  # (1, T, 24)
        t = self.proj(t)  # MatMul + Add
        t = t.unsqueeze(1).reshape(1, 10, 16)
        t = torch.matmul(t[:, 2:], self.mix.t())  # (1, 8, 8), constant operand
        g = torch.matmul(t, t[:, :4].transpose(1, 2))  # (1, 8, 4), two activations
        g = torch.relu(g.unsqueeze(1)).squeeze(1)
        return g[:, -4:]


class Conv2d(nn.Module):
    """2-D convolutions (HWC filter layouts), depthwise 2-D, 2-D pooling, a standalone
    BatchNorm (esp-ppq turns it into a 1x1 depthwise Conv) and a head."""

    input_shape = (1, 3, 6, 8)

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 17, (3, 3), stride=(1, 2), padding=1)
        self.depthwise = nn.Conv2d(17, 17, 3, padding=1, groups=17)
        self.pointwise = nn.Conv2d(17, 8, 1)
        self.norm = nn.BatchNorm2d(8)
        self.head = nn.Linear(8, 4)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = torch.relu(self.conv(x))
        x = F.hardswish(self.depthwise(x))
        x = self.norm(F.max_pool2d(self.pointwise(x), 2))
        x = F.avg_pool2d(x, (1, 2))
        return x, torch.sigmoid(self.head(F.adaptive_avg_pool2d(x, 1).flatten(1)))


MODELS: dict[str, type[nn.Module]] = {
    "activations1d": Activations1d,
    "shapes1d": Shapes1d,
    "conv2d": Conv2d,
}


def build(name: str) -> nn.Module:
    torch.manual_seed(3)
    model = MODELS[name]()
    if name == "conv2d":
        with torch.no_grad():
            norm = model.norm  # type: ignore[attr-defined]
            norm.running_mean.uniform_(-0.3, 0.3)
            norm.running_var.uniform_(0.5, 2.0)
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.uniform_(-0.2, 0.2)
    return model.eval()


def export_with_test_values(
    model: nn.Module, shape: list[int], path: Path, target: str, bits: int, debug: bool
) -> Path:
    """Quantize and export with esp-ppq's own API, embedding its test values; seeded calibration."""
    from esp_ppq.api import espdl_quantize_torch
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(0)
    loader = DataLoader(TensorDataset(torch.randn(16, *shape[1:])), batch_size=1)
    espdl_quantize_torch(
        model=model,
        espdl_export_file=str(path),
        calib_dataloader=loader,
        calib_steps=8,
        input_shape=shape,
        target=target,
        num_of_bits=bits,
        device="cpu",
        export_test_values=True,
        verbose=0,
        error_report=False,
        debug=debug,
        collate_fn=lambda batch: batch[0],
    )
    return path
