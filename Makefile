# One command for each habit. Everything runs from the project's own virtualenv,
# installed from pyproject.toml with the versions pinned in constraints.txt.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: setup run test test-unit test-slow lint fmt lock clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[local,dev]'
	touch $@

run: setup          # the main job on this machine: local Spark, real Ray on Spark
	$(BIN)/raybricks run --target local

test: setup         # unit tests, then the cluster tier (a real local Spark and Ray)
	$(BIN)/pytest

test-unit: setup    # only the tests that need no cluster (seconds)
	$(BIN)/pytest tests/unit

test-slow: setup    # reruns, runs side by side and cancels, repeated (about 10 min)
	$(BIN)/pytest -m slow

lint: setup
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

fmt: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

lock: setup         # re-pin constraints.txt to what the virtualenv holds now
	head -3 constraints.txt > constraints.new
	$(BIN)/pip freeze --exclude-editable >> constraints.new
	mv constraints.new constraints.txt

clean:
	rm -rf $(VENV) dist build runs .pytest_cache .mypy_cache .ruff_cache
