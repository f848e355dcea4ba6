"""Build generated models through the real CLI, classify each outcome, print reproducers.

    python python/tests/fuzz/runner.py --count N --seed S [--bits 8|16] [--target T]

builds the models of seeds S .. S+N-1 one after the other (``python -m espdl_streaming build`` in a
subprocess, ``--calib-steps 4``), prints one line per model and a summary table, and exits 1 if
any model failed.  Target and bits vary with the seed (esp32p4, esp32s3, esp32c3 x 8, 16 bits)
unless given.

Outcomes:

- verified: exit 0, the report says ``streaming.verified`` true with ``max_abs_diff`` 0, and, when
  the report has a ``fidelity`` section, the worst ``snr_db`` of its outputs is at least
  ``SNR_FLOOR_DB[bits]`` (below, also when rebuilt with ``CONFIRM_CALIB_STEPS`` calibration batches:
  a fidelity collapse, a failure);
- refused: exit 2, stderr has ``error: <name>: `` naming a node (``node '...'``), and either the
  model holds a feature the README documents as refused and the message gives that reason, or the
  message is on ``ALLOWED_REASONS`` (true reasons, each with the condition that makes it true for
  the model); any other refusal is an unexplained refusal, a failure;
- anything else (exit 1, a traceback, a timeout, a malformed refusal, a verified model that should
  have been refused) is a failure.

Every failure prints its reproducer: the model file (a standalone module with ``build()``) and
the CLI command; with ``--repro-dir`` the file is also copied there.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

try:
    from .generator import (
        ACTIVATIONS,
        AVOIDABLE,
        BITS,
        DOCUMENTED_REFUSALS,
        TARGETS,
        GeneratedModel,
        generate_from_seed,
    )
except ImportError:  # run as a script: python python/tests/fuzz/runner.py
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from generator import (  # type: ignore[no-redef]
        ACTIVATIONS,
        AVOIDABLE,
        BITS,
        DOCUMENTED_REFUSALS,
        TARGETS,
        GeneratedModel,
        generate_from_seed,
    )

REPO = Path(__file__).resolve().parents[3]
CALIB_STEPS = 4
CONFIRM_CALIB_STEPS = 32  # a fidelity collapse is confirmed with this calibration (see run_one)
DEFAULT_TIMEOUT_S = 300.0

# The worst per-output SNR (dB) of the report's fidelity section below which a verified model is a
# fidelity collapse: the quantized model no longer computes what the float model does.  Calibrated on
# ~130 generated models (random weights, seeded random calibration data): at 8 bits the worst SNR of
# sane models spread from 9 to 52 dB (median ~21 dB; the low end, 9.3 dB even with 32 calibration steps,
# a 7-layer stack of depthwise convs with a small output), so 6 dB (cosine ~0.87) is below all of them;
# at 16 bits from 41 to 87 dB (median ~62 dB) once calibrated on 32 batches (with 4, two outputs clipped
# at 17 and 27 dB: run_one confirms a miss with CONFIRM_CALIB_STEPS before calling it a failure).
SNR_FLOOR_DB: dict[int, float] = {8: 6.0, 16: 30.0}


@dataclass(frozen=True)
class AllowedReason:
    """A refusal that is true for the models it names: `condition` says when the reason holds."""

    name: str
    pattern: str  # a regular expression searched in the message
    condition: Callable[[GeneratedModel], bool]
    why: str
    needs_node: bool = True  # False for a reason about the whole model (its declared shape)


ALLOWED_REASONS: tuple[AllowedReason, ...] = (
    AllowedReason(
        "chunk not a multiple of the total stride",
        r"multiple of the total stride",
        lambda m: m.chunk % m.total_stride != 0,
        "a strided layer's windows would drift between chunks",
    ),
    AllowedReason(
        "grouped (not depthwise) convolution",
        r"grouped convolution \(group=\d+\): ESP-DL's Conv runs group != 1 only as a depthwise",
        lambda m: "grouped_conv" in m.tags,
        "ESP-DL's Conv implements group == 1 and depthwise only (dl_module_conv.hpp); esp-ppq exports the groups as is",
    ),
    AllowedReason(
        "activation right after a Softmax (esp-ppq exports the Softmax as integer)",
        r"esp-ppq 1\.3\.12 exported its output as int(8|16) .* ESP-DL's Softmax always writes float32",
        lambda m: any(a == "softmax_channels" and b in ACTIVATIONS for a, b in zip(m.blocks, m.blocks[1:])),
        "esp-ppq gives a Softmax followed by an activation an integer output, which ESP-DL's float Softmax "
        "would overrun (dl_module_softmax.hpp)",
    ),
    AllowedReason(
        "declared frames shorter than receptive field + chunk",
        r"only runs on its declared \d+ frames, which is shorter than its receptive field",
        lambda m: m.receptive_field + m.chunk - 1 > m.input_shape[2],
        "a model that runs only at its declared length is checked on its last T frames, which must cover an output",
        needs_node=False,
    ),
)

# Reason classes of refusal messages, for the summary (first match wins).
REASON_CLASSES: tuple[tuple[str, str], ...] = (
    ("look-ahead (pads the end / future frames)", r"future frame|end of the time axis"),
    ("chunk not a multiple of the total stride", r"multiple of the total stride"),
    ("Conv/pool input with time off the frame axis", r"not the frame axis 1"),
    ("Concat seen as along time", r"concatenates along the time axis"),
    ("Gemm/MatMul seen as contracting over time", r"contracts over the time axis"),
    ("GRU/LSTM sequence axis is not time", r"runs over exported axis"),
    ("Gather with a negative index (x[..., -1])", r"Gather.*negative"),
    ("grouped (not depthwise) convolution", r"grouped convolution"),
    ("reshape/flatten with time", r"reshapes"),
    ("works along the time axis", r"works along the time axis|every frame"),
    ("bidirectional/reverse recurrent", r"bidirectional|reverse"),
    ("plain RNN", r"plain RNN"),
    ("upsampling over time", r"upsamples"),
    ("Pad not feeding a Conv/pool", r"output of a Pad over time"),
    ("no streaming rule for an op", r"no streaming rule for op type"),
    ("branches at different rates", r"different rates"),
    ("esp-ppq error", r"esp-ppq"),
    ("simulator lacks an op", r"\(op type \w+\)"),
    ("streaming != offline", r"differs from the offline"),
    ("simulator != esp-ppq test output", r"does not reproduce esp-ppq"),
    ("recurrent state", r"recurrent state"),
    ("declared frames < receptive field + chunk", r"only runs on its declared"),
)


@dataclass
class Outcome:
    model: GeneratedModel
    target: str
    bits: int
    status: str  # "verified", "refused" or "failure"
    klass: str  # the summary class
    detail: str
    seconds: float
    model_path: Path
    command: list[str]
    worst_snr_db: float | None = None

    @property
    def failed(self) -> bool:
        return self.status == "failure"

    def command_line(self) -> str:
        return " ".join(_quote(a) for a in self.command)

    def reproducer(self) -> str:
        return (
            f"=== FAILURE: {self.klass} ===\n"
            f"model {self.model.name}: {self.target} {self.bits}-bit, input {self.model.input_shape_arg}, "
            f"chunk {self.model.chunk}, blocks: {' -> '.join(self.model.blocks)}\n"
            f"reproduce: cd {self.model_path.parent} && {self.command_line()}\n"
            f"--- what happened ---\n{self.detail.rstrip()}\n"
            f"--- {self.model_path} ---\n{self.model_path.read_text()}"
        )


def _quote(arg: str) -> str:
    return arg if re.fullmatch(r"[\w@%+=:,./-]+", arg) else "'" + arg.replace("'", "'\\''") + "'"


def target_for(seed: int) -> str:
    return TARGETS[seed % len(TARGETS)]


def bits_for(seed: int) -> int:
    return BITS[(seed // len(TARGETS)) % len(BITS)]


def reason_class(message: str) -> str:
    for name, pattern in REASON_CLASSES:
        if re.search(pattern, message):
            return name
    return "other"


def signature(message: str) -> str:
    """The message without node/tensor names and numbers: refusals of one kind share it."""
    s = re.sub(r"'[^']*'", "'*'", message)
    s = re.sub(r"\[[^\]]*\]", "[*]", s)
    s = re.sub(r"\d+", "N", s)
    return s[:160]


def snr_values(section: object) -> list[float]:
    """Every finite number under a key `snr_db` in the report's fidelity section."""
    found: list[float] = []
    if isinstance(section, dict):
        for key, value in section.items():
            if key == "snr_db" and isinstance(value, (int, float)) and math.isfinite(value):
                found.append(float(value))
            else:
                found.extend(snr_values(value))
    elif isinstance(section, list):
        for item in section:
            found.extend(snr_values(item))
    return found


