.PHONY: help setup start test lint fmt types bench
PY := .venv/bin/python

help:
	@echo "make setup   - create .venv and install Proxus with dev tools"
	@echo "make start   - scripts/start.sh"
	@echo "make test    - scripts/test.sh (lint, types, all tests)"
	@echo "make lint    - ruff check"
	@echo "make fmt     - ruff format + fixes"
	@echo "make types   - mypy"
	@echo "make bench   - run the benchmarks in bench/"

setup:
	scripts/bootstrap.sh

start:
	scripts/start.sh

test:
	scripts/test.sh

lint: setup
	.venv/bin/ruff check .

fmt: setup
	.venv/bin/ruff format . && .venv/bin/ruff check --fix .

types: setup
	.venv/bin/mypy

bench: setup
	@for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b; done
