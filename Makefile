# Two commands on a fresh machine:  `make app`  and  `make test`.
# The project needs Python 3.11 (pyproject.toml): python3.11 when the machine has it, else python3 (checked below).
PYTHON ?= $(shell command -v python3.11 2>/dev/null || echo python3)
VENV ?= .venv
PORT ?= 8501
ADDRESS ?= 127.0.0.1
BIN := $(VENV)/bin
export OMP_NUM_THREADS ?= 2
export HF_HUB_OFFLINE = 1

.PHONY: app test test-fast lint format clean

# The virtual environment, marked complete only once its pip is upgraded: one left half-made (Ctrl-C, a full disk)
# is made again by the next `make app` or `make test` instead of failing at a missing bin/pip ever after.
$(VENV)/.created:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null || { \
	  echo "error: this project needs Python 3.11, and '$(PYTHON)' is" \
	  "$$($(PYTHON) -c 'import platform; print(platform.python_version())' 2>/dev/null || echo 'not a Python');" \
	  "install Python 3.11 and run e.g. PYTHON=/usr/bin/python3.11 make $(or $(MAKECMDGOALS),app)"; exit 1; }
	$(PYTHON) -m venv --clear $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	touch $@

# The serving install (no torch), installed again whenever pyproject.toml changes: a second `make app` starts
# without the package index.
$(VENV)/.app-installed: pyproject.toml $(VENV)/.created
	$(BIN)/pip install --quiet -e '.[app]'
	touch $@

# Set up the serving install and start the web app on the shipped models.
app: $(VENV)/.app-installed
	$(BIN)/melanoma app --port $(PORT) --address $(ADDRESS)

# Everything (training, app, dev tools), installed again whenever pyproject.toml changes.
# On Linux, PyPI's torch wheel brings its CUDA libraries along: several GB to download the first time.
$(VENV)/.dev-installed: pyproject.toml $(VENV)/.created
	$(BIN)/pip install --quiet -e '.[train,app,dev]'
	touch $@ $(VENV)/.app-installed

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
