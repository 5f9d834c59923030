# Protoface: two commands do all set-up on a fresh machine.
#   make up    — create the venv, install, run everything on an embedded NATS
#   make test  — create the venv, install, lint, type-check and run the test suite

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# The CPU build of torch, pinned: an unpinned `torch` pulls a multi-GB CUDA build.
TORCH  := torch==2.13.0
STAMP  := $(VENV)/.installed

.PHONY: up test lint typecheck bench fuzz soak clean install

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

up: $(STAMP)
	$(BIN)/protoface up

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy --strict domain streams

test: $(STAMP) lint typecheck
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python -m bench.api_create

# Schemathesis with 1,000 valid + 1,000 invalid generated requests per operation
# (make test runs 25 + 25) and the relay socket fuzz; a few minutes.
fuzz: $(STAMP)
	PROTOFACE_FUZZ_CASES=1000 $(BIN)/python -m pytest tests/faults/test_schemathesis.py tests/faults/test_relay_fuzz.py -p no:randomly -s

# N relay sessions churning for 10 minutes: RSS growth, lost events, frame jitter.
soak: $(STAMP)
	$(BIN)/python -m bench.soak

clean:
	rm -rf $(VENV) .protoface .pytest_cache .mypy_cache .ruff_cache .hypothesis
