# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# Both create .venv if missing, install torch==2.13.0 first (the CPU wheel; any other
# torch spec pulls gigabytes of CUDA), then the project with its extras.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.edgegen-installed

.PHONY: demo test install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/edgegen demo

test: $(STAMP)
	$(BIN)/python -m pytest -q --durations=10

clean:
	rm -rf demo bundles .pytest_cache
