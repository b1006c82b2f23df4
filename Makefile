PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test test-fast check lint typecheck layers bench bench-cpu bench-instructions bench-phases faults hostile providers-check openapi contract clean

# Parallel test processes (pytest-xdist), each with its own redis-server; a test file stays on
# one process (its module fixtures start their gateway once). Most end-to-end time is waiting
# on emulated upstream jobs, so more processes than cores still shortens the run.
TEST_WORKERS ?= 4

# uv (from PyPI, into the venv by its own pip) installs the project and its development tools:
# the same packages pip resolves, and byte-compiled like pip does (on both cores), in about
# 20 s instead of 37 on a fresh clone.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check uv
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)  ## install mediagate and its development tools into .venv

run: install  ## serve on :8000 with embedded Redis and the sandbox providers
	MEDIAGATE_SANDBOX=true $(BIN)/mediagate serve --port 8000

# The suite starts some sixty Python processes (test workers, gateways, workers, emulators)
# that import the same modules: with PYTHONDONTWRITEBYTECODE set in the environment each of
# them would compile app/ and tests/ from source again (and rewrite every test module's
# asserts), about 8 s of CPU per test worker and 0.25 s per gateway. The suite's run writes
# the bytecode caches once (into __pycache__/, ignored by git).
test: install  ## the whole test suite, in $(TEST_WORKERS) parallel processes each with its own redis-server (tests at a provider's documented rate, and the one that needs the machine alone: make faults)
	env -u PYTHONDONTWRITEBYTECODE $(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder -m "not documented_rate and not machine_alone"

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

bench-instructions: install  ## instructions per request under callgrind: repeatable on a busy machine (see docs/performance.md)
	$(BIN)/python -m bench.instructions

bench-phases: install  ## a synchronous request's CPU by the gateway's own functions, inclusive (see docs/performance.md)
	$(BIN)/python -m bench.phases

faults: install  ## fault injection against real processes: fallback, breaker, kill -9, Redis outage, webhooks, SSRF, Perfect liveness and per-IP limit, callbacks, poll faults, cancel storm, an output store that refuses writes
	$(BIN)/pytest -q tests/e2e/test_faults.py tests/e2e/test_crash_recovery.py tests/e2e/test_crash_under_load.py tests/e2e/test_redis_outage.py tests/e2e/test_ssrf.py tests/e2e/test_perfect_liveness.py tests/e2e/test_perfect_per_ip.py tests/e2e/test_upstream_callbacks.py tests/e2e/test_poll_faults.py tests/e2e/test_paid_work.py tests/e2e/test_output_store_faults.py

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
