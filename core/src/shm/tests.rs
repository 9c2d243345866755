//! Unit tests of the region: layout, names, every error variant, slot claims.

use super::layout::{self, slot_offset, INITIALISING};
use super::*;
use crate::{Outcome, State, SECOND};
use std::os::unix::fs::PermissionsExt;
use std::vec;

/// A fresh directory for one test, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        static N: portable_atomic::AtomicU32 = portable_atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "fastbreaker-shm-unit-{tag}-{}-{n}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn options(&self) -> RegionOptions {
        RegionOptions::new().dir(&self.0).capacity(8)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn breaker_config(threshold: u32) -> BreakerConfig {
    BreakerConfig {
        failure_threshold: Some(threshold),
        wait_duration_ns: SECOND,
        ..BreakerConfig::new()
    }
}

/// Overwrites bytes of the region file at `offset` (the mappings see it: same pages).
fn poke(path: &Path, offset: u64, bytes: &[u8]) {
    let f = OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(bytes, offset).unwrap();
}

fn header_words(path: &Path) -> [u64; HEADER_WORDS] {
    let bytes = std::fs::read(path).unwrap();
    words_of(&bytes[..HEADER_SIZE])
}

fn write_header(path: &Path, mut w: [u64; HEADER_WORDS], fix_checksum: bool) {
    if fix_checksum {
        w[HEADER_WORDS - 1] = layout::checksum(&w[..HEADER_WORDS - 1]);
    }
    let bytes: Vec<u8> = w.iter().flat_map(|x| x.to_ne_bytes()).collect();
    poke(path, 0, &bytes);
}

#[test]
fn create_then_attach_share_one_breaker() {
    let dir = TempDir::new("share");
    let a = Region::open("app", &dir.options()).unwrap();
    assert!(a.created());
    assert_eq!(a.capacity(), 8);
    let meta = std::fs::metadata(a.path()).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(meta.len(), region_size(8));
    let b = Region::open("app", &dir.options().capacity(99)).unwrap();
    assert!(!b.created());
    assert_eq!(b.capacity(), 8, "an existing region keeps its capacity");

    let config = breaker_config(2);
    let x = a.breaker_count("payments", &config).unwrap();
    let y = b.breaker_count("payments", &config).unwrap();
    for _ in 0..2 {
        let p = x.acquire(0).unwrap();
        x.record(p, Outcome::Failure, 0);
    }
    assert_eq!(y.state(), State::Open);
    assert_eq!(y.retry_after(0), SECOND);
    assert!(core::ptr::eq(
        x,
        a.breaker_count("payments", &config).unwrap()
    ));

    let t = a.breaker_time("slow", &config).unwrap();
    assert_eq!(
        b.breaker_time("slow", &config).unwrap().generation(),
        t.generation()
    );
    let bucket = a.bucket("api", BucketConfig::per_second(10, 2)).unwrap();
    bucket.try_acquire(2, 0).unwrap();
    assert!(b
        .bucket("api", BucketConfig::per_second(10, 2))
        .unwrap()
        .try_acquire(1, 0)
        .is_err());
    let bulkhead = a.bulkhead("db", 1).unwrap();
    let _permit = bulkhead.try_acquire().unwrap();
    assert!(b.bulkhead("db", 1).unwrap().try_acquire().is_err());

    let mut names: Vec<_> = b
        .list()
        .into_iter()
        .map(|e| match e {
            SlotEntry::Ready(info) => (info.name, info.config.kind()),
            other => panic!("{other:?}"),
        })
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec![
            ("api".to_string(), SlotKind::Bucket),
            ("db".to_string(), SlotKind::Bulkhead),
            ("payments".to_string(), SlotKind::BreakerCount),
            ("slow".to_string(), SlotKind::BreakerTime),
        ]
    );
    assert!(Region::unlink("app", &dir.options()).unwrap());
    assert!(!Region::unlink("app", &dir.options()).unwrap());
    // The old mappings still work after unlink.
    assert_eq!(y.state(), State::Open);
}

