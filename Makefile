# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
export FLASK_APP := app

.PHONY: run test test-pgbouncer test-deps lint lock serve bench translations mutate

# The venv, from the hash-checked lock only: a package whose file differs from the one locked
# fails the install instead of running.
$(BIN)/.installed: requirements-dev.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements-dev.lock
	touch $@

## lock: re-resolve requirements*.txt (the human-edited pins) into the hash-checked *.lock files.
lock: $(BIN)/.installed
	$(BIN)/uv pip compile --quiet --universal --python-version 3.11 --generate-hashes \
	  --custom-compile-command "make lock" requirements.txt -o requirements.lock
	$(BIN)/uv pip compile --quiet --universal --python-version 3.11 --generate-hashes \
	  --custom-compile-command "make lock" requirements-dev.txt -o requirements-dev.lock

## translations: extract the page texts (babel.cfg, simulator/babel.cfg), merge them into the zh_Hans_CN and
## en catalogs and compile them. The .mo files are committed, so a clone and a wheel need no build step;
## tests/test_translations.py fails when one is stale or a text lacks a translation.
CATALOGS := translations simulator/translations
translations: $(BIN)/.installed
	$(BIN)/pybabel -q extract -F babel.cfg --no-location --sort-output -w 120 -o translations/messages.pot .
	$(BIN)/pybabel -q extract -F simulator/babel.cfg --no-location --sort-output -w 120 \
	  -o simulator/translations/messages.pot .
	for d in $(CATALOGS); do \
	  $(BIN)/pybabel -q update -i $$d/messages.pot -d $$d -w 120 --no-fuzzy-matching --ignore-obsolete \
	  && $(BIN)/pybabel compile --statistics -d $$d || exit 1; \
	done

# Local secrets and the applicationSync key pair, made once (instance/ is git-ignored).
instance/config.py: | $(BIN)/.installed
	mkdir -p instance
	$(BIN)/python -m config.generate --local > $@.tmp && mv $@.tmp $@
	@echo "Wrote local secrets to $@"

instance/koogallery_rsa.pem: instance/config.py
	$(BIN)/flask keys generate

## run: the bridge, the simulator and the example app on 127.0.0.1:5000-5002 (SQLite under instance/;
## RUN_PORT_BASE=6000 for 6000-6002). Ctrl-C, SIGTERM or `timeout` stop all three.
run: $(BIN)/.installed instance/config.py instance/koogallery_rsa.pem
	$(BIN)/flask db upgrade
	exec $(BIN)/python -m scripts.run_local

## serve: production serving with gunicorn (gunicorn.conf.py; settings from BRIDGE_* and GUNICORN_*).
serve: $(BIN)/.installed
	$(BIN)/gunicorn --config gunicorn.conf.py --bind $${GUNICORN_BIND:-127.0.0.1:8000} 'app:create_app()'

# What the suite needs from Debian: PostgreSQL (a throwaway cluster), pgbouncer (the pooled
# database tests), Chromium (the browser tests), a CJK font (the Chinese pages' screenshots), Apache
# with mod_auth_openidc (the OIDC recipe) and nginx (the shipped proxy site, slow-client tests).
# As root they are installed; otherwise make stops with the command to run, so nothing is skipped.
TEST_PACKAGES := postgresql pgbouncer chromium fonts-noto-cjk apache2 libapache2-mod-auth-openidc nginx
test-deps:
	@need=(); \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || need+=(postgresql); \
	test -x /usr/sbin/pgbouncer || command -v pgbouncer >/dev/null || need+=(pgbouncer); \
	command -v chromium >/dev/null || need+=(chromium); \
	fc-list 2>/dev/null | grep -q 'Noto Sans CJK' || need+=(fonts-noto-cjk); \
	test -x /usr/sbin/apache2 || command -v apache2 >/dev/null || need+=(apache2); \
	test -f /usr/lib/apache2/modules/mod_auth_openidc.so || need+=(libapache2-mod-auth-openidc); \
	test -x /usr/sbin/nginx || command -v nginx >/dev/null || need+=(nginx); \
	if (( $${#need[@]} == 0 )); then exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then \
	  echo "make test needs Debian packages that are missing. Run:"; \
	  echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends $${need[*]}"; \
	  exit 1; \
	fi; \
	echo "installing: $${need[*]}"; \
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$${need[@]}" >/dev/null

## test: the whole suite (SQLite, PostgreSQL, pgbouncer, headless Chromium) on every core, a test
## module per worker (each worker starts its own PostgreSQL), then again every test that reaches
## PostgreSQL, through PgBouncer in transaction-pooling mode (test-pgbouncer); installs what it needs.
## PYTEST_ARGS="-n 0" runs it in one process.
PYTEST_ARGS ?= -n auto --dist loadfile
test: test-deps $(BIN)/.installed
	$(BIN)/python -m pytest $(PYTEST_ARGS)
	TEST_VIA_PGBOUNCER=1 $(BIN)/python -m pytest $(PYTEST_ARGS)

## test-pgbouncer: only the second pass of `make test`: every test that reaches PostgreSQL (tests/
## conftest.py selects them), through PgBouncer (docs/scale-out.md); about 3½ minutes on 2 cores.
test-pgbouncer: test-deps $(BIN)/.installed
	TEST_VIA_PGBOUNCER=1 $(BIN)/python -m pytest $(PYTEST_ARGS)

## lint: ruff, and the import contracts of docs/design.md (.importlinter).
lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache

## bench: throughput, latency and memory of the bridge on PostgreSQL (bench/README.md); BENCH_ARGS="--duration 5".
bench: $(BIN)/.installed
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; \
	  else echo "make bench needs the PostgreSQL server binaries: sudo apt-get install postgresql"; exit 1; fi
	$(BIN)/python -m bench $(BENCH_ARGS)

## mutate: mutation testing of the rule modules with mutmut ([tool.mutmut] in pyproject.toml,
## docs/mutation.md); MUTANTS="tenants.signing*" narrows it, MUTATE_CHILDREN sets the parallelism.
MUTATE_CHILDREN ?= 2
mutate: $(BIN)/.installed
	$(BIN)/mutmut run --max-children $(MUTATE_CHILDREN) $(MUTANTS)
	$(BIN)/mutmut export-cicd-stats
	@cat mutants/mutmut-cicd-stats.json; echo
