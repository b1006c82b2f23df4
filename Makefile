PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test check lint typecheck bench faults providers-check openapi contract clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)  ## install mediagate and its development tools into .venv

run: install  ## serve on :8000 with embedded Redis and the sandbox providers
	MEDIAGATE_SANDBOX=true $(BIN)/mediagate serve --port 8000

test: install  ## the whole test suite (starts its own redis-server unless MEDIAGATE_TEST_REDIS_URL is set)
	$(BIN)/pytest -q

lint: install
	$(BIN)/ruff check app tests bench
	$(BIN)/ruff format --check app tests bench

typecheck: install
	$(BIN)/mypy

check: lint typecheck test  ## ruff, mypy strict, tests

bench: install  ## wrk: gateway beside upstream direct, FastAPI+aiohttp floor, bare FastAPI+Redis; Redis cost per job; RSS
	$(BIN)/python -m bench.run

faults: install  ## fault injection against real processes: fallback, breaker, kill -9, Redis outage, webhooks, SSRF, Perfect liveness, callbacks
	$(BIN)/pytest -q tests/e2e/test_faults.py tests/e2e/test_crash_recovery.py tests/e2e/test_crash_under_load.py tests/e2e/test_redis_outage.py tests/e2e/test_ssrf.py tests/e2e/test_perfect_liveness.py tests/e2e/test_upstream_callbacks.py

providers-check: install  ## every binding and variant through a sandbox gateway, outputs decoded
	$(BIN)/python -m app.providers_check

openapi: install  ## regenerate the committed OpenAPI document
	$(BIN)/mediagate openapi > openapi/openapi.json

contract: install  ## the API surface: OpenAPI, generated client, schemathesis, docs in Chromium, logs
	$(BIN)/pytest -q tests/api tests/contract

clean:
	rm -rf $(VENV) .mediagate .pytest_cache .mypy_cache .ruff_cache