def fidelity_snrs(report: dict) -> list[float]:
    """The per-output SNRs of the report's fidelity section (its own `outputs`: the float model against the
    integer model on the calibration data); other measurements in the section (the verification stream,
    random data the calibration may not cover) are not what a collapse is judged on."""
    section = report.get("fidelity")
    if isinstance(section, dict) and isinstance(section.get("outputs"), list):
        return snr_values(section["outputs"])
    return snr_values(section)


def _error_line(stderr: str) -> str | None:
    for line in stderr.splitlines():
        if line.startswith("error: "):
            return line + "".join("\n" + rest for rest in _continuation(stderr, line))
    return None


def _continuation(stderr: str, first: str) -> Iterable[str]:
    lines = stderr.splitlines()
    i = lines.index(first)
    for line in lines[i + 1 :]:
        if line.startswith(("  ", "\t")):
            yield line
        else:
            break


def _mismatch_context(model: GeneratedModel, text: str) -> str:
    """What a verification mismatch shares with others: the reference (the offline model on the whole prefix,
    or on a window of the declared length when it only runs at that length) and the layers that need it right."""
    frames = re.search(r"input frames \[(\d+), (\d+)\)", text)
    reference = "window" if frames and int(frames.group(1)) > 0 else "prefix"
    features = [f for f, present in (
        ("stride", model.total_stride > 1),
        ("recurrent", any(b.startswith(("GRU", "LSTM")) for b in model.blocks)),
        ("last-frame head", any(b.startswith("head_last_frame") for b in model.blocks)),
    ) if present]  # fmt: skip
    return f" ({reference} reference{', ' if features else ''}{', '.join(features)})"


