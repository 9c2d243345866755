#!/usr/bin/env bash
# The C and C++ tests of fastbreaker's C ABI, against the committed header and the libraries
# staged by `make ffi-lib` (run through `make ffi-test`, which sets the variables below).
#
#   - every ffi-c/tests/c/test_*.c with gcc -std=c11 -Wall -Wextra -Werror -pedantic, linked
#     statically (libfastbreaker.a) and dynamically (libfastbreaker.so), and again statically
#     under AddressSanitizer + UndefinedBehaviorSanitizer (with LeakSanitizer); among them
#     test_scenarios.c, which runs every tests/scenarios/*.scn through the header, and the
#     host-shared region tests: test_region.c (one process) and test_region_procs.c (fork:
#     children hammering one region breaker, bucket and bulkhead; a creation race; a child
#     SIGKILLed holding bulkhead permits), each in its own mkdtemp directory under $TMPDIR;
#   - the threaded programs (test_threads.c, test_listener.c, test_keyed.c) under
#     ThreadSanitizer (the C side is instrumented; the library's own atomics are checked by loom
#     and the Rust stress tests);
#   - test_limits.c with -Wformat=2 -Wformat-signedness (FB_SECOND & co. print with PRIu64);
#   - the header as C99 and as C++17 (g++ -std=c++17 -Wall -Wextra -Werror -pedantic), and
#     ffi-c/tests/cpp/header_test.cpp using it;
#   - ffi-c/examples/quickstart.c (the README's C example), static and dynamic, and
#     ffi-c/examples/region.c (host-shared state across forked workers) and
#     ffi-c/examples/keyed.c (the README's keyed rate limits example);
#   - `make install` into a scratch prefix, then the quick start built through pkg-config
#     (fastbreaker and fastbreaker-static) and, if cmake is installed, find_package().
set -euo pipefail
cd "$(dirname "$0")/../.."

FFI_CC=${FFI_CC:-gcc}
FFI_CXX=${FFI_CXX:-g++}
FFI_OUT=${FFI_OUT:-target/ffi}
FFI_LIB=${FFI_LIB:-$FFI_OUT/lib}
FFI_STATIC_DEPS=${FFI_STATIC_DEPS:--lgcc_s -lutil -lrt -lpthread -lm -ldl}
MAKE=${MAKE:-make}

BIN="$FFI_OUT/tests"
rm -rf "$BIN"
mkdir -p "$BIN"
LIBDIR_ABS=$(cd "$FFI_LIB" && pwd)

