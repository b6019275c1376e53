# make setup: system packages + .venv (idempotent).  make test / make lint: the checks CI runs.
VENV := .venv/bin
.PHONY: setup test lint run serve

setup:
	@bash scripts/setup.sh

test: setup
	$(VENV)/python -m pytest -q

lint: setup
	$(VENV)/ruff check src tests bench
	$(VENV)/ruff format --check src tests bench
	$(VENV)/mypy

# The main job: the whole service on one machine (API + worker + embedded Redis), shipped bundles.
run: setup
	$(VENV)/latsep serve

serve: run
