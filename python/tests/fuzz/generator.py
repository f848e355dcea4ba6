"""The architecture fuzzer's block grammar: random compositions of causal building blocks -> model source.

A generated model is a standalone Python file with a ``build()`` factory, its declared input shape
and chunk, so a failure's reproducer is literally that file and one CLI command.  Every choice goes
through a :class:`Chooser`: :class:`RandomChooser` (a seed, for ``runner.py --seed``) or
:class:`HypothesisChooser` (a hypothesis draw, for the property test); both are deterministic.
Choices are ordered so that a chooser returning its smallest value everywhere (what hypothesis
shrinks towards) gives the simplest streamable model.

The grammar (time on dim 2 throughout, NCW; an optional Conv2d front end on [1, C, T, F]):

- front end: a causal Conv1d over time, or Conv2d layers over (time, frequency) with time on H,
  then a reduction over frequency (mean, or frequency folded into channels);
- trunk blocks: Conv1d (dilation, stride, depthwise or grouped, causal F.pad, optional BatchNorm),
  causal Max/AvgPool, residual, gated (tanh * sigmoid, one shared pad or one pad per conv), Concat of
  branches on channels, per-frame Linear / Softmax / LayerNorm over channels, GRU/LSTM
  (batch_first after a transpose, optionally a learned initial state), activations;
- heads (one to three outputs, the extra ones tapped from the middle of the trunk): per-frame
  Conv1d or Linear, ``x[:, :, -N:]`` + flatten + Linear, ``x[:, :, -1]`` + Linear, a Linear on the
  last GRU/LSTM hidden state;
- rarely, exactly one feature the README documents as refused (look-ahead padding, softmax or
  mean over time, a bidirectional GRU, a plain RNN, upsampling, a chunk that is not a multiple of
  the total stride): the model records it in ``expected_refusal``.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

T = TypeVar("T")

ACTIVATIONS = ("relu", "relu6", "tanh", "sigmoid", "hardswish", "leaky_relu")
_ACT_EXPR = {
    "relu": "torch.relu({})",
    "relu6": "F.relu6({})",
    "tanh": "torch.tanh({})",
    "sigmoid": "torch.sigmoid({})",
    "hardswish": "F.hardswish({})",
    "leaky_relu": "F.leaky_relu({}, 0.1)",
}

# Features the README lists under "Refused, naming the node and the fix", with the substrings a
# correct refusal of each contains (any one of them).
DOCUMENTED_REFUSALS: dict[str, tuple[str, ...]] = {
    "stride_chunk": ("multiple of the total stride",),
    "lookahead_pad": ("future frame(s)",),
    "end_pad": ("at the end of the time axis",),
    "softmax_time": ("works along the time axis",),
    "mean_time": ("works along the time axis", "every frame"),
    "bidirectional": ("bidirectional",),
    "plain_rnn": ("ESP-DL does not implement",),
    "upsample": ("upsamples over time",),
}

TARGETS = ("esp32p4", "esp32s3", "esp32c3")

# What generate(avoid=...) can leave out: trunk blocks, heads, and features.
AVOIDABLE = frozenset(
    {"conv", "residual", "gated", "concat", "pool", "linear", "softmax", "layernorm", "recurrent", "act"}
    | {"per_frame_conv", "last_n", "last_1", "per_frame_linear", "hn", "softmax_classes"}
    | {"2d", "freq_mean", "freq_fold", "freq_pool", "stride", "depthwise", "grouped", "bn", "shared", "separate"}
    | {"MaxPool1d", "AvgPool1d", "GRU", "LSTM", "learned_h0", "multi_output", "refusals"}
    | set(DOCUMENTED_REFUSALS)
)
BITS = (8, 16)


class Chooser(Protocol):
    def integer(self, lo: int, hi: int) -> int:
        """An integer in [lo, hi]; lo is the simplest."""
        ...

    def choice(self, options: Sequence[T]) -> T:
        """One of options; the first is the simplest."""
        ...

    def chance(self, percent: int) -> bool:
        """True with about `percent` % probability; False is the simplest."""
        ...


class RandomChooser:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def integer(self, lo: int, hi: int) -> int:
        return self.rng.randint(lo, hi)

    def choice(self, options: Sequence[T]) -> T:
        return options[self.rng.randrange(len(options))]

    def chance(self, percent: int) -> bool:
        return self.rng.randrange(100) < percent


class HypothesisChooser:
    """Draws every choice from a hypothesis ``data`` object (``st.data()``)."""

    def __init__(self, data: Any) -> None:
        from hypothesis import strategies as st

        self.data = data
        self.st = st

    def integer(self, lo: int, hi: int) -> int:
        return int(self.data.draw(self.st.integers(lo, hi)))

    def choice(self, options: Sequence[T]) -> T:
        return options[self.integer(0, len(options) - 1)]

    def chance(self, percent: int) -> bool:
        return self.integer(0, 99) >= 100 - percent


@dataclass
class GeneratedModel:
    name: str  # a C identifier, the --name of the build
    source: str  # the model file: a standalone module with build()
    input_shape: tuple[int, ...]
    chunk: int
    blocks: list[str]  # a readable summary of the composition, in order
    total_stride: int  # over time, input to the deepest output
    expected_refusal: str | None = None  # a DOCUMENTED_REFUSALS key, when one was injected
    receptive_field: int = 1  # input frames the deepest output depends on (head frames included)
    tags: list[str] = field(default_factory=list)  # features the runner's allow-list conditions look at

    @property
    def input_shape_arg(self) -> str:
        return ",".join(str(d) for d in self.input_shape)

    def file_text(self, target: str, bits: int) -> str:
        """The model file, its docstring naming the exact build command."""
        return self.source.replace("@TARGET@", target).replace("@BITS@", str(bits))


@dataclass
class _Trunk:
    var: str
    channels: int
    stride: int  # total stride over time so far
    rf: int  # receptive field in input frames
    hn: str | None = None  # the last recurrent layer's hidden state [1, 1, H], while the trunk is its output
    hn_size: int = 0


@dataclass
class _Src:
    init: list[str] = field(default_factory=list)
    fwd: list[str] = field(default_factory=list)
    count: int = 0

    def module(self, prefix: str, expr: str) -> str:
        name = f"{prefix}{self.count}"
        self.count += 1
        self.init.append(f"self.{name} = {expr}")
        return f"self.{name}"

    def assign(self, expr: str, prefix: str = "t") -> str:
        name = f"{prefix}{self.count}"
        self.count += 1
        self.fwd.append(f"{name} = {expr}")
        return name


class _Gen:
    def __init__(self, ch: Chooser, avoid: frozenset[str] = frozenset()) -> None:
        self.ch = ch
        self.avoid = avoid
        self.src = _Src()
        self.blocks: list[str] = []
        self.tags: list[str] = []
        self.chunk = 0
        self.frames = 0
        self.stride_budget = 1  # the largest total stride the chunk allows
        self.head_rf = 1  # the largest receptive field of an output, head frames included

    # -- helpers ---------------------------------------------------------------------------------------
    def pick(self, options: Sequence[str]) -> str:
        """One of options that is not avoided (all of them when every one is)."""
        kept = [o for o in options if o not in self.avoid]
        return self.ch.choice(kept or list(options))

    def maybe(self, feature: str, percent: int) -> bool:
        """chance(percent), False when the feature is avoided (the draw is made either way)."""
        return self.ch.chance(percent) and feature not in self.avoid

    def channels(self) -> int:
        return self.ch.integer(4, 12)

    def act(self, expr: str, allow_none: bool = True) -> str:
        options: tuple[str, ...] = (("none",) if allow_none else ()) + ACTIVATIONS
        name = self.ch.choice(options)
        return expr if name == "none" else _ACT_EXPR[name].format(expr)

    def span_ok(self, t: _Trunk, span: int) -> bool:
        """Keep the receptive field within the declared frames minus a chunk (offline defined)."""
        return t.rf + span * t.stride + self.chunk - 1 <= self.frames

    def kernel(self, t: _Trunk, max_k: int = 3) -> tuple[int, int]:
        """(kernel, dilation) whose span fits; (1, 1) when nothing else does."""
        k = self.ch.integer(1, max_k)
        d = self.ch.integer(1, 3) if k > 1 else 1
        while k > 1 and not self.span_ok(t, (k - 1) * d):
            if d > 1:
                d -= 1
            else:
                k -= 1
        return k, d

    def stride(self, t: _Trunk) -> int:
        if t.stride * 2 <= self.stride_budget and self.maybe("stride", 20):
            return 2
        return 1

    def pad(self, var: str, left: int) -> str:
        return f"F.pad({var}, ({left}, 0))" if left else var

    def grouping(self, c_in: int) -> tuple[str, int, int]:
        """(kind, groups, c_out): dense, depthwise (c_out = c_in) or grouped (a common divisor > 1)."""
        kind = self.pick(("dense", "dense", "depthwise", "grouped"))
        if kind == "depthwise":
            return kind, c_in, c_in
        c_out = self.channels()
        if kind == "grouped":
            common = [g for g in range(2, c_in) if c_in % g == 0 and c_out % g == 0]
            if common:
                return kind, self.ch.choice(common), c_out
        return "dense", 1, c_out

    # -- front end -------------------------------------------------------------------------------------
    def front_1d(self, c_in: int) -> _Trunk:
        t = _Trunk("x", c_in, 1, 1)
        c = self.channels()
        k, d = self.kernel(t)
        conv = self.src.module("conv", f"nn.Conv1d({c_in}, {c}, {k}, dilation={d})")
        var = self.src.assign(self.act(f"{conv}({self.pad('x', (k - 1) * d)})"))
        self.blocks.append(f"conv1d_in(k{k},d{d},c{c})")
        return _Trunk(var, c, 1, 1 + (k - 1) * d)

    def front_2d(self, c_in: int, freq: int) -> _Trunk:
        t = _Trunk("x", c_in, 1, 1)
        var, c, f = "x", c_in, freq
        for _ in range(self.ch.integer(1, 2)):
            c_out = self.ch.integer(2, 8)
            kt, dt = self.kernel(t)
            kf = self.ch.choice((3, 1, 2))
            fs = 2 if f >= 6 and self.ch.chance(30) else 1
            st = self.stride(t)
            conv = self.src.module(
                "conv2d",
                f"nn.Conv2d({c}, {c_out}, ({kt}, {kf}), stride=({st}, {fs}), dilation=({dt}, 1), "
                f"padding=(0, {kf // 2}))",
            )
            padded = f"F.pad({var}, (0, 0, {(kt - 1) * dt}, 0))" if kt > 1 else var
            var = self.src.assign(self.act(f"{conv}({padded})"))
            f = (f + 2 * (kf // 2) - kf) // fs + 1
            t = _Trunk(var, c_out, t.stride * st, t.rf + (kt - 1) * dt * t.stride)
            c = c_out
            self.blocks.append(f"conv2d(k{kt}x{kf},d{dt},s{st}x{fs},c{c_out})")
        if f >= 2 and self.maybe("freq_pool", 25):
            pool = self.src.module("fpool", "nn.MaxPool2d((1, 2))")
            var = self.src.assign(f"{pool}({var})")
            f //= 2
            self.blocks.append("freq_maxpool2d(1x2)")
        reduce = self.pick(("freq_mean", "freq_mean", "freq_fold"))
        if reduce == "freq_mean" or (c * f > 32 and "freq_mean" not in self.avoid):
            var = self.src.assign(f"{var}.mean(dim=3)")
            self.blocks.append("freq_mean")
        else:
            var = self.src.assign(f"{var}.permute(0, 1, 3, 2).flatten(1, 2)")
            c = c * f
            self.blocks.append(f"freq_fold(c{c})")
        return _Trunk(var, c, t.stride, t.rf)

    # -- trunk blocks ------------------------------------------------------------------------------------
    def block(self, t: _Trunk) -> _Trunk:
        kind = self.pick(
            (
                "conv",
                "conv",
                "residual",
                "gated",
                "concat",
                "pool",
                "linear",
                "softmax",
                "layernorm",
                "recurrent",
                "act",
            )
        )
        return getattr(self, f"b_{kind}")(t)

    def b_conv(self, t: _Trunk) -> _Trunk:
        k, d = self.kernel(t)
        st = self.stride(t)
        if st > 1 and k == 1:
            k = 2
        kind, g, c_out = self.grouping(t.channels)
        if kind == "grouped":
            self.tags.append("grouped_conv")
        conv = self.src.module("conv", f"nn.Conv1d({t.channels}, {c_out}, {k}, stride={st}, dilation={d}, groups={g})")
        y = f"{conv}({self.pad(t.var, (k - 1) * d)})"
        bn = self.maybe("bn", 25)
        if bn:
            norm = self.src.module("bn", f"_bn({c_out})")
            y = f"{norm}({y})"
        var = self.src.assign(self.act(y))
        self.blocks.append(f"conv(k{k},d{d},s{st},g{g},c{c_out}{',bn' if bn else ''})")
        return _Trunk(var, c_out, t.stride * st, t.rf + (k - 1) * d * t.stride)

    def b_pool(self, t: _Trunk) -> _Trunk:
        kind = self.pick(("MaxPool1d", "AvgPool1d"))
        k = self.ch.integer(2, 3)
        st = self.stride(t)
        if not self.span_ok(t, k - 1):
            k, st = 1, 1
        if k == 1:
            return self.b_act(t)
        pool = self.src.module("pool", f"nn.{kind}({k}, stride={st})")
        var = self.src.assign(f"{pool}({self.pad(t.var, k - 1)})")
        self.blocks.append(f"{kind}(k{k},s{st})")
        return _Trunk(var, t.channels, t.stride * st, t.rf + (k - 1) * t.stride)

    def b_residual(self, t: _Trunk) -> _Trunk:
        k, d = self.kernel(t)
        c = t.channels
        dw = self.ch.chance(40)
        conv1 = self.src.module("res", f"nn.Conv1d({c}, {c}, {k}, dilation={d}, groups={c if dw else 1})")
        conv2 = self.src.module("res", f"nn.Conv1d({c}, {c}, 1)")
        h = self.src.assign(self.act(f"{conv1}({self.pad(t.var, (k - 1) * d)})", allow_none=False))
        y = f"{t.var} + {conv2}({h})"
        var = self.src.assign(self.act(y))
        self.blocks.append(f"residual(k{k},d{d}{',dw' if dw else ''})")
        return _Trunk(var, c, t.stride, t.rf + (k - 1) * d * t.stride)

    def b_gated(self, t: _Trunk) -> _Trunk:
        k, d = self.kernel(t)
        if k == 1:
            k, d = (2, 1) if self.span_ok(t, 1) else (1, 1)
        c_out = self.channels()
        shared = self.pick(("shared", "separate"))
        filt = self.src.module("filt", f"nn.Conv1d({t.channels}, {c_out}, {k}, dilation={d})")
        gate = self.src.module("gate", f"nn.Conv1d({t.channels}, {c_out}, {k}, dilation={d})")
        left = (k - 1) * d
        if shared == "shared" and left:
            p = self.src.assign(self.pad(t.var, left), prefix="p")
            a, b = p, p
        else:
            a = b = self.pad(t.var, left)
        y = self.src.assign(f"torch.tanh({filt}({a})) * torch.sigmoid({gate}({b}))")
        residual = self.ch.chance(50)
        c = c_out
        if residual:
            out = self.src.module("skip", f"nn.Conv1d({c_out}, {t.channels}, 1)")
            y = self.src.assign(f"{t.var} + {out}({y})")
            c = t.channels
        self.blocks.append(f"gated(k{k},d{d},{shared}{',residual' if residual else ''})")
        return _Trunk(y, c, t.stride, t.rf + left * t.stride)

    def b_concat(self, t: _Trunk) -> _Trunk:
        shared = self.maybe("shared", 40)
        span = self.ch.choice((2, 1, 4)) if shared else 0
        if shared and not self.span_ok(t, span):
            shared = False
        n = self.ch.integer(2, 3)
        parts: list[str] = []
        c_total = 0
        rf = t.rf
        desc: list[str] = []
        p = self.src.assign(self.pad(t.var, span), prefix="p") if shared else t.var
        for _ in range(n):
            c = self.ch.integer(2, 8)
            if shared:
                k, d = self.ch.choice([(kk, span // (kk - 1)) for kk in (2, 3, 5) if span % (kk - 1) == 0])
                inp = p
            else:
                k, d = self.kernel(t)
                inp = self.pad(t.var, (k - 1) * d)
            conv = self.src.module("branch", f"nn.Conv1d({t.channels}, {c}, {k}, dilation={d})")
            parts.append(self.src.assign(self.act(f"{conv}({inp})")))
            c_total += c
            rf = max(rf, t.rf + (k - 1) * d * t.stride)
            desc.append(f"k{k}d{d}")
        var = self.src.assign(f"torch.cat([{', '.join(parts)}], dim=1)")
        self.blocks.append(f"concat({'shared_pad,' if shared else ''}{'+'.join(desc)})")
        return _Trunk(var, c_total, t.stride, rf)

    def b_linear(self, t: _Trunk) -> _Trunk:
        c_out = self.channels()
        fc = self.src.module("fc", f"nn.Linear({t.channels}, {c_out})")
        var = self.src.assign(self.act(f"{fc}({t.var}.transpose(1, 2))") + ".transpose(1, 2)")
        self.blocks.append(f"per_frame_linear(c{c_out})")
        return _Trunk(var, c_out, t.stride, t.rf)

    def b_softmax(self, t: _Trunk) -> _Trunk:
        var = self.src.assign(f"torch.softmax({t.var}, dim=1)")
        self.blocks.append("softmax_channels")
        return _Trunk(var, t.channels, t.stride, t.rf)

    def b_layernorm(self, t: _Trunk) -> _Trunk:
        ln = self.src.module("ln", f"_ln({t.channels})")
        var = self.src.assign(f"{ln}({t.var}.transpose(1, 2)).transpose(1, 2)")
        self.blocks.append("layernorm_channels")
        return _Trunk(var, t.channels, t.stride, t.rf)

    def b_act(self, t: _Trunk) -> _Trunk:
        name = self.ch.choice(ACTIVATIONS)
        var = self.src.assign(_ACT_EXPR[name].format(t.var))
        self.blocks.append(name)
        return _Trunk(var, t.channels, t.stride, t.rf)

    def b_recurrent(self, t: _Trunk) -> _Trunk:
        kind = self.pick(("GRU", "LSTM"))
        h = self.channels()
        rnn = self.src.module(kind.lower(), f"nn.{kind}({t.channels}, {h}, batch_first=True)")
        learned = self.maybe("learned_h0", 40)
        seq = f"{t.var}.transpose(1, 2)"
        if learned:
            h0 = self.src.module("h0_", f"nn.Parameter(torch.randn(1, 1, {h}) * 0.3)")
            if kind == "LSTM":
                c0 = self.src.module("c0_", f"nn.Parameter(torch.randn(1, 1, {h}) * 0.3)")
                call = f"{rnn}({seq}, ({h0}, {c0}))"
            else:
                call = f"{rnn}({seq}, {h0})"
        else:
            call = f"{rnn}({seq})"
        y = self.src.assign(call, prefix="r")
        var = self.src.assign(f"{y}[0].transpose(1, 2)")
        hn = f"{y}[1][0]" if kind == "LSTM" else f"{y}[1]"  # h_n [1, 1, H], used only by an hn head
        self.blocks.append(f"{kind}(h{h}{',learned_h0' if learned else ''})")
        return _Trunk(var, h, t.stride, t.rf, hn=hn, hn_size=h)

    # -- refused features ------------------------------------------------------------------------------
    def refused_block(self, t: _Trunk, kind: str) -> _Trunk:
        c = t.channels
        if kind == "lookahead_pad":
            conv = self.src.module("ahead", f"nn.Conv1d({c}, {c}, 3, padding=1)")
            var = self.src.assign(f"{conv}({t.var})")
        elif kind == "end_pad":
            conv = self.src.module("ahead", f"nn.Conv1d({c}, {c}, 2)")
            var = self.src.assign(f"{conv}(F.pad({t.var}, (0, 1)))")
        elif kind == "softmax_time":
            var = self.src.assign(f"torch.softmax({t.var}, dim=2)")
        elif kind == "mean_time":  # a normalisation over time (like CMVN): each frame minus the sequence mean
            var = self.src.assign(f"{t.var} - {t.var}.mean(dim=2, keepdim=True)")
        elif kind == "bidirectional":
            rnn = self.src.module("bigru", f"nn.GRU({c}, {c // 2}, batch_first=True, bidirectional=True)")
            var = self.src.assign(f"{rnn}({t.var}.transpose(1, 2))[0].transpose(1, 2)")
            c = 2 * (c // 2)
        elif kind == "plain_rnn":
            rnn = self.src.module("rnn", f"nn.RNN({c}, {c}, batch_first=True)")
            var = self.src.assign(f"{rnn}({t.var}.transpose(1, 2))[0].transpose(1, 2)")
        elif kind == "upsample":
            var = self.src.assign(f"F.interpolate({t.var}, scale_factor=2.0, mode='nearest')")
        else:
            raise ValueError(kind)
        self.blocks.append(f"REFUSED:{kind}")
        return _Trunk(var, c, t.stride, t.rf)

    # -- heads -----------------------------------------------------------------------------------------
    def head(self, t: _Trunk) -> str:
        options = ["per_frame_conv", "last_n", "last_1", "per_frame_linear"]
        if t.hn is not None:
            options.append("hn")
        kind = self.pick(options)
        n_out = self.ch.integer(2, 8)
        if kind == "per_frame_conv":
            conv = self.src.module("head", f"nn.Conv1d({t.channels}, {n_out}, 1)")
            out = self.src.assign(f"{conv}({t.var})", prefix="out")
            self.blocks.append(f"head_per_frame_conv(c{n_out})")
        elif kind == "per_frame_linear":
            fc = self.src.module("head", f"nn.Linear({t.channels}, {n_out})")
            out = self.src.assign(f"{fc}({t.var}.transpose(1, 2))", prefix="out")
            self.blocks.append(f"head_per_frame_linear(c{n_out})")
        elif kind == "last_n":
            n = self.ch.integer(2, 5)
            while n > 1 and not self.span_ok(t, n - 1):  # the head's frames count in the receptive field
                n -= 1
            self.head_rf = max(self.head_rf, t.rf + (n - 1) * t.stride)
            fc = self.src.module("head", f"nn.Linear({t.channels * n}, {n_out})")
            out = self.src.assign(f"{fc}(torch.flatten({t.var}[:, :, -{n}:], 1))", prefix="out")
            self.blocks.append(f"head_last_{n}_flatten_linear(c{n_out})")
        elif kind == "last_1":
            fc = self.src.module("head", f"nn.Linear({t.channels}, {n_out})")
            out = self.src.assign(f"{fc}({t.var}[:, :, -1])", prefix="out")
            self.blocks.append(f"head_last_frame_linear(c{n_out})")
        else:
            fc = self.src.module("head", f"nn.Linear({t.hn_size}, {n_out})")
            out = self.src.assign(f"{fc}({t.hn}.squeeze(0))", prefix="out")
            self.blocks.append(f"head_rnn_hn_linear(c{n_out})")
        if kind != "hn" and kind.startswith("last") and self.maybe("softmax_classes", 25):
            out = self.src.assign(f"torch.softmax({out}, dim=-1)", prefix="out")
            self.blocks.append("softmax_classes")
        return out


def generate(
    ch: Chooser, name: str | None = None, seed: int | None = None, avoid: frozenset[str] = frozenset()
) -> GeneratedModel:
    """One model.  `avoid`: names of blocks/features (AVOIDABLE) never to generate, to look past known failures."""
    unknown = set(avoid) - AVOIDABLE
    if unknown:
        raise ValueError(f"unknown features to avoid: {sorted(unknown)}; known: {sorted(AVOIDABLE)}")
    g = _Gen(ch, avoid)
    g.chunk = ch.integer(2, 4)
    g.frames = ch.integer(16, 24)
    g.stride_budget = max(s for s in (1, 2, 4) if g.chunk % s == 0)
    refusal: str | None = None
    if g.maybe("refusals", 15):
        refusal = g.pick(tuple(DOCUMENTED_REFUSALS))
        if refusal == "stride_chunk":
            g.chunk = 3
            g.stride_budget = 2
    two_d = g.maybe("2d", 25)
    if two_d:
        c_in, freq = ch.integer(1, 2), ch.integer(6, 10)
        shape: tuple[int, ...] = (1, c_in, g.frames, freq)
        trunk = g.front_2d(c_in, freq)
    else:
        c_in = ch.integer(4, 12)
        shape = (1, c_in, g.frames)
        trunk = g.front_1d(c_in)
    n_blocks = ch.integer(1, 4)
    refusal_at = ch.integer(0, n_blocks - 1) if refusal and refusal != "stride_chunk" else -1
    taps: list[_Trunk] = []
    for i in range(n_blocks):
        if i == refusal_at:
            assert refusal is not None
            trunk = g.refused_block(trunk, refusal)
        trunk = g.block(trunk)  # only a recurrent block sets trunk.hn: any later block drops it
        if i < n_blocks - 1 and g.maybe("multi_output", 20):
            taps.append(trunk)
    if refusal == "stride_chunk" and trunk.stride == 1:
        conv = g.src.module("down", f"nn.Conv1d({trunk.channels}, {trunk.channels}, 2, stride=2)")
        var = g.src.assign(f"{conv}({g.pad(trunk.var, 1)})")
        g.blocks.append("REFUSED:stride_chunk conv(k2,s2)")
        trunk = _Trunk(var, trunk.channels, trunk.stride * 2, trunk.rf + trunk.stride)
    elif refusal == "stride_chunk":
        g.blocks.append("REFUSED:stride_chunk")
    outputs = [g.head(trunk)]
    for tap in taps[:2]:
        tap = _Trunk(tap.var, tap.channels, tap.stride, tap.rf)  # the hidden state head only at the end
        outputs.append(g.head(tap))
    rf = max(trunk.rf, max(tap.rf for tap in taps) if taps else 1, g.head_rf)
    source = _render(g.src, shape, g.chunk, g.blocks, outputs, name, seed, refusal, avoid)
    digest = hashlib.sha256(source.encode()).hexdigest()[:10]
    model_name = name or f"fuzz_{digest}"
    source = source.replace("@NAME@", model_name)
    return GeneratedModel(
        name=model_name,
        source=source,
        input_shape=shape,
        chunk=g.chunk,
        blocks=g.blocks,
        total_stride=trunk.stride,
        expected_refusal=refusal,
        receptive_field=rf,
        tags=g.tags,
    )


def generate_from_seed(seed: int, avoid: frozenset[str] = frozenset()) -> GeneratedModel:
    return generate(RandomChooser(seed), name=f"fuzz_{seed}", seed=seed, avoid=avoid)


def _render(
    src: _Src,
    shape: tuple[int, ...],
    chunk: int,
    blocks: list[str],
    outputs: list[str],
    name: str | None,
    seed: int | None,
    refusal: str | None,
    avoid: frozenset[str],
) -> str:
    origin = f"seed {seed}" if seed is not None else "a hypothesis draw"
    if avoid:
        origin += f", avoiding {','.join(sorted(avoid))}"
    shape_arg = ",".join(str(d) for d in shape)
    init = "\n".join(f"        {line}" for line in src.init)
    fwd = "\n".join(f"        {line}" for line in src.fwd)
    ret = outputs[0] if len(outputs) == 1 else "(" + ", ".join(outputs) + ")"
    weight_seed = seed if seed is not None else 0
    return f'''"""Generated by python/tests/fuzz/generator.py ({origin}).

