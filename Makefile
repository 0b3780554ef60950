# The two commands that matter: `make demo` and `make test`. See README.md.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
# The install is redone only when requirements.txt or pyproject.toml change.
STAMP  := $(VENV)/.installed-$(shell cat requirements.txt pyproject.toml 2>/dev/null | sha256sum | cut -c1-16)

.PHONY: help setup demo scale-demo scenario down status test test-fast compose-check bench lint clean-run

help:
	@echo "make setup   create .venv, install pinned requirements, .env from .env.example, sandbox key, hub migrations"
	@echo "make demo    setup, start PostgreSQL/Redis if needed, sandbox (seeded), gateway and Airflow; then the scenario"
	@echo "make scenario  the demo scenario again on the running stack (parties, calendar)"
	@echo "make scale-demo  the stack on CeleryExecutor: components and two Celery workers; who ran what"
	@echo "make down    stop exactly what 'make demo' started"
	@echo "make test    the whole suite, the compose check included (needs PostgreSQL and Redis on 127.0.0.1; root for podman)"
	@echo "make test-fast  the suite without the e2e tests and without the compose check"
	@echo "make compose-check  build the images and run docker-compose.yaml for real with podman (root; about 15-25 min from scratch)"
	@echo "make bench   run every bench/*.py in turn (bench/_*.py are their helpers)"
	@echo "make lint    ruff check, ruff format --check and mypy (strict on the engine and the hub)"

$(PY):
	$(PYTHON) -m venv $(VENV)

# pip's own lines, each with the seconds since the install began (a first install takes minutes).
PROGRESS := $(PY) -u -c "import sys,time; t=time.time(); [print(f'  [{time.time()-t:4.0f}s] {l}', end='', flush=True) for l in sys.stdin if 'is ignored: it is neither' not in l]"

$(STAMP): | $(PY)
	@echo "setup: installing the pinned requirements into $(VENV) (first run: a few minutes)"
	@set -o pipefail; $(PIP) install --progress-bar off -r requirements.txt 2>&1 | $(PROGRESS)
	@set -o pipefail; $(PIP) install --progress-bar off --no-deps -e . 2>&1 | $(PROGRESS)
	@rm -f $(VENV)/.installed-*
	@touch $@
	@echo "setup: requirements installed"

.env:
	cp .env.example .env
	@echo "created .env from .env.example (sandbox values)"

setup: $(STAMP) .env
	@$(PY) -m sandbox write-key
	@$(PY) -m devstack migrate

# Up first (the UI and the gateway answer within 3 minutes), then the scenario on the running stack.
demo: setup
	$(PY) -m devstack up
	$(PY) -m devstack scenario

# The same DAGs on CeleryExecutor: api-server, scheduler, dag-processor, triggerer and two Celery
# workers on this machine's PostgreSQL (metadata) and Redis (broker); prints which worker ran what.
scale-demo: setup
	$(PY) -m devstack up --executor celery --timeout 420
	$(PY) -m devstack scale-scenario

# The demo scenario again, on a stack that is already up.
scenario:
	$(PY) -m devstack scenario

down:
	@if [ -x $(PY) ]; then $(PY) -m devstack down; fi

status:
	@$(PY) -m devstack status

# Everything, the compose check included (tests/e2e/test_compose_check.py: root, podman; skipped otherwise).
test: setup
	$(VENV)/bin/pytest -q

# Everything except the end-to-end tests that start Airflow and the compose check (quicker while developing).
test-fast: setup
	$(VENV)/bin/pytest -q -m "not e2e and not compose"

# The compose deployment started for real (devstack/compose_check.py): images built here, the stack up
# with podman-compose, the demo scenario from outside, Celery workers, restarts, down with the volumes.
compose-check: setup
	$(PY) -m devstack.compose_check

bench: setup
	@set -e; for f in bench/[!_]*.py; do \
		[ -e "$$f" ] || { echo "no benches in bench/"; break; }; \
		m=$$(basename "$$f" .py); echo "=== bench.$$m"; $(PY) -m "bench.$$m"; \
	done

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
