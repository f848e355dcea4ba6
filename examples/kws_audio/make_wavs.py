"""Generate the synthetic keyword clips of the example (deterministic: same script, same bytes).

Three "keywords" and a background class, all synthetic but speech-like: a glottal pulse train
(harmonics of a pitch contour) shaped by vowel formants, with a syllable envelope, over background
noise. Each clip is 16 kHz mono int16, CLIP_SECONDS long:

- ``up``: one syllable gliding /u/ -> /a/ with a rising pitch;
- ``down``: one syllable gliding /a/ -> /u/ with a falling pitch;
- ``baba``: two short /a/ syllables with a gap, flat pitch;
- ``_background``: noise only (white, brown, a mains hum, near silence), no keyword.

Every clip draws its speaker (pitch, formant scale), timing, loudness and noise from a seeded
generator: :func:`make_clip` is also what ``train.py`` uses to make its (larger) training and
held-out sets, with other seeds than the shipped files.

    python examples/kws_audio/make_wavs.py            # rewrites examples/kws_audio/wav/*.wav
"""

from __future__ import annotations

import argparse
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000
CLIP_SECONDS = 0.655  # 10480 samples: 64 feature frames of 25 ms every 10 ms
CLIP_SAMPLES = round(SAMPLE_RATE * CLIP_SECONDS)
CLASSES = ("_background", "up", "down", "baba")  # model output order
CLIPS_PER_CLASS = 3  # shipped per class
SHIPPED_SEED = 2024  # the shipped clips; train.py uses other seeds

# formant frequencies (Hz) and bandwidths of the vowels used
VOWELS = {
    "a": ((730.0, 1090.0, 2440.0), (90.0, 110.0, 170.0)),
    "u": ((300.0, 870.0, 2240.0), (70.0, 100.0, 160.0)),
}


@dataclass(frozen=True)
class Clip:
    pcm: np.ndarray  # int16 [CLIP_SAMPLES]
    label: int  # index in CLASSES
    start: int  # first keyword sample (0 for background)
    end: int  # one past the last keyword sample (0 for background)


def _formant_gain(freqs: np.ndarray, formants: np.ndarray, bandwidths: np.ndarray) -> np.ndarray:
    """Magnitude at ``freqs`` [n] of a cascade of resonances ``formants`` / ``bandwidths`` [n, 3] (per sample)."""
    gain = np.ones_like(freqs)
    for f, b in zip(formants.T, bandwidths.T):
        gain *= f * f / np.sqrt((freqs * freqs - f * f) ** 2 + (b * freqs) ** 2 + 1e-9)
    return gain


