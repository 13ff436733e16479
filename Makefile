# Everything a person or CI runs goes through these targets.
# `make plan` and `make test` work on a fresh Debian/Ubuntu machine with python3 and make.
SHELL := /bin/bash
STACK ?= prod
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: plan test lint typecheck unit bench-plan fuzz clean engine engine-test

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

# Two workers for the bulk of the suite (it waits on promtool and daemons more than on CPU); then
# the booted host and the timed end-to-end daemons alone, in order, so nothing competes with them.
PYTEST_ARGS ?= -n 2
SERIAL_TESTS := tests/host tests/e2e tests/engine
unit: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS) $(addprefix --ignore=,$(SERIAL_TESTS) tests/twin)
	$(PY) -m pytest -q $(SERIAL_TESTS)

# The whole suite: the twin last (about 15 minutes), after everything it builds on has passed.
test: lint typecheck unit twin

# actionlint from the Go module proxy, cached outside the repo (tests/unit/test_workflows.py runs it).
TOOLS_DIR ?= $(HOME)/.cache/obsstack-tools
ACTIONLINT_VERSION := v1.7.12
.PHONY: actionlint
actionlint:
	@if [ "$$($(TOOLS_DIR)/actionlint -version 2>/dev/null | head -n 1)" != "$(ACTIONLINT_VERSION)" ]; then \
	  command -v go >/dev/null || { echo "go is needed to build actionlint (https://go.dev/dl/)"; exit 1; }; \
	  echo "building actionlint $(ACTIONLINT_VERSION) into $(TOOLS_DIR)"; \
	  GOBIN="$(TOOLS_DIR)" go install github.com/rhysd/actionlint/cmd/actionlint@$(ACTIONLINT_VERSION); \
	fi

# The real Pulumi CLI from Go modules, cached outside the repo (tools/engine; needs Go, not `make plan`).
engine: $(STAMP)
	$(PY) -m tools.engine

engine-test: engine
	$(PY) -m pytest -q tests/engine

bench-plan: $(STAMP)
	$(PY) -m tools.bench_plan $(BENCH_PLAN_ARGS)

# `make bench-up` (real `pulumi up` timings) needs the provider plugins, which cannot be installed
# here; this is the static part: the plan's longest dependency chain, commands waiting on another
# host's, and how many resources one threshold change touches (docs/dashboards.md, "Plan and up").
.PHONY: critical-path
critical-path: plan
	$(PY) -m tools.plan.critical_path --plan build/plan/plan.json --threshold-change

# Seeded config fuzzing through the plan's loader, real validators on what is accepted.
fuzz: $(STAMP)
	$(PY) -m tools.fuzz_config --seed $(or $(SEED),18) --count $(or $(COUNT),2000)

clean:
	rm -rf build .mypy_cache .pytest_cache .ruff_cache

# Monthly platform report from Prometheus (Markdown, HTML and PNG plots in build/report/).
#   make report PROMETHEUS=https://mon-1.lab.example.net:9090 FROM=2026-10-01 TO=2026-11-01 \
#     REPORT_ARGS="--user report --password-file ~/.obsstack/prometheus-password --ca-file ca.pem"
PROMETHEUS ?= http://127.0.0.1:9090
FROM ?= now-30d
TO ?= now
REPORT_OUT ?= build/report
REPORT_ARGS ?=
.PHONY: report
report: $(STAMP)
	$(PY) -m tools.report --prometheus "$(PROMETHEUS)" --from "$(FROM)" --to "$(TO)" --out "$(REPORT_OUT)" $(REPORT_ARGS)

# Restore drills (docs/restore-drill.md): the plan for every drill target, offline and without
# credentials; and the real tool against the fake PVE API of the tests (sample report + timings).
.PHONY: drill-dry-run drill-demo
drill-dry-run: plan
	$(PY) -m tools.restore_drill --outputs build/plan/outputs.json --all --dry-run

drill-demo: $(STAMP)
	$(PY) -m tests.fixtures.fake_pve.demo --out build/restore-drill-demo

.PHONY: twin
# The twin of the example homelab (tests/twin, docs/monitoring-host.md): two monitoring hosts, a PVE
# node, a PBS host and two guests as systemd-nspawn hosts in network namespaces, installed with the
# components' scripts; then coverage, a quiet period, injected faults and a restart. Root, about 16 min on 2 shared cores.
twin: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider tests/twin

.PHONY: host-test
# The real-host test alone: debootstrap (cached in /var/cache/obsstack-test) + systemd-nspawn, as root.
host-test: $(STAMP)
	$(PY) -m pytest -q -m host tests/host

.PHONY: dashboards bench-dashboards
# Regenerate dashboards/*.json from dashboards/*.py for the example stack (a test fails on drift).
dashboards: $(STAMP)
	$(PY) -m dashboards

# Query latency of every dashboard over 24h of synthetic data for a 50-asset stack (its inventory
# register and the exporters' label sets), with and without recording rules, side by side.
bench-dashboards: $(STAMP)
	$(PY) -m tools.bench_dashboards

# Alert rules (issue 5): regenerate the committed rules/<area>.yml from the example stack.
.PHONY: rules
rules: $(STAMP)
	$(PY) -m tools.rules --stack $(STACK)

# Replay tests/scenarios/*.yml through the rules: precision and recall per alert and overall.
.PHONY: alert-quality
alert-quality: $(STAMP)
	$(PY) -m tools.alert_quality --stack $(STACK)

# --- alerting (issue 5) and the local lab (issue 4, item 6) ---
.PHONY: lab e2e bench-alerts
lab: $(STAMP)
	$(PY) -m tools.lab --stack $(STACK)

e2e: $(STAMP)
	$(PY) -m pytest -q tests/e2e

bench-alerts: $(STAMP)
	$(PY) -m tools.bench_alerts --stack $(STACK)

# A new environment (docs/environments.md): asks for the facts it needs, or takes them from
# NEW_STACK_ARGS, e.g. NEW_STACK_ARGS="--pve-endpoint https://pve1:8006/ --node pve1=10.0.10.11 ...".
.PHONY: new-stack
NEW_STACK_ARGS ?=
new-stack: $(STAMP)
	$(PY) -m tools.new_stack --stack "$(STACK)" $(NEW_STACK_ARGS)
