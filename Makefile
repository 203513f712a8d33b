# The front door: `make run` serves on SQLite + ./data, `make test` runs every test. Each creates .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck check clean bench bench-tools

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/lapse serve --host 127.0.0.1 --port 8000

# pytest-xdist: one worker per core, each with databases of its own (tests/databases.py). Temp folders (the
# tests' SQLite files and blobs) in RAM when there is a tmpfs: an fsync per commit on a shared disk was most of a
# SQLite test's time.
TEST_TMPDIR := $(shell test -d /dev/shm && test -w /dev/shm && echo /dev/shm)

test: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(if $(TEST_TMPDIR),TMPDIR=$(TEST_TMPDIR) )$(BIN)/pytest -n auto

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

# Load and throughput against baselines measured in the same run (docs/performance.md). Needs root for apt.
bench-tools:
	@command -v wrk >/dev/null && command -v nginx >/dev/null && command -v curl >/dev/null || \
		(apt-get update -qq && apt-get install -y -qq nginx-light wrk curl || apt-get install -y -qq nginx wrk curl)
	@# Debian starts nginx as a service on install; the benchmark starts its own, so never leave that one running.
	@if command -v systemctl >/dev/null && systemctl is-active --quiet nginx 2>/dev/null; then \
		systemctl stop nginx; systemctl disable --quiet nginx; fi
	@if [ -f /run/nginx.pid ] && kill -0 "$$(cat /run/nginx.pid)" 2>/dev/null; then \
		kill "$$(cat /run/nginx.pid)"; fi
	@# The S3 rows start a private Ceph RGW of their own (tests/s3/rgw.py); stop whatever Debian starts.
	@command -v radosgw >/dev/null && command -v ceph-mon >/dev/null && command -v ceph-osd >/dev/null || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			radosgw ceph-mon ceph-osd)
	@if command -v systemctl >/dev/null && systemctl is-active --quiet ceph.target 2>/dev/null; then \
		systemctl stop ceph.target; systemctl disable --quiet ceph.target; fi

bench: $(STAMP) bench-tools
	@$(BIN)/python -c 'import granian' 2>/dev/null || $(BIN)/pip install --quiet -e '.[test,bench]'
	$(BIN)/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
