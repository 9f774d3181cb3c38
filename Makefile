# Tiezheng: `make run` serves the app on http://127.0.0.1:8000; `make test` runs every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install run test lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml requirements/runtime.txt requirements/dev.txt scripts/system-deps.sh
	./scripts/system-deps.sh
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Python 3.11 or newer is required ($(PYTHON))"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements/dev.txt
	# face-recognition's metadata asks for dlib, which would build from source for
	# 13 minutes: dlib-bin (in requirements) provides it, so install it without deps.
	$(BIN)/pip install -q --no-deps face-recognition==1.3.0
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

# `run` starts an embedded worker (face checks, bundle exports) beside the server and stops it
# with the server; jobs it leaves unfinished are picked up by the next worker.
run: install
	$(BIN)/tiezheng init
	$(BIN)/tiezheng user add admin --role admin --if-missing
	$(BIN)/tiezheng worker & worker=$$!; \
	trap 'kill $$worker 2>/dev/null; wait $$worker 2>/dev/null' EXIT INT TERM; \
	$(BIN)/tiezheng serve --host $(HOST) --port $(PORT)

test: install
	$(BIN)/pytest -n 2 --dist loadgroup -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check core ledger evidence cases web
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: install
	$(BIN)/python benchmarks/bench_ledger.py
	$(BIN)/python benchmarks/bench_ingest.py
	$(BIN)/python benchmarks/bench_faces.py
	$(BIN)/python benchmarks/bench_cases.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
