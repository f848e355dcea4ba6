"""Zoo models for issue 9 (faithful conversion): recurrent."""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: F401
from torch import nn

try:
    from .zoo_models import Entry, causal  # noqa: F401
except ImportError:  # loaded by the CLI as a model file, with its folder on sys.path
    from zoo_models import Entry, causal  # type: ignore[no-redef]  # noqa: F401


class GruLearnedH0(nn.Module):
    """A GRU that starts from a learned initial state (an nn.Parameter h0, expanded to the batch):
    the state after init() and reset() must be h0, not zeros."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Conv1d(8, 8, 1)
        self.gru = nn.GRU(8, 6, batch_first=True)
        self.h0 = nn.Parameter(torch.rand(1, 1, 6) * 0.8 - 0.4)
        self.fc = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h0 = self.h0.expand(-1, x.shape[0], -1).contiguous()
        y, _ = self.gru(torch.relu(self.proj(x)).transpose(1, 2), h0)
        return self.fc(y)


class LstmLearnedState(nn.Module):
    """An LSTM after a causal conv, starting from a learned hidden and cell state."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(8, 8, 3)
        self.lstm = nn.LSTM(8, 5, batch_first=True)
        self.h0 = nn.Parameter(torch.rand(1, 1, 5) * 0.6 - 0.3)
        self.c0 = nn.Parameter(torch.rand(1, 1, 5) * 1.2 - 0.6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, _ = self.lstm(torch.relu(self.conv(causal(x, 2))).transpose(1, 2), (self.h0, self.c0))
        return y


class GruReturnsHn(nn.Module):
    """A forward that returns (y, h_n): h_n stays a user output while the glue loops it back."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Conv1d(8, 8, 1)
        self.gru = nn.GRU(8, 6, batch_first=True)
        self.fc = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y, h = self.gru(torch.relu(self.proj(x)).transpose(1, 2))
        return self.fc(y), h


class LstmReturnsState(nn.Module):
    """An LSTM with a learned h0 whose forward returns (y, (h_n, c_n)), and a head on h_n."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Conv1d(8, 8, 1)
        self.lstm = nn.LSTM(8, 4, batch_first=True)
        self.h0 = nn.Parameter(torch.rand(1, 1, 4) * 0.6 - 0.3)
        self.head = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        c0 = torch.zeros_like(self.h0)
        y, (h, c) = self.lstm(torch.relu(self.proj(x)).transpose(1, 2), (self.h0, c0))
        return y, h, c, self.head(h.squeeze(0))


class GruH0FromInput(nn.Module):
    """A GRU whose initial state is computed from the input: it cannot be carried across chunks."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Conv1d(8, 6, 1)
        self.gru = nn.GRU(6, 6, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = torch.tanh(self.proj(x)).transpose(1, 2)
        h0 = z.mean(dim=1).unsqueeze(0)
        return self.gru(z, h0)[0]


FACTORIES: dict[str, type[nn.Module]] = {
    "gru_learned_h0": GruLearnedH0,
    "lstm_learned_state": LstmLearnedState,
    "gru_returns_hn": GruReturnsHn,
    "lstm_returns_state": LstmReturnsState,
    "gru_h0_from_input": GruH0FromInput,
}

_FILE = "faithful_recurrent.py"
ENTRIES: list[Entry] = [
    Entry("gru_learned_h0", "1,8,16", 4, None, _FILE),
    Entry("lstm_learned_state", "1,8,16", 4, None, _FILE),
    Entry("gru_returns_hn", "1,8,16", 4, None, _FILE),
    Entry("lstm_returns_state", "1,8,16", 4, None, _FILE),
    Entry("gru_h0_from_input", "1,8,16", 4, "computed from the model input", _FILE),
]


def _make(name: str) -> nn.Module:
    torch.manual_seed(sum(map(ord, name)))
    return FACTORIES[name]().eval()


def __getattr__(name: str):  # factories addressable as faithful_recurrent.py:<name>
    if name in FACTORIES:
        return lambda: _make(name)
    raise AttributeError(name)
