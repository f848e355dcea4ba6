"""Train the example's keyword spotter on synthetic keywords and write ``weights.npz`` (deterministic, CPU).

The clips come from ``make_wavs.make_clip`` (training set: seed TRAIN_SEED, held-out set: seed
HELD_OUT_SEED; the shipped ``wav/*.wav`` use a third seed and are scored too). Their features are
computed by ``espdl_streaming.audio.compute_features``, the build-time port of the ESP-DL front end the
chip runs, with the example's FRONTEND declaration: training sees what the chip computes.

Frame labels (the model scores every frame): a keyword's class on the frames from the keyword's end
to at most 8 frames later while the whole keyword is still inside the 31-frame receptive field,
``_background`` on frames before the keyword, after it has left the receptive field and on
background clips, no label elsewhere.

Clip decision (what an application does with the stream of scores): the keyword whose softmax
probability peaks highest over the clip, if that peak exceeds THRESHOLD, else ``_background``.

    python examples/kws_audio/train.py            # writes examples/kws_audio/weights.npz, prints accuracy
    python examples/kws_audio/train.py --check    # scores the saved weights.npz only
    python examples/kws_audio/train.py --check --espdl OUT/kws.espdl   # scores the built int8 model
"""

from __future__ import annotations

import argparse
import io
import sys
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from espdl_streaming.audio import FrontendConfig, compute_features, read_wav  # noqa: E402
from make_wavs import CLASSES, SAMPLE_RATE, Clip, make_set, shipped_clips  # noqa: E402
from model import DILATIONS, WEIGHTS, KwsTCN, build  # noqa: E402

# The example's FRONTEND declaration (README.md): fbank, 40 mel bins, ESP-DL's defaults otherwise.
FRONTEND = FrontendConfig(kind="fbank", sample_rate=SAMPLE_RATE, frame_length=25, frame_shift=10, num_mel_bins=40)
TRAIN_SEED, HELD_OUT_SEED = 1, 2
TRAIN_PER_CLASS, HELD_OUT_PER_CLASS = 250, 100
RECEPTIVE_FIELD = 1 + 2 * sum(DILATIONS)
LABEL_FRAMES = 8  # frames after a keyword's end labelled with it
THRESHOLD = 0.5
EPOCHS, BATCH, LR = 30, 50, 3e-3
IGNORE = -100


def features(pcm: np.ndarray) -> np.ndarray:
    """[T, 40] float32 fbank features of int16 PCM, as the chip computes them."""
    return compute_features(FRONTEND, pcm)