def _syllable(
    rng: np.random.Generator, n: int, f0: tuple[float, float], vowel: tuple[str, str], scale: float
) -> np.ndarray:
    """``n`` samples of a voiced syllable: pitch glides f0[0] -> f0[1], formants glide vowel[0] -> vowel[1]."""
    t = np.linspace(0.0, 1.0, n)
    pitch = f0[0] * (f0[1] / f0[0]) ** t * (1.0 + 0.01 * np.sin(2 * np.pi * 5.0 * t * n / SAMPLE_RATE))
    phase = 2 * np.pi * np.cumsum(pitch) / SAMPLE_RATE
    (fa, ba), (fb, bb) = VOWELS[vowel[0]], VOWELS[vowel[1]]
    formants = scale * (np.outer(1 - t, fa) + np.outer(t, fb))  # [n, 3]
    bandwidths = np.outer(1 - t, ba) + np.outer(t, bb)
    out = np.zeros(n)
    for k in range(1, int(4000 / min(f0)) + 1):
        fk = k * pitch
        amp = _formant_gain(fk, formants, bandwidths) / k  # glottal roll-off
        amp = np.where(fk < SAMPLE_RATE / 2 - 500, amp, 0.0)
        out += amp * np.sin(k * phase + rng.uniform(0, 2 * np.pi))
    attack = min(n // 4, int(0.02 * SAMPLE_RATE))
    env = np.ones(n)
    env[:attack] = np.linspace(0, 1, attack)
    env[n - 2 * attack :] = np.linspace(1, 0, 2 * attack)
    out *= env
    return out / (np.max(np.abs(out)) + 1e-12)


def _noise(rng: np.random.Generator, n: int) -> np.ndarray:
    """Background noise of a random kind, peak-normalised to about 1."""
    kind = rng.integers(4)
    if kind == 0:  # white
        x = rng.standard_normal(n)
    elif kind == 1:  # brown (integrated white, high-passed a little)
        x = np.cumsum(rng.standard_normal(n))
        x -= np.convolve(x, np.ones(400) / 400, mode="same")
    elif kind == 2:  # mains hum and its harmonics plus a little white noise
        t = np.arange(n) / SAMPLE_RATE
        hz = rng.choice([50.0, 60.0])
        x = sum(np.sin(2 * np.pi * hz * h * t + rng.uniform(0, 6.3)) / h for h in (1, 2, 3, 5))
        x = x + 0.1 * rng.standard_normal(n)
    else:  # near silence: very faint white noise
        x = 0.05 * rng.standard_normal(n)
    return np.asarray(x / (np.std(x) + 1e-12) / 4.0)


def make_clip(label: int, rng: np.random.Generator) -> Clip:
    """One clip of class ``label`` with everything drawn from ``rng``."""
    n = CLIP_SAMPLES
    x = np.zeros(n)
    start = end = 0
    if CLASSES[label] != "_background":
        base = rng.uniform(90.0, 220.0)  # speaker pitch
        scale = rng.uniform(0.9, 1.15)  # speaker vocal tract
        word = CLASSES[label]
        if word == "up":
            dur = int(rng.uniform(0.16, 0.24) * SAMPLE_RATE)
            voice = _syllable(rng, dur, (base, base * rng.uniform(1.5, 1.9)), ("u", "a"), scale)
        elif word == "down":
            dur = int(rng.uniform(0.16, 0.24) * SAMPLE_RATE)
            voice = _syllable(rng, dur, (base * rng.uniform(1.5, 1.9), base), ("a", "u"), scale)
        else:  # baba: two syllables and a gap
            s1 = int(rng.uniform(0.06, 0.09) * SAMPLE_RATE)
            gap = int(rng.uniform(0.04, 0.06) * SAMPLE_RATE)
            s2 = int(rng.uniform(0.06, 0.09) * SAMPLE_RATE)
            voice = np.concatenate(
                [
                    _syllable(rng, s1, (base, base * 1.02), ("a", "a"), scale),
                    np.zeros(gap),
                    _syllable(rng, s2, (base * 0.98, base * 0.95), ("a", "a"), scale),
                ]
            )
            dur = voice.size
        start = int(rng.uniform(0.06, 0.2) * SAMPLE_RATE)
        end = start + dur
        x[start:end] = voice * 10 ** (rng.uniform(-16.0, -4.0) / 20)
        noise_db = rng.uniform(-50.0, -25.0)
    else:
        noise_db = rng.uniform(-50.0, -18.0)
    x += _noise(rng, n) * 10 ** (noise_db / 20)
    pcm = np.round(np.clip(x, -1.0, 32767 / 32768) * 32768).astype(np.int16)
    return Clip(pcm, label, start, end)


def make_set(seed: int, per_class: int) -> list[Clip]:
    """``per_class`` clips of every class, in class order, from one seed."""
    rng = np.random.default_rng(seed)
    return [make_clip(label, rng) for label in range(len(CLASSES)) for _ in range(per_class)]


def shipped_clips() -> list[tuple[str, Clip]]:
    """The clips of wav/ and their file names, classes interleaved (``00_background.wav``, ``01_up.wav``, ...):
    the build holds out the last quarter of the sorted files for its quality check, which so holds
    every keyword."""
    clips = make_set(SHIPPED_SEED, CLIPS_PER_CLASS)
    ordered = [clips[label * CLIPS_PER_CLASS + j] for j in range(CLIPS_PER_CLASS) for label in range(len(CLASSES))]
    return [(f"{i:02d}_{CLASSES[c.label].lstrip('_')}.wav", c) for i, c in enumerate(ordered)]


def write_wav(path: Path, pcm: np.ndarray) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(pcm.astype("<i2").tobytes())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "wav")
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.wav"):
        old.unlink()
    for name, clip in shipped_clips():
        write_wav(out / name, clip.pcm)
        print(f"{out / name}: {CLASSES[clip.label]}, keyword samples [{clip.start}, {clip.end})")


if __name__ == "__main__":
    main()
