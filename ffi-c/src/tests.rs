//! Rust-side tests of the C ABI: the header's freshness and version macros, the storage
//! constants, the panic boundary and the last-error messages. The C programs under
//! `ffi-c/tests/c/` test the ABI from C (`make ffi-test`).

use std::ffi::CStr;
use std::path::Path;
use std::ptr;

use crate::error::{guard, last_error};
use crate::handle;
use crate::*;

fn ffi_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The header as the pinned cbindgen (a dev-dependency, `=` its version) writes it from
/// `src/lib.rs` and `cbindgen.toml`, with each `uint64_t` constant written `UINT64_C(...)`
/// (cbindgen writes `...ull`, an `unsigned long long` that `PRIu64` does not print under
/// `-Wformat` where `uint64_t` is `unsigned long`).
pub(crate) fn generate_header() -> String {
    let config = cbindgen::Config::from_file(ffi_dir().join("cbindgen.toml"))
        .expect("read ffi-c/cbindgen.toml");
    let mut out = Vec::new();
    cbindgen::Builder::new()
        .with_config(config)
        .with_src(ffi_dir().join("src/lib.rs"))
        .generate()
        .expect("cbindgen generates the header")
        .write(&mut out);
    let text = String::from_utf8(out).expect("the header is UTF-8");
    let mut header = String::with_capacity(text.len() + 256);
    for line in text.lines() {
        header.push_str(&uint64_c(line));
        header.push('\n');
    }
    header
}

/// `#define FB_X 123ull` -> `#define FB_X UINT64_C(123)`; other lines unchanged.
fn uint64_c(line: &str) -> String {
    let Some(rest) = line.strip_prefix("#define FB_") else {
        return line.to_string();
    };
    let Some((name, value)) = rest.split_once(' ') else {
        return line.to_string();
    };
    match value.strip_suffix("ull") {
        Some(digits) if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
            format!("#define FB_{name} UINT64_C({digits})")
        }
        _ => line.to_string(),
    }
}