def frame_labels(clip: Clip, frames: int) -> np.ndarray:
    labels = np.full(frames, IGNORE, dtype=np.int64)
    win, step = FRONTEND.win_len, FRONTEND.win_step
    t = np.arange(frames)
    if clip.end == 0:  # background clip
        labels[:] = 0
        return labels
    labels[t * step + win <= clip.start] = 0  # frames before the keyword
    first = -(-(clip.end - win) // step)  # first frame whose window reaches the keyword's end
    onset = clip.start // step  # the frame the keyword starts in
    last = min(first + LABEL_FRAMES, onset + RECEPTIVE_FIELD - 1)
    labels[first : last + 1] = clip.label
    labels[onset + RECEPTIVE_FIELD + 1 :] = 0  # the keyword has left the receptive field
    return labels


def dataset(clips: list[Clip]) -> tuple[np.ndarray, np.ndarray]:
    """Features [N, 40, T] and frame labels [N, T]."""
    feats = np.stack([features(c.pcm).T for c in clips])
    labels = np.stack([frame_labels(c, feats.shape[2]) for c in clips])
    return feats, labels


def clip_decisions(logits: torch.Tensor) -> np.ndarray:
    """[N, T, C] frame scores -> [N] class per clip (the decision rule of the module docstring)."""
    peak = torch.softmax(logits, dim=-1).amax(dim=1)[:, 1:]  # [N, keywords]
    best = peak.argmax(dim=1)
    return torch.where(peak.amax(dim=1) > THRESHOLD, best + 1, 0).numpy()


def score(
    model: torch.nn.Module, feats: np.ndarray, labels: np.ndarray, clip_labels: np.ndarray
) -> tuple[float, float]:
    """(frame accuracy on labelled frames, clip accuracy)."""
    with torch.no_grad():
        logits = model(torch.from_numpy(feats))
    pred = logits.argmax(-1).numpy()
    mask = labels != IGNORE
    return float((pred[mask] == labels[mask]).mean()), float((clip_decisions(logits) == clip_labels).mean())


def save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """np.savez with fixed zip timestamps: the same weights give the same bytes."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, array in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(array, dtype=np.float32), allow_pickle=False)
            z.writestr(zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)), buf.getvalue())


def shipped() -> list[Clip]:
    """The shipped wav/*.wav, read back, with their labels and keyword positions (make_wavs.py's seed)."""
    clips = []
    for name, clip in shipped_clips():
        path = HERE / "wav" / name
        pcm, rate = read_wav(path)
        if rate != SAMPLE_RATE or not np.array_equal(np.round(pcm * 32768).astype(np.int16), clip.pcm):
            sys.exit(f"{path} is not what make_wavs.py generates: run python examples/kws_audio/make_wavs.py")
        clips.append(clip)
    return clips


def quantized(espdl: Path) -> torch.nn.Module:
    """The built streaming model (``kws.espdl``) as a module: every clip streamed chunk by chunk through the
    integer simulator with the chip's rounding (``python -m espdl_streaming run``'s python engine)."""
    from espdl_streaming.espdl import load_espdl, rounding_for_target
    from espdl_streaming.run import python_engine, resolve_target, run_frames, stream_spec

    data = espdl.read_bytes()
    model = load_espdl(espdl)
    spec = stream_spec(model, str(espdl))
    rounding = rounding_for_target(resolve_target(espdl, data, None)[0])
    engine = python_engine(model, rounding)

    class Quantized(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:  # [N, 40, T] -> [N, T, 4]
            runs = [run_frames(spec, clip.T.numpy(), rounding, engine).outputs["output"][0] for clip in x]
            return torch.from_numpy(np.stack(runs))

    return Quantized()


def report(model: torch.nn.Module, sets: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]) -> None:
    for name, (feats, labels, clip_labels) in sets.items():
        frame_acc, clip_acc = score(model, feats, labels, clip_labels)
        print(f"{name}: {len(clip_labels)} clips, frame accuracy {frame_acc:.3f}, clip accuracy {clip_acc:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="score the saved weights.npz, do not train")
    parser.add_argument(
        "--espdl",
        type=Path,
        help="with --check: score this built kws.espdl (int8, streamed) instead of the float model",
    )
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    train_clips = make_set(TRAIN_SEED, TRAIN_PER_CLASS)
    held_clips = make_set(HELD_OUT_SEED, HELD_OUT_PER_CLASS)
    train_x, train_y = dataset(train_clips)
    held_x, held_y = dataset(held_clips)
    wav_clips = shipped()
    sets = {
        "train": (train_x, train_y, np.array([c.label for c in train_clips])),
        "held-out": (held_x, held_y, np.array([c.label for c in held_clips])),
        "shipped wav/": (*dataset(wav_clips), np.array([c.label for c in wav_clips])),
    }
    if args.check:
        report(build() if args.espdl is None else quantized(args.espdl), sets)
        return

    # Input normalisation, folded into the first convolution when saving.
    mean = train_x.mean(axis=(0, 2)).astype(np.float32)
    std = (train_x.std(axis=(0, 2)) + 1e-3).astype(np.float32)
    model = KwsTCN()
    x = torch.from_numpy((train_x - mean[:, None]) / std[:, None])
    y = torch.from_numpy(train_y)
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=1e-2)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, EPOCHS)
    gen = torch.Generator().manual_seed(0)
    for epoch in range(EPOCHS):
        model.train()
        total = 0.0
        for idx in torch.randperm(len(x), generator=gen).split(BATCH):
            loss = F.cross_entropy(
                model(x[idx]).reshape(-1, len(CLASSES)), y[idx].reshape(-1), ignore_index=IGNORE, label_smoothing=0.1
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        sched.step()
        if epoch % 10 == 9:
            print(f"epoch {epoch + 1}: loss {total / len(x):.4f}")

    state = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    w, b = state["stem.weight"], state["stem.bias"]  # [H, 40, 1], [H]
    state["stem.weight"] = w / std[None, :, None]
    state["stem.bias"] = b - (w[:, :, 0] / std[None, :]) @ mean
    save_npz(WEIGHTS, state)
    print(f"wrote {WEIGHTS} ({WEIGHTS.stat().st_size} bytes)")
    report(build(), sets)


if __name__ == "__main__":
    main()
