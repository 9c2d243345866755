# Python package targets; included by the top-level Makefile (run from the repo root).
#   make py-test   build fastbreaker into py/.venv, then ruff, mypy, stubtest and pytest
#   make demo      build into py/.venv and run the live demo (python -m fastbreaker demo)
#   make demo-adaptive  the same for the adaptive-limit demo (python -m fastbreaker demo-adaptive)
#   make py-bench  compare against pure-Python peers in py/.venv-bench, the shared region
#                  against in-process, and limits + a real redis-server (py/benches/)
#   make py-limits-suite  limits' own storage/strategy tests against fastbreaker:// and
#                  fastbreaker+shm:// (py/limits_suite/; downloads the limits sdist once)

PY_DIR        := py
PY_VENV       := $(PY_DIR)/.venv
PY_BIN        := $(PY_VENV)/bin
PY_BENCH_VENV := $(PY_DIR)/.venv-bench
PYTHON3       ?= python3
PY_SOURCES    := $(wildcard $(PY_DIR)/src/*.rs) $(PY_DIR)/Cargo.toml $(PY_DIR)/pyproject.toml \
                 $(wildcard core/src/*.rs) $(wildcard core/src/shm/*.rs) core/Cargo.toml
DEMO_ARGS     ?=

.PHONY: py-test py-build py-chromium py-redis-server demo demo-adaptive py-bench py-clean py-limits-suite

# The venv, with the pinned tools; redone only when the pins change.
$(PY_VENV)/.installed: $(PY_DIR)/requirements-dev.txt
	test -x $(PY_BIN)/python || $(PYTHON3) -m venv $(PY_VENV)
	$(PY_BIN)/python -m pip install -q --disable-pip-version-check -r $(PY_DIR)/requirements-dev.txt
	touch $@

# The extension module, rebuilt only when the Rust sources change (the Python sources are
# installed editable, so they need no rebuild).
$(PY_VENV)/.built: $(PY_VENV)/.installed $(PY_SOURCES)
	cd $(PY_DIR) && VIRTUAL_ENV=$(CURDIR)/$(PY_VENV) .venv/bin/maturin develop --release -q
	touch $@

py-build: $(PY_VENV)/.built

# A real headless Chromium for the HTML plot test (py/tests/test_sim_plot.py), from Debian's
# packages when missing (as root, or with passwordless sudo).
py-chromium:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium; }

# A real redis-server for the fleet-mode tests (py/tests/redis_server.py starts and stops
# its own on a free loopback port), from Debian's packages when missing.
py-redis-server:
	@command -v redis-server >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq redis-server; }

py-test: py-build py-chromium py-redis-server
	cd $(PY_DIR) && .venv/bin/ruff check python tests benches examples
	cd $(PY_DIR) && .venv/bin/ruff format --check python tests benches examples
	cd $(PY_DIR) && .venv/bin/mypy
	cd $(PY_DIR) && .venv/bin/python -m mypy.stubtest fastbreaker._native
	cd $(PY_DIR) && .venv/bin/python -m pytest -q

demo: py-build
	$(PY_BIN)/python -m fastbreaker demo $(DEMO_ARGS)

# A client's adaptive limit following a local server whose capacity changes (issue 18).
demo-adaptive: py-build
	$(PY_BIN)/python -m fastbreaker demo-adaptive $(DEMO_ARGS)

# Benchmarks against the peers, in their own venv (pins in py/benches/requirements.txt).
$(PY_BENCH_VENV)/.installed: $(PY_DIR)/benches/requirements.txt $(PY_VENV)/.built
	test -x $(PY_BENCH_VENV)/bin/python || $(PYTHON3) -m venv $(PY_BENCH_VENV)
	$(PY_BENCH_VENV)/bin/python -m pip install -q --disable-pip-version-check -r $(PY_DIR)/benches/requirements.txt
	cd $(PY_DIR) && VIRTUAL_ENV=$(CURDIR)/$(PY_BENCH_VENV) .venv/bin/maturin develop --release -q
	touch $@

# with_redis.sh installs redis-server if missing (apt-get, as root or with passwordless sudo),
# runs one on a free loopback port with no persistence for the limits + RedisStorage rows,
# and stops it at the end, also on failure; without one those rows print "skipped: <why>".
# FASTBREAKER_BENCH_REDIS=0 skips them.
# Then fleet mode (issue 16), each against its own throwaway redis-server: the Redis GCRA
# check against PING and limits' Redis strategies, and a fleet breaker's call against the
# in-process breaker and pybreaker's CircuitRedisStorage; then a FastAPI route under uvicorn
# bare, with fastbreaker's middleware and with slowapi, driven over HTTP (issue 15).
py-bench: $(PY_BENCH_VENV)/.installed
	bash $(PY_DIR)/benches/with_redis.sh \
		$(PY_BENCH_VENV)/bin/python $(PY_DIR)/benches/compare.py $(PY_BENCH_ARGS)
	bash $(PY_DIR)/benches/with_redis.sh $(PY_BENCH_VENV)/bin/python $(PY_DIR)/benches/redis_limits.py
	bash $(PY_DIR)/benches/with_redis.sh $(PY_BENCH_VENV)/bin/python $(PY_DIR)/benches/redis_breaker.py
	$(PY_BENCH_VENV)/bin/python $(PY_DIR)/benches/web_e2e.py

# limits' own tests (the 5.8.0 sdist, fetched from PyPI into target/limits-suite on the
# first run, then reused offline) against fastbreaker:// and fastbreaker+shm://, beside
# limits' memory:// as the control: py/limits_suite/conftest.py replaces their conftest
# (which starts redis, memcached, mongodb in docker). About 90 s (their tests sleep through
# real windows). Not part of `make test`: its first run needs the network.
py-limits-suite: py-build
	bash $(PY_DIR)/limits_suite/run.sh $(CURDIR)/$(PY_BIN)/python $(CURDIR)/target/limits-suite $(PY_LIMITS_SUITE_ARGS)

py-clean:
	rm -rf $(PY_VENV) $(PY_BENCH_VENV)
