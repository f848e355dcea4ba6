"""Keyword-spotting example: a small causal TCN over ESP-DL fbank features, one score vector per frame.

Input: a stream of 40-dimensional log-mel filterbank frames (``FRONTEND fbank NUM_MEL_BINS 40``: 25 ms
frames every 10 ms at 16 kHz) in torch layout ``[1, 40, T]`` (batch, features, time). Output:
``[1, T, 4]``, the class scores (logits) of every frame in ``make_wavs.CLASSES`` order
(``_background``, ``up``, ``down``, ``baba``). Every layer only looks at the past (convolutions padded
on the left of the time axis), so the model runs chunk by chunk; its receptive field is 31 frames
(0.335 s of audio), enough to hold a whole keyword.

``build()`` is the factory named in ``MODEL examples/kws_audio/model.py:build``; it loads the weights
``train.py`` wrote to ``weights.npz`` next to this file (the input normalisation is folded into the
first convolution there, so the model takes the front end's features as they are).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

FEATURES = 40  # NUM_MEL_BINS
HIDDEN = 32
CLASSES = 4
DILATIONS = (1, 2, 4, 8)  # kernel 3: receptive field 1 + 2 * (1 + 2 + 4 + 8) = 31 frames
WEIGHTS = Path(__file__).resolve().parent / "weights.npz"


class CausalBlock(nn.Module):
    """Dilated causal conv (kernel 3) with a residual connection."""

    def __init__(self, channels: int, dilation: int) -> None:
        super().__init__()
        self.left = 2 * dilation
        self.conv = nn.Conv1d(channels, channels, 3, dilation=dilation)

    def forward(self, x: Tensor) -> Tensor:
        return x + torch.relu(self.conv(F.pad(x, (self.left, 0))))


class KwsTCN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv1d(FEATURES, HIDDEN, 1)
        self.blocks = nn.Sequential(*(CausalBlock(HIDDEN, d) for d in DILATIONS))
        self.head = nn.Conv1d(HIDDEN, CLASSES, 1)

    def forward(self, x: Tensor) -> Tensor:
        y = self.blocks(torch.relu(self.stem(x)))
        return self.head(y).transpose(1, 2)  # [1, T, CLASSES]: one score vector per frame


def build() -> nn.Module:
    model = KwsTCN()
    with np.load(WEIGHTS) as weights:
        model.load_state_dict({k: torch.from_numpy(weights[k]) for k in weights.files})
    return model.eval()
