# ticktape developer entry points. Everything installs into .venv from this repository's files.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_SECONDS ?= 45
DEMO_LAKE ?= demo-lake
DEMO_PORT ?= 8321

.PHONY: install demo test lint bench fuzz system-deps clean asan asan-book asan-codec asan-capture

# Compiled extensions (setup.py), each optional: the pure-Python reference runs where one is missing.
NATIVE_SOURCES := collectors/_booknative.c collectors/_columnrows.c collectors/_columnrows.h collectors/_frameblock.h streaming/_avronative.c collectors/_capturenative.c
PY_INCLUDE = $$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
EXT_SUFFIX = $$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')

install: $(STAMP)

$(STAMP): pyproject.toml setup.py $(NATIVE_SOURCES)
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --upgrade pip uv
	@# --reinstall-package: uv would otherwise keep the extensions it built from older C sources.
	$(BIN)/uv pip install --python $(BIN)/python --quiet --compile-bytecode --reinstall-package ticktape -e '.[dev]'
	@$(BIN)/python -c 'import collectors._booknative' 2>/dev/null \
	  && echo "collectors._booknative: compiled book engine built" || { \
	  echo "WARNING: collectors/_booknative.c did not build: the book engine runs in pure Python (slower)." >&2; \
	  echo "         Compiler output (needs gcc and the Python headers):" >&2; \
	  gcc -fsyntax-only -std=c11 -I"$(PY_INCLUDE)" collectors/_booknative.c collectors/_columnrows.c >&2 || true; }
	@$(BIN)/python -c 'import streaming._avronative' 2>/dev/null \
	  && echo "streaming._avronative: compiled Avro codec built" || { \
	  echo "WARNING: streaming/_avronative.c did not build: ticktape runs its pure-Python Avro codec (slower)." >&2; \
	  echo "         Compiler output (needs gcc and the Python headers):" >&2; \
	  gcc -fsyntax-only -std=c11 -I"$(PY_INCLUDE)" streaming/_avronative.c >&2 || true; }
	@$(BIN)/python -c 'import collectors._capturenative' 2>/dev/null \
	  && echo "collectors._capturenative: compiled capture reader built" || { \
	  echo "WARNING: collectors/_capturenative.c did not build: captures are read in pure Python (slower)." >&2; \
	  echo "         Compiler output (needs gcc and the Python headers):" >&2; \
	  gcc -fsyntax-only -std=c11 -I"$(PY_INCLUDE)" collectors/_capturenative.c >&2 || true; }
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
	@# the compiled parts under AddressSanitizer + UBSan, each on a subset of its tests (make asan
	@# runs all of them)
	$(MAKE) --no-print-directory asan ASAN_TESTS='$(ASAN_QUICK)' ASAN_CODEC_TESTS='$(ASAN_CODEC_QUICK)' \
	  ASAN_CAPTURE_TESTS='$(ASAN_CAPTURE_QUICK)'

# AddressSanitizer + UndefinedBehaviorSanitizer builds of the compiled extensions (build/asan, apart from
# the installed ones), loaded ahead of them, under their differential and fuzz tests (book engine, checksums, JSON depth, Binance frame scanner and time flags, rows held as columns; Avro codec, rows to Arrow; capture splitter). CPython is not
# instrumented: libasan is preloaded, PYTHONMALLOC=malloc lets it see every allocation, and leak
# detection is off (the interpreter keeps memory at exit by design); pytest captures at the sys level
# only, so that a sanitizer's report on fd 2 is seen before the process halts. Preloading the runtime into an
# uninstrumented interpreter: https://jonasdevlieghere.com/sanitizing-python-modules/; PYTHONMALLOC:
# https://docs.python.org/3/using/cmdline.html#envvar-PYTHONMALLOC (both checked 2026-12-05).
ASAN_DIR := build/asan
ASAN_TESTS ?=
ASAN_QUICK := -k "built or leak or random or list_operations or columns_to_arrow or (replay_into_columns and binance and not futures and not delivery) or level_map or decimal or row_store or okx or kraken or htx or (mutated and binance and not futures and not delivery) or depth or odd_levels or known_checksums or (scan_recordings and not futures and not delivery) or (in_place and binance and not futures and not delivery) or time_flags" --durations=5
ASAN_CODEC_TESTS ?=
ASAN_CODEC_QUICK := -k "built or garbage or numbers_that or consume_values_gives or (recordings and binance and not futures and not delivery) or (truncation and trades) or (edge_values and book) or (arrow and (shapes or lake_order or bad_rows or (declined and trades)))"
ASAN_CAPTURE_TESTS ?=
ASAN_CAPTURE_QUICK := -k "built or hostile or short or random or garbage or truncated or gzip_with or (recording and binance and not futures and not delivery)"
ASAN_CFLAGS := -shared -fPIC -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
	-fno-sanitize-recover=undefined -std=c11 -Wall
