# MaaS: `make run` to try it, `make test` to check it. See README.md.
SHELL := bash
.DEFAULT_GOAL := help
PY := .venv/bin/python

.PHONY: help setup run up down status test test-unit lint fmt bench chaos sim

help:
	@echo "make run    start everything in the foreground (Ctrl-C stops it)"
	@echo "make test   set up, lint, type-check and run the whole suite against real servers"
	@echo "make up     start everything in the background; make down stops it"
	@echo "make bench  measure the pipeline (QUICK=1 for a short run)"
	@echo "make chaos  load and random faults, then the books checked (MINUTES=10 SEED=… ROLLBACK=1)"
	@echo "make sim    regional token slices simulated over 1,000 seeds (QUICK=1: two, ~1.5 min)"

setup:
	@infra/local/install.sh

# TRACING=1: also build and start Jaeger, and send it the services' traces.
run: setup
	@$(if $(TRACING),infra/local/install_jaeger.sh,true)
	@$(PY) -m infra.local.stack run $(if $(TRACING),--tracing,)

up: setup
	@$(if $(TRACING),infra/local/install_jaeger.sh,true)
	@$(PY) -m infra.local.stack up $(if $(TRACING),--tracing,)

down:
	@if [ -x $(PY) ]; then $(PY) -m infra.local.stack down; fi

bench: setup
	$(PY) -m bench.run $(if $(QUICK),--quick,)

# Ten minutes of load and seeded faults on a private stack, then the books checked exactly.
chaos: setup
	$(PY) -m chaos.run --minutes $(or $(MINUTES),10) $(if $(SEED),--seed $(SEED),) \
		$(if $(ROLLBACK),--rollback,) $(if $(MUTANT),--mutant $(MUTANT),)

# Regions, slices, grants and faults in virtual time against an oracle (docs/multi-region.md).
sim: setup
	$(PY) -m sim.run $(if $(QUICK),--quick,)

status:
	@$(PY) -m infra.local.stack status

lint: setup
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy .

fmt:
	.venv/bin/ruff format .
	.venv/bin/ruff check --fix .

# Two workers, a test file each at a time (pytest-xdist): most fault tests wait on SQS
# and process restarts, so the second core does the rest meanwhile.
test: lint
	@infra/local/install_infra_tools.sh
	.venv/bin/pytest -n 2 --dist loadfile

test-unit: setup
	.venv/bin/pytest tests/unit -q
