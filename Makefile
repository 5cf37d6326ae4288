# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
export FLASK_APP := app

.PHONY: run test lint serve bench

$(BIN)/.installed: requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

# Local secrets and the applicationSync key pair, made once (instance/ is git-ignored).
instance/config.py: | $(BIN)/.installed
	mkdir -p instance
	$(BIN)/python -m config.generate --local > $@.tmp && mv $@.tmp $@
	@echo "Wrote local secrets to $@"

instance/koogallery_rsa.pem: instance/config.py
	$(BIN)/flask keys generate

## run: the bridge on http://127.0.0.1:5000 with SQLite under instance/.
run: $(BIN)/.installed instance/config.py instance/koogallery_rsa.pem
	$(BIN)/flask db upgrade
	$(BIN)/python -m scripts.run_local

## serve: production serving with gunicorn (gunicorn.conf.py; settings from BRIDGE_* and GUNICORN_*).
serve: $(BIN)/.installed
	$(BIN)/gunicorn --config gunicorn.conf.py --bind $${GUNICORN_BIND:-127.0.0.1:8000} 'app:create_app()'

## test: the whole suite (SQLite and PostgreSQL; browser tests where Chromium is installed).
test: $(BIN)/.installed
	$(BIN)/python -m pytest

lint: $(BIN)/.installed
	$(BIN)/ruff check .

## bench: throughput, latency and memory of the bridge on PostgreSQL (bench/README.md); BENCH_ARGS="--duration 5".
bench: $(BIN)/.installed
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; \
	  else echo "make bench needs the PostgreSQL server binaries: sudo apt-get install postgresql"; exit 1; fi
	$(BIN)/python -m bench $(BENCH_ARGS)
