# ticktape developer entry points. Everything installs into .venv from this repository's files.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_SECONDS ?= 45
DEMO_LAKE ?= demo-lake
DEMO_PORT ?= 8321

.PHONY: install demo test lint bench fuzz system-deps clean asan

install: $(STAMP)

$(STAMP): pyproject.toml setup.py collectors/_booknative.c
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --upgrade pip uv
	$(BIN)/uv pip install --python $(BIN)/python --quiet --compile-bytecode -e '.[dev]'
	@# The compiled book engine is optional (setup.py): without it the pure-Python reference serves.
	@$(BIN)/python -c 'import collectors._booknative' 2>/dev/null \
	  && echo "collectors._booknative: compiled book engine built" \
	  || echo "WARNING: collectors._booknative did not build (gcc and the Python headers are needed);" \
	          "the book engine runs in pure Python. Build it alone to see why: $(BIN)/python setup.py build_ext --inplace"
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
	@# the compiled book engine under AddressSanitizer + UBSan, on a subset (make asan runs all of it)
	$(MAKE) --no-print-directory asan ASAN_TESTS='$(ASAN_QUICK)'

# AddressSanitizer + UndefinedBehaviorSanitizer build of collectors/_booknative.c (build/asan, apart from
# the installed one), loaded ahead of it, under the differential tests (book engine, checksums, JSON depth). CPython is not instrumented:
# libasan is preloaded, PYTHONMALLOC=malloc lets it see every allocation, and leak detection is off
# (the interpreter keeps memory at exit by design). Preloading the runtime into an uninstrumented
# interpreter: https://jonasdevlieghere.com/sanitizing-python-modules/; PYTHONMALLOC:
# https://docs.python.org/3/using/cmdline.html#envvar-PYTHONMALLOC (both checked 2026-12-05).
ASAN_DIR := build/asan
ASAN_TESTS ?=
ASAN_QUICK := -k "built or leak or random or level_map or decimal or row_store or okx or kraken or htx or (mutated and binance) or depth or odd_levels or known_checksums" --durations=5
asan: install
	@mkdir -p $(ASAN_DIR)/collectors
	gcc -shared -fPIC -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined \
	  -Wall -I"$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["include"])')" \
	  collectors/_booknative.c \
	  -o $(ASAN_DIR)/collectors/_booknative$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
	TICKTAPE_ASAN_BUILD=$(ASAN_DIR)/collectors PYTHONMALLOC=malloc ASAN_OPTIONS=detect_leaks=0 \
	  UBSAN_OPTIONS=print_stacktrace=1 LD_PRELOAD="$$(gcc -print-file-name=libasan.so) $$(gcc -print-file-name=libubsan.so)" \
	  $(BIN)/python -c 'import sys, collectors; collectors.__path__.insert(0, sys.argv[1]); import pytest; \
	    sys.exit(pytest.main(sys.argv[2:]))' $(ASAN_DIR)/collectors \
	  -q -p no:randomly -p no:cacheprovider tests/collectors/test_native_book.py tests/collectors/test_native_checksum.py $(ASAN_TESTS)

bench: install
	$(BIN)/python -m bench.run

# Property-based hostile-input tests (tests/collectors/test_hostile.py) with the long hypothesis profile:
# thousands of mutated real and simulated frames per registered exchange (make test runs a few seconds' worth).
fuzz: install
	TICKTAPE_FUZZ_PROFILE=fuzz $(BIN)/python -m pytest -q -p no:randomly tests/collectors/test_hostile.py -k fuzzed

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache collectors/_booknative*.so
