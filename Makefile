# ticktape developer entry points. Everything installs into .venv from this repository's files.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_SECONDS ?= 45
DEMO_LAKE ?= demo-lake
DEMO_PORT ?= 8321

.PHONY: install demo test lint bench fuzz system-deps clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --upgrade pip uv
	$(BIN)/uv pip install --python $(BIN)/python --quiet --compile-bytecode -e '.[dev]'
	@# Bytecode written once here: processes run with PYTHONDONTWRITEBYTECODE would otherwise
	@# recompile numpy, pyarrow and our own modules at every start (bench/RESULTS.md, start-up).
	@$(BIN)/python -m compileall -q -j 0 collectors streaming storage quality schemas ticktape bench >/dev/null
	@touch $(STAMP)

# promtool and chromium come from Debian packages; installed when we are root.
system-deps:
	@bash infra/scripts/system-deps.sh

demo: install
	$(BIN)/ticktape demo --duration $(DEMO_SECONDS) --lake $(DEMO_LAKE) --port $(DEMO_PORT)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: install system-deps lint
	$(BIN)/python -m pytest -n 2 --dist loadfile -q tests; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

bench: install
	$(BIN)/python -m bench.run

# Property-based hostile-input tests (tests/collectors/test_hostile.py) with the long hypothesis profile:
# thousands of mutated real and simulated frames per registered exchange (make test runs a few seconds' worth).
fuzz: install
	TICKTAPE_FUZZ_PROFILE=fuzz $(BIN)/python -m pytest -q -p no:randomly tests/collectors/test_hostile.py -k fuzzed

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache
