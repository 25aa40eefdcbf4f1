# ModelWatch: the two commands are `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test bench venv clean

$(STAMP): requirements.txt constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -c constraints.txt
	touch $(STAMP)

venv: $(STAMP)

## make run: embedded PostgreSQL + Airflow (UI on http://127.0.0.1:8080, admin/admin); Ctrl+C stops all
run: $(STAMP)
	$(PY) -m include.modelwatch dev run

## make test: the whole suite, each session on a throwaway embedded PostgreSQL
test: $(STAMP)
	$(PY) -m pytest

## make bench: drift throughput + alarm quality vs Evidently, NannyML and an np.sort floor;
## label-free estimate vs NannyML CBPE (peer venvs are created under bench/.venvs on first use)
bench: $(STAMP)
	$(PY) -m bench

clean:
	rm -rf .modelwatch
