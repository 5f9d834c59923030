# Protoface: two commands do all set-up on a fresh machine.
#   make up    — create the venv, install, run everything on an embedded NATS
#   make test  — create the venv, install, lint, type-check and run the test suite

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# The CPU build of torch, pinned: an unpinned `torch` pulls a multi-GB CUDA build.
TORCH  := torch==2.13.0
STAMP  := $(VENV)/.installed

.PHONY: up test lint typecheck imports typetree bench fuzz soak clean install chromium screenshots

install: $(STAMP)

$(STAMP): pyproject.toml setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

up: $(STAMP)
	$(BIN)/protoface up

lint: $(STAMP)
	$(BIN)/ruff check .

# mypy and import-linter see the installed layout (protoface.api, protoface.domain, …)
# through a tree of links to the repository's folders.
TYPETREE := build/typecheck
typetree:
	rm -rf $(TYPETREE) && mkdir -p $(TYPETREE)/protoface
	for d in api domain streams projections worker; do ln -s ../../../$$d $(TYPETREE)/protoface/$$d; done
	for f in protoface/*.py; do ln -s ../../../$$f $(TYPETREE)/protoface/; done

typecheck: $(STAMP) typetree
	MYPYPATH=$(TYPETREE) $(BIN)/mypy --strict -p protoface

imports: $(STAMP) typetree
	cd $(TYPETREE) && PYTHONPATH=. $(CURDIR)/$(BIN)/lint-imports $(CURDIR)/pyproject.toml

test: $(STAMP) lint typecheck imports chromium
	$(BIN)/python -m pytest

# The browser tests (tests/browser) drive Debian's chromium through Playwright — never a
# browser Playwright downloads. A clean machine (CI) lacks it: install it (root or sudo).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  SUDO=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium; }

# docs/playground.png and docs/dashboard.png (the README's), from a real session.
screenshots: $(STAMP) chromium
	PROTOFACE_SCREENSHOTS_DIR=docs $(BIN)/python -m pytest -q \
	  tests/browser/test_dashboard.py::test_the_dashboard_shows_the_session_that_just_ran \
	  tests/browser/test_playground.py::test_the_avatar_model_talks_in_the_browser

bench: $(STAMP)
	$(BIN)/python -m bench.api_create

# Schemathesis with 1,000 valid + 1,000 invalid generated requests per operation
# (make test runs 25 + 25), the relay socket fuzz, and 10 SIGKILL-and-restart runs of
# the log's server, each printing how long creates took to succeed again (make test: 2).
fuzz: $(STAMP)
	PROTOFACE_FUZZ_CASES=1000 PROTOFACE_RECOVERY_RUNS=10 $(BIN)/python -m pytest tests/faults/test_schemathesis.py tests/faults/test_relay_fuzz.py tests/faults/test_recovery.py -p no:randomly -s

# N relay sessions churning for 10 minutes: RSS growth, lost events, frame jitter.
soak: $(STAMP)
	$(BIN)/python -m bench.soak

clean:
	rm -rf $(VENV) .protoface .pytest_cache .mypy_cache .ruff_cache .hypothesis
