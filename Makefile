# One command for each habit. Everything runs from the project's own virtualenv,
# installed from pyproject.toml with the versions pinned in constraints.txt.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: setup run test test-unit test-slow test-runtimes test-ray-versions spark-up spark-down lint fmt lock clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[local,dev]'
	$(BIN)/python -m raybricks.cluster.warm   # Spark's JVM class archives, once
	touch $@

run: setup          # the main job on this machine: local Spark, real Ray on Spark
	$(BIN)/raybricks run --target local

test: setup         # unit tests, then the cluster tier (a real local Spark and Ray)
	$(BIN)/pytest

test-unit: setup    # only the tests that need no cluster (seconds)
	$(BIN)/pytest tests/unit

test-slow: setup    # reruns, side by side, cancels and sweeps, faults, the standalone tier (over an hour)
	$(BIN)/pytest -m slow

# The Databricks ML runtimes' Python (3.12) with their Sparks: 3.5 (16.4 LTS), 4.0
# (17.3 LTS), 4.1 (18 LTS) and 4.2 (19), each in a virtualenv of its own pinned by
# constraints-py312-<spark>.txt (docs/databricks.md has the table and its sources).
PY312 ?= $(firstword $(shell python3.12 -c 'import sys; print(sys.executable)' 2>/dev/null) \
                     $(wildcard $(HOME)/.pyenv/versions/3.12*/bin/python3.12))
RUNTIMES := spark35 spark40 spark41 spark42
# The emulated Databricks job in both task shapes, named exactly (of every tier: -m ""),
# so that a rename fails loudly; tests/unit/test_make_targets.py checks they are collected.
# Before them, the PySpark names raybricks uses, checked on that Spark, and every column
# type through Ray and back on each route it has.
RUNTIME_TESTS := \
    tests/unit/test_spark_apis.py \
    tests/cluster/test_data.py::test_every_type_comes_back_as_it_went \
    tests/cluster/test_databricks_runtime.py::test_a_plain_job_task_passes_every_stage_with_the_proxy_dashboard \
    tests/cluster/test_databricks_runtime.py::test_a_wheel_task_fails_as_a_process_leaves_the_platforms_spark_and_appends_nothing

# In a shell loop that has set $venv: make that virtualenv once, with Python $(1) and
# the pins of constraints file $(2), then run the runtime tests in it.
define runtime_tests_in_venv
[ -f $$venv/.installed ] || { $(1) -m venv $$venv && \
    $$venv/bin/pip install --quiet -c $(2) -e '.[local,dev]' && \
    $$venv/bin/python -m raybricks.cluster.warm && touch $$venv/.installed; } || exit 1; \
$$venv/bin/pytest -n 0 -p no:cacheprovider -m "" $(RUNTIME_TESTS) || exit 1
endef

test-runtimes:      # the emulated Databricks job on each runtime's Python and Spark
	@if [ -z "$(PY312)" ]; then echo "test-runtimes: SKIPPED, no python3.12 here"; exit 0; fi
	@for spark in $(RUNTIMES); do \
	    venv=.venv-py312-$$spark; \
	    echo "== Python 3.12 with $$(grep '^pyspark==' constraints-py312-$$spark.txt)"; \
	    $(call runtime_tests_in_venv,$(PY312),constraints-py312-$$spark.txt); \
	done

# The tested Ray range (pyproject.toml's ray requirement): each older Ray where Ray on
# Spark's own code differs (2.52 to 2.55 are alike, as are 2.56 to 2.59) in a virtualenv
# of its own pinned by constraints-ray<version>.txt, then the range's upper end (the pin
# of constraints.txt) in the project's own; the same tests as test-runtimes.
OLDER_RAYS := 2.52 2.56
test-ray-versions: setup  # the emulated Databricks job on each Ray on Spark of the tested range
	@for version in $(OLDER_RAYS); do \
	    venv=.venv-ray$$version; \
	    echo "== $$(grep '^ray==' constraints-ray$$version.txt)"; \
	    $(call runtime_tests_in_venv,$(PYTHON),constraints-ray$$version.txt); \
	done
	@echo "== $$(grep '^ray==' constraints.txt)"
	$(BIN)/pytest -n 0 -p no:cacheprovider -m "" $(RUNTIME_TESTS)

spark-up: setup     # a Spark standalone master and two workers on loopback; prints the URL
	$(BIN)/python -m benchmarks.standalone up

spark-down: setup   # stops what spark-up started
	$(BIN)/python -m benchmarks.standalone down

lint: setup
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

fmt: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

lock: setup         # re-pin constraints.txt to what the virtualenv holds now
	head -3 constraints.txt > constraints.new
	$(BIN)/pip freeze --all --exclude-editable | grep -v '^pip==' >> constraints.new
	mv constraints.new constraints.txt

clean:
	rm -rf $(VENV) .venv-py312-* .venv-ray* dist build runs .pytest_cache .mypy_cache .ruff_cache
