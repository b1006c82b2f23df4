PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test test-fast check lint typecheck layers bench bench-cpu faults hostile providers-check openapi contract clean

# Parallel test processes (pytest-xdist), each with its own redis-server; a test file stays on
# one process (its module fixtures start their gateway once). Most end-to-end time is waiting
# on emulated upstream jobs, so more processes than cores still shortens the run.
TEST_WORKERS ?= 4

# uv (from PyPI, into the venv by its own pip) installs the project and its development tools:
# the same packages pip resolves, in about 5 s instead of about 30 (pip also byte-compiles
# every module of every package up front; Python compiles those a run imports as it goes).
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)  ## install mediagate and its development tools into .venv

run: install  ## serve on :8000 with embedded Redis and the sandbox providers
	MEDIAGATE_SANDBOX=true $(BIN)/mediagate serve --port 8000

test: install  ## the whole test suite, in $(TEST_WORKERS) parallel processes each with its own redis-server (tests at a provider's documented rate, and the one that needs the machine alone: make faults)
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder -m "not documented_rate and not machine_alone"

test-fast: install  ## unit and in-process tests only: no gateway, worker, Prometheus or browser processes
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile --ignore=tests/e2e --ignore=tests/ops --ignore=tests/contract --ignore=tests/hostile

lint: install
	$(BIN)/ruff check app tests bench
	$(BIN)/ruff format --check app tests bench

typecheck: install
	$(BIN)/mypy

layers: install  ## the import contract of app/'s layers ([tool.importlinter] in pyproject.toml)
	$(BIN)/lint-imports

check: lint typecheck layers test  ## ruff, mypy strict, the layers, tests

bench: install  ## wrk: gateway beside upstream direct, FastAPI+aiohttp floor, bare FastAPI+Redis; Redis cost per job; RSS; artifact downloads via S3
	$(BIN)/python -m bench.run

bench-cpu: install  ## the gateway's CPU time and Python calls per request, in process (see docs/performance.md)
	$(BIN)/python -m bench.cpu

faults: install  ## fault injection against real processes: fallback, breaker, kill -9, Redis outage, webhooks, SSRF, Perfect liveness and per-IP limit, callbacks, poll faults, cancel storm
	$(BIN)/pytest -q tests/e2e/test_faults.py tests/e2e/test_crash_recovery.py tests/e2e/test_crash_under_load.py tests/e2e/test_redis_outage.py tests/e2e/test_ssrf.py tests/e2e/test_perfect_liveness.py tests/e2e/test_perfect_per_ip.py tests/e2e/test_upstream_callbacks.py tests/e2e/test_poll_faults.py tests/e2e/test_paid_work.py

hostile: install  ## a hostile tenant against a live gateway: huge bodies, bad metadata, SSRF spellings, weak secrets (see SECURITY.md)
	$(BIN)/pytest -q tests/hostile

providers-check: install  ## every binding and variant through a sandbox gateway, outputs decoded
	$(BIN)/python -m app.providers_check

openapi: install  ## regenerate the committed OpenAPI document
	$(BIN)/mediagate openapi > openapi/openapi.json

contract: install  ## the API surface: OpenAPI, generated client, schemathesis, docs in Chromium, logs
	$(BIN)/pytest -q tests/api tests/contract

clean:
	rm -rf $(VENV) .mediagate .pytest_cache .mypy_cache .ruff_cache
