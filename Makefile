# Two commands on a fresh machine: `make run` (the main job) and `make test` (the test suite).
# Each creates the virtual environment it needs in .venv.
PYTHON ?= python3
VENV ?= .venv
OUT ?= outputs/demo

.PHONY: run test clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -e ".[test,media,train,analysis,play]"
	touch $@

run: $(VENV)/.installed
	$(VENV)/bin/popgym-arcade demo --out $(OUT)

test: $(VENV)/.installed
	$(VENV)/bin/python -m pytest -n 2 --dist loadgroup

clean:
	rm -rf $(VENV) outputs .pytest_cache