CFLAGS=(-std=c11 -Wall -Wextra -Werror -pedantic -O1 -g -Iffi-c/include)
CXXFLAGS=(-std=c++17 -Wall -Wextra -Werror -pedantic -O1 -g -Iffi-c/include)
SANITIZE=(-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
read -r -a DEPS <<<"$FFI_STATIC_DEPS"
STATIC=("$FFI_LIB/libfastbreaker.a" "${DEPS[@]}")
DYNAMIC=(-L"$FFI_LIB" -lfastbreaker -Wl,-rpath,"$LIBDIR_ABS")
# Leaks are errors; a UB report stops the program with a stack trace.
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1

passed=0
failed=0
failures=()

# case_ NAME COMMAND...: runs one build-and-run step in a subshell with errexit in force (it
# would be ignored under `if`), logging to $BIN/NAME.log.
case_() {
    local name=$1 rc
    shift
    mkdir -p "$(dirname "$BIN/$name.log")"
    set +e
    (
        set -e
        "$@"
    ) >"$BIN/$name.log" 2>&1
    rc=$?
    set -e
    if ((rc == 0)); then
        passed=$((passed + 1))
        printf 'ok    %-28s %s\n' "$name" "$(tail -n 1 "$BIN/$name.log")"
    else
        failed=$((failed + 1))
        failures+=("$name")
        printf 'FAIL  %s\n' "$name"
        sed 's/^/      /' "$BIN/$name.log"
    fi
}

# c_program OUT SRC LINK [FLAGS...]: compiles, links and runs one C program.
c_program() {
    local out=$1 src=$2 link=$3
    shift 3
    "$FFI_CC" "${CFLAGS[@]}" "$@" "$src" -o "$out" $link
    "$out"
}

static_link="${STATIC[*]}"
dynamic_link="${DYNAMIC[*]}"

for src in ffi-c/tests/c/test_*.c; do
    t=$(basename "$src" .c)
    case_ "$t/static" c_program "$BIN/$t-static" "$src" "$static_link"
    case_ "$t/dynamic" c_program "$BIN/$t-dynamic" "$src" "$dynamic_link"
    case_ "$t/asan+ubsan" c_program "$BIN/$t-asan" "$src" "$static_link" "${SANITIZE[@]}"
done

for t in test_threads test_listener test_keyed; do
    case_ "$t/tsan" c_program "$BIN/$t-tsan" "ffi-c/tests/c/$t.c" "$static_link" \
        -fsanitize=thread
done
case_ "test_limits/wformat" c_program "$BIN/test_limits-wformat" ffi-c/tests/c/test_limits.c \
    "$static_link" -Wformat=2 -Wformat-signedness

# The dynamic programs really load the shared library, by its SONAME.
needs_shared() {
    readelf -d "$BIN/test_breaker-dynamic" | grep -E 'NEEDED.*libfastbreaker\.so\.' &&
        ldd "$BIN/test_breaker-dynamic" | grep -F "$LIBDIR_ABS/libfastbreaker.so."
}
case_ "dynamic/needs-libfastbreaker.so" needs_shared

header_c99() {
    printf '#include "fastbreaker.h"\nint main(void) { return fb_version() == 0; }\n' >"$BIN/c99.c"
    "$FFI_CC" -std=c99 -Wall -Wextra -Werror -pedantic -Wstrict-prototypes -Iffi-c/include \
        -fsyntax-only "$BIN/c99.c"
    echo "header compiles as C99"
}
case_ "header/c99" header_c99

cpp_program() {
    local out=$1 link=$2
    shift 2
    "$FFI_CXX" "${CXXFLAGS[@]}" "$@" ffi-c/tests/cpp/header_test.cpp -o "$out" $link
    "$out"
}
case_ "header/c++17-static" cpp_program "$BIN/cpp-static" "$static_link"
case_ "header/c++17-dynamic" cpp_program "$BIN/cpp-dynamic" "$dynamic_link"
case_ "header/c++17-asan+ubsan" cpp_program "$BIN/cpp-asan" "$static_link" "${SANITIZE[@]}"

quickstart() {
    c_program "$BIN/quickstart-$1" ffi-c/examples/quickstart.c "$2" >"$BIN/quickstart-$1.out"
    cat "$BIN/quickstart-$1.out"
    grep -q "call 3: failed, breaker open" "$BIN/quickstart-$1.out"
    grep -q "call 4: rejected, retry in 5.0 s" "$BIN/quickstart-$1.out"
}
case_ "examples/quickstart-static" quickstart static "$static_link"
case_ "examples/quickstart-dynamic" quickstart dynamic "$dynamic_link"

keyed_example() {
    c_program "$BIN/keyed-$1" ffi-c/examples/keyed.c "$2" >"$BIN/keyed-$1.out"
    cat "$BIN/keyed-$1.out"
    test "$(grep -c "10.0.0.1: allowed" "$BIN/keyed-$1.out")" = 2
    grep -q "10.0.0.1: 429, retry in 1.0 s" "$BIN/keyed-$1.out"
    grep -q "10.0.0.2: allowed" "$BIN/keyed-$1.out"
    grep -q "2 clients tracked now" "$BIN/keyed-$1.out"
}
case_ "examples/keyed-static" keyed_example static "$static_link"
case_ "examples/keyed-dynamic" keyed_example dynamic "$dynamic_link"

# The region example, on a region of its own name (in /dev/shm, unlinked by the example).
region_example() {
    "$FFI_CC" "${CFLAGS[@]}" ffi-c/examples/region.c -o "$BIN/region-$1" $2
    "$BIN/region-$1" "fb-example-$1-$$" >"$BIN/region-$1.out"
    cat "$BIN/region-$1.out"
    grep -q "worker 1: payments rejected, breaker open" "$BIN/region-$1.out"
    grep -q "worker 0: github call allowed" "$BIN/region-$1.out"
    test ! -e "/dev/shm/fastbreaker.fb-example-$1-$$"
}
case_ "examples/region-static" region_example static "$static_link"
case_ "examples/region-dynamic" region_example dynamic "$dynamic_link"

# make install into a scratch prefix, then build the quick start as a user would.
case $FFI_OUT in
/*) PREFIX_DIR="$FFI_OUT/prefix" ;;
*) PREFIX_DIR="$(pwd)/$FFI_OUT/prefix" ;;
esac
install_tree() {
    rm -rf "$PREFIX_DIR"
    "$MAKE" --no-print-directory -f ffi-c/ffi.mk install PREFIX="$PREFIX_DIR" CARGO="${CARGO:-cargo}"
    for f in include/fastbreaker.h lib/libfastbreaker.a lib/libfastbreaker.so \
        lib/pkgconfig/fastbreaker.pc lib/pkgconfig/fastbreaker-static.pc \
        lib/cmake/fastbreaker/fastbreakerConfig.cmake \
        lib/cmake/fastbreaker/fastbreakerConfigVersion.cmake; do
        test -e "$PREFIX_DIR/$f" || { echo "missing $f"; return 1; }
    done
    cmp ffi-c/include/fastbreaker.h "$PREFIX_DIR/include/fastbreaker.h"
    echo "installed under $PREFIX_DIR"
}
case_ "install/tree" install_tree

pkg_config_build() {
    if ! command -v pkg-config >/dev/null; then
        echo "skipped: no pkg-config"
        return 0
    fi
    export PKG_CONFIG_PATH="$PREFIX_DIR/lib/pkgconfig"
    test "$(pkg-config --modversion fastbreaker)" = "$(sed -n 's/^version = "\([^"]*\)".*/\1/p' Cargo.toml | head -n 1)"
    # shellcheck disable=SC2046
    "$FFI_CC" "${CFLAGS[@]}" $(pkg-config --cflags fastbreaker) ffi-c/examples/quickstart.c \
        -o "$BIN/pc-shared" $(pkg-config --libs fastbreaker)
    LD_LIBRARY_PATH="$PREFIX_DIR/lib" "$BIN/pc-shared" | grep -q "breaker open"
    # shellcheck disable=SC2046
    "$FFI_CC" "${CFLAGS[@]}" $(pkg-config --cflags fastbreaker-static) \
        ffi-c/examples/quickstart.c -o "$BIN/pc-static" $(pkg-config --libs fastbreaker-static)
    "$BIN/pc-static" | grep -q "breaker open"
    if ldd "$BIN/pc-static" | grep -q libfastbreaker; then
        echo "pc-static loads libfastbreaker.so"
        return 1
    fi
    echo "pkg-config: shared and static builds run"
}
case_ "install/pkg-config" pkg_config_build

