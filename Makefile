# One command to see it work (`make demo`), one to test it (`make test`). Both set everything up.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
SEMGREP_VENV := .venv-semgrep
SEMGREP_VERSION := 1.185.0
BIN := $(VENV)/bin

export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS := 180
export LITELLM_LOCAL_MODEL_COST_MAP := True
export SEMGREP_ENABLE_VERSION_CHECK := 0

.PHONY: setup demo test clean

setup: $(VENV)/.installed $(SEMGREP_VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

# Semgrep lives in its own environment: installed beside Prefect, pip resolves an old semgrep.
$(SEMGREP_VENV)/.installed:
	$(PYTHON) -m venv $(SEMGREP_VENV)
	$(SEMGREP_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(SEMGREP_VENV)/bin/python -m pip install --quiet semgrep==$(SEMGREP_VERSION)
	touch $@

# The demo batch over examples/ with scripted models. Exit 1 from quorum means "ran, some tasks
# not resolved", which the demo shows on purpose (one task is escalated to a human).
demo: setup
	$(BIN)/quorum batch examples/demo.yaml --roster scripted; status=$$?; \
	if [ $$status -gt 1 ]; then exit $$status; fi; \
	echo "demo finished: artifacts in .quorum/runs/demo/ (run 'make demo' again: no LLM calls)"

test: setup
	$(BIN)/python -m pytest -q

clean:
	rm -rf .quorum
