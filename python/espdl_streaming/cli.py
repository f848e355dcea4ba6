"""Command line: ``python -m espdl_streaming build ...`` and ``python -m espdl_streaming run ...``.

The only place that prints and exits.  User mistakes (:class:`EspdlStreamingError`) print
``error: ...`` to stderr and exit 2, writing nothing; anything else keeps its traceback
and exits 1.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .artifacts import add_build_arguments, add_lock_parser
from .audio.declare import add_cli_arguments as add_frontend_arguments
from .audio.declare import options_from_namespace as frontend_options
from .declaration import CALIB_ALGORITHMS, CALIB_OPTIONS, MIN_VERIFY_CHUNKS, make_declaration
from .errors import EspdlStreamingError
from .report import BuildReport, JSONObject, JSONValue

EXIT_USER_ERROR = 2
ENGINES = ("python", "host")  # run --engine (the run module imports numpy: loaded only when running)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"error: {message}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m espdl_streaming",
        description="Quantize a model for an ESP32 chip, convert it to an ESP-DL streaming model, verify every "
        "streaming chunk against the offline model bit for bit, and generate C++ glue.",
    )
    parser.add_argument("--version", action="version", version=f"espdl_streaming {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    b = sub.add_parser("build", help="build one model: NAME.espdl, NAME.offline.espdl, NAME.hpp/.cpp, report")
    b.add_argument("--name", required=True, help="C identifier naming the model, its class and its files")
    b.add_argument("--model", required=True, help="FILE.py:FACTORY (returns a torch.nn.Module) or FILE.onnx")
    b.add_argument(
        "--input-shape",
        required=True,
        help="offline input in torch layout, batch 1, time on dim 2: e.g. 1,16,24 (NCW) or 1,1,49,10",
    )
    b.add_argument("--chunk-frames", required=True, type=int, help="new frames per streaming step")
    _add_target(b, required=True, help="ESP-IDF chip target: esp32p4, esp32s3, esp32c3, ...")
    b.add_argument("--out-dir", required=True, type=Path, help="directory for the outputs")
    b.add_argument(
        "--calibration",
        help="FILE.npy / FILE.npz ([N, ...input shape without batch]) or FILE.py:FUNC; with --frontend also audio: "
        "FILE.wav, a folder of .wav files or a 1-D / 2-D FILE.npy of PCM (features computed as the chip does)",
    )
    b.add_argument("--calib-steps", type=int, default=32, help="calibration batches (default 32)")
    b.add_argument(
        "--quant",
        help="quantization scheme: w8a8 (default), w8a16, w16a16, or auto (w8a8 with the worst layers moved to "
        "16 bits until --min-snr-db holds)",
    )
    b.add_argument("--bits", type=int, help="alias: 8 is --quant w8a8, 16 is --quant w16a16")
    b.add_argument(
        "--eval",
        help="evaluation data for the quality measure (formats as --calibration); default: held-out calibration",
    )
    b.add_argument(
        "--min-snr-db",
        type=float,
        help="quality gate: fail when an output's SNR against the float model (evaluation data) is below this",
    )
    b.add_argument(
        "--strict", action="store_true", help="fail (not warn) when evaluation data saturates a quantized tensor"
    )
    b.add_argument(
        "--calib-algorithm",
        help=f"esp-ppq's activation observer: {', '.join(CALIB_ALGORITHMS)} (default: esp-ppq's, kl at 8-bit "
        "activations, minmax at 16); model-dependent, compare with the report's quality",
    )
    b.add_argument(
        "--espdl-version",
        help="the ESP-DL version the project builds with (the ESP-IDF wrapper passes it): --quant w8a16 needs "
        ">= 3.3.11, and --quant auto does not use W8A16 layers below it",
    )
    b.add_argument(
        "--calib-options",
        help=f"comma-separated esp-ppq passes run while calibrating: {', '.join(CALIB_OPTIONS)}",
    )
    b.add_argument(
        "--verify-chunks",
        type=int,
        default=MIN_VERIFY_CHUNKS,
        help=f"streaming chunks compared with the offline model (default and minimum {MIN_VERIFY_CHUNKS})",
    )
    b.add_argument("--placement", default="rodata", help="rodata (default) or partition:LABEL")
    b.add_argument("--depfile", type=Path, help="write a Makefile-style depfile listing the model's local modules")
    b.add_argument(
        "--declared-at",
        metavar="FILE:LINE",
        help="where the model is declared (CMake passes its CMakeLists.txt line): prefixes every error",
    )
    _add_quiet(b)
    b.add_argument("--log", type=Path, help="also write esp-ppq's full log to this file")
    add_frontend_arguments(
        b.add_argument_group(
            "speech front end",
            "ESP-DL's dl::audio front end computing the model's input frames from PCM (CMake: FRONTEND and the "
            "keywords of the same names)",
        )
    )
    add_build_arguments(b)  # --project-dir, --no-cache, --lock-dir, --update-lock (artifacts.py)

    sub.add_parser(
        "report",
        help="re-render NAME.report.html from NAME.report.json and print its text version "
        "(python -m espdl_streaming report NAME.report.json [--html OUT.html] [--quiet])",
        add_help=False,
    )
    add_lock_parser(sub)
    r = sub.add_parser(
        "run",
        help="stream recorded float frames (or audio, through the model's front end) through a built model, as "
        "the firmware does, and save the outputs",
        description="Quantize FRAMES chunk by chunk at the model input's exponent with the chip's rounding, run "
        "each chunk, dequantize the outputs and save them: concatenated along axis 1 (time), or stacked on a new "
        "axis 1 for outputs without a time axis. A .wav input is first turned into feature frames by the front "
        "end the model was built with (FRONTEND, read from its build report), computed by the engine's front end.",
    )
    r.add_argument("model", type=Path, metavar="MODEL.espdl", help="a streaming model written by build")
    r.add_argument(
        "--input",
        required=True,
        type=Path,
        metavar="FRAMES.npy | AUDIO.wav",
        help="float frames on axis 0, each the model input without batch and time: [frames, features]; or, for a "
        "model built with FRONTEND, a mono WAV file at the front end's sample rate (resampled when the model was "
        "built with RESAMPLE ON), turned into feature frames by the engine's front end (python: the Python port; "
        "host: the C++ one) as the model's build report <name>.report.json next to it describes",
    )
    r.add_argument(
        "--out",
        required=True,
        type=Path,
        metavar="OUT.npy|OUT.npz",
        help="float32 outputs: .npy for a model with one output, .npz (keys: output names) for any",
    )
    r.add_argument(
        "--engine",
        choices=ENGINES,
        default="python",
        help="python: the numpy simulator (default); host: the C++ runtime built for this machine",
    )
    _add_target(
        r,
        required=False,
        help="the chip whose rounding to use (default: the target in MODEL's build report, <name>.report.json)",
    )
    _add_quiet(r)
    return parser


def _add_target(p: argparse.ArgumentParser, *, required: bool, help: str) -> None:
    p.add_argument("--target", required=required, help=help)


def _add_quiet(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quiet", action="store_true", help="print only errors and warnings")


def _summary(report: BuildReport, written: list[Path], out_dir: Path) -> str:
    s = report.streaming
    fid = report.fidelity
    worst = _worst_snr(fid)
    also = _worst_snr(_json_object(fid.get("verification_stream")))
    lines = [
        f"{report.name}: streaming model for {report.target} ({report.bits}-bit, {report.quant}) verified: "
        f"{s.chunks_checked} chunks of {report.chunk_frames} frames equal the offline model bit for bit "
        f"(max |diff| {s.max_abs_diff}, {s.warmup_chunks} warm-up chunks)",
        f"  verified: {str(s.verified).lower()}  max_abs_diff: {s.max_abs_diff}  "
        f"chunks_checked: {s.chunks_checked}  "
        + (f"float_snr_db: {worst[1]:.1f} (worst output '{worst[0]}' against the float model, {fid['chunks']} chunks"
           + (f" of calibration data; {also[1]:.1f} dB on the verification stream)" if also else ")")
           if worst else "float_snr_db: n/a (fidelity not measured: see the report)"),
    ]  # fmt: skip
    quality = report.quality
    rated = [o for o in _json_objects(quality.get("outputs")) if isinstance(o.get("snr_db"), (int, float))]
    if rated:
        q = min(rated, key=lambda o: _number(o["snr_db"]))
        gate = _json_object(quality.get("gate"))
        auto = _json_object(quality.get("auto"))
        top1 = q.get("top1_agreement")
        promoted = auto.get("promoted")
        lines.append(
            f"  quality ({quality.get('scheme')}): worst output '{q['name']}' {_number(q['snr_db']):.1f} dB SNR on "
            f"{quality.get('frames')} evaluation frames"
            + (f", top-1 agreement {100 * _number(top1):.1f}%" if top1 is not None else "")
            + (f"; gate MIN_SNR_DB {_number(gate['min_snr_db']):g} passed" if gate.get("passed") else "")
            + (f"; auto: {_promoted_text(promoted)} at 16 bits" if isinstance(promoted, list) else "")
        )
    fe = report.frontend
    if fe is not None:
        fc = fe.cost
        share = fc.frontend_to_model_macs_ratio
        model = (
            (f"{share:.3g}x" if share >= 1 else f"{100 * share:.2g}% of")
            + f" the model's {fc.model_macs_per_second / 1e6:.3g} M"
            if share is not None
            else "model: 0 MACs"
        )
        lines.append(
            f"  front end {fe.kind}: {fe.feature_dim} features per frame from {fe.sample_rate} Hz PCM, frames of "
            f"{fe.frame_length_samples} samples every {fe.frame_shift_samples} ({fe.config['frame_length']}/"
            f"{fe.config['frame_shift']} ms); {fc.frames_per_second:g} frames/s, {fc.macs_per_second / 1e6:.3g} M "
            f"MACs/s ({model}), {fc.logs_per_second:g} logs/s; RAM {fc.ram_bytes} B ({fc.heap_bytes} heap at init "
            f"+ {fc.class_bytes} class members)"
        )
    i = report.input
    lines.append(f"  input   {i.name}: {i.dtype} {i.shape} exponent {i.exponent}")
    for o in report.outputs:
        scale = f"exponent {o.exponent}" if o.exponent is not None else "(float, not quantized)"
        lines.append(f"  output  {o.name}: {o.dtype} {o.shape} {scale}")
    lines.append(
        f"  flash {report.espdl_bytes} B, cache RAM {report.cache_bytes} B, {report.macs_per_chunk} "
        f"MACs/chunk, receptive field {report.receptive_field_frames} frames"
    )
    states = report.recurrent_states
    if states:
        nodes = sorted({st.node for st in states})
        lines.append(
            f"  recurrent state: {len(states)} tensor(s) of {', '.join(nodes)}, {report.state_bytes} B, "
            "carried from chunk to chunk by the generated class"
        )
    lines.append("  seconds: " + ", ".join(f"{k} {v:.2f}" for k, v in report.seconds.items()))
    lines.append(f"  quality page: {out_dir / (report.name + '.report.html')}")
    lines.append(f"  {len(written)} file(s) updated in {out_dir}" if written else f"  outputs unchanged in {out_dir}")
    return "\n".join(lines)


def _json_object(value: JSONValue) -> JSONObject:
    return value if isinstance(value, dict) else {}


def _json_objects(value: JSONValue) -> list[JSONObject]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _number(value: JSONValue) -> float:
    return float(value) if isinstance(value, (int, float)) else float("nan")


def _promoted_text(promoted: list[JSONValue]) -> str:
    return "every layer" if promoted == ["every layer"] else f"{len(promoted)} layer(s)"


def _worst_snr(fidelity: JSONObject) -> tuple[str, float] | None:
    """The output with the lowest SNR against the float model (name, dB), or None."""
    rated = [
        (str(o.get("name")), float(snr))
        for o in _json_objects(fidelity.get("outputs"))
        if isinstance(snr := o.get("snr_db"), (int, float))
    ]
    return min(rated, key=lambda item: item[1]) if rated else None


def run_with_fixed_hash_seed() -> None:
    """Re-run this process with PYTHONHASHSEED=0 unless it already has it.

    esp-ppq serialises some graph parts in set/dict-of-str order, so with Python's default
    randomised string hashing the same model exports to different bytes on every run.  A
    fixed seed makes the outputs reproducible (same inputs, same bytes).
    """
    if os.environ.get("PYTHONHASHSEED") == "0":
        return
    env = dict(os.environ, PYTHONHASHSEED="0")
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", "espdl_streaming", *sys.argv[1:]], env)


def main(argv: Sequence[str] | None = None) -> int:
    given = list(sys.argv[1:] if argv is None else argv)
    if given[:1] == ["report"]:
        from .report_html import main_report

        return main_report(given[1:])
    args = _parser().parse_args(argv)
    if args.command == "run":
        return _run(args)
    if args.command == "lock":
        from .artifacts import main_lock

        return main_lock(args, main)
    return _build(args, argv)


def _build(args: argparse.Namespace, argv: Sequence[str] | None) -> int:
    given = list(sys.argv[1:] if argv is None else argv)
    try:
        from .artifacts import produce
        from .atomic import write_atomically

        decl = make_declaration(
            name=args.name,
            model=args.model,
            input_shape=args.input_shape,
            chunk_frames=args.chunk_frames,
            target=args.target,
            out_dir=args.out_dir,
            calibration=args.calibration,
            calib_steps=args.calib_steps,
            bits=args.bits,
            verify_chunks=args.verify_chunks,
            placement=args.placement,
            quant=args.quant,
            evaluation=args.eval,
            min_snr_db=args.min_snr_db,
            strict=args.strict,
            calib_algorithm=args.calib_algorithm,
            calib_options=args.calib_options,
            espdl_version=args.espdl_version,
            frontend=frontend_options(args),
        )
        result = produce(decl, args, given)  # from the lock, the build cache or the quantizer
        files = dict(result.files)
        if args.depfile:
            files[args.depfile.resolve()] = result.depfile.encode()
        written = write_atomically(files)
    except EspdlStreamingError as exc:
        # Every build error names the model first (some come from stages that do not know its name).
        message = str(exc)
        named = message if message.startswith(f"{args.name}: ") else f"{args.name}: {message}"
        where = f"{args.declared_at}: " if args.declared_at else ""
        print(f"{where}error: {named}", file=sys.stderr)
        return EXIT_USER_ERROR
    except OSError as exc:
        if exc.filename and str(args.out_dir) in str(exc.filename):
            print(
                f"error: {args.name}: cannot write {exc.filename}: {exc.strerror}: choose a writable --out-dir",
                file=sys.stderr,
            )
            return EXIT_USER_ERROR
        raise
    report = BuildReport.from_dict(result.report)
    for warning in result.warnings:
        print(f"WARNING: {warning}", file=sys.stderr)
    if not args.quiet:
        for note in result.notes:
            print(note)
    if report.calibration.random:
        print(f"WARNING: {args.name}: {report.calibration.warning}", file=sys.stderr)
    for warning in report.warnings:
        print(f"WARNING: {warning}", file=sys.stderr)
    if not args.quiet:
        print(_summary(report, written, decl.out_dir))
    return 0


def _run(args: argparse.Namespace) -> int:
    from .atomic import write_atomically
    from .run import encode_outputs, plan_run, run_frames

    try:
        plan = plan_run(args.model, args.input, args.out, target=args.target, engine=args.engine)
        for warning in plan.warnings:
            print(f"WARNING: {warning}", file=sys.stderr)
        result = run_frames(plan.spec, plan.frames, plan.rounding, plan.engine)
        if result.dropped:
            what = "feature frames computed from it" if plan.audio else "frames"
            print(
                f"WARNING: {args.input}: the last {result.dropped} of {result.frames} {what} do not fill a chunk of "
                f"{result.chunk_frames} frames and were not run (the device keeps them pending for the next push)",
                file=sys.stderr,
            )
        data = encode_outputs(result.outputs, args.out)
    except EspdlStreamingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    try:
        write_atomically({args.out.resolve(): data})
    except OSError as exc:
        print(f"error: --out {args.out}: cannot write {exc.filename or args.out}: {exc.strerror}", file=sys.stderr)
        return EXIT_USER_ERROR
    if not args.quiet:
        shapes = ", ".join(f"{name} {list(a.shape)}" for name, a in result.outputs.items())
        source = f"{result.frames} frames in"
        if plan.audio is not None:
            a = plan.audio
            rate = f"{a.sample_rate} Hz" + (f", resampled from {a.source_rate} Hz" if a.resampled else "")
            source = (
                f"{a.samples} samples of {a.path.name} ({a.samples / a.sample_rate:.3f} s at {rate}) turned into "
                f"{a.frames} {a.kind} feature frames of {a.feature_dim} by the {a.engine} front end"
            )
        print(
            f"{args.model.name}: {source}, {result.chunks} chunks of {result.chunk_frames} frames "
            f"run on the {args.engine} engine ({plan.chip} rounding {plan.rounding}); {args.out}: {shapes}"
        )
    return 0


def entry_point() -> None:
    """The `espdl-streaming` console script."""
    run_with_fixed_hash_seed()
    sys.exit(main())