Blocks: {" -> ".join(blocks)}
Expected: {f"refused ({refusal}, documented)" if refusal else "verified bit-exact"}

Reproduce (from this file's folder):
    python -m espdl_streaming build --name @NAME@ --model @NAME@.py:build --input-shape {shape_arg} \\
        --chunk-frames {chunk} --target @TARGET@ --bits @BITS@ --calib-steps 4 --out-dir /tmp/@NAME@
"""

import torch
import torch.nn.functional as F
from torch import nn

INPUT_SHAPE = ({", ".join(str(d) for d in shape)})
CHUNK_FRAMES = {chunk}


def _bn(c: int) -> nn.BatchNorm1d:
    bn = nn.BatchNorm1d(c)
    with torch.no_grad():
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.3, 0.3)
    return bn


def _ln(c: int) -> nn.LayerNorm:
    ln = nn.LayerNorm(c)
    with torch.no_grad():
        ln.weight.uniform_(0.5, 1.5)
        ln.bias.uniform_(-0.3, 0.3)
    return ln


class Model(nn.Module):
    def __init__(self) -> None:
        super().__init__()
{init}

    def forward(self, x: torch.Tensor):  # noqa: ANN201
{fwd}
        return {ret}


def build() -> nn.Module:
    torch.manual_seed({weight_seed})
    return Model().eval()
'''
