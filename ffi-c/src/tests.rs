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

/// The README's keyed example (its second ```c block) is the one `make ffi-test` runs.
#[test]
fn readme_keyed_example_is_the_tested_one() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).expect("README.md");
    let example =
        std::fs::read_to_string(format!("{root}/ffi-c/examples/keyed.c")).expect("keyed.c");
    let blocks: Vec<&str> = readme
        .split("```c\n")
        .skip(1)
        .map(|b| &b[..b.find("```").expect("closing fence")])
        .collect();
    assert!(
        blocks.contains(&example.as_str()),
        "paste ffi-c/examples/keyed.c into the README's C section"
    );
}

/// A keyed table through the ABI: per-key limits, the new codes and their messages.
#[test]
fn keyed_round_trip_and_codes() {
    let config = fb_bucket_config_per_second(1, 2);
    let mut k = ptr::null_mut();
    let mut wait = 0u64;
    let long = [b'x'; FB_MAX_KEY_LEN + 1];
    // SAFETY: valid pointers to locals; `k` is live until freed.
    unsafe {
        assert_eq!(fb_keyed_new(&config, 1, FB_WHEN_FULL_REJECT, &mut k), FB_OK);
        for _ in 0..2 {
            assert_eq!(
                fb_keyed_try_acquire_at(k, b"a".as_ptr(), 1, 1, &mut wait, 0),
                FB_OK
            );
        }
        assert_eq!(
            fb_keyed_try_acquire_at(k, b"a".as_ptr(), 1, 1, &mut wait, 0),
            FB_REJECTED
        );
        assert_eq!(wait, FB_SECOND);
        assert_eq!(
            fb_keyed_try_acquire_at(k, b"b".as_ptr(), 1, 1, &mut wait, 0),
            FB_ERR_TABLE_FULL
        );
        assert_eq!(
            fb_keyed_try_acquire_at(k, long.as_ptr(), long.len(), 1, &mut wait, 0),
            FB_ERR_KEY_TOO_LONG
        );
        assert_eq!(
            last_error(),
            "fb_keyed_try_acquire_at: key of 65 bytes: at most 64 allowed"
        );
        let mut m: fb_keyed_stats = core::mem::zeroed();
        assert_eq!(fb_keyed_metrics_at(k, &mut m, 0), FB_OK);
        assert_eq!(
            (
                m.capacity,
                m.allowed,
                m.limited,
                m.full_rejected,
                m.live_keys
            ),
            (1, 2, 1, 1, 1)
        );
        fb_keyed_free(k);
    }
    for code in [FB_ERR_TABLE_FULL, FB_ERR_KEY_TOO_LONG] {
        // SAFETY: fb_result_str returns a static NUL-terminated string.
        let s = unsafe { CStr::from_ptr(fb_result_str(code)) }
            .to_str()
            .unwrap();
        assert!(s.starts_with("FB_ERR_TABLE_FULL:") || s.starts_with("FB_ERR_KEY_TOO_LONG:"));
    }
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

/// A scratch directory for regions, removed by the guard.
struct ScratchDir(std::path::PathBuf, std::ffi::CString);

impl ScratchDir {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("fb-ffi-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let c = std::ffi::CString::new(dir.to_str().unwrap()).unwrap();
        ScratchDir(dir, c)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Threads of one process share a region bulkhead handle: the limit holds, every permit is
/// given back through the bag of raw owned permits, and an extra release is refused.
#[test]
fn region_bulkhead_handle_under_threads() {
    use std::sync::atomic::{AtomicU32, Ordering};
    let scratch = ScratchDir::new("bag");
    let mut options = fb_region_options_default();
    options.dir = scratch.1.as_ptr();
    options.capacity = 4;
    let mut r = ptr::null_mut();
    let config = fb_bulkhead_config { max_concurrent: 3 };
    let mut h = ptr::null_mut();
    // SAFETY: valid pointers to locals and NUL-terminated strings.
    unsafe {
        assert_eq!(fb_region_open(c"bag".as_ptr(), &options, &mut r), FB_OK);
        assert_eq!(
            fb_region_bulkhead(r, c"db".as_ptr(), &config, &mut h),
            FB_OK
        );
        fb_region_free(r);
    }
    let h = h as usize;
    let in_flight = AtomicU32::new(0);
    let over = AtomicU32::new(0);
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                let h = h as *const fb_bulkhead;
                for _ in 0..20_000 {
                    // SAFETY: `h` is live until freed after the scope.
                    if unsafe { fb_bulkhead_try_acquire(h) } == FB_OK {
                        if in_flight.fetch_add(1, Ordering::SeqCst) >= 3 {
                            over.fetch_add(1, Ordering::Relaxed);
                        }
                        std::hint::spin_loop();
                        in_flight.fetch_sub(1, Ordering::SeqCst);
                        // SAFETY: as above.
                        assert_eq!(unsafe { fb_bulkhead_release(h) }, FB_OK);
                    }
                }
            });
        }
    });
    assert_eq!(over.load(Ordering::Relaxed), 0);
    let h = h as *mut fb_bulkhead;
    let mut stats = fb_bulkhead_stats {
        max_concurrent: 0,
        in_flight: 9,
        peak: 0,
        acquired: 0,
        rejected: 0,
    };
    // SAFETY: `h` is live; `stats` is a local.
    unsafe {
        assert_eq!(fb_bulkhead_metrics(h, &mut stats), FB_OK);
        assert_eq!(stats.in_flight, 0);
        assert!(stats.peak <= 3 && stats.acquired > 0);
        assert_eq!(fb_bulkhead_release(h), FB_ERR_NOT_HELD);
        fb_bulkhead_free(h);
        assert_eq!(fb_region_unlink(c"bag".as_ptr(), scratch.1.as_ptr()), FB_OK);
    }
}

