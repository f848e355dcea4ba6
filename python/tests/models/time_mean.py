"""Not streamable: averages over the whole time axis (global pooling) before the head."""

import torch
from torch import nn


class TimeMean(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(8, 8, 1)
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.conv(x)).mean(dim=2))


def build() -> nn.Module:
    torch.manual_seed(1)
    return TimeMean().eval()