def classify(
    model: GeneratedModel, bits: int, returncode: int | None, stderr: str, report: dict | None
) -> tuple[str, str, str, float | None]:
    """(status, class, detail, worst SNR) of one build."""
    tail = "\n".join(stderr.strip().splitlines()[-25:])
    if returncode is None:
        return "failure", "timeout", tail, None
    if returncode == 0:
        if report is None:
            return "failure", "exit 0 without a report", tail, None
        streaming = report.get("streaming", {})
        if not streaming.get("verified") or streaming.get("max_abs_diff") != 0:
            return "failure", "exit 0 but not verified bit-exact", json.dumps(streaming)[:2000], None
        if model.expected_refusal:
            return (
                "failure",
                f"missed refusal: {model.expected_refusal} verified",
                f"the model holds {model.expected_refusal}, which the README documents as refused",
                None,
            )
        snrs = fidelity_snrs(report)
        worst = min(snrs) if snrs else None
        if worst is not None and worst < SNR_FLOOR_DB[bits]:
            return (
                "failure",
                f"fidelity collapse ({bits}-bit worst SNR < {SNR_FLOOR_DB[bits]:g} dB)",
                json.dumps(report.get("fidelity"), indent=1)[:3000],
                worst,
            )
        return "verified", "verified", "", worst
    if returncode == 2:
        message = _error_line(stderr)
        if message is None:
            return "failure", "malformed refusal (no 'error: ' line)", tail, None
        if not message.startswith(f"error: {model.name}: "):
            text = message[len("error: ") :]
            return "failure", f"refusal without the model name: {reason_class(text)}", message, None
        text = message[len(f"error: {model.name}: ") :]
        if model.expected_refusal and any(s in text for s in DOCUMENTED_REFUSALS[model.expected_refusal]):
            if "node '" not in text:
                return "failure", f"refusal of {model.expected_refusal} names no node", message, None
            return "refused", f"documented: {model.expected_refusal}", message, None
        for allowed in ALLOWED_REASONS:
            if re.search(allowed.pattern, text) and allowed.condition(model):
                if allowed.needs_node and "node '" not in text:
                    return "failure", f"refusal '{allowed.name}' names no node", message, None
                return "refused", f"allowed: {allowed.name}", message, None
        reason = reason_class(text)
        if reason == "streaming != offline":
            reason += _mismatch_context(model, text)
        if model.expected_refusal:
            klass = f"wrong reason for {model.expected_refusal}: {reason}"
        else:
            klass = f"unexplained refusal: {reason}"
        return "failure", klass, message, None
    last = stderr.strip().splitlines()[-1] if stderr.strip() else f"exit {returncode}"
    return "failure", f"crash (exit {returncode}): {signature(last)[:100]}", tail, None


