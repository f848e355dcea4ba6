# Two commands on a fresh machine:  `make demo`  and  `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.espdl_streaming-installed
DEMO_OUT := out/demo

.PHONY: demo test zoo bench bench-calib fuzz lint venv clean

venv: $(STAMP)

$(STAMP): python/pyproject.toml python/requirements.txt python/requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r python/requirements-dev.txt
	$(PY) -m pip install --disable-pip-version-check -q --no-deps -e python
	touch $@

# Build the bundled example model with the CLI for the two PIE chips, print the summary.
demo: $(STAMP)
	@for chip in esp32p4 esp32s3; do \
	  $(PY) -m espdl_streaming build --name tcn --model examples/tcn/model.py:build \
	    --input-shape 1,16,24 --chunk-frames 3 --target $$chip --out-dir $(DEMO_OUT)/$$chip || exit $$?; \
	done

test: $(STAMP)
	$(PY) -m pytest python/tests -q -p no:cacheprovider

# The fast tier (seconds, no torch/esp-ppq): every test not marked `slow` (python/tests/conftest.py), with
# the committed .espdl fixtures of python/tests/data/fixtures/ (rebuilt by `make test-fixtures`).
.PHONY: test-fast test-fixtures
test-fast: $(STAMP)
	$(PY) -m pytest python/tests -q -p no:cacheprovider -m "not slow"

test-fixtures: $(STAMP)
	$(PY) tools/make_test_fixtures.py

# The whole model zoo matrix: every architecture on esp32p4, esp32s3 and esp32c3 at 8 and 16 bits
# (`make test` builds each architecture once per width, on chip families taken in turn).
zoo: $(STAMP)
	ESPDL_STREAMING_FULL_ZOO=1 $(PY) -m pytest python/tests/test_zoo.py -q -p no:cacheprovider

# Benchmarks (about 15 minutes on 2 cores, plus about 25 for the quality table of every zoo model and scheme):
# writes BENCHMARKS.md; scratch files in build/bench/
bench: $(STAMP)
	$(PY) bench/run.py

# which esp-ppq calibration settings help int8 on the zoo (the README's table): build/bench/calib_options.md
bench-calib: $(STAMP)
	$(PY) bench/calib_options.py
	$(PY) bench/calib_options.py --merge --options adaround

# Architecture fuzzer: FUZZ_COUNT generated causal models built with the CLI, one at a time (about 8 s
# each); prints a reproducer per failure and a summary, exits non-zero on any failure.
FUZZ_COUNT ?= 300
FUZZ_SEED ?= 0
fuzz: $(STAMP)
	$(PY) python/tests/fuzz/runner.py --count $(FUZZ_COUNT) --seed $(FUZZ_SEED) --repro-dir build/fuzz/repro

# The C++ sources clang-format checks (.clang-format): every .cpp/.hpp/.h under CXX_DIRS but build outputs.
CXX_DIRS := include src host tests/host tests/cmake_project test_apps bench examples
CXX_FILES = $(shell find $(CXX_DIRS) \( -name build -o -name 'build_*' -o -name managed_components -o -name '.*' \) \
	-prune -o -type f \( -name '*.cpp' -o -name '*.hpp' -o -name '*.h' \) -print | LC_ALL=C sort)

lint: $(STAMP)
	cd python && ../$(VENV)/bin/ruff check espdl_streaming tests && ../$(VENV)/bin/ruff format --check espdl_streaming tests \
	  && ../$(VENV)/bin/mypy espdl_streaming
	$(VENV)/bin/clang-format --dry-run -Werror $(CXX_FILES)

clean:
	rm -rf $(DEMO_OUT) build
