//! Rust-side tests of the C ABI: the header's freshness and version macros, the storage
//! constants, the panic boundary and the last-error messages. The C programs under
//! `ffi-c/tests/c/` test the ABI from C (`make ffi-test`).

use std::ffi::CStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::ptr;

use crate::error::{guard, last_error};
use crate::handle::{self, BreakerKind};
use crate::*;

fn ffi_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `FFI_CBINDGEN_VERSION := x.y.z` from ffi-c/ffi.mk: the one place the pin is written.
fn pinned_cbindgen_version() -> String {
    let mk = std::fs::read_to_string(ffi_dir().join("ffi.mk")).expect("read ffi-c/ffi.mk");
    mk.lines()
        .find_map(|l| l.strip_prefix("FFI_CBINDGEN_VERSION := "))
        .expect("ffi.mk pins FFI_CBINDGEN_VERSION")
        .trim()
        .to_string()
}

/// The pinned cbindgen: `$FASTBREAKER_CBINDGEN`, else `<repo>/target/tools/bin/cbindgen`
/// (where `make ffi-header` / `make ffi-test` install it).
fn cbindgen() -> Result<PathBuf, String> {
    let bin = std::env::var_os("FASTBREAKER_CBINDGEN")
        .map(PathBuf::from)
        .unwrap_or_else(|| ffi_dir().join("../target/tools/bin/cbindgen"));
    let out = Command::new(&bin)
        .arg("--version")
        .output()
        .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
    let found = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let want = format!("cbindgen {}", pinned_cbindgen_version());
    if found != want {
        return Err(format!(
            "{} is `{found}`, not the pinned `{want}`",
            bin.display()
        ));
    }
    Ok(bin)
}

/// Regenerates the header into a temporary file and compares it with the committed one;
/// with FASTBREAKER_BLESS=1 it rewrites the committed header instead.
///
/// Without the pinned cbindgen installed, the test is skipped (plain `cargo test`), unless
/// FASTBREAKER_REQUIRE_CBINDGEN=1 (set by `make ffi-test`, which installs it first).
#[test]
fn header_is_fresh() {
    let bless = std::env::var("FASTBREAKER_BLESS").is_ok_and(|v| v == "1");
    let required = bless || std::env::var_os("FASTBREAKER_REQUIRE_CBINDGEN").is_some();
    let bin = match cbindgen() {
        Ok(bin) => bin,
        Err(e) if required => panic!("{e}; run `make ffi-header`, which installs it"),
        Err(e) => {
            eprintln!("header_is_fresh skipped: {e} (make ffi-test installs it)");
            return;
        }
    };
    let committed = ffi_dir().join("include/fastbreaker.h");
    let fresh = std::env::temp_dir().join(format!("fastbreaker-{}.h", std::process::id()));
    let status = Command::new(bin)
        .arg("--quiet")
        .arg("--config")
        .arg(ffi_dir().join("cbindgen.toml"))
        .arg("--output")
        .arg(&fresh)
        .arg(ffi_dir().join("src/lib.rs"))
        .status()
        .expect("run cbindgen");
    assert!(status.success(), "cbindgen failed: {status}");
    let new = std::fs::read_to_string(&fresh).expect("read the regenerated header");
    let _ = std::fs::remove_file(&fresh);
    let old = std::fs::read_to_string(&committed).unwrap_or_default();
    if new == old {
        return;
    }
    if bless {
        std::fs::write(&committed, new).expect("write include/fastbreaker.h");
        eprintln!("rewrote {}", committed.display());
        return;
    }
    let line = old
        .lines()
        .zip(new.lines())
        .position(|(a, b)| a != b)
        .unwrap_or_else(|| old.lines().count().min(new.lines().count()));
    panic!(
        "ffi-c/include/fastbreaker.h is stale (first difference at line {}): run `make \
         ffi-header` (or FASTBREAKER_BLESS=1 cargo test -p fastbreaker-ffi) and commit it",
        line + 1
    );
}

