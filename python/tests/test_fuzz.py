"""A fixed slice of the architecture fuzzer (tests/fuzz/): generated causal models built by the CLI.

Hypothesis draws 8 compositions of the documented building blocks (derandomized: the same models
on every run for a given hypothesis version); they take the targets esp32p4, esp32s3, esp32c3 and
8/16 bits in turn.  Each is one test case that builds the model with ``python -m espdl_streaming
build`` and requires it to verify bit-exact (with a sane fidelity when the report measures it) or to
be refused for a documented or allow-listed reason.  A failure
prints the reproducer: the generated model file and the command.  ``make fuzz`` runs 300 models.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fuzz.generator import BITS, TARGETS, GeneratedModel, HypothesisChooser, generate
from fuzz.runner import classify, run_one
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

EXAMPLES = 8


def _draw_slice() -> list[tuple[GeneratedModel, str, int]]:
    """The slice: EXAMPLES models drawn by hypothesis, derandomized (the seed derives from this function's
    source), once at collection so each model is its own test case; targets and bits in turn."""
    drawn: list[GeneratedModel] = []

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(data=st.data())
    def draw(data: st.DataObject) -> None:
        drawn.append(generate(HypothesisChooser(data)))

    draw()
    return [(m, TARGETS[i % len(TARGETS)], BITS[(i // len(TARGETS)) % len(BITS)]) for i, m in enumerate(drawn)]


SLICE = _draw_slice()


def test_slice_is_varied() -> None:
    assert len(SLICE) == EXAMPLES
    assert len({m.source for m, _, _ in SLICE}) == EXAMPLES


@pytest.mark.parametrize(("model", "target", "bits"), SLICE, ids=[f"{m.name}-{t}-{b}bit" for m, t, b in SLICE])
def test_generated_model_verifies_or_is_refused_for_a_true_reason(
    model: GeneratedModel, target: str, bits: int, tmp_path: Path
) -> None:
    outcome = run_one(model, target, bits, tmp_path)
    print(f"{model.name} {target} {bits}-bit: {outcome.status} ({outcome.klass}), {' -> '.join(model.blocks)}")
    assert outcome.status != "failure", outcome.reproducer()


def _model(refusal: str | None = None, chunk: int = 4, stride: int = 1) -> GeneratedModel:
    return GeneratedModel("fuzz_x", "", (1, 8, 16), chunk, ["conv"], stride, refusal)


def test_classification_is_strict() -> None:
    """The classifier fails what it must: a refusal of a streamable model, a crash, a missed refusal."""
    plain = _model()
    refusal = "error: fuzz_x: node '/c/Conv' (Conv) has no streaming rule for op type Foo: open an issue\n"
    assert classify(plain, 8, 2, refusal, None)[0] == "failure"
    lookahead = "error: fuzz_x: node '/c/Conv' (Conv) pads 1 frame(s) at the end of the time axis: it reads 1 future frame(s) (look-ahead): pad only the start\n"  # noqa: E501
    assert classify(_model("end_pad"), 8, 2, lookahead, None)[:2] == ("refused", "documented: end_pad")
    assert classify(_model("softmax_time"), 8, 2, lookahead, None)[0] == "failure"  # the wrong reason
    stride = "error: fuzz_x: node '/d/Conv' (Conv) has stride 2 over time ...: use a --chunk-frames that is a multiple of the total stride 2 up to this layer: 2, 4\n"  # noqa: E501
    assert classify(_model(chunk=3, stride=2), 8, 2, stride, None)[0] == "refused"
    assert classify(_model(chunk=4, stride=2), 8, 2, stride, None)[0] == "failure"  # not true for chunk 4
    assert classify(plain, 8, 2, "error: fuzz_x: something without a node\n", None)[0] == "failure"
    assert classify(plain, 8, 1, "Traceback (most recent call last):\nValueError: x\n", None)[0] == "failure"
    assert classify(plain, 8, None, "", None)[:2] == ("failure", "timeout")
    verified = {"streaming": {"verified": True, "max_abs_diff": 0}, "fidelity": {"outputs": [{"snr_db": 40.0}]}}
    assert classify(plain, 8, 0, "", verified)[0] == "verified"
    assert classify(_model("upsample"), 8, 0, "", verified)[0] == "failure"  # should have been refused
    collapsed = {**verified, "fidelity": {"outputs": [{"snr_db": 40.0}, {"snr_db": 3.0}]}}
    assert classify(plain, 8, 0, "", collapsed)[0] == "failure"
    assert classify(plain, 8, 0, "", {"streaming": {"verified": True, "max_abs_diff": 1}})[0] == "failure"
