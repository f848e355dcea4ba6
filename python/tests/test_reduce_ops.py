"""ReduceMean, ReduceMax, ReduceMin and ReduceSum in the simulator: ESP-DL's semantics
(dl_module_reduce_*.hpp: the mean in float32 with the chip's float rounding, the sum shifted with the
chip's rounding, max/min copying integers), checked by hand and against esp-ppq's own test outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from sim_models import export_with_test_values
from torch import nn

from espdl_streaming.errors import EspdlFormatError, UnsupportedOpError
from espdl_streaming.espdl import Simulator, load_espdl, rounding_for_target
from espdl_streaming.espdl.reader import EspdlModel, Node, Tensor, ValueInfo
from espdl_streaming.facts import Rounding


def _reduce(
    op: str,
    dtype: str,
    shape: tuple[int, ...],
    axes: list[int] | None,
    out_shape: tuple[int, ...],
    exponents: tuple[int, int] = (0, 0),
    rounding: Rounding = "half_even",
    **attrs: int,
) -> Simulator:
    constants = []
    inputs = ["x"]
    if axes is not None:
        constants.append(Tensor("axes", (len(axes),), "int64", (0,), "UNK", np.array(axes, dtype=np.int64)))
        inputs.append("axes")
    node = Node("r", op, inputs, ["y"], dict(attrs))
    x = ValueInfo("x", shape, dtype, exponents[0])
    y = ValueInfo("y", out_shape, dtype, exponents[1])
    model = EspdlModel("test", [x], [y], [node], {t.name: t for t in constants}, {}, {}, {}, {})
    return Simulator(model, rounding)


# --------------------------------------------------------------------------- ReduceMean

_HALVES = np.array([[[1, 4], [-1, -4], [-3, 0], [1, 2]]], np.int8)  # means 2.5, -2.5, -1.5, 1.5


@pytest.mark.parametrize(("rounding", "want"), [("half_even", [2, -2, -2, 2]), ("half_up", [3, -2, -1, 2])])
def test_mean_rounds_halves_like_the_chip(rounding: Rounding, want: list[int]) -> None:
    sim = _reduce("ReduceMean", "int8", (1, 4, 2), [2], (1, 4), rounding=rounding, keepdims=0)
    np.testing.assert_array_equal(sim.run({"x": _HALVES})["y"], [want])


def test_mean_scales_by_both_exponents_and_saturates() -> None:
    # (5 + 6 + 7) * 2**-2 / 3 * 2**4 = 24; 3 * 127 * 2**-2 / 3 * 2**4 = 508 -> 127
    sim = _reduce("ReduceMean", "int8", (2, 1, 3), [-1], (2, 1, 1), exponents=(-2, -4), keepdims=1)
    y = sim.run({"x": np.array([[[5, 6, 7]], [[127, 127, 127]]], np.int8)})["y"]
    np.testing.assert_array_equal(y, [[[24]], [[127]]])


def test_mean_divides_in_float32() -> None:
    # 1 * 2**-1 / 3 * 2**1 = float32(1/3) = 0.333... -> 0; 5 / 3 = 1.67 -> 2; -5 / 3 -> -2
    sim = _reduce("ReduceMean", "int8", (3, 3), [1], (3,), exponents=(-1, -1), keepdims=0)
    y = sim.run({"x": np.array([[1, 0, 0], [2, 2, 1], [-2, -2, -1]], np.int8)})["y"]
    np.testing.assert_array_equal(y, [0, 2, -2])


@pytest.mark.parametrize(("rounding", "want"), [("half_even", [2, 4]), ("half_up", [3, 5])])
def test_int16_mean_over_two_separate_axes(rounding: Rounding, want: list[int]) -> None:
    # axes 0 and 2 of [[[0, 1], [2, 3]], [[4, 5], [6, 7]]]: means of {0, 1, 4, 5} = 2.5 and {2, 3, 6, 7} = 4.5
    sim = _reduce("ReduceMean", "int16", (2, 2, 2), [0, 2], (2,), rounding=rounding, keepdims=0)
    np.testing.assert_array_equal(sim.run({"x": np.arange(8, dtype=np.int16).reshape(2, 2, 2)})["y"], want)


def test_mean_without_axes_reduces_everything() -> None:
    sim = _reduce("ReduceMean", "int16", (2, 3), None, (1,), keepdims=0)
    y = sim.run({"x": np.array([[1, 2, 3], [4, 5, 6]], np.int16)})["y"]  # 21 / 6 = 3.5 -> 4 (half to even)
    assert y.shape == (1,) and y.dtype == np.int16
    np.testing.assert_array_equal(y, [4])


# --------------------------------------------------------------------------- ReduceMax, ReduceMin


@pytest.mark.parametrize(("op", "want"), [("ReduceMax", [[3], [-7]]), ("ReduceMin", [[-128], [-9]])])
def test_max_and_min_copy_the_integer_without_requantizing(op: str, want: list[list[int]]) -> None:
    # ESP-DL copies the extreme element as is even when esp-ppq records another output exponent.
    sim = _reduce(op, "int8", (2, 3), [1], (2, 1), exponents=(-3, -5), keepdims=1)
    x = np.array([[-5, 3, -128], [-7, -9, -8]], np.int8)
    out = sim.run({"x": x})["y"]
    assert out.dtype == np.int8
    np.testing.assert_array_equal(out, want)


def test_int16_max_over_frequency_of_each_frame() -> None:
    x = np.array([[[[1, -2], [300, 4]], [[-32768, -32768], [7, 32767]]]], np.int16)  # (1, 2, 2, 2)
    sim = _reduce("ReduceMax", "int16", (1, 2, 2, 2), [2], (1, 2, 2), keepdims=0)
    np.testing.assert_array_equal(sim.run({"x": x})["y"], [[[300, 4], [7, 32767]]])


# --------------------------------------------------------------------------- ReduceSum


@pytest.mark.parametrize(("rounding", "want"), [("half_even", [2, -2, 2, 127]), ("half_up", [3, -2, 2, 127])])
def test_sum_shifts_with_the_chip_rounding_and_saturates(rounding: Rounding, want: list[int]) -> None:
    # in exponent -1, out 0: sums 5, -5, 3, 300 halved -> 2.5, -2.5, 1.5, 150 (saturates)
    sim = _reduce("ReduceSum", "int8", (4, 3), [1], (4,), exponents=(-1, 0), rounding=rounding, keepdims=0)
    y = sim.run({"x": np.array([[1, 4, 0], [-1, -4, 0], [1, 2, 0], [100, 100, 100]], np.int8)})["y"]
    np.testing.assert_array_equal(y, want)


def test_int16_sum_shifts_left_to_a_finer_exponent() -> None:
    sim = _reduce("ReduceSum", "int16", (1, 3), [1], (1,), exponents=(0, -2), keepdims=0)
    np.testing.assert_array_equal(sim.run({"x": np.array([[100, 200, -50]], np.int16)})["y"], [1000])


# --------------------------------------------------------------------------- refusals


def test_refuses_axes_esp_dl_leaves_unwritten() -> None:
    # axes 1 and 3 of a rank-5 tensor: five runs (kept, reduced, kept, reduced, kept), which ESP-DL skips
    sim = _reduce("ReduceMean", "int8", (1, 2, 2, 2, 2), [1, 3], (1, 2, 2), keepdims=0)
    with pytest.raises(EspdlFormatError, match="only handle up to two separate runs"):
        sim.run({"x": np.zeros((1, 2, 2, 2, 2), np.int8)})


def test_refuses_no_reduction_esp_dl_would_collapse() -> None:
    sim = _reduce("ReduceMax", "int8", (2, 2), [], (2, 2), keepdims=1, noop_with_empty_axes=1)
    with pytest.raises(EspdlFormatError, match="only handle up to two separate runs"):
        sim.run({"x": np.zeros((2, 2), np.int8)})


def test_refuses_axes_as_an_attribute() -> None:
    node = Node("r", "ReduceMean", ["x"], ["y"], {"axes": [1], "keepdims": 0})
    model = EspdlModel(
        "test", [ValueInfo("x", (2, 2), "int8", 0)], [ValueInfo("y", (2,), "int8", 0)], [node], {}, {}, {}, {}, {}
    )
    with pytest.raises(UnsupportedOpError, match="reads them only from the constant second input"):
        Simulator(model, "half_even")


# --------------------------------------------------------------------------- esp-ppq's own test outputs


class ReduceHead(nn.Module):
    """A Conv2d over (time, frequency), a reduction over frequency, a Conv1d head."""

    def __init__(self, op: str) -> None:
        super().__init__()
        torch.manual_seed(len(op))
        self.op = op
        self.conv1 = nn.Conv2d(1, 4, (3, 3), padding=(0, 1))
        self.conv2 = nn.Conv1d(4, 6, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.tanh(self.conv1(x))
        if self.op == "ReduceMean":
            x = x.mean(dim=3)
        elif self.op == "ReduceMax":
            x = x.amax(dim=3)
        elif self.op == "ReduceMin":
            x = x.amin(dim=3)
        else:
            x = x.sum(dim=3)
        return self.conv2(x)


REDUCE_OPS = ("ReduceMean", "ReduceMax", "ReduceMin", "ReduceSum")


@pytest.mark.parametrize(
    ("op", "target", "bits"),
    [
        ("ReduceMean", "esp32p4", 8),
        ("ReduceMean", "esp32s3", 16),
        ("ReduceMax", "esp32c3", 8),
        ("ReduceMin", "esp32p4", 16),
        ("ReduceSum", "esp32s3", 8),
        ("ReduceSum", "esp32p4", 16),
    ],
)
def test_reproduces_esp_ppq_test_outputs(op: str, target: str, bits: int, tmp_path: Path) -> None:
    path = export_with_test_values(ReduceHead(op), [1, 1, 8, 12], tmp_path / "m.espdl", target, bits, False)
    model = load_espdl(path)
    assert op in {n.op_type for n in model.nodes}
    out = Simulator(model, rounding_for_target(target)).run(dict(model.test_inputs))
    assert model.test_outputs
    for name, want in model.test_outputs.items():
        diff = np.abs(out[name].astype(np.int64) - np.asarray(want).astype(np.int64))
        assert int(diff.max()) <= (0 if bits == 8 else 1), f"{op} {target} {bits}: {int(diff.max())}"
