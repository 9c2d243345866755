# ffi-c/ffi.mk: make targets of the C ABI (crate fastbreaker-ffi), included by the top-level
# Makefile. Paths are relative to the repository root.
#
#   make ffi-test      everything the C ABI is tested with (see below)
#   make ffi-header    regenerate ffi-c/include/fastbreaker.h with the pinned cbindgen
#                      (a dev-dependency of ffi-c, `=` its version: nothing to install)
#   make install       PREFIX=/usr/local: header, libfastbreaker.{a,so}, pkg-config, CMake
#   make ffi-bench     acquire+record through the C ABI, in ns per pair

CARGO ?= cargo
FFI_CC ?= gcc
FFI_CXX ?= g++
PREFIX ?= /usr/local
DESTDIR ?=
FFI_LIBDIR ?= $(PREFIX)/lib
FFI_INCLUDEDIR ?= $(PREFIX)/include

FFI_TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
# Where make stages the libraries (with their SONAME links) and builds the C tests.
FFI_OUT := $(FFI_TARGET_DIR)/ffi
FFI_LIB := $(FFI_OUT)/lib

FFI_VERSION := $(shell sed -n 's/^version = "\([^"]*\)".*/\1/p' Cargo.toml | head -n 1)
FFI_MAJOR := $(word 1,$(subst ., ,$(FFI_VERSION)))
FFI_MINOR := $(word 2,$(subst ., ,$(FFI_VERSION)))
# Matches ffi-c/build.rs: libfastbreaker.so.0.MINOR while the major version is 0.
FFI_SOVERSION := $(if $(filter 0,$(FFI_MAJOR)),0.$(FFI_MINOR),$(FFI_MAJOR))
# What a program linked with libfastbreaker.a needs besides (rustc --print native-static-libs).
FFI_STATIC_DEPS := -lgcc_s -lutil -lrt -lpthread -lm -ldl

.PHONY: ffi-test ffi-header ffi-lib ffi-bench install

## Regenerates ffi-c/include/fastbreaker.h (through the header test, with FASTBREAKER_BLESS=1);
## plain `cargo test` fails while the committed header differs from it.
ffi-header:
	FASTBREAKER_BLESS=1 $(CARGO) test -p fastbreaker-ffi --lib -- tests::header_is_fresh

## libfastbreaker.a and libfastbreaker.so (release), staged in target/ffi/lib with the SONAME links.
ffi-lib:
	$(CARGO) build -p fastbreaker-ffi --release
	@mkdir -p "$(FFI_LIB)"
	@cp -f "$(FFI_TARGET_DIR)/release/libfastbreaker.a" "$(FFI_LIB)/libfastbreaker.a"
	@cp -f "$(FFI_TARGET_DIR)/release/libfastbreaker.so" "$(FFI_LIB)/libfastbreaker.so.$(FFI_VERSION)"
	@ln -sf "libfastbreaker.so.$(FFI_VERSION)" "$(FFI_LIB)/libfastbreaker.so.$(FFI_SOVERSION)"
	@ln -sf "libfastbreaker.so.$(FFI_SOVERSION)" "$(FFI_LIB)/libfastbreaker.so"

## Rust tests of the ABI (header fresh, version macros, storage constants), then the C and C++
## programs against the committed header: static, dynamic, C++17, ASan+UBSan, ThreadSanitizer
## on the threaded programs, the shared scenarios (tests/scenarios/*.scn), make install.
ffi-test: ffi-lib
	$(CARGO) test -p fastbreaker-ffi
	FFI_CC="$(FFI_CC)" FFI_CXX="$(FFI_CXX)" FFI_OUT="$(FFI_OUT)" FFI_LIB="$(FFI_LIB)" \
		FFI_STATIC_DEPS="$(FFI_STATIC_DEPS)" MAKE="$(MAKE)" CARGO="$(CARGO)" \
		bash ffi-c/tests/run.sh

## Installs the header, both libraries, fastbreaker.pc (+ fastbreaker-static.pc) and the CMake
## package (find_package(fastbreaker)) under $(DESTDIR)$(PREFIX).
install: ffi-lib
	install -d "$(DESTDIR)$(FFI_INCLUDEDIR)" "$(DESTDIR)$(FFI_LIBDIR)/pkgconfig" \
		"$(DESTDIR)$(FFI_LIBDIR)/cmake/fastbreaker"
	install -m 644 ffi-c/include/fastbreaker.h "$(DESTDIR)$(FFI_INCLUDEDIR)/fastbreaker.h"
	install -m 644 "$(FFI_LIB)/libfastbreaker.a" "$(DESTDIR)$(FFI_LIBDIR)/libfastbreaker.a"
	install -m 755 "$(FFI_LIB)/libfastbreaker.so.$(FFI_VERSION)" \
		"$(DESTDIR)$(FFI_LIBDIR)/libfastbreaker.so.$(FFI_VERSION)"
	ln -sf "libfastbreaker.so.$(FFI_VERSION)" "$(DESTDIR)$(FFI_LIBDIR)/libfastbreaker.so.$(FFI_SOVERSION)"
	ln -sf "libfastbreaker.so.$(FFI_SOVERSION)" "$(DESTDIR)$(FFI_LIBDIR)/libfastbreaker.so"
	for f in fastbreaker.pc:pkgconfig/fastbreaker.pc \
		fastbreaker-static.pc:pkgconfig/fastbreaker-static.pc \
		cmake/fastbreakerConfig.cmake:cmake/fastbreaker/fastbreakerConfig.cmake \
		cmake/fastbreakerConfigVersion.cmake:cmake/fastbreaker/fastbreakerConfigVersion.cmake; do \
		sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(FFI_LIBDIR)|g' \
			-e 's|@INCLUDEDIR@|$(FFI_INCLUDEDIR)|g' -e 's|@VERSION@|$(FFI_VERSION)|g' \
			-e 's|@MAJOR@|$(FFI_MAJOR)|g' -e 's|@MINOR@|$(FFI_MINOR)|g' \
			-e 's|@SOVERSION@|$(FFI_SOVERSION)|g' -e 's|@STATIC_DEPS@|$(FFI_STATIC_DEPS)|g' \
			"ffi-c/pkg/$${f%%:*}.in" > "$(DESTDIR)$(FFI_LIBDIR)/$${f#*:}"; \
	done
	@echo "installed fastbreaker $(FFI_VERSION) under $(DESTDIR)$(PREFIX)"

## acquire_at+record_at through the C ABI (static library, -O2), in ns per pair.
ffi-bench: ffi-lib
	@mkdir -p "$(FFI_OUT)/bench"
	$(FFI_CC) -std=c11 -O2 -Wall -Wextra -Werror -pedantic -Iffi-c/include ffi-c/bench/bench.c \
		-o "$(FFI_OUT)/bench/bench" "$(FFI_LIB)/libfastbreaker.a" $(FFI_STATIC_DEPS)
	"$(FFI_OUT)/bench/bench"
