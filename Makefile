# The two commands: `make run` and `make test`. Both set up everything they need.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run demo test lint typecheck unit bench-ingest system-deps clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	TRIAGE_INVESTIGATION_SCENARIO_DIR=$${TRIAGE_INVESTIGATION_SCENARIO_DIR:-triage/demo/scenarios} \
	TRIAGE_DELIVERY_JSONL_PATH=$${TRIAGE_DELIVERY_JSONL_PATH:-.triage/drafts.jsonl} \
	$(BIN)/triage serve

demo: $(STAMP)
	$(BIN)/triage demo

# Real Alertmanager and Prometheus for the tests, from Debian's packages.
system-deps:
	@if [ ! -x /usr/bin/prometheus-alertmanager ] || [ ! -x /usr/bin/prometheus ] || [ ! -x /usr/bin/promtool ]; then \
		echo "installing prometheus-alertmanager and prometheus (Debian)"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus-alertmanager prometheus; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check triage collectors tests bench
	$(BIN)/ruff format --check triage collectors tests bench

typecheck: $(STAMP)
	$(BIN)/mypy triage collectors

test: $(STAMP) system-deps lint typecheck
	$(BIN)/pytest -q

bench-ingest: $(STAMP)
	$(BIN)/python bench/ingest.py

clean:
	rm -rf $(VENV) .triage .pytest_cache .mypy_cache .ruff_cache