/// Each region error becomes its own code, and a config mismatch names both configurations.
#[test]
fn region_errors_have_codes_and_messages() {
    let scratch = ScratchDir::new("errors");
    let mut options = fb_region_options_default();
    options.dir = scratch.1.as_ptr();
    options.capacity = 1;
    let mut r = ptr::null_mut();
    let mut b = ptr::null_mut();
    let mut k = ptr::null_mut();
    let one = fb_bucket_config_per_second(1, 1);
    let two = fb_bucket_config_per_second(2, 1);
    // SAFETY: valid pointers to locals and NUL-terminated strings.
    unsafe {
        assert_eq!(
            fb_region_open(c"a/b".as_ptr(), &options, &mut r),
            FB_ERR_REGION_NAME
        );
        assert_eq!(fb_region_open(c"e".as_ptr(), &options, &mut r), FB_OK);
        assert_eq!(fb_region_bucket(r, c"k".as_ptr(), &one, &mut k), FB_OK);
        assert_eq!(
            fb_region_bucket(r, c"k".as_ptr(), &two, &mut b),
            FB_ERR_REGION_CONFIG_MISMATCH
        );
        let e = last_error();
        assert!(e.starts_with("fb_region_bucket: slot \"k\" exists"), "{e}");
        assert!(e.contains("existing:  bucket { rate: 1,"), "{e}");
        assert!(e.contains("requested: bucket { rate: 2,"), "{e}");
        assert_eq!(
            fb_region_bucket(r, c"other".as_ptr(), &one, &mut b),
            FB_ERR_REGION_FULL
        );
        let config = fb_breaker_config_default();
        let mut br = ptr::null_mut();
        assert_eq!(
            fb_region_breaker(r, c"k".as_ptr(), &config, &mut br),
            FB_ERR_REGION_KIND_MISMATCH
        );
        fb_bucket_free(k);
        fb_region_free(r);
        assert_eq!(fb_region_unlink(c"e".as_ptr(), scratch.1.as_ptr()), FB_OK);
        assert_eq!(
            fb_region_unlink(c"e".as_ptr(), scratch.1.as_ptr()),
            FB_ERR_REGION_NOT_FOUND
        );
    }
    for code in FB_ERR_REGION_CONFIG_MISMATCH..=FB_ERR_REGION {
        // SAFETY: fb_result_str returns a static NUL-terminated string.
        let s = unsafe { CStr::from_ptr(fb_result_str(code)) }
            .to_str()
            .unwrap();
        assert!(s.starts_with("FB_ERR_REGION"), "{code}: {s}");
    }
}

/// Past `FB_REGION_BULKHEAD_TRACKED_PER_HANDLE` permits held through one handle, the rest
/// are granted untracked, and every one of them is given back.
#[test]
fn region_bulkhead_past_the_tracked_permits() {
    let scratch = ScratchDir::new("untracked");
    let mut options = fb_region_options_default();
    options.dir = scratch.1.as_ptr();
    options.capacity = 2;
    let limit = FB_REGION_BULKHEAD_TRACKED_PER_HANDLE + 10;
    let config = fb_bulkhead_config {
        max_concurrent: limit,
    };
    let (mut r, mut h) = (ptr::null_mut(), ptr::null_mut());
    // SAFETY: valid pointers to locals and NUL-terminated strings; `h` is live until freed.
    unsafe {
        assert_eq!(fb_region_open(c"u".as_ptr(), &options, &mut r), FB_OK);
        assert_eq!(
            fb_region_bulkhead(r, c"db".as_ptr(), &config, &mut h),
            FB_OK
        );
        for _ in 0..limit {
            assert_eq!(fb_bulkhead_try_acquire(h), FB_OK);
        }
        assert_eq!(fb_bulkhead_try_acquire(h), FB_REJECTED);
        for _ in 0..limit {
            assert_eq!(fb_bulkhead_release(h), FB_OK);
        }
        assert_eq!(fb_bulkhead_release(h), FB_ERR_NOT_HELD);
        // Freeing a handle gives back what it holds, tracked or not.
        for _ in 0..limit {
            assert_eq!(fb_bulkhead_try_acquire(h), FB_OK);
        }
        let mut other = ptr::null_mut();
        assert_eq!(
            fb_region_bulkhead(r, c"db".as_ptr(), &config, &mut other),
            FB_OK
        );
        fb_bulkhead_free(h);
        assert_eq!(fb_bulkhead_try_acquire(other), FB_OK);
        assert_eq!(fb_bulkhead_release(other), FB_OK);
        fb_bulkhead_free(other);
        fb_region_free(r);
        assert_eq!(fb_region_unlink(c"u".as_ptr(), scratch.1.as_ptr()), FB_OK);
    }
}
