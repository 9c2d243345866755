# Firmware tests: the core's scenarios on emulated Cortex-M0/M3/M4F boards (QEMU,
# semihosting), a RISC-V build, and the size of a breaker + bucket. Included by the top
# Makefile; recipes run from the repository root. tests/firmware is a workspace of its own
# (its own Cargo.lock and target/), and cargo reads its .cargo/config.toml (the QEMU
# runners) only when run from inside it, hence the `cd`.

FIRMWARE_DIR := $(CURDIR)/tests/firmware
FIRMWARE_TARGETS := thumbv6m-none-eabi thumbv7m-none-eabi thumbv7em-none-eabihf riscv32imc-unknown-none-elf
# A hung firmware (a deadlock) fails the run instead of stalling it.
FIRMWARE_TIMEOUT ?= 300
FIRMWARE_RUN = cd $(FIRMWARE_DIR) && timeout $(FIRMWARE_TIMEOUT) cargo run --bin scenarios --target
FIRMWARE_APT = $(if $(filter 0,$(shell id -u)),,sudo -n) env DEBIAN_FRONTEND=noninteractive apt-get

.PHONY: firmware firmware-setup firmware-riscv size

## Runs the scenarios in QEMU on Cortex-M0 (microbit), M3 (lm3s6965evb) and M4F (mps2-an386),
## with each way portable-atomic can provide the atomics these cores lack, and builds (and
## runs, if qemu-system-riscv32 is installed) the RV32IMC firmware.
firmware: firmware-setup
	@if cargo fmt --version >/dev/null 2>&1; then cd $(FIRMWARE_DIR) && cargo fmt --check; fi
	$(FIRMWARE_RUN) thumbv6m-none-eabi --features critical-section
	$(FIRMWARE_RUN) thumbv6m-none-eabi --features single-core
	$(FIRMWARE_RUN) thumbv7m-none-eabi --features single-core
	$(FIRMWARE_RUN) thumbv7em-none-eabihf --features single-core
	$(FIRMWARE_RUN) thumbv7m-none-eabi
	cd $(FIRMWARE_DIR) && cargo build --bins --target riscv32imc-unknown-none-elf --features critical-section
	@if command -v qemu-system-riscv32 >/dev/null 2>&1; then \
		$(FIRMWARE_RUN) riscv32imc-unknown-none-elf --features critical-section && \
		$(FIRMWARE_RUN) riscv32imc-unknown-none-elf --features single-core; \
	else \
		echo "riscv32imc: built; not run (no qemu-system-riscv32: 'make firmware-riscv' installs it)"; \
	fi
	@echo "make firmware: all boards passed"

## Installs what the firmware runs need, only if missing: qemu-system-arm (Debian) and the
## rustup targets.
firmware-setup:
	@if ! command -v qemu-system-arm >/dev/null 2>&1; then \
		$(FIRMWARE_APT) update -qq && \
		$(FIRMWARE_APT) install -y -qq --no-install-recommends qemu-system-arm; \
	fi
	@installed="$$(rustup target list --installed)"; \
	for t in $(FIRMWARE_TARGETS); do \
		grep -qx "$$t" <<<"$$installed" || rustup target add "$$t"; \
	done

## Runs the RV32IMC firmware on QEMU's virt machine (installs qemu-system-misc if missing).
firmware-riscv: firmware-setup
	@if ! command -v qemu-system-riscv32 >/dev/null 2>&1; then \
		$(FIRMWARE_APT) update -qq && \
		$(FIRMWARE_APT) install -y -qq --no-install-recommends qemu-system-misc; \
	fi
	$(FIRMWARE_RUN) riscv32imc-unknown-none-elf --features critical-section
	$(FIRMWARE_RUN) riscv32imc-unknown-none-elf --features single-core

## Flash and RAM of one breaker (64-outcome window) + one token bucket, per target
## (release, opt-level "s").
size: firmware-setup
	python3 $(FIRMWARE_DIR)/scripts/size.py
