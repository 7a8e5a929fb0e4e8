PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench install clean faults fuzz

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	mkdir -p var
	$(BIN)/callcenter db upgrade
	$(BIN)/callcenter run --host 127.0.0.1 --port 8080

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Long fuzzing runs (Hypothesis profile `fuzz`; CI runs the same tests briefly). A finding is fixed
# and kept as a test in tests/fuzz/test_regressions.py (docs/security.md).
FUZZ_TESTS ?= tests/fuzz tests/callcenter/asterisk/test_ami_codec.py tests/callcenter/asterisk/test_agi_codec.py \
	tests/ivr/test_hostile.py
fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest -o timeout=7200 $(FUZZ_TESTS) $(PYTEST_ARGS)

# fault tests only (also part of `make test`): own redis-server and PostgreSQL, workers killed with SIGKILL
faults: $(STAMP)
	$(BIN)/python -m pytest tests/faults $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) var .pytest_cache .hypothesis
