# One command to see it work (`make demo`), one to test it (`make test`). Both set everything up,
# from lockfiles: uv.lock for quorum's environment, infra/requirements/*.txt (hashed) for the tools.
# The venv stamps depend on this Makefile, so a change to how they are installed redoes existing
# venvs too (the pip installs --reinstall: uv skips compiling packages that are already installed).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
UV_VERSION := 0.13.9
TOOLS := .venv-tools
UV := $(TOOLS)/bin/uv
VENV := .venv
SEMGREP_VENV := .venv-semgrep
SEMGREP_VERSION := 1.185.0
INFRA_VENV := .venv-infra
BIN := $(VENV)/bin

export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS := 180
export LITELLM_LOCAL_MODEL_COST_MAP := True
export SEMGREP_ENABLE_VERSION_CHECK := 0
export UV_PYTHON_DOWNLOADS := never

.PHONY: setup demo thesis-demo test test-heavy heavy-system-packages lock clean

setup: $(VENV)/.installed $(SEMGREP_VENV)/.installed

# uv itself, pinned, from PyPI (the only thing pip installs).
$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet "uv==$(UV_VERSION)"

# quorum (editable) with its test dependencies, exactly as uv.lock pins them. Compiled to bytecode at
# install: where PYTHONDONTWRITEBYTECODE is set (this machine), Python would otherwise compile Prefect and
# litellm from source in every process it starts (~8 s of CPU each: servers, workers, shards, the CLI).
$(VENV)/.installed: pyproject.toml uv.lock Makefile | $(UV)
	UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync --frozen --extra test --python $(PYTHON) --compile-bytecode --quiet
	touch $@

# Semgrep lives in its own environment: installed beside Prefect, the resolver picks an old semgrep.
$(SEMGREP_VENV)/.installed: infra/requirements/semgrep.txt Makefile | $(UV)
	$(UV) venv --quiet --allow-existing --python $(PYTHON) $(SEMGREP_VENV)
	$(UV) pip install --quiet --reinstall --compile-bytecode --python $(SEMGREP_VENV)/bin/python --require-hashes -r infra/requirements/semgrep.txt
	touch $@

# Linters for infra/ (Dockerfile, compose file, Kubernetes manifests), used by tests/test_infra.py.
$(INFRA_VENV)/.installed: infra/requirements/infra-linters.txt Makefile | $(UV)
	$(UV) venv --quiet --allow-existing --python $(PYTHON) $(INFRA_VENV)
	$(UV) pip install --quiet --reinstall --compile-bytecode --python $(INFRA_VENV)/bin/python --require-hashes -r infra/requirements/infra-linters.txt
	touch $@

# The demo batch over examples/ with scripted models. Exit 1 from quorum means "ran, some tasks
# not resolved", which the demo shows on purpose (one task is escalated to a human).
demo: setup
	$(BIN)/quorum batch examples/demo.yaml --roster scripted; status=$$?; \
	if [ $$status -gt 1 ]; then exit $$status; fi; \
	echo "demo finished: artifacts in .quorum/runs/demo/ (run 'make demo' again: no LLM calls)"

# The thesis in numbers, offline (docs/thesis.md): three scripted rosters on the demo tasks, and the
# labelled example review set; both tables print, their figures land in docs/figures/.
thesis-demo: setup
	$(BIN)/quorum compare examples/demo.yaml --roster examples/rosters/all-premium.yaml \
	  --roster examples/rosters/premium-plan-cheap-impl.yaml --roster examples/rosters/cheap-only.yaml --figures docs/figures
	$(BIN)/quorum review-eval examples/review-set/set.yaml --roster scripted \
	  --roster examples/rosters/premium-reviewers.yaml --figures docs/figures

# One test file at a time per process, the slowest files first (tests/conftest.py orders them;
# --no-loadscope-reorder keeps that order): a long file left for the end would keep one process busy
# while the others idle. Three processes on 2 cores: the slow files spend much of their time waiting on
# Prefect servers, workers and subprocesses (a fresh clone: 7m54 with -n 3, 9m17 with -n 2).
PYTEST_XDIST := --dist loadfile --no-loadscope-reorder
test: setup $(INFRA_VENV)/.installed
	$(BIN)/python -m pytest -q -n 3 $(PYTEST_XDIST) --durations=20 -m "not heavy"

# The slowest end-to-end runs (fan-out over two workers, a killed worker's resume, the demo through the
# CLI twice, the deployment test again on PostgreSQL, the UI in headless Chromium): run before resolving
# an issue that touches batches, fan-out, the CLI or what the UI shows. Screenshots: test-output/ui/.
test-heavy: setup $(INFRA_VENV)/.installed heavy-system-packages
	$(BIN)/python -m pytest -q -n 2 $(PYTEST_XDIST) --durations=20 -m heavy

# Debian packages the heavy tests use: PostgreSQL (the deployment test on PostgreSQL) and Chromium (the
# UI test). Installed when missing and we are root with apt; otherwise the tests fail saying what to install.
heavy-system-packages:
	@missing=""; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing:$$missing"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq$$missing; \
	  else echo "the heavy tests need Debian packages:$$missing (apt-get install -y$$missing)"; fi; \
	fi

# Re-resolve every lockfile (after changing pyproject.toml or a tool version); commit the result.
lock: | $(UV)
	$(UV) lock
	echo "semgrep==$(SEMGREP_VERSION)" > infra/requirements/semgrep.in
	for name in semgrep infra-linters; do \
	  $(UV) pip compile --quiet --universal --generate-hashes --python-version 3.11 \
	    infra/requirements/$$name.in -o infra/requirements/$$name.txt || exit 1; \
	done

clean:
	rm -rf .quorum
