# Two commands do everything on a fresh machine with Python 3.11+ (and npm):
#   make run    set up, then run the portal on http://127.0.0.1:8000
#   make test   set up, then run the whole test suite
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: run test setup lint clean

setup: $(STAMP) node_modules/.package-lock.json

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps nncf==3.4.0  # see requirements.txt
	touch $(STAMP)

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error

run: setup
	$(PY) -m sparkportal.runner

# Three workers, a test file each at a time (tests/plugins/embedded_redis.py keeps their Redis keys apart).
PYTEST_ARGS ?= -n 3 --dist loadfile

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

# Services and selectors are what other code calls: their signatures carry types.
TYPED := $(filter-out tests/%,$(wildcard */services.py */selectors.py */services/*.py */*/services.py */*/selectors.py))

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff check --select ANN001,ANN201 $(TYPED)
	$(VENV)/bin/lint-imports --no-cache

clean:
	rm -rf $(VENV) node_modules var
