# Everything a person or CI runs goes through these targets.
# `make plan` and `make test` work on a fresh Debian/Ubuntu machine with python3 and make.
SHELL := /bin/bash
STACK ?= prod
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: plan test lint typecheck unit bench-plan clean

$(STAMP): requirements.txt requirements-dev.txt constraints.txt
	@test -x $(PY) || python3 -m venv $(VENV) || { \
	  echo "python3 -m venv failed: install python3-venv (apt-get install python3-venv)"; exit 1; }
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -c constraints.txt
	@touch $(STAMP)

venv: $(STAMP)

plan: $(STAMP)
	$(PY) -m tools.plan --stack $(STACK) --out build/plan

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy components tools

unit: $(STAMP)
	$(PY) -m pytest -q

test: lint typecheck unit

bench-plan: $(STAMP)
	$(PY) -m tools.bench_plan

clean:
	rm -rf build .mypy_cache .pytest_cache .ruff_cache

# Alert rules (issue 5): regenerate the committed rules/<area>.yml from the example stack.
.PHONY: rules
rules: $(STAMP)
	$(PY) -m tools.rules --stack $(STACK)

# Replay tests/scenarios/*.yml through the rules: precision and recall per alert and overall.
.PHONY: alert-quality
alert-quality: $(STAMP)
	$(PY) -m tools.alert_quality --stack $(STACK)