ASAN_RUN = LD_PRELOAD="$$(gcc -print-file-name=libasan.so) $$(gcc -print-file-name=libubsan.so)" \
	ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 PYTHONMALLOC=malloc

asan: asan-book asan-codec asan-capture

asan-book: install
	@mkdir -p $(ASAN_DIR)/collectors
	gcc $(ASAN_CFLAGS) -I"$(PY_INCLUDE)" collectors/_booknative.c collectors/_columnrows.c -o $(ASAN_DIR)/collectors/_booknative$(EXT_SUFFIX)
	TICKTAPE_ASAN_BUILD=$(ASAN_DIR)/collectors $(ASAN_RUN) \
	  $(BIN)/python -c 'import sys, collectors; collectors.__path__.insert(0, sys.argv[1]); import pytest; \
	    sys.exit(pytest.main(sys.argv[2:]))' $(ASAN_DIR)/collectors \
	  -q --capture=sys -p no:randomly -p no:cacheprovider tests/collectors/test_native_book.py tests/collectors/test_native_checksum.py \
	  tests/collectors/test_native_binance.py tests/collectors/test_column_rows.py $(ASAN_TESTS)

asan-codec: install
	@mkdir -p $(ASAN_DIR)
	gcc $(ASAN_CFLAGS) -Wextra -Werror -I"$(PY_INCLUDE)" streaming/_avronative.c -o $(ASAN_DIR)/_avronative.so
	$(ASAN_RUN) TICKTAPE_AVRONATIVE_SO=$(CURDIR)/$(ASAN_DIR)/_avronative.so \
	  $(BIN)/python -m pytest -q --capture=sys -p no:randomly -p no:xdist -p no:cacheprovider tests/streaming/test_native_codec.py tests/schemas/test_native_arrow.py $(ASAN_CODEC_TESTS)

asan-capture: install
	@mkdir -p $(ASAN_DIR)/capture/collectors
	gcc $(ASAN_CFLAGS) -Wextra -Werror -I"$(PY_INCLUDE)" collectors/_capturenative.c -o $(ASAN_DIR)/capture/collectors/_capturenative$(EXT_SUFFIX)
	TICKTAPE_ASAN_BUILD=$(ASAN_DIR)/capture/collectors $(ASAN_RUN) \
	  $(BIN)/python -c 'import sys, collectors; collectors.__path__.insert(0, sys.argv[1]); import pytest; \
	    sys.exit(pytest.main(sys.argv[2:]))' $(ASAN_DIR)/capture/collectors \
	  -q --capture=sys -p no:randomly -p no:cacheprovider tests/collectors/test_native_capture.py $(ASAN_CAPTURE_TESTS)

bench: install
	$(BIN)/python -m bench.run

# Property-based hostile-input tests (tests/collectors/test_hostile.py) with the long hypothesis profile:
# thousands of mutated real and simulated frames per registered exchange (make test runs a few seconds' worth).
fuzz: install
	TICKTAPE_FUZZ_PROFILE=fuzz $(BIN)/python -m pytest -q -p no:randomly tests/collectors/test_hostile.py -k fuzzed

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache collectors/_booknative*.so collectors/_capturenative*.so streaming/_avronative*.so
