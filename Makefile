# The project's interface: CI and the README call exactly these targets.
SHELL := /bin/bash
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: help setup generate check lint test reports report stack-down clean

help:
	@echo "make test      set up, lint and run every test (what .ci/run and CI run)"
	@echo "make reports   set up and run the main job: every notebook, HTML reports in rendered/"
	@echo "make report NAME=trace_audit   one report"
	@echo "make generate  re-emit dashboards/, rules/, runbooks/ from the catalogue"
	@echo "make check     fail when committed artifacts differ from the catalogue"
	@echo "make lint      ruff, and the PromQL lint of rules and dashboards"

setup:
	@scripts/setup.sh

generate: setup
	$(BIN)/obslib emit

check: setup
	$(BIN)/obslib emit --check

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy obslib
	$(BIN)/obslib lint

test: lint
	$(BIN)/python -m pytest

reports: setup
	$(BIN)/obslib emit --check
	$(BIN)/obslib reports

report: setup
	$(BIN)/obslib report $(NAME)

stack-down:
	$(BIN)/obslib stack down

clean:
	rm -rf rendered/*.html rendered/*.ipynb rendered/*.json rendered/telemetry .pytest_cache
