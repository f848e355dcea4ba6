"""ESP-DL's integer GRU/LSTM in the simulator (espdl/ops/recurrent.py): the pieces that differ from a
float reference, and the property the state loop-back rests on."""

from __future__ import annotations

import numpy as np
import pytest

from espdl_streaming.espdl.ops import recurrent as R


def test_dot_products_round_like_each_kernel() -> None:
    # ESP32-P4's PIE kernel (int8, length a multiple of 16): exact sum, half to even.
    w = np.zeros((2, 16), dtype=np.int8)
    x = np.zeros(16, dtype=np.int8)
    w[0, 0], w[1, 0], x[0] = 5, 7, 1  # sums 5 and 7; shift 1 -> 2.5 and 3.5
    assert R.mat_vec_dotprod(w, x, 1, "half_even").tolist() == [2, 4]
    # The C kernel (length 5): half up on the float.
    assert R.mat_vec_dotprod(w[:, :5], x[:5], 1, "half_up").tolist() == [3, 4]
    # Saturation to int16.
    big = np.full((1, 16), 127, dtype=np.int8)
    assert R.mat_vec_dotprod(big, np.full(16, 127, dtype=np.int8), -2, "half_even").tolist() == [32767]


def test_c_kernel_converts_large_sums_to_float32() -> None:
    # 2**24 + 511 is not a float32: ESP-DL's C kernel (`result * scale` with a float scale) rounds
    # it to 2**24 + 512 first, so at shift 10 it lands exactly on 16384.5 and rounds half up to
    # 16385, where the exact sum (16384.499...) would give 16384.
    w = np.array([[16384, 16384, 16384, 16384, 511]], dtype=np.int16)
    x = np.array([256, 256, 256, 256, 1], dtype=np.int16)
    assert int((w.astype(np.int64) @ x.astype(np.int64))[0]) == 2**24 + 511
    assert R.mat_vec_dotprod(w, x, 10, "half_up").tolist() == [16385]
    assert R.mat_vec_dotprod(w, x, 10, "half_even").tolist() == [16384]  # 16384.5 to even


def test_gate_tables_follow_esp_dl_bounds_and_symmetry() -> None:
    sig, tanh = R.gate_tables(-9)
    # int(6.3f * 512) + 1 and int(3.5 * 512) + 1 entries past zero.
    assert sig.quant_max == 3226 and tanh.quant_max == 1793
    assert sig.get(np.array([0]))[0] == np.float32(0.5)
    idx = np.array([1, 100, 2000, 5000])
    assert np.array_equal(sig.get(-idx), np.float32(1) - sig.get(idx))
    assert np.array_equal(tanh.get(-idx), -tanh.get(idx))
    # Past the table: the last entry.
    assert sig.get(np.array([10**6]))[0] == sig.table[-1]
    assert abs(float(tanh.get(np.array([512]))[0]) - np.tanh(1.0)) < 1e-6


@pytest.mark.parametrize("rounding", ["half_even", "half_up"])
@pytest.mark.parametrize("bits", [8, 16])
def test_chunks_with_state_fed_back_equal_one_run(rounding: str, bits: int) -> None:
    rng = np.random.default_rng(bits)
    dtype = np.int8 if bits == 8 else np.int16
    hi = 127 if bits == 8 else 32767
    hidden, inputs, steps = 6, 8, 21
    exps = {"x_exp": -7, "w_exp": -8, "r_exp": -8, "y_exp": -7, "h_exp": -7, "gate_exp": -9}
    if bits == 16:
        exps = {"x_exp": -15, "w_exp": -16, "r_exp": -16, "y_exp": -15, "h_exp": -15, "gate_exp": -9}
    x = rng.integers(-hi, hi, size=(steps, 1, inputs)).astype(dtype)
    w = rng.integers(-hi, hi, size=(1, 4 * hidden, inputs)).astype(dtype)
    r = rng.integers(-hi, hi, size=(1, 4 * hidden, hidden)).astype(dtype)
    b = rng.integers(-900, 900, size=(1, 8 * hidden)).astype(np.int16)

    y, _, _ = R.lstm(x, w, r, b, None, None, hidden=hidden, c_exp=-9, rounding=rounding, **exps)  # type: ignore[arg-type]
    g, _ = R.gru(x, w[:, : 3 * hidden], r[:, : 3 * hidden], b[:, : 6 * hidden], None, hidden=hidden,
                 rounding=rounding, **exps)  # type: ignore[arg-type]  # fmt: skip
    assert len(np.unique(y)) > 10 and len(np.unique(g)) > 10  # not saturated or constant

    h = c = hg = None
    ys, gs = [], []
    for k in range(0, steps, 4):  # chunks of 4, the last one shorter
        part, h, c = R.lstm(x[k : k + 4], w, r, b, h, c, hidden=hidden, c_exp=-9, rounding=rounding, **exps)  # type: ignore[arg-type]
        ys.append(part)
        part, hg = R.gru(x[k : k + 4], w[:, : 3 * hidden], r[:, : 3 * hidden], b[:, : 6 * hidden], hg,
                         hidden=hidden, rounding=rounding, **exps)  # type: ignore[arg-type]  # fmt: skip
        gs.append(part)
    assert np.array_equal(np.concatenate(ys), y)
    assert np.array_equal(np.concatenate(gs), g)

    # Without the state fed back every chunk restarts from zero: a different result.
    restarted = np.concatenate(
        [R.gru(x[k : k + 4], w[:, : 3 * hidden], r[:, : 3 * hidden], b[:, : 6 * hidden], None, hidden=hidden,
               rounding=rounding, **exps)[0] for k in range(0, steps, 4)]  # type: ignore[arg-type]
    )  # fmt: skip
    assert not np.array_equal(restarted, g)