/// The header's version macros are the crate's version (Cargo.toml).
#[test]
fn version_macros_match_cargo_toml() {
    assert_eq!(
        FB_VERSION_MAJOR.to_string(),
        env!("CARGO_PKG_VERSION_MAJOR")
    );
    assert_eq!(
        FB_VERSION_MINOR.to_string(),
        env!("CARGO_PKG_VERSION_MINOR")
    );
    assert_eq!(
        FB_VERSION_PATCH.to_string(),
        env!("CARGO_PKG_VERSION_PATCH")
    );
    let header = std::fs::read_to_string(ffi_dir().join("include/fastbreaker.h")).unwrap();
    for (name, value) in [
        ("FB_VERSION_MAJOR", env!("CARGO_PKG_VERSION_MAJOR")),
        ("FB_VERSION_MINOR", env!("CARGO_PKG_VERSION_MINOR")),
        ("FB_VERSION_PATCH", env!("CARGO_PKG_VERSION_PATCH")),
    ] {
        let line = format!("#define {name} {value}\n");
        assert!(header.contains(&line), "header lacks `{}`", line.trim());
    }
    // SAFETY: fb_version returns a static NUL-terminated string.
    let v = unsafe { CStr::from_ptr(fb_version()) };
    assert_eq!(v.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
}

/// The header's storage constants are the sizes and alignments of the handle types.
#[test]
fn storage_constants_match_the_types() {
    let (size, align) = handle::breaker_storage_max();
    assert_eq!(
        (FB_BREAKER_STORAGE_SIZE, FB_BREAKER_STORAGE_ALIGN),
        (size, align)
    );
    assert_eq!(
        (FB_BUCKET_STORAGE_SIZE, FB_BUCKET_STORAGE_ALIGN),
        handle::bucket_storage()
    );
    assert_eq!(
        (FB_BULKHEAD_STORAGE_SIZE, FB_BULKHEAD_STORAGE_ALIGN),
        handle::bulkhead_storage()
    );
    // Every breaker type fits the advertised storage.
    let kinds = (1..=FB_MAX_WINDOW_SIZE)
        .filter_map(BreakerKind::count)
        .chain((1..=FB_MAX_WINDOW_BUCKETS).filter_map(BreakerKind::time));
    for kind in kinds {
        assert!(kind.storage_size() <= FB_BREAKER_STORAGE_SIZE, "{kind:?}");
        assert!(kind.storage_align() <= FB_BREAKER_STORAGE_ALIGN, "{kind:?}");
    }
    assert_eq!(BreakerKind::count(FB_MAX_WINDOW_SIZE + 1), None);
    assert_eq!(BreakerKind::time(FB_MAX_WINDOW_BUCKETS + 1), None);
}

#[test]
fn panics_become_fb_err_panic() {
    let code = guard("fb_test", || panic!("boom"));
    assert_eq!(code, FB_ERR_PANIC);
    assert_eq!(last_error(), "fb_test: panic: boom");
}

#[test]
fn bad_config_names_field_and_value() {
    let mut config = fb_breaker_config_default();
    config.failure_rate_threshold = 120;
    let mut b = ptr::null_mut();
    // SAFETY: valid pointers to locals.
    let code = unsafe { fb_breaker_new(&config, &mut b) };
    assert_eq!(code, FB_ERR_INVALID_CONFIG);
    assert!(b.is_null());
    assert_eq!(
        last_error(),
        "fb_breaker_new: invalid failure_rate_threshold = 120: must be a percentage in 1..=100"
    );
    // 300 does not fit the core's u8: the same message.
    config.failure_rate_threshold = 300;
    // SAFETY: valid pointers to locals.
    let code = unsafe { fb_breaker_new(&config, &mut b) };
    assert_eq!(code, FB_ERR_INVALID_CONFIG);
    assert!(last_error().contains("failure_rate_threshold = 300"));
}

#[test]
fn breaker_round_trip_in_each_window_type() {
    for (kind, size, buckets) in [
        (FB_WINDOW_COUNT, 10, 0),
        (FB_WINDOW_COUNT, 200, 0),
        (FB_WINDOW_COUNT, 0, 0),
        (FB_WINDOW_TIME, 0, 1),
        (FB_WINDOW_TIME, 0, 64),
    ] {
        let config = fb_breaker_config {
            window_kind: kind,
            window_size: size,
            window_buckets: buckets,
            failure_threshold: 2,
            wait_duration_ns: FB_SECOND,
            ..fb_breaker_config_default()
        };
        let mut b = ptr::null_mut();
        let mut p = fb_permit {
            reason: 9,
            kind: 9,
            retry_after_ns: 9,
            generation: 9,
            started_at: 9,
        };
        let mut state = 99;
        // SAFETY: valid pointers to locals; `b` is a live handle until freed at the end.
        unsafe {
            assert_eq!(fb_breaker_new(&config, &mut b), FB_OK);
            for _ in 0..2 {
                assert_eq!(fb_breaker_acquire_at(b, &mut p, 10), FB_OK);
                assert_eq!(p.reason, FB_REJECT_NONE);
                assert_eq!(fb_breaker_record_at(b, p, FB_OUTCOME_FAILURE, 1, 10), FB_OK);
            }
            assert_eq!(fb_breaker_state(b, &mut state), FB_OK);
            assert_eq!(state, FB_STATE_OPEN, "{kind} {size} {buckets}");
            assert_eq!(fb_breaker_acquire_at(b, &mut p, 10), FB_REJECTED);
            assert_eq!((p.reason, p.retry_after_ns), (FB_REJECT_OPEN, FB_SECOND));
            fb_breaker_free(b);
        }
    }
}

#[test]
fn default_config_mirrors_the_core() {
    let c = fb_breaker_config_default();
    let (kind, core) = c.to_core().unwrap();
    assert_eq!(kind, BreakerKind::count(FB_MAX_WINDOW_SIZE).unwrap());
    let expected = core_fb::BreakerConfig {
        window_size: Some(1024),
        ..core_fb::BreakerConfig::new()
    };
    assert_eq!(core, expected);
    assert_eq!(c, crate::breaker_types::FALLBACK_CONFIG);
}

/// The README's C example is the one `make ffi-test` compiles and runs.
#[test]
fn readme_c_example_is_the_tested_quickstart() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).expect("README.md");
    let quickstart = std::fs::read_to_string(format!("{root}/ffi-c/examples/quickstart.c"))
        .expect("quickstart.c");
    let start = readme.find("```c\n").expect("a ```c block in the README") + "```c\n".len();
    let end = start + readme[start..].find("```").expect("closing fence");
    assert_eq!(
        &readme[start..end],
        quickstart,
        "paste ffi-c/examples/quickstart.c into the README"
    );
}
