# Two commands on a fresh machine: `make run` (the main job) and `make test` (the test suite).
# Each creates the virtual environment it needs in .venv.
PYTHON ?= python3
VENV ?= .venv
OUT ?= outputs/study
BUDGET ?= default

.PHONY: run test demo clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -e ".[test,media,train,analysis,play,ray]"
	touch $@

# The memory study on its embedded CPU budget (8 minutes measured on 2 cores); BUDGET=tiny for a quick check.
run: $(VENV)/.installed
	$(VENV)/bin/popgym-arcade study --out $(OUT) --budget $(BUDGET)

test: $(VENV)/.installed
	$(VENV)/bin/python -m pytest -n 2 --dist loadgroup

# Every game's MDP and POMDP twins side by side, and steps/s.
demo: $(VENV)/.installed
	$(VENV)/bin/popgym-arcade demo --out outputs/demo

clean:
	rm -rf $(VENV) outputs .pytest_cache
