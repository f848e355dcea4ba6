"""Example recurrent streaming model: a causal conv front end, a GRU, a per-frame classifier.

Input is a stream of 16-dimensional feature frames in torch layout ``[1, 16, T]``.  The GRU's
hidden state is exposed as a model input/output by ``espdl_streaming`` and carried from chunk
to chunk by the generated class, so every output frame depends on the whole stream so far,
exactly as in one offline run.

``build()`` is the factory named in ``MODEL examples/gru/model.py:build``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

FEATURES = 16
HIDDEN = 12
CLASSES = 4


class GruKws(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.front = nn.Conv1d(FEATURES, FEATURES, 3)  # causal: padded on the left below
        self.gru = nn.GRU(FEATURES, HIDDEN, batch_first=True)
        self.head = nn.Linear(HIDDEN, CLASSES)

    def forward(self, x: Tensor) -> Tensor:
        y = torch.relu(self.front(F.pad(x, (2, 0))))  # [1, 16, T]
        y, _ = self.gru(y.transpose(1, 2))  # [1, T, HIDDEN]
        return self.head(y)  # [1, T, CLASSES]: one score vector per frame


def build() -> nn.Module:
    torch.manual_seed(11)
    return GruKws().eval()
