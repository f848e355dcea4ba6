"""Facts several stages share, each defined once here. This module imports nothing of the package.

- the chips: the esp-ppq target that decides each chip's kernels, and its rounding;
- the C++ keywords a generated name must avoid (cmake/espdl_streaming.cmake keeps a copy for
  configure-time errors: python/tests/test_facts.py checks that they agree);
- the names and metadata keys of the recurrent state a streaming model carries between chunks, and
  where ESP-DL's GRU and LSTM read and write it;
- the metadata keys the build writes into the .espdl for the simulator and the runtime.
"""

from __future__ import annotations

from typing import Literal

#: ESP-IDF chip targets and the esp-ppq target that decides their kernels and rounding. The chips ESP-DL
#: supports (its idf_component.yml). The PIE chips have esp-ppq targets of their own (and round half to even
#: on esp32p4/esp32s31); every other chip runs ESP-DL's generic C kernels, esp-ppq's "c" target (round half up).
CHIP_TO_PPQ_TARGET: dict[str, str] = {
    "esp32p4": "esp32p4",
    "esp32s31": "esp32s31",
    "esp32s3": "esp32s3",
    "esp32": "c",
    "esp32s2": "c",
    "esp32c2": "c",
    "esp32c3": "c",
    "esp32c5": "c",
    "esp32c6": "c",
}

#: How a chip's kernels round a scaled value to an integer.
Rounding = Literal["half_even", "half_up"]
ROUNDINGS: tuple[Rounding, ...] = ("half_even", "half_up")
HALF_EVEN_TARGETS = frozenset({"esp32p4", "esp32s31"})


def rounding_for_target(target: str) -> Rounding:
    """ESP32-P4 and ESP32-S31 round half to even; every other chip rounds half up."""
    return "half_even" if target.lower() in HALF_EVEN_TARGETS else "half_up"


#: C++ keywords: neither a model name (it names the generated class) nor a generated identifier may be one.
CPP_KEYWORDS = frozenset(
    """alignas alignof and and_eq asm auto bitand bitor bool break case catch char char8_t char16_t
    char32_t class compl concept const consteval constexpr constinit const_cast continue co_await
    co_return co_yield decltype default delete do double dynamic_cast else enum explicit export
    extern false float for friend goto if inline int long mutable namespace new noexcept not not_eq
    nullptr operator or or_eq private protected public register reinterpret_cast requires return
    short signed sizeof static static_assert static_cast struct switch template this thread_local
    throw true try typedef typeid typename union unsigned using virtual void volatile wchar_t while
    xor xor_eq""".split()
)

#: The recurrent state of a streaming model: graph inputs state_in_<k>, outputs state_out_<k> (or a user
#: output that is the last state, named in META_STATE_OUTPUT<k>), and a learned initial state's integers.
STATE_INPUT_PREFIX = "state_in_"
STATE_OUTPUT_PREFIX = "state_out_"
META_STATE_INITIAL = "espdl_streaming.state_initial."
META_STATE_OUTPUT = "espdl_streaming.state_output."

#: Where ESP-DL's GRU and LSTM (ONNX layout) take their initial state and give their last one:
#: (input slot, output slot, kind) per state.
RECURRENT_STATE_SLOTS: dict[str, tuple[tuple[int, int, str], ...]] = {
    "GRU": ((5, 1, "hidden"),),
    "LSTM": ((5, 1, "hidden"), (6, 2, "cell")),
}

#: Metadata key prefix (+ output name) of a per-frame output: its exported time axis.
OUTPUT_TIME_AXIS_PREFIX = "espdl_streaming.time_axis."
#: Metadata key prefix (+ node name) of a Gather the user indexed from the end (x[..., -1]): its indices as
#: written (comma-separated). The offline file holds them counted from the start for its declared length,
#: since ESP-DL does not wrap negative indices; a run on another length counts from its end.
GATHER_FROM_END_PREFIX = "espdl_streaming.gather_from_end."