#[test]
fn configs_are_compared() {
    let dir = TempDir::new("configs");
    let region = Region::open("app", &dir.options()).unwrap();
    region.breaker_count("b", &breaker_config(5)).unwrap();
    // Equivalent: the default window size spelled out.
    let spelled = BreakerConfig {
        window_size: Some(100),
        bucket_duration_ns: 7,
        ..breaker_config(5)
    };
    region.breaker_count("b", &spelled).unwrap();
    let err = region.breaker_count("b", &breaker_config(6)).unwrap_err();
    match &err {
        RegionError::ConfigMismatch {
            name,
            existing,
            requested,
        } => {
            assert_eq!(name, "b");
            // The configuration in force, read back (defaults resolved).
            let in_force = region
                .breaker_count("b", &breaker_config(5))
                .unwrap()
                .config();
            assert_eq!(in_force.failure_threshold, Some(5));
            assert_eq!(**existing, SlotConfig::BreakerCount(in_force));
            assert_eq!(**requested, SlotConfig::BreakerCount(breaker_config(6)));
        }
        other => panic!("{other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("failure_threshold: Some(5)") && text.contains("failure_threshold: Some(6)"),
        "{text}"
    );
    assert!(matches!(
        region.bucket("b", BucketConfig::per_second(1, 1)),
        Err(RegionError::KindMismatch {
            existing: SlotKind::BreakerCount,
            requested: SlotKind::Bucket,
            ..
        })
    ));
    region.bulkhead("k", 3).unwrap();
    let err = region.bulkhead("k", 4).unwrap_err();
    assert!(err.to_string().contains("max_concurrent: 3"), "{err}");
    assert!(err.to_string().contains("max_concurrent: 4"), "{err}");
    assert!(matches!(
        region.bulkhead("zero", 0),
        Err(RegionError::InvalidConfig { error, .. }) if error.field == "max_concurrent"
    ));
    region
        .reconfigure("k", SlotConfig::Bulkhead { max_concurrent: 4 })
        .unwrap();
    region.bulkhead("k", 4).unwrap();
}

#[test]
fn names_are_checked() {
    let dir = TempDir::new("names");
    let long = "x".repeat(MAX_REGION_NAME_LEN + 1);
    for (name, reason) in [
        ("", "must not be empty"),
        ("a/b", "must not contain '/'"),
        ("..", "must not contain '..'"),
        ("a..b", "must not contain '..'"),
        ("a\0b", "must not contain NUL"),
        ("a\nb", "must not contain control characters"),
        (long.as_str(), "must be at most 100 bytes"),
    ] {
        match Region::open(name, &dir.options()) {
            Err(RegionError::InvalidName { of, reason: r, .. }) => {
                assert_eq!((of, r), ("region", reason), "{name:?}")
            }
            other => panic!("{name:?}: {other:?}"),
        }
    }
    let region = Region::open(&"r".repeat(MAX_REGION_NAME_LEN), &dir.options()).unwrap();
    let long = "s".repeat(MAX_SLOT_NAME_LEN + 1);
    for name in ["", "a\0", long.as_str()] {
        assert!(
            matches!(
                region.bulkhead(name, 1),
                Err(RegionError::InvalidName { of: "slot", .. })
            ),
            "{name:?}"
        );
    }
    region.bulkhead(&"s".repeat(MAX_SLOT_NAME_LEN), 1).unwrap();
    region.bulkhead("GET /api/users é", 1).unwrap();
    let e = Region::open("a/b", &dir.options()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid region name \"a/b\": must not contain '/'"
    );
}

#[test]
fn options_are_checked() {
    let dir = TempDir::new("options");
    for capacity in [0, MAX_CAPACITY + 1] {
        assert!(matches!(
            Region::open("r", &dir.options().capacity(capacity)),
            Err(RegionError::InvalidOptions {
                field: "capacity",
                ..
            })
        ));
    }
    assert!(matches!(
        Region::open("r", &dir.options().create(false)),
        Err(RegionError::NotFound { .. })
    ));
    Region::open("r", &dir.options()).unwrap();
    assert!(Region::open("r", &dir.options().create(false)).is_ok());
}

#[test]
fn a_full_region_says_so() {
    let dir = TempDir::new("full");
    let region = Region::open("r", &dir.options().capacity(3)).unwrap();
    for name in ["a", "b", "c"] {
        region.bulkhead(name, 1).unwrap();
    }
    assert!(matches!(
        region.bulkhead("d", 1),
        Err(RegionError::Full { capacity: 3 })
    ));
    // Existing names are still found.
    for name in ["a", "b", "c"] {
        region.bulkhead(name, 1).unwrap();
    }
}

#[test]
fn headers_are_checked() {
    let dir = TempDir::new("headers");
    let options = dir.options();
    let path = Region::open("r", &options).unwrap().path().to_path_buf();
    let good = header_words(&path);
    let open = || Region::open("r", &options);

    let mut w = good;
    w[1] = (w[1] & !0xFFFF_FFFF) | 1;
    write_header(&path, w, false);
    assert!(matches!(
        open(),
        Err(RegionError::VersionMismatch {
            found: 1,
            expected: LAYOUT_VERSION
        })
    ));

    let mut w = good;
    w[9] = 1;
    write_header(&path, w, false);
    assert!(matches!(open(), Err(RegionError::ChecksumMismatch { .. })));

    let mut w = good;
    w[0] = 0x1234;
    write_header(&path, w, true);
    assert!(matches!(
        open(),
        Err(RegionError::BadMagic { found: 0x1234 })
    ));

    let mut w = good;
    w[2] = (w[2] & 0xFFFF_FFFF) | 4096 << 32;
    write_header(&path, w, true);
    assert!(matches!(
        open(),
        Err(RegionError::LayoutMismatch {
            field: "slot_size",
            found: 4096,
            ..
        })
    ));

    let mut w = good;
    w[4] += 8;
    write_header(&path, w, true);
    assert!(matches!(
        open(),
        Err(RegionError::LayoutMismatch {
            field: "breaker_count_size",
            ..
        })
    ));

    let mut w = good;
    w[2] &= !0xFFFF_FFFF;
    write_header(&path, w, true);
    assert!(matches!(
        open(),
        Err(RegionError::CorruptHeader {
            field: "capacity",
            value: 0
        })
    ));

    write_header(&path, good, false);
    open().unwrap();
    let f = OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(region_size(8) - 1).unwrap();
    assert!(matches!(
        open(),
        Err(RegionError::Truncated { actual, .. }) if actual == region_size(8) - 1
    ));
    f.set_len(region_size(8) + 4096).unwrap();
    assert!(matches!(
        open(),
        Err(RegionError::LayoutMismatch {
            field: "file_size",
            ..
        })
    ));
    f.set_len(10).unwrap();
    assert!(matches!(
        open(),
        Err(RegionError::Truncated {
            expected: 128,
            actual: 10
        })
    ));
    f.set_len(0).unwrap();
    assert!(matches!(
        open(),
        Err(RegionError::Truncated { actual: 0, .. })
    ));
}

#[test]
fn untrusted_files_are_refused() {
    let dir = TempDir::new("trust");
    let options = dir.options();
    let path = Region::open("r", &options).unwrap().path().to_path_buf();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(matches!(
        Region::open("r", &options),
        Err(RegionError::Untrusted { .. })
    ));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    Region::open("r", &options).unwrap();
    std::fs::remove_file(&path).unwrap();
    std::os::unix::fs::symlink("/dev/null", &path).unwrap();
    assert!(matches!(
        Region::open("r", &options),
        Err(RegionError::Io { op: "open", .. })
    ));
}

/// The slot index of `name` in `region`.
fn index_of(region: &Region, name: &str) -> u32 {
    region
        .list()
        .into_iter()
        .find_map(|e| match e {
            SlotEntry::Ready(info) if info.name == name => Some(info.index),
            _ => None,
        })
        .unwrap()
}

#[test]
fn corrupt_slots_are_refused() {
    let dir = TempDir::new("slots");
    let options = dir.options();
    let region = Region::open("r", &options).unwrap();
    let path = region.path().to_path_buf();
    region.bulkhead("k", 3).unwrap();
    region.bucket("b", BucketConfig::per_second(5, 5)).unwrap();
    let k = index_of(&region, "k") as usize;
    let b = index_of(&region, "b") as usize;

    // The bulkhead's limit (the word at byte 4) changes at run time: whatever it holds is
    // the limit in force, and asking for another one is a mismatch that names it.
    let area = (slot_offset(k as u32) + META_SIZE) as u64;
    poke(&path, area + 4, &1000u32.to_ne_bytes());
    let err = region.bulkhead("k", 3).unwrap_err();
    assert!(err.to_string().contains("max_concurrent: 1000"), "{err}");
    poke(&path, area + 4, &3u32.to_ne_bytes());
    region.bulkhead("k", 3).unwrap();

    // The bucket's time unit (its non-atomic `shift`, after the TAT and the two buffers of
    // six settings words under their sequence word) changed under it.
    assert_eq!(core::mem::size_of::<TokenBucket>(), 8 + 8 + 2 * 6 * 8 + 8);
    let area_b = (slot_offset(b as u32) + META_SIZE) as u64;
    poke(&path, area_b + 8 + 8 + 2 * 6 * 8, &5u32.to_ne_bytes());
    assert!(matches!(
        region.bucket("b", BucketConfig::per_second(5, 5)),
        Err(RegionError::CorruptSlot { reason, .. }) if reason.contains("settings")
    ));
    poke(&path, area_b + 8 + 8 + 2 * 6 * 8, &0u32.to_ne_bytes());
    region.bucket("b", BucketConfig::per_second(5, 5)).unwrap();

    // A metadata word changed: checksum.
    let meta = slot_offset(b as u32) as u64;
    poke(&path, meta + 8 * 10, &6u64.to_ne_bytes());
    assert!(matches!(
        region.bucket("b", BucketConfig::per_second(5, 5)),
        Err(RegionError::CorruptSlot {
            reason: "metadata checksum mismatch",
            ..
        })
    ));
    assert!(region.list().iter().any(|e| matches!(
        e,
        SlotEntry::Corrupt {
            reason: "metadata checksum mismatch",
            ..
        }
    )));

    // A stored config that does not validate, under a valid checksum.
    let bad = layout::new_meta("b", &SlotConfig::Bucket(BucketConfig::per_second(0, 5)));
    let bytes: Vec<u8> = bad[1..].iter().flat_map(|x| x.to_ne_bytes()).collect();
    poke(&path, meta + 8, &bytes);
    assert!(matches!(
        region.bucket("b", BucketConfig::per_second(5, 5)),
        Err(RegionError::CorruptSlot {
            reason: "stored configuration does not validate",
            ..
        })
    ));

    // An unknown claim state.
    poke(&path, meta, &7u64.to_ne_bytes());
    assert!(matches!(
        region.bucket("b", BucketConfig::per_second(5, 5)),
        Err(RegionError::CorruptSlot {
            reason: "unknown claim state",
            ..
        })
    ));
}

#[test]
fn a_dead_initialiser_is_replaced_and_a_live_one_waited_for() {
    let dir = TempDir::new("claims");
    let options = dir.options().init_timeout(Duration::from_millis(30));
    let region = Region::open("r", &options).unwrap();
    let path = region.path().to_path_buf();
    let home = layout::home("x", 8);
    let claim_at = slot_offset(home) as u64;

    // A live initialiser (this very process) that never finishes: bounded wait.
    let mine = INITIALISING | (std::process::id() as u64) << 32;
    poke(&path, claim_at, &mine.to_ne_bytes());
    match region.bulkhead("x", 2) {
        Err(RegionError::SlotBusy { index, pid, .. }) => {
            assert_eq!((index, pid), (home, std::process::id()))
        }
        other => panic!("{other:?}"),
    }
    assert!(region.list().contains(&SlotEntry::Initialising {
        index: home,
        pid: std::process::id()
    }));

    // A dead one: its slot is reclaimed and initialised.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let theirs = INITIALISING | (dead as u64) << 32;
    poke(&path, claim_at, &theirs.to_ne_bytes());
    let b = region.bulkhead("x", 2).unwrap();
    assert_eq!(b.max_concurrent(), 2);
    assert_eq!(index_of(&region, "x"), home);
}

#[test]
fn configs_round_trip_through_their_words() {
    let configs = [
        SlotConfig::BreakerCount(BreakerConfig::new()),
        SlotConfig::BreakerTime(BreakerConfig {
            failure_threshold: None,
            failure_rate_threshold: Some(50),
            slow_call_rate_threshold: Some(100),
            window_size: Some(7),
            window_buckets: Some(64),
            max_wait_duration_ns: Some(u64::MAX),
            jitter_seed: Some(0),
            jitter_permille: 1000,
            ..BreakerConfig::new()
        }),
        SlotConfig::Bucket(BucketConfig {
            rate: u64::MAX,
            period_ns: 1,
            burst: 3,
        }),
        SlotConfig::Bulkhead {
            max_concurrent: u32::MAX,
        },
    ];
    for c in configs {
        assert_eq!(SlotConfig::decode(c.kind(), &c.encode()), Some(c));
        let meta = layout::new_meta("n", &c);
        let parsed = layout::parse_meta(&meta).unwrap();
        assert_eq!((parsed.config, parsed.name_bytes()), (c, &b"n"[..]));
    }
    // A value that does not fit its field, or a stray bit, does not decode.
    let mut w = SlotConfig::BreakerCount(BreakerConfig::new()).encode();
    w[2] = 5; // failure_rate_threshold unset but non-zero
    assert_eq!(SlotConfig::decode(SlotKind::BreakerCount, &w), None);
    let mut w = SlotConfig::BreakerCount(BreakerConfig::new()).encode();
    w[14] = 1 << 16; // half_open_max_calls is a u16
    assert_eq!(SlotConfig::decode(SlotKind::BreakerCount, &w), None);
    let mut w = SlotConfig::Bulkhead { max_concurrent: 1 }.encode();
    w[5] = 1;
    assert_eq!(SlotConfig::decode(SlotKind::Bulkhead, &w), None);
}

#[test]
fn region_bytes_are_checked_without_panics() {
    let dir = TempDir::new("bytes");
    let region = Region::open("r", &dir.options().capacity(4)).unwrap();
    region.breaker_count("a", &breaker_config(1)).unwrap();
    region.breaker_time("b", &breaker_config(1)).unwrap();
    region.bucket("c", BucketConfig::per_second(1, 1)).unwrap();
    region.bulkhead("d", 1).unwrap();
    let bytes = std::fs::read(region.path()).unwrap();
    assert_eq!(check_region_bytes(&bytes).unwrap().len(), 4);
    assert!(matches!(
        check_region_bytes(&bytes[..100]),
        Err(RegionError::Truncated { .. })
    ));
    let mut next = crate::breaker::tests::arbitrary_words(0xDEAD_BEEF_1234_5678);
    for round in 0..300 {
        let mut copy = bytes.clone();
        // Corrupt a few bytes past the header (whose checksum would refuse the file).
        for _ in 0..1 + round % 16 {
            let at = HEADER_SIZE + (next() as usize) % (copy.len() - HEADER_SIZE);
            copy[at] = next() as u8;
        }
        let _ = check_region_bytes(&copy);
    }
}

/// Two racers that both read the same claim word (empty, or a dead initialiser's): only
/// the first CAS wins, so only one of them writes the slot. (The race itself is too narrow
/// to provoke reliably with processes on a small machine: this pins the rule down.)
#[test]
fn of_two_claims_on_the_same_word_only_one_wins() {
    let dir = TempDir::new("cas");
    let region = Region::open("r", &dir.options()).unwrap();
    assert!(region.map.claim(3, 0, 1111).is_some());
    assert!(region.map.claim(3, 0, 2222).is_none());
    let abandoned = INITIALISING | 1111 << 32;
    assert!(region.map.claim(3, abandoned, 3333).is_some());
    assert!(region.map.claim(3, abandoned, 4444).is_none());
    assert!(region.list().contains(&SlotEntry::Initialising {
        index: 3,
        pid: 3333
    }));
}

#[test]
fn shared_handles_keep_the_region_open() {
    let dir = TempDir::new("sharedref");
    let region = Arc::new(Region::open("r", &dir.options()).unwrap());
    let breaker = region
        .shared_breaker_count("b", &breaker_config(1))
        .unwrap();
    let bucket = region
        .shared_bucket("k", BucketConfig::per_second(1, 1))
        .unwrap();
    let slot = region.shared_bulkhead("h", 1).unwrap();
    let time = region.shared_breaker_time("t", &breaker_config(1)).unwrap();
    drop(region);
    // The handles outlive the caller's `Arc`, cross threads, and see one another's state.
    let copy = breaker.clone();
    std::thread::spawn(move || {
        let p = copy.acquire(0).unwrap();
        copy.record(p, Outcome::Failure, 0);
    })
    .join()
    .unwrap();
    assert_eq!(breaker.state(), State::Open);
    assert!(bucket.try_acquire(1, 0).is_ok() && bucket.try_acquire(1, 0).is_err());
    let permit = slot.owned().try_acquire().unwrap();
    assert!(slot.bulkhead().try_acquire().is_err());
    drop(permit);
    assert_eq!(time.generation(), 0);
    assert_eq!(breaker.region().name(), "r");
    assert!(std::format!("{breaker:?}").contains("Shared"));
}

#[test]
fn reconfigure_changes_a_slot_in_place_for_every_opener() {
    let dir = TempDir::new("reconfigure");
    let options = dir.options();
    let a = Region::open("r", &options).unwrap();
    let b = Region::open("r", &options).unwrap();
    let config = breaker_config(5);
    let breaker_a = a.breaker_count("p", &config).unwrap();
    for _ in 0..3 {
        let p = breaker_a.acquire(0).unwrap();
        breaker_a.record(p, Outcome::Failure, 0);
    }
    // Another opener lowers the threshold: the failures so far carry over, and the next
    // failure trips the breaker that the first opener holds.
    let lower = BreakerConfig {
        failure_threshold: Some(4),
        ..config
    };
    b.reconfigure("p", SlotConfig::BreakerCount(lower)).unwrap();
    assert_eq!(breaker_a.config().failure_threshold, Some(4));
    let p = breaker_a.acquire(0).unwrap();
    breaker_a.record(p, Outcome::Failure, 0);
    assert_eq!(breaker_a.state(), State::Open);
    // Attaching now compares with the configuration in force.
    assert!(matches!(
        b.breaker_count("p", &config),
        Err(RegionError::ConfigMismatch { .. })
    ));
    b.breaker_count("p", &lower).unwrap();
    assert!(a.list().iter().any(|e| matches!(
        e,
        SlotEntry::Ready(info) if info.config == SlotConfig::BreakerCount(breaker_a.config())
    )));
    // What is fixed stays fixed, and nothing changes.
    let err = b
        .reconfigure(
            "p",
            SlotConfig::BreakerCount(BreakerConfig {
                window_size: Some(10),
                ..lower
            }),
        )
        .unwrap_err();
    assert!(
        matches!(&err, RegionError::InvalidConfig { error, .. } if error.field == "window_size"),
        "{err}"
    );
    assert_eq!(breaker_a.config().failure_threshold, Some(4));
    // Another kind under the name.
    assert!(matches!(
        b.reconfigure("p", SlotConfig::Bulkhead { max_concurrent: 2 }),
        Err(RegionError::KindMismatch { .. })
    ));

    // A bucket: tokens in use stay in use.
    let bucket = a.bucket("g", BucketConfig::per_second(10, 10)).unwrap();
    let now = crate::Clock::now_ns(&crate::MonotonicClock);
    for _ in 0..10 {
        bucket.try_acquire(1, now).unwrap();
    }
    b.reconfigure("g", SlotConfig::Bucket(BucketConfig::per_second(1, 10)))
        .unwrap();
    assert_eq!(bucket.config(), BucketConfig::per_second(1, 10));
    assert!(bucket.try_acquire(1, now).is_err());
    // Converted at the writer's clock, a little after `now`: the 10 tokens owed are
    // 10 s at the new rate from then, and the one asked for is due 1 s (less 9x the
    // writer's lag) from `now`.
    let wait = bucket.retry_after(1, now).unwrap();
    assert!(
        (SECOND - 100 * crate::MILLISECOND..=SECOND).contains(&wait),
        "{wait}"
    );

    // A bulkhead: permits out stay out.
    let bulkhead = a.bulkhead("k", 2).unwrap();
    let permits = (
        bulkhead.try_acquire().unwrap(),
        bulkhead.try_acquire().unwrap(),
    );
    b.reconfigure("k", SlotConfig::Bulkhead { max_concurrent: 1 })
        .unwrap();
    drop(permits.0);
    assert!(bulkhead.try_acquire().is_err(), "one still out, limit 1");
    drop(permits.1);
    assert!(bulkhead.try_acquire().is_ok());

    // A missing slot is created with the configuration.
    b.reconfigure("new", SlotConfig::Bulkhead { max_concurrent: 7 })
        .unwrap();
    assert_eq!(a.bulkhead("new", 7).unwrap().max_concurrent(), 7);
}

#[test]
fn a_dead_writers_locks_are_taken_over_and_a_live_ones_waited_for() {
    let dir = TempDir::new("writer");
    let options = dir.options().init_timeout(Duration::from_millis(30));
    let region = Region::open("r", &options).unwrap();
    region.bulkhead("k", 2).unwrap();
    let k = index_of(&region, "k");
    let lock_at = slot_offset(k) as u64 + 8 * layout::WRITER_WORD as u64;

    // A live writer (this very process) holding the slot's lock: bounded wait.
    poke(
        &path_of(&region),
        lock_at,
        &(std::process::id() as u64).to_ne_bytes(),
    );
    match region.reconfigure("k", SlotConfig::Bulkhead { max_concurrent: 3 }) {
        Err(RegionError::SlotBusy { pid, .. }) => assert_eq!(pid, std::process::id()),
        other => panic!("{other:?}"),
    }
    // A dead one: taken over.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id() as u64;
    child.wait().unwrap();
    poke(&path_of(&region), lock_at, &dead.to_ne_bytes());
    region
        .reconfigure("k", SlotConfig::Bulkhead { max_concurrent: 3 })
        .unwrap();
    assert_eq!(region.bulkhead("k", 3).unwrap().max_concurrent(), 3);

    // A breaker whose own writer bit a killed writer left set: the region's write clears it.
    let config = breaker_config(5);
    let breaker = region.breaker_count("b", &config).unwrap();
    let b = index_of(&region, "b");
    // The settings' sequence word follows the state and time words.
    let seq_at = (slot_offset(b) + META_SIZE) as u64 + 16;
    poke(&path_of(&region), seq_at, &1u64.to_ne_bytes());
    assert_eq!(
        breaker.reconfigure(breaker_config(4)),
        Err(crate::ReconfigureError::Busy),
        "the breaker's own API waits a bounded time, then says busy"
    );
    region
        .reconfigure("b", SlotConfig::BreakerCount(breaker_config(4)))
        .unwrap();
    assert_eq!(breaker.config().failure_threshold, Some(4));
    breaker.reconfigure(breaker_config(3)).unwrap();
    assert_eq!(breaker.config().failure_threshold, Some(3));
}

fn path_of(region: &Region) -> std::path::PathBuf {
    region.path().to_path_buf()
}

// ----- keyed tables -----

fn keyed_config() -> BucketConfig {
    BucketConfig::per_second(1, 2)
}

#[test]
fn two_openers_share_a_keyed_tables_keys_and_counters() {
    let dir = TempDir::new("keyed-share");
    let a = Region::open("kr", &dir.options()).unwrap();
    let b = Region::open("kr", &dir.options()).unwrap();
    let ta = a
        .keyed("clients", keyed_config(), crate::WhenFull::Reject, 64)
        .unwrap();
    let tb = b
        .keyed("clients", keyed_config(), crate::WhenFull::Reject, 64)
        .unwrap();
    assert!(ta.storage().created() && !tb.storage().created());
    assert_eq!(
        ta.seed(),
        tb.seed(),
        "the seed is the table's, from its header"
    );
    assert_eq!(
        ta.storage().path(),
        dir.0.join("fastbreaker.kr.keyed.clients")
    );
    let mode = std::fs::metadata(ta.storage().path())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(ta.try_acquire(b"10.0.0.1", 2, 0).is_ok());
    assert_eq!(
        tb.try_acquire(b"10.0.0.1", 1, 0),
        Err(crate::KeyedRejected::RateLimited {
            retry_after: SECOND
        }),
        "the other opener sees the key's bucket empty"
    );
    assert!(tb.try_acquire(b"10.0.0.2", 1, 0).is_ok());
    assert_eq!(ta.live_keys(0), 2);
    let (ma, mb) = (ta.metrics(), tb.metrics());
    assert_eq!(ma, mb, "counters are shared");
    assert_eq!((ma.allowed, ma.limited, ma.capacity), (2, 1, 64));
    // A shared handle outlives the region handle it came from.
    let shared = Arc::new(Region::open("kr", &dir.options()).unwrap())
        .shared_keyed("clients", keyed_config(), crate::WhenFull::Reject, 64)
        .unwrap();
    assert_eq!(shared.metrics().allowed, 2);
    assert_eq!(a.keyed_tables().unwrap(), vec![String::from("clients")]);
    // A table and a slot may share a name.
    a.bucket("clients", keyed_config()).unwrap();
    // Unlink removes the tables too; a new region gets a new, empty table.
    assert!(Region::unlink("kr", &dir.options()).unwrap());
    assert!(!ta.storage().path().exists());
    let c = Region::open("kr", &dir.options()).unwrap();
    let tc = c
        .keyed("clients", keyed_config(), crate::WhenFull::Reject, 64)
        .unwrap();
    assert!(tc.storage().created());
    assert_eq!(tc.metrics().allowed, 0);
    assert!(
        ta.try_acquire(b"10.0.0.3", 1, 0).is_ok(),
        "old handles go on"
    );
}

#[test]
fn an_existing_keyed_table_opens_with_the_configuration_of_its_header() {
    let dir = TempDir::new("keyed-open");
    let a = Region::open("ko", &dir.options()).unwrap();
    assert!(matches!(
        a.open_keyed("clients"),
        Err(RegionError::NotFound { .. })
    ));
    assert!(
        a.keyed_tables().unwrap().is_empty(),
        "open_keyed never creates"
    );
    let config = BucketConfig::per_second(5, 7);
    let made = a
        .keyed("clients", config, crate::WhenFull::Admit, 96)
        .unwrap();
    assert!(made.try_acquire(b"10.0.0.1", 7, 0).is_ok());
    let seen = a.open_keyed("clients").unwrap();
    assert_eq!(seen.config(), (config, crate::WhenFull::Admit));
    assert_eq!((seen.capacity(), seen.seed()), (96, made.seed()));
    assert!(!seen.storage().created());
    assert_eq!(seen.live_keys(0), 1);
    assert_eq!(seen.metrics(), made.metrics(), "the same counters");
    assert!(
        seen.try_acquire(b"10.0.0.1", 1, 0).is_err(),
        "the same buckets"
    );
    assert!(matches!(
        a.open_keyed("../x"),
        Err(RegionError::InvalidName { .. })
    ));
}

#[test]
fn a_keyed_table_with_another_configuration_is_refused() {
    let dir = TempDir::new("keyed-mismatch");
    let r = Region::open("kr", &dir.options()).unwrap();
    r.keyed("t", keyed_config(), crate::WhenFull::Reject, 64)
        .unwrap();
    for (config, when_full, capacity) in [
        (BucketConfig::per_second(2, 2), crate::WhenFull::Reject, 64),
        (keyed_config(), crate::WhenFull::Admit, 64),
        (keyed_config(), crate::WhenFull::Reject, 65),
    ] {
        let e = r.keyed("t", config, when_full, capacity).unwrap_err();
        let RegionError::KeyedConfigMismatch {
            name,
            existing,
            requested,
        } = &e
        else {
            panic!("{e:?}")
        };
        assert_eq!(name, "t");
        assert_eq!(existing.config, keyed_config());
        assert_eq!(
            (requested.config, requested.when_full, requested.capacity),
            (config, when_full, capacity)
        );
        let text = e.to_string();
        assert!(
            text.contains("existing:") && text.contains("requested:"),
            "{text}"
        );
    }
    assert!(matches!(
        r.keyed("t", keyed_config(), crate::WhenFull::Reject, 0),
        Err(RegionError::InvalidOptions { .. })
    ));
    assert!(matches!(
        r.keyed(
            "u",
            BucketConfig::per_second(0, 2),
            crate::WhenFull::Reject,
            4
        ),
        Err(RegionError::InvalidConfig { .. })
    ));
    for bad in ["", "a/b", "..", "a\0b", &"x".repeat(65)] {
        assert!(
            matches!(
                r.keyed(bad, keyed_config(), crate::WhenFull::Reject, 4),
                Err(RegionError::InvalidName { .. })
            ),
            "{bad:?}"
        );
    }
    for bad in ["a.keyed.b", "a.keyed"] {
        assert!(matches!(
            Region::open(bad, &dir.options()),
            Err(RegionError::InvalidName { .. })
        ));
    }
}

#[test]
fn corrupt_or_truncated_keyed_files_are_refused_by_name() {
    let dir = TempDir::new("keyed-corrupt");
    let r = Region::open("kr", &dir.options()).unwrap();
    let open = |r: &Region| r.keyed("t", keyed_config(), crate::WhenFull::Reject, 16);
    let path = open(&r).unwrap().storage().path().to_path_buf();
    let good = std::fs::read(&path).unwrap();
    let restore = || std::fs::write(&path, &good).unwrap();
    let w = header_words(&path);

    let mut bad = w;
    bad[0] = MAGIC; // a region's magic is not a table's
    write_header(&path, bad, true);
    assert!(matches!(open(&r), Err(RegionError::BadMagic { .. })));
    restore();

    let mut bad = w;
    bad[1] = (bad[1] & !0xFFFF_FFFF) | 99;
    write_header(&path, bad, true);
    assert!(matches!(
        open(&r),
        Err(RegionError::VersionMismatch { found: 99, .. })
    ));
    restore();

    let mut bad = w;
    bad[7] ^= 1;
    write_header(&path, bad, false);
    assert!(matches!(
        open(&r),
        Err(RegionError::ChecksumMismatch { .. })
    ));
    restore();

    let mut bad = w;
    bad[3] += 8;
    write_header(&path, bad, true);
    assert!(matches!(
        open(&r),
        Err(RegionError::LayoutMismatch {
            field: "key_slot_size",
            ..
        })
    ));
    restore();

    for (i, v, field) in [
        (2, 0, "capacity"),
        (8, 7, "when_full"),
        (12, 1, "reserved"),
        (5, 0, "bucket_config"),
    ] {
        let mut bad = w;
        bad[i] = v;
        write_header(&path, bad, true);
        match open(&r) {
            Err(RegionError::CorruptHeader { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{field}: {other:?}"),
        }
        restore();
    }

    let f = OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(good.len() as u64 - 8).unwrap();
    assert!(matches!(open(&r), Err(RegionError::Truncated { .. })));
    f.set_len(good.len() as u64 + 8).unwrap();
    assert!(matches!(
        open(&r),
        Err(RegionError::LayoutMismatch {
            field: "file_size",
            ..
        })
    ));
    f.set_len(10).unwrap();
    assert!(matches!(open(&r), Err(RegionError::Truncated { .. })));
    restore();

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(matches!(open(&r), Err(RegionError::Untrusted { .. })));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();

    std::fs::remove_file(&path).unwrap();
    std::os::unix::fs::symlink(dir.0.join("elsewhere"), &path).unwrap();
    assert!(open(&r).is_err(), "a symlink is not followed");
    std::fs::remove_file(&path).unwrap();
    assert!(open(&r).unwrap().storage().created());

    assert!(matches!(
        check_keyed_bytes(&good[..100]),
        Err(RegionError::Truncated { .. })
    ));
    assert_eq!(check_keyed_bytes(&good).unwrap().capacity, 16);
}

#[test]
fn any_bits_in_a_shared_keyed_table_are_survivable() {
    let dir = TempDir::new("keyed-bits");
    let r = Region::open("kr", &dir.options()).unwrap();
    let t = r
        .keyed("t", keyed_config(), crate::WhenFull::Admit, 8)
        .unwrap();
    let path = t.storage().path().to_path_buf();
    let len = std::fs::metadata(&path).unwrap().len();
    let mut next = crate::breaker::tests::arbitrary_words(0x005E_ED0F_B175);
    for i in 0..3_000u64 {
        // Scribble over the counters and slots (the mapping sees it: same pages).
        for _ in 0..4 {
            let at = KEYED_COUNTERS_OFFSET as u64 + next() % (len - KEYED_COUNTERS_OFFSET as u64);
            poke(&path, at & !7, &next().to_ne_bytes());
        }
        let key = [(i % 7) as u8; 3];
        let now = next() >> (i % 64);
        let _ = t.try_acquire(&key, next() % 4, now);
        let _ = t.retry_after(&key, 1, now);
        let _ = t.state(&key, now);
        let _ = t.reset(&key);
        let _ = t.live_keys(now);
        let _ = t.metrics();
    }
    let mut bytes = std::fs::read(&path).unwrap();
    for _ in 0..200 {
        let mut copy = bytes.clone();
        for b in copy[KEYED_COUNTERS_OFFSET..].iter_mut() {
            *b = next() as u8;
        }
        check_keyed_bytes(&copy).unwrap();
        bytes = copy;
    }
}
