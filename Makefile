# fastbreaker: the entry points people type. `make test` is what CI runs (.ci/run).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
CARGO ?= cargo
EMBEDDED_TARGETS := thumbv6m-none-eabi thumbv7m-none-eabi thumbv7em-none-eabihf riscv32imc-unknown-none-elf
LOOM_FLAGS := --cfg loom
LOOM_MAX_PREEMPTIONS ?= 2

.PHONY: test setup fmt-check clippy unit loom nostd fmt bench bench-rust

## Everything CI checks: formatting, lints, unit/integration/property/stress tests, loom models,
## the no_std builds, the firmware tests in QEMU, the C/C++ tests of the C ABI (under ASan,
## UBSan and TSan), the Python package's checks and tests, and a fuzzing smoke run. The Rust
## stress tests under ThreadSanitizer (`make tsan`, about 3 minutes) and long fuzzing
## (`make fuzz`) run under their own targets, to keep `make test` within its 20 minutes.
test: setup fmt-check clippy unit loom nostd firmware ffi-test py-test fuzz-smoke
	@echo "make test: all checks passed"

## Installs what the checks need (idempotent): rustfmt, clippy, embedded targets.
setup:
	@rustup component add rustfmt clippy >/dev/null 2>&1 || rustup component add rustfmt clippy
	@installed="$$(rustup target list --installed)"; \
	for t in $(EMBEDDED_TARGETS); do \
		grep -qx "$$t" <<<"$$installed" || rustup target add "$$t"; \
	done

fmt-check:
	$(CARGO) fmt --all -- --check

fmt:
	$(CARGO) fmt --all

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

unit:
	$(CARGO) test --workspace

## Loom model checking of the state machine and windows (separate target dir: --cfg loom
## rebuilds every crate).
loom:
	RUSTFLAGS="$(LOOM_FLAGS)" LOOM_MAX_PREEMPTIONS=$(LOOM_MAX_PREEMPTIONS) CARGO_TARGET_DIR=target/loom \
		$(CARGO) test -p fastbreaker-tests --test loom --test loom_bucket --test loom_keyed --test loom_counters \
		--test loom_adaptive --release

## Benchmarks: criterion (fastbreaker beside governor, failsafe, recloser in one run) with a
## markdown table of ns/op and ratios in target/criterion/report.md, the C ABI loop, and the
## Python comparison against pybreaker, circuitbreaker, aiobreaker, purgatory, limits, ...
bench: bench-rust ffi-bench py-bench

bench-rust:
	$(CARGO) bench -p fastbreaker-benches
	$(CARGO) run -q -p fastbreaker-benches --release --bin report -- --out target/criterion/report.md

## The core without std on firmware targets.
nostd: setup
	$(CARGO) build -p fastbreaker --no-default-features --target thumbv7em-none-eabihf
	$(CARGO) build -p fastbreaker --no-default-features --features embassy-time --target thumbv7em-none-eabihf
	$(CARGO) build -p fastbreaker --no-default-features --target thumbv7m-none-eabi
	$(CARGO) build -p fastbreaker --no-default-features --features critical-section --target thumbv6m-none-eabi
	$(CARGO) build -p fastbreaker --no-default-features --features critical-section --target riscv32imc-unknown-none-elf

## Fuzzing with cargo-fuzz on the nightly toolchain (tests/fuzz, a workspace of its own):
## configuration validation, breaker steps against the reference model, the token bucket
## against exact GCRA. `fuzz-smoke` (part of `make test`) runs each target for
## FUZZ_SMOKE_SECONDS, `fuzz` for FUZZ_SECONDS. Corpora grow in tests/fuzz/corpus/ and
## crashes land in tests/fuzz/artifacts/ (both ignored by git).
FUZZ_TARGETS := config breaker_steps bucket_gcra region_bytes keyed counters_bytes
FUZZ_SMOKE_SECONDS ?= 10
FUZZ_SECONDS ?= 300
# No AddressSanitizer (the core forbids unsafe code; runs are 4x faster without it), but
# debug assertions on, so that any arithmetic overflow in the core is a crash.
FUZZ_FLAGS ?= --sanitizer none --debug-assertions

.PHONY: fuzz-setup fuzz-smoke fuzz tsan

## Installs cargo-fuzz if `cargo +nightly fuzz` is missing (idempotent).
fuzz-setup:
	@$(CARGO) +nightly fuzz --version >/dev/null 2>&1 || $(CARGO) install cargo-fuzz --locked

fuzz-smoke: FUZZ_SECONDS = $(FUZZ_SMOKE_SECONDS)
fuzz-smoke: fuzz

fuzz: fuzz-setup
	cd tests/fuzz && for t in $(FUZZ_TARGETS); do \
		echo "fuzz: $$t for $(FUZZ_SECONDS) s"; \
		mkdir -p corpus/$$t; \
		$(CARGO) +nightly fuzz run $(FUZZ_FLAGS) $$t corpus/$$t -- -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 2>&1 \
			| grep -vE '^#[0-9]+\s+(NEW|REDUCE|pulse)' || exit 1; \
	done

## ThreadSanitizer on the Rust stress tests (nightly; std rebuilt with the sanitizer, which
## needs the rust-src component; separate target dir). TSAN_STRESS_OPS operations per
## breaker stress test (the plain debug run does 8 million).
TSAN_TARGET ?= x86_64-unknown-linux-gnu
TSAN_STRESS_OPS ?= 2000000
tsan:
	@rustup +nightly component list --installed | grep -q '^rust-src' || rustup +nightly component add rust-src
	RUSTFLAGS="-Zsanitizer=thread" RUSTDOCFLAGS="-Zsanitizer=thread" CARGO_TARGET_DIR=target/tsan \
		FASTBREAKER_STRESS_OPS=$(TSAN_STRESS_OPS) \
		$(CARGO) +nightly test -Zbuild-std --target $(TSAN_TARGET) -p fastbreaker-tests --test stress --test bucket_stress

# Fragments owned by their parts of the tree (after `test`, which stays the default goal).
include tests/firmware/firmware.mk
include ffi-c/ffi.mk
include py/py.mk