cmake_build() {
    if ! command -v cmake >/dev/null; then
        echo "skipped: no cmake"
        return 0
    fi
    local dir="$BIN/cmake"
    mkdir -p "$dir/src"
    cp ffi-c/examples/quickstart.c "$dir/src/"
    cat >"$dir/src/CMakeLists.txt" <<'CMAKE'
cmake_minimum_required(VERSION 3.13)
project(quickstart C)
find_package(fastbreaker 0.1 CONFIG REQUIRED)
add_executable(quickstart_shared quickstart.c)
target_link_libraries(quickstart_shared PRIVATE fastbreaker::fastbreaker)
add_executable(quickstart_static quickstart.c)
target_link_libraries(quickstart_static PRIVATE fastbreaker::fastbreaker_static)
CMAKE
    cmake -S "$dir/src" -B "$dir/build" -DCMAKE_PREFIX_PATH="$PREFIX_DIR" -DCMAKE_C_COMPILER="$FFI_CC"
    cmake --build "$dir/build"
    "$dir/build/quickstart_shared" | grep -q "breaker open"
    "$dir/build/quickstart_static" | grep -q "breaker open"
    echo "cmake: find_package(fastbreaker) shared and static builds run"
}
case_ "install/cmake" cmake_build

echo
if ((failed > 0)); then
    echo "failed: ${failures[*]}"
fi
echo "ffi-test: $passed passed, $failed failed"
((failed == 0))
