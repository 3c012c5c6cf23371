# Two commands for a newcomer: `make run` and `make test`. Both install what they need, idempotently.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
SAM_VENV := .venv-sam
PY := $(VENV)/bin/python
DEPS_STAMP := $(VENV)/.deps-installed
SAM_STAMP := $(SAM_VENV)/.sam-installed
# LNbits (the tests start a real one) pins libraries Timmy does not use: its own venv.
LNBITS_VENV := .venv-lnbits
LNBITS_STAMP := $(LNBITS_VENV)/.lnbits-installed
JAR := node_modules/amplify-dynamodb-simulator/emulator/DynamoDBLocal.jar
export AWS_DEFAULT_REGION ?= us-east-1
export PYTHONPATH := $(CURDIR):$(CURDIR)/shared

.PHONY: install run test lint typecheck validate build deploy unit bench clean

install: $(DEPS_STAMP) $(JAR) $(SAM_STAMP) $(LNBITS_STAMP)

$(DEPS_STAMP): requirements-dev.txt shared/requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -qq --disable-pip-version-check -r requirements-dev.txt
	@touch $@

$(JAR): package.json package-lock.json
	@npm ci --no-audit --no-fund --loglevel=error >/dev/null
	@touch $@

$(SAM_STAMP):
	@test -x $(SAM_VENV)/bin/python || $(PYTHON) -m venv $(SAM_VENV)
	@$(SAM_VENV)/bin/python -m pip install -qq --disable-pip-version-check aws-sam-cli==1.170.0
	@touch $@

# bitstring 5 breaks LNbits' bolt11 at import (ConstBitStream): held below it.
$(LNBITS_STAMP):
	@test -x $(LNBITS_VENV)/bin/python || $(PYTHON) -m venv $(LNBITS_VENV)
	@$(LNBITS_VENV)/bin/python -m pip install -qq --disable-pip-version-check lnbits==1.6.2 'bitstring>=4.3,<5'
	@touch $@

run: $(DEPS_STAMP) $(JAR)
	@$(PY) -m local.run

lint: $(DEPS_STAMP)
	@$(PY) -m ruff check .
	@$(PY) -m ruff format --check . >/dev/null || { echo "ruff format: files need formatting (run .venv/bin/ruff format .)"; exit 1; }

typecheck: $(DEPS_STAMP)
	@$(PY) -m mypy

validate: $(SAM_STAMP)
	@SAM_CLI_TELEMETRY=0 $(SAM_VENV)/bin/sam validate --lint --template template.yaml

# sam build needs the template's runtime (python3.12) on PATH: local.runtime finds it (PATH or pyenv) or says what is missing.
# samconfig.toml holds the answers of the first `sam deploy --guided`; later deploys reuse them.
SAM_WITH_RUNTIME = bin=$$($(PY) -m local.runtime --bin-dir) && PATH="$$bin:$$PATH" SAM_CLI_TELEMETRY=0 $(SAM_VENV)/bin/sam

build: $(DEPS_STAMP) $(SAM_STAMP)
	@$(SAM_WITH_RUNTIME) build --template template.yaml

deploy: build
	@$(SAM_WITH_RUNTIME) deploy $(if $(wildcard samconfig.toml),,--guided)

unit: $(DEPS_STAMP) $(JAR) $(LNBITS_STAMP)
	@$(PY) -m pytest

test: install lint typecheck validate unit

bench: $(DEPS_STAMP) $(JAR)
	@failed=""; for b in bench/*.py; do echo "== $$b"; $(PY) $$b || failed="$$failed $$b"; done; \
	if [ -n "$$failed" ]; then echo "== over a goal or failed:$$failed"; exit 1; fi

clean:
	rm -rf $(VENV) $(SAM_VENV) $(LNBITS_VENV) node_modules .local .pytest_cache .mypy_cache .ruff_cache
