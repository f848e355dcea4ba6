# Two commands on a fresh machine:  `make demo`  and  `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.espdl_streaming-installed
DEMO_OUT := out/demo

.PHONY: demo test bench lint venv clean

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

# Benchmarks (under 15 minutes on 2 cores): writes BENCHMARKS.md; scratch files in build/bench/.
bench: $(STAMP)
	$(PY) bench/run.py

lint: $(STAMP)
	cd python && ../$(VENV)/bin/ruff check espdl_streaming tests && ../$(VENV)/bin/ruff format --check espdl_streaming tests \
	  && ../$(VENV)/bin/mypy espdl_streaming

clean:
	rm -rf $(DEMO_OUT) build