/// Regenerates the header with the pinned cbindgen and compares it with the committed one;
/// with FASTBREAKER_BLESS=1 it rewrites the committed header instead (`make ffi-header`).
/// Runs under plain `cargo test`: a stale header always fails.
#[test]
fn header_is_fresh() {
    let bless = std::env::var("FASTBREAKER_BLESS").is_ok_and(|v| v == "1");
    let committed = ffi_dir().join("include/fastbreaker.h");
    let new = generate_header();
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
         ffi-header` (or FASTBREAKER_BLESS=1 cargo test -p fastbreaker-ffi header) and commit it",
        line + 1
    );
}

/// The generated header has what `header_is_fresh` compares: UINT64_C time constants and
/// the core's limits, so a stale committed header (say, an old limit) cannot match it.
#[test]
fn the_generated_header_has_the_core_limits() {
    let fresh = generate_header();
    assert!(fresh.contains("#define FB_SECOND UINT64_C(1000000000)\n"));
    assert!(fresh.contains("#define FB_MAX_WAIT_DURATION_NS UINT64_C(18014398509481984)\n"));
    assert!(fresh.contains("#define FB_MAX_FAILURE_THRESHOLD 16777215\n"));
    assert!(fresh.contains("#define FB_ERR_PERMIT_USED -7\n"));
    assert_eq!(uint64_c("#define FB_X 12ull"), "#define FB_X UINT64_C(12)");
    assert_eq!(uint64_c("#define FB_OK 0"), "#define FB_OK 0");
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

fn new_breaker(config: &fb_breaker_config) -> *mut fb_breaker {
    let mut b = ptr::null_mut();
    // SAFETY: valid pointers to locals.
    let code = unsafe { fb_breaker_new(config, &mut b) };
    assert_eq!(code, FB_OK, "{}", last_error());
    b
}

fn blank_permit() -> fb_permit {
    fb_permit {
        reason: 9,
        kind: 9,
        used: true,
        retry_after_ns: 9,
        generation: 9,
        started_at: 9,
    }
}

#[test]
fn breaker_round_trip_in_each_window_type() {
    for (kind, size, buckets) in [
        (FB_WINDOW_COUNT, 10, 0),
        (FB_WINDOW_COUNT, 1024, 0),
        (FB_WINDOW_TIME, 0, 1),
        (FB_WINDOW_TIME, 0, 64),
    ] {
        let mut config = fb_breaker_config {
            window_kind: kind,
            failure_threshold: 2,
            wait_duration_ns: FB_SECOND,
            ..fb_breaker_config_default()
        };
        if size != 0 {
            config.window_size = size;
        }
        if buckets != 0 {
            config.window_buckets = buckets;
        }
        let b = new_breaker(&config);
        let mut p = blank_permit();
        let mut state = 99;
        // SAFETY: valid pointers to locals; `b` is a live handle until freed at the end.
        unsafe {
            for _ in 0..2 {
                assert_eq!(fb_breaker_acquire_at(b, &mut p, 10), FB_OK);
                assert_eq!((p.reason, p.used), (FB_REJECT_NONE, false));
                assert_eq!(
                    fb_breaker_record_at(b, &mut p, FB_OUTCOME_FAILURE, 1, 10),
                    FB_OK
                );
            }
            assert_eq!(fb_breaker_state(b, &mut state), FB_OK);
            assert_eq!(state, FB_STATE_OPEN, "{kind} {size} {buckets}");
            assert_eq!(fb_breaker_acquire_at(b, &mut p, 10), FB_REJECTED);
            assert_eq!((p.reason, p.retry_after_ns), (FB_REJECT_OPEN, FB_SECOND));
            let mut back = fb_breaker_config_default();
            assert_eq!(fb_breaker_get_config(b, &mut back), FB_OK);
            assert_eq!(back, config, "read back as given");
            fb_breaker_free(b);
        }
    }
}

/// A second record of one permit is refused and changes nothing: without the `used` flag,
/// a half-open breaker needing two successes would close on one probe recorded twice.
#[test]
fn a_permit_counts_once() {
    let config = fb_breaker_config {
        failure_threshold: 1,
        wait_duration_ns: 100,
        success_threshold: 2,
        half_open_max_calls: 2,
        ..fb_breaker_config_default()
    };
    let b = new_breaker(&config);
    let mut p = blank_permit();
    let mut m = std::mem::MaybeUninit::<fb_breaker_stats>::uninit();
    // SAFETY: valid pointers to locals; `b` is live until freed.
    unsafe {
        assert_eq!(fb_breaker_trip_at(b, 0), FB_OK);
        assert_eq!(fb_breaker_acquire_at(b, &mut p, 100), FB_OK);
        assert_eq!(p.kind, FB_PERMIT_PROBE);
        assert_eq!(
            fb_breaker_record_at(b, &mut p, FB_OUTCOME_SUCCESS, 0, 101),
            FB_OK
        );
        assert!(p.used);
        assert_eq!(
            fb_breaker_record_at(b, &mut p, FB_OUTCOME_SUCCESS, 0, 102),
            FB_ERR_PERMIT_USED
        );
        assert!(
            last_error().contains("already recorded"),
            "{}",
            last_error()
        );
        assert_eq!(fb_breaker_metrics_at(b, m.as_mut_ptr(), 103), FB_OK);
        let m = m.assume_init();
        assert_eq!(m.state, FB_STATE_HALF_OPEN, "one success of two");
        assert_eq!(m.succeeded, 1);
        fb_breaker_free(b);
    }
}

/// The C value of a field narrower in the core is the one the message names, and the
/// message is the core's.
#[test]
fn bad_config_names_the_value_given() {
    for (set, expect) in [
        (
            (|c: &mut fb_breaker_config| c.window_size = 70_000) as fn(&mut fb_breaker_config),
            "window_size = 70000: must be between 1 and the window's capacity",
        ),
        (|c| c.window_size = 0, "window_size = 0"),
        (
            |c| c.success_threshold = 1 << 20,
            "success_threshold = 1048576",
        ),
        (|c| c.jitter_permille = 65_536, "jitter_permille = 65536"),
        (
            |c| c.failure_threshold = FB_MAX_FAILURE_THRESHOLD + 1,
            "failure_threshold = 16777216",
        ),
        (
            |c| c.wait_duration_ns = FB_MAX_WAIT_DURATION_NS + 1,
            "wait_duration_ns = 18014398509481985",
        ),
    ] {
        let mut config = fb_breaker_config_default();
        set(&mut config);
        let mut b = ptr::null_mut();
        // SAFETY: valid pointers to locals.
        let code = unsafe { fb_breaker_new(&config, &mut b) };
        assert_eq!(code, FB_ERR_INVALID_CONFIG);
        assert!(
            last_error().contains(expect),
            "{} lacks {expect}",
            last_error()
        );
    }
}

#[test]
fn default_config_is_the_cores() {
    let c = fb_breaker_config_default();
    let core = c.to_core().unwrap();
    assert_eq!(core.window, crate::breaker_types::WindowKind::Count);
    let resolved = core_fb::BreakerConfig {
        window_size: Some(core_fb::limits::DEFAULT_WINDOW_SIZE),
        window_buckets: Some(core_fb::limits::DEFAULT_WINDOW_BUCKETS),
        max_wait_duration_ns: Some(FB_MAX_WAIT_DURATION_NS), // the same as None
        ..core_fb::BreakerConfig::new()
    };
    assert_eq!(core.config, resolved);
    assert_eq!(c.window_size, 100);
    assert_eq!(
        c.jitter_seed, FB_RANDOM_SEED,
        "the default jitter seed is random"
    );
    assert_eq!(c.failure_rate_threshold, FB_OFF);
    // A breaker built from it reads back the same configuration.
    let b = new_breaker(&c);
    let mut back = fb_breaker_config_default();
    back.window_size = 1;
    // SAFETY: `b` is live until freed; `back` is a local.
    unsafe {
        assert_eq!(fb_breaker_get_config(b, &mut back), FB_OK);
        fb_breaker_free(b);
    }
    assert_eq!(back, c);
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

/// A listener and its `user_data` are read together: while one thread swaps between two
/// (function, data) pairs, notifications on other threads always get a matching pair.
#[test]
fn listener_and_user_data_are_never_torn() {
    use core::ffi::c_void;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    static TORN: AtomicU64 = AtomicU64::new(0);
    static CALLS: AtomicU64 = AtomicU64::new(0);
    static A: u8 = 1;
    static B: u8 = 2;
    unsafe extern "C" fn on_a(_: *const fb_breaker, _: fb_state, _: fb_state, d: *mut c_void) {
        CALLS.fetch_add(1, Ordering::Relaxed);
        if d.cast_const() != (&raw const A).cast() {
            TORN.fetch_add(1, Ordering::Relaxed);
        }
    }
    unsafe extern "C" fn on_b(_: *const fb_breaker, _: fb_state, _: fb_state, d: *mut c_void) {
        CALLS.fetch_add(1, Ordering::Relaxed);
        if d.cast_const() != (&raw const B).cast() {
            TORN.fetch_add(1, Ordering::Relaxed);
        }
    }

    let b = new_breaker(&fb_breaker_config_default()) as usize;
    // SAFETY: `b` is live; the listener only reads its static data.
    unsafe { fb_breaker_set_listener(b as *const _, Some(on_a), (&raw const A).cast_mut().cast()) };
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut i = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let (f, d): (fb_breaker_listener, *const u8) = if i % 2 == 0 {
                    (Some(on_b), &raw const B)
                } else {
                    (Some(on_a), &raw const A)
                };
                // SAFETY: `b` is live until freed after the scope; the listeners only read.
                unsafe { fb_breaker_set_listener(b as *const _, f, d.cast_mut().cast()) };
                i = i.wrapping_add(1);
            }
        });
        let workers: Vec<_> = (0..2)
            .map(|_| {
                scope.spawn(|| {
                    for t in 0..20_000u64 {
                        // SAFETY: `b` is live until freed after the scope.
                        unsafe {
                            fb_breaker_trip_at(b as *const _, t);
                            fb_breaker_reset_at(b as *const _, t);
                        }
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        stop.store(true, Ordering::Relaxed);
    });
    // SAFETY: no thread uses the breaker any more.
    unsafe { fb_breaker_free(b as *mut _) };
    assert_eq!(TORN.load(Ordering::Relaxed), 0);
    assert!(CALLS.load(Ordering::Relaxed) > 0);
}
