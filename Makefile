# Two commands on a fresh machine:  `make app`  and  `make test`.
PYTHON ?= python3
VENV ?= .venv
PORT ?= 8501
ADDRESS ?= 127.0.0.1
BIN := $(VENV)/bin
export OMP_NUM_THREADS ?= 2
export HF_HUB_OFFLINE = 1

.PHONY: app test test-fast lint format clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Set up the serving install (no torch) and start the web app on the shipped models.
app: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[app]'
	$(BIN)/melanoma app --port $(PORT) --address $(ADDRESS)

# Everything (training, app, dev tools), installed again whenever pyproject.toml changes.
$(VENV)/.dev-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[train,app,dev]'
	touch $@

# Set up everything, lint, and run the whole test suite (slow tests included).
test: $(VENV)/.dev-installed
	$(MAKE) --no-print-directory lint
	$(BIN)/pytest -m "slow or not slow" $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests: that is a failure here"; exit 1; fi; exit $$rc

# The quick local loop: no slow tests (distributed training, real browser).
test-fast: $(VENV)/.dev-installed
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts

format: $(VENV)/.dev-installed
	$(BIN)/ruff format src tests benchmarks scripts
	$(BIN)/ruff check --fix src tests benchmarks scripts

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
