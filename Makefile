# make setup: system packages + .venv (idempotent).  make test / make lint: the checks CI runs.
VENV := .venv/bin
.PHONY: setup test lint run serve corpus

setup:
	@bash scripts/setup.sh

test: setup
	$(VENV)/python -m pytest -q

lint: setup
	$(VENV)/ruff check src tests bench
	$(VENV)/ruff format --check src tests bench
	$(VENV)/mypy

# The main job. Until the service lands this builds a small demo corpus.
run: setup
	$(VENV)/latsep corpus build --out data/corpus-demo --minutes 5
