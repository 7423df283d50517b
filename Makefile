# The project's interface: CI and the README call exactly these targets.
SHELL := /bin/bash
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: help setup generate check lint test reports report stack-down clean lock golden

help:
	@echo "make test      set up, lint and run every test (what .ci/run and CI run)"
	@echo "make reports   set up and run the main job: every notebook, HTML reports in rendered/"
	@echo "make report NAME=trace_audit   one report"
	@echo "make generate  re-emit dashboards/, rules/, runbooks/ from the catalogue"
	@echo "make check     fail when committed artifacts differ from the catalogue"
	@echo "make lint      ruff, and the PromQL lint of rules and dashboards"
	@echo "make golden    rewrite the golden reports (tests/golden/expected/) after an intended"
	@echo "               change, then check them again; read and commit the diff"
	@echo "make lock      refresh requirements.lock and requirements-lab.lock from pyproject.toml"
	@echo "               (keeps the pins that still fit; UPGRADE=1 moves every package to its latest)"

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

# The golden reports (README, "Golden reports"): rewrite them from a run on the pinned world,
# then check the new copies against a second run (a report that differs between two runs has
# a volatile part tests/golden/volatile.py does not declare yet).
golden: setup
	$(BIN)/python -m pytest tests/golden -q --nb-force-regen -k the_report_says_what
	$(BIN)/python -m pytest tests/golden -q
	git status --short tests/golden/expected

# The locks: pyproject.toml's runtime and dev dependencies (what setup, CI and the release
# install), and the same plus the lab extra, held to the first lock's versions.
LOCK_FLAGS := --quiet --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url \
	--no-emit-find-links --no-emit-trusted-host $(if $(UPGRADE),--upgrade)
PIP_COMPILE := CUSTOM_COMPILE_COMMAND="make lock" $(BIN)/pip-compile $(LOCK_FLAGS)

lock: setup
	$(PIP_COMPILE) --extra dev -o requirements.lock pyproject.toml
	$(PIP_COMPILE) --extra dev --extra lab -c requirements.lock -o requirements-lab.lock pyproject.toml

stack-down:
	$(BIN)/obslib stack down

clean:
	rm -rf rendered/*.html rendered/*.ipynb rendered/*.json rendered/telemetry .pytest_cache
