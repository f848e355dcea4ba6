"""The manual way of ESP-DL's streaming tutorial, as a baseline for the cold-build figure.

What the tutorial has you write: quantize the torch model twice with esp-ppq's high-level API,
once offline (with test values) and once streaming (auto_streaming, a hand-written
streaming_table entry for the head's Slice), each call calibrating again from scratch.

    python bench/manual_tutorial.py MODEL.py:FACTORY CALIB.npy OUT_DIR

The output is NOT verified by anything, and with esp-ppq 1.3.12 it is wrong for the example
model (the residual Add reads the cached, longer tensor; see README "Why").
Used only by bench/cold_build.py; it runs as a whole process, like the CLI it is compared with.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import torch
from esp_ppq.api import espdl_quantize_torch, insert_streaming_cache_on_var
from torch.utils.data import DataLoader, TensorDataset

INPUT_SHAPE = [1, 16, 24]
STREAMING_INPUT_SHAPE = [1, 16, 3]
TARGET = "esp32p4"
BITS = 8


def load_model(ref: str) -> torch.nn.Module:
    path, factory = ref.rsplit(":", 1)
    spec = importlib.util.spec_from_file_location("tutorial_model", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, factory)()


def main(model_ref: str, calib_path: str, out_dir: str) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    calib = torch.from_numpy(np.load(calib_path))  # [N, C, T]
    loader = DataLoader(TensorDataset(calib), batch_size=1, shuffle=False)
    common = dict(
        calib_dataloader=loader,
        calib_steps=len(calib),
        input_shape=INPUT_SHAPE,
        target=TARGET,
        num_of_bits=BITS,
        collate_fn=lambda batch: batch[0],
        device="cpu",
        error_report=False,
        verbose=0,
    )
    model = load_model(model_ref)
    # 1. offline model, with esp-ppq's test values
    espdl_quantize_torch(
        model=model, espdl_export_file=str(out / "tcn.offline.espdl"), export_test_values=True, **common
    )
    # 2. streaming model: quantized (and calibrated) again, plus the tutorial's hand-written entry
    table = [insert_streaming_cache_on_var("/proj/Conv_output_0", 2, "/Slice")]
    espdl_quantize_torch(
        model=model,
        espdl_export_file=str(out / "tcn.espdl"),
        auto_streaming=True,
        streaming_input_shape=STREAMING_INPUT_SHAPE,
        streaming_table=table,
        **common,
    )


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
