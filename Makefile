# ModelWatch: the two commands are `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
CHROMIUM := /usr/bin/chromium
PROMTOOL := /usr/bin/promtool
AMTOOL   := /usr/bin/amtool
NODE_EXPORTER := /usr/bin/prometheus-node-exporter
REDIS_SERVER := /usr/bin/redis-server
# make run EXECUTOR=celery: CeleryExecutor with a local Redis and two Celery workers instead of LocalExecutor
EXECUTOR ?= local

.PHONY: run test lint bench venv clean mutation browser faults celery rules observe policy-replay fleet-bench

$(STAMP): requirements.txt constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -c constraints.txt
	touch $(STAMP)

venv: $(STAMP)

## make run: embedded PostgreSQL + Airflow (UI on http://127.0.0.1:8080, admin/admin); Ctrl+C stops all.
## make run EXECUTOR=celery: CeleryExecutor, a Redis on 127.0.0.1:6380 (the Debian redis-server, installed here when
## missing) and two Celery workers (include/modelwatch/ops/celery_stack.py)
run: $(STAMP) $(if $(filter celery,$(EXECUTOR)),$(REDIS_SERVER))
	$(PY) -m include.modelwatch dev run --executor $(EXECUTOR)

$(REDIS_SERVER):
	if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	$$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server
	test -x $(REDIS_SERVER)

## make test: the whole suite, each session on a throwaway embedded PostgreSQL (the Grafana panel and alert tests also
## run the Debian prometheus, prometheus-node-exporter and prometheus-alertmanager, installed here when missing)
test: $(STAMP) $(PROMTOOL) $(AMTOOL) $(NODE_EXPORTER)
	$(PY) -m pytest

## make browser: headless Chromium against a fresh stack of its own (temp MODELWATCH_HOME, free port, replay of
## 2008-06..2008-12 incl. the October 2008 drift episode and its rejected retrain): every page, its charts, no console
## errors, the actions; screenshots in .modelwatch/screenshots (or MODELWATCH_SCREENSHOTS). Chromium is the Debian
## package, installed here when /usr/bin/chromium is missing (Playwright's own browser download is not used)
browser: $(STAMP) $(CHROMIUM)
	$(PY) -m pytest tests/browser

## make faults: fault injection with real processes on a stack of its own (temp MODELWATCH_HOME, free ports, one
## replayed month, retries after 2 s): SIGKILL of each writer mid-write (scoring, drift, performance, trigger claim,
## deploy, rollback), two retrain_gated runs at once, two manual triggers at once; each end state is checked against
## the fault-free one (row counts and checksums of every table, aliases, triggers). About 10 minutes on 2 cores
faults: $(STAMP)
	$(PY) -m pytest tests/faults

## make celery: a fresh stack of its own under CeleryExecutor (temp MODELWATCH_HOME, free ports; Redis and two
## Celery workers, as make run EXECUTOR=celery) replaying 2008-06..2008-12 with its retrain: every run succeeded, the
## task instances ran on both workers, the registry ends as under LocalExecutor (tests/celery)
celery: $(STAMP) $(REDIS_SERVER)
	$(PY) -m pytest tests/celery

$(CHROMIUM):
	if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	$$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
	test -x $(CHROMIUM)

## make lint: ruff (lint rules incl. Airflow's AIR, and the formatter in check mode) and mypy; settings in pyproject.toml
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

## make observe: make run plus, on 127.0.0.1, the ModelWatch exporter (9464), node-exporter (9100), Prometheus (9090,
## scraping both and loading observability/prometheus/rules.yml) and Alertmanager (9093); Ctrl+C stops them all
observe: $(STAMP) $(PROMTOOL) $(AMTOOL) $(NODE_EXPORTER)
	$(PY) -m include.modelwatch dev run --observe

$(NODE_EXPORTER):
	if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	$$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus-node-exporter
	test -x $(NODE_EXPORTER)

## make rules: the Prometheus config, the alerting rules and their promtool unit tests (every alert fires in one case and
## stays silent in another), the Alertmanager config and its team routes (observability/). promtool and amtool are the
## Debian packages prometheus and prometheus-alertmanager, installed here when missing
rules: $(PROMTOOL) $(AMTOOL)
	$(PROMTOOL) check config observability/prometheus/prometheus.yml
	$(PROMTOOL) check rules observability/prometheus/rules.yml
	$(PROMTOOL) test rules observability/prometheus/rules_test.yml
	$(AMTOOL) check-config observability/alertmanager.yml
	for team in trading ml infrastructure; do \
	  got=$$($(AMTOOL) config routes test --config.file=observability/alertmanager.yml team=$$team severity=critical 2>/dev/null); \
	  test "$$got" = "$$team" || { echo "alertmanager routes team=$$team to '$$got', expected '$$team'"; exit 1; }; \
	done

$(PROMTOOL):
	if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	$$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus
	test -x $(PROMTOOL)

$(AMTOOL):
	if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	$$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus-alertmanager
	test -x $(AMTOOL)

## make mutation: single-point AST mutants of the pure decision modules, each run against its unit tests
## (fails below 90% killed per module; equivalent survivors are listed in .ci/mutation-equivalents.txt)
mutation: $(STAMP)
	$(PY) .ci/mutation.py include/modelwatch/decisions.py include/modelwatch/loop/rules.py include/modelwatch/training/gates.py \
	  include/modelwatch/ab/decision.py include/modelwatch/ab/endings.py

## make bench: drift throughput + alarm quality vs Evidently, NannyML and an np.sort floor;
## label-free estimate vs NannyML CBPE (peer venvs are created under bench/.venvs on first use);
## latency of every page and API read on a year of hourly history (database cached under bench/.cache)
bench: $(STAMP)
	$(PY) -m bench

## make fleet-bench: fleet load (not in make bench: about 15 minutes): 50 external models' versions x 50 features x
## 10,000 rows fed through the external-model contract, one drift_hourly run under the real scheduler on its own stack
## (temp home; MODELWATCH_PORT if set): wall, task instances, start-up vs work, DB growth; bench/results/fleet_load.json
fleet-bench: $(STAMP)
	$(PY) -m bench.fleet_load

# The policy replay of both native models over 2007-2018 (README, "Does the closed loop pay off?"): about an hour
# per model on 2 cores; results in bench/results/policy_replay/
policy-replay: $(STAMP)
	$(PY) -m include.modelwatch policy-replay --model spx_signal --jobs 2
	$(PY) -m include.modelwatch policy-replay --model spx_vol_regime --jobs 2

clean:
	rm -rf .modelwatch