def _build(
    model: GeneratedModel, target: str, bits: int, work_dir: Path, calib_steps: int, timeout: float, keep: bool
) -> tuple[list[str], int | None, str, dict | None, float]:
    """One CLI build of the model file in work_dir: (command, exit status or None on timeout, stderr, report, s)."""
    out_dir = work_dir / "out" / model.name
    shutil.rmtree(out_dir, ignore_errors=True)
    command = [
        sys.executable,
        "-m",
        "espdl_streaming",
        "build",
        "--name",
        model.name,
        "--model",
        f"{model.name}.py:build",
        "--input-shape",
        model.input_shape_arg,
        "--chunk-frames",
        str(model.chunk),
        "--target",
        target,
        "--bits",
        str(bits),
        "--calib-steps",
        str(calib_steps),
        "--out-dir",
        str(out_dir),
        "--quiet",
    ]
    start = time.perf_counter()
    returncode: int | None
    try:
        proc = subprocess.run(command, cwd=work_dir, capture_output=True, text=True, timeout=timeout)
        returncode, stderr = proc.returncode, proc.stderr
    except subprocess.TimeoutExpired as exc:
        returncode = None
        err = exc.stderr or b""
        stderr = (err.decode(errors="replace") if isinstance(err, bytes) else err) + f"\ntimeout after {timeout:g} s"
    seconds = time.perf_counter() - start
    report_path = out_dir / f"{model.name}.report.json"
    report = json.loads(report_path.read_text()) if returncode == 0 and report_path.is_file() else None
    if not keep:
        shutil.rmtree(out_dir, ignore_errors=True)
    return command, returncode, stderr, report, seconds


def run_one(
    model: GeneratedModel,
    target: str,
    bits: int,
    work_dir: Path,
    timeout: float = DEFAULT_TIMEOUT_S,
    keep_outputs: bool = False,
) -> Outcome:
    """Write the model file into work_dir, build it with the CLI, classify the outcome.

    A fidelity below the floor is confirmed with a second build calibrated on CONFIRM_CALIB_STEPS batches:
    with CALIB_STEPS random batches an output's exponent can be chosen too small and clip (seen: a 16-bit
    output at 17 dB with 4 steps, 54 dB with 32), which is not a defect of the tool. An 8-bit collapse that
    persists is built once more at 16 bits: the conversion is the same, so a 16-bit build that follows the
    float model shows the loss is 8-bit quantization (e.g. a LayerNorm over 5 channels), not a conversion
    defect; the outcome says so."""
    work_dir.mkdir(parents=True, exist_ok=True)
    path = work_dir / f"{model.name}.py"
    path.write_text(model.file_text(target, bits))
    command, returncode, stderr, report, seconds = _build(
        model, target, bits, work_dir, CALIB_STEPS, timeout, keep_outputs
    )
    status, klass, detail, worst = classify(model, bits, returncode, stderr, report)
    if status == "failure" and klass.startswith("fidelity"):
        command, returncode, stderr, report, more = _build(
            model, target, bits, work_dir, CONFIRM_CALIB_STEPS, timeout, keep_outputs
        )
        seconds += more
        status, klass2, detail2, worst2 = classify(model, bits, returncode, stderr, report)
        if status == "verified":
            klass = f"verified (fidelity below the floor only with {CALIB_STEPS} calibration steps)"
            detail = f"worst SNR {worst} dB with --calib-steps {CALIB_STEPS}, {worst2} dB with {CONFIRM_CALIB_STEPS}"
            worst = worst2
        else:
            klass, detail, worst = f"{klass2} (also with --calib-steps {CONFIRM_CALIB_STEPS})", detail2, worst2
    if status == "failure" and klass.startswith("fidelity") and bits == 8:
        # The same conversion at 16 bits: if it follows the float model, the conversion is faithful and
        # the loss is 8-bit quantization (a quality matter: the report shows it), not a tool defect.
        _, returncode16, stderr16, report16, more = _build(
            model, target, 16, work_dir, CONFIRM_CALIB_STEPS, timeout, keep_outputs
        )
        seconds += more
        status16, _, _, worst16 = classify(model, 16, returncode16, stderr16, report16)
        if status16 == "verified":
            status = "verified"
            klass = "verified (8-bit quantization loss; the same conversion at 16 bits follows the float model)"
            detail = f"worst SNR {worst} dB at 8 bits, {worst16} dB at 16 bits"
    return Outcome(model, target, bits, status, klass, detail, seconds, path, command, worst)


