# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint format bench clean simulator db-upgrade

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $(STAMP)

## Set everything up and start the bot (reads .env; dry-run against the built-in simulator
## when GROK_API_TOKEN is not set).
run: $(STAMP)
	$(BIN)/python -m bot

## Set everything up and run lint and the whole test suite (PostgreSQL too when
## TEST_DATABASE_URL is set; .ci/run starts one).
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

simulator: $(STAMP)
	$(BIN)/python -m bot.simulator --host 127.0.0.1 --port 8089

db-upgrade: $(STAMP)
	$(BIN)/imagine-bot db upgrade

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