def summary(outcomes: list[Outcome]) -> str:
    lines = [f"{len(outcomes)} generated models:"]
    for status in ("verified", "refused", "failure"):
        group = [o for o in outcomes if o.status == status]
        lines.append(f"  {status:<9} {len(group):>4}")
    lines.append("")
    lines.append(f"  {'status':<9} {'count':>5}  {'class':<72} models")
    classes: dict[tuple[str, str], list[Outcome]] = {}
    for o in outcomes:
        classes.setdefault((o.status, o.klass), []).append(o)
    order = {"verified": 0, "refused": 1, "failure": 2}
    for (status, klass), group in sorted(classes.items(), key=lambda kv: (order[kv[0][0]], kv[0][1])):
        names = ", ".join(o.model.name for o in group[:6]) + (" ..." if len(group) > 6 else "")
        lines.append(f"  {status:<9} {len(group):>5}  {klass[:72]:<72} {names}")
    snrs = [(o.worst_snr_db, o) for o in outcomes if o.worst_snr_db is not None]
    for bits in BITS:
        values = sorted(s for s, o in snrs if o.bits == bits)
        if values:
            lines.append(
                f"  fidelity {bits}-bit: worst SNR over {len(values)} verified models: min {values[0]:.1f} dB, "
                f"median {values[len(values) // 2]:.1f} dB (floor {SNR_FLOOR_DB[bits]:g} dB)"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=20, help="number of generated models (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="first seed (default 0); model i uses seed+i")
    parser.add_argument("--bits", type=int, choices=BITS, help="bits for every model (default: varies with seed)")
    parser.add_argument("--target", help="target for every model (default: varies with seed)")
    parser.add_argument(
        "--work-dir", type=Path, default=REPO / "build" / "fuzz", help="model files and outputs (default build/fuzz)"
    )
    parser.add_argument("--repro-dir", type=Path, help="copy the model file of every failure here")
    parser.add_argument(
        "--avoid",
        default="",
        help="comma-separated blocks/features never to generate, to look past known failures: "
        + ", ".join(sorted(AVOIDABLE)),
    )
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds per build")
    parser.add_argument("--keep-outputs", action="store_true", help="keep each build's out dir")
    args = parser.parse_args(argv)
    avoid = frozenset(a for a in args.avoid.split(",") if a)
    if avoid - AVOIDABLE:
        parser.error(f"--avoid: unknown {', '.join(sorted(avoid - AVOIDABLE))}")

    outcomes: list[Outcome] = []
    width = len(str(args.count))
    for i in range(args.count):
        seed = args.seed + i
        model = generate_from_seed(seed, avoid)
        target = args.target or target_for(seed)
        bits = args.bits or bits_for(seed)
        o = run_one(model, target, bits, args.work_dir, args.timeout, args.keep_outputs)
        outcomes.append(o)
        snr = f", worst SNR {o.worst_snr_db:.1f} dB" if o.worst_snr_db is not None else ""
        print(
            f"[{i + 1:>{width}}/{args.count}] {model.name} {target} {bits}-bit chunk {model.chunk}: "
            f"{o.status.upper()} {o.klass}{snr} ({o.seconds:.1f} s)"
            + (f": {o.detail}" if o.status == "verified" and o.detail else ""),
            flush=True,
        )
        if o.failed:
            if args.repro_dir:
                args.repro_dir.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(o.model_path, args.repro_dir / o.model_path.name)
            print(o.reproducer(), flush=True)
    print()
    print(summary(outcomes))
    return 1 if any(o.failed for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
