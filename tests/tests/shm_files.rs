//! Region files: the default directory, and arbitrary or corrupted files.
//!
//! * A region under `/dev/shm` by default, mode 0600, removed by `unlink`.
//! * Property: `check_region_bytes` (what a fuzz target calls) never panics on a real
//!   region's bytes with random bytes overwritten, truncated or extended, nor on random
//!   bytes behind a valid header; a file written to disk with the same damage opens to the
//!   same verdict through `Region::open`, and slot attachment never panics either.

#![cfg(not(loom))]

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use fastbreaker::shm::{check_region_bytes, Region, RegionError, RegionOptions, HEADER_SIZE};
use fastbreaker::{BreakerConfig, BucketConfig, Outcome, SECOND};
use proptest::prelude::*;

#[test]
fn regions_live_in_dev_shm_by_default() {
    if !std::path::Path::new("/dev/shm").is_dir() {
        return; // not Linux: nothing to check here
    }
    let name = format!("test-default-{}", std::process::id());
    let options = RegionOptions::new().capacity(4);
    let region = Region::open(&name, &options).unwrap();
    assert_eq!(
        region.path(),
        std::path::Path::new(&format!("/dev/shm/fastbreaker.{name}"))
    );
    let mode = std::fs::metadata(region.path())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let breaker = region.breaker_count("b", &BreakerConfig::new()).unwrap();
    let p = breaker.acquire(0).unwrap();
    breaker.record(p, Outcome::Success, 0);
    assert!(Region::unlink(&name, &options).unwrap());
    assert!(!region.path().exists());
    assert_eq!(
        breaker.metrics(0).succeeded,
        1,
        "the mapping outlives the file"
    );
}

/// The bytes of a region with one slot of each kind, some of them used.
fn sample_region() -> Vec<u8> {
    let dir = std::env::temp_dir().join(format!("fastbreaker-shm-files-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let options = RegionOptions::new().dir(&dir).capacity(6);
    let _ = Region::unlink("sample", &options);
    let region = Region::open("sample", &options).unwrap();
    let config = BreakerConfig {
        failure_threshold: Some(2),
        failure_rate_threshold: Some(50),
        minimum_calls: 2,
        wait_duration_ns: SECOND,
        ..BreakerConfig::new()
    };
    let b = region.breaker_count("count", &config).unwrap();
    let p = b.acquire(5).unwrap();
    b.record(p, Outcome::Failure, 6);
    region.breaker_time("time", &config).unwrap().trip(7);
    region
        .bucket("bucket", BucketConfig::per_second(10, 3))
        .unwrap()
        .try_acquire(2, 8)
        .unwrap();
    let _held = region
        .bulkhead("bulkhead", 2)
        .unwrap()
        .try_acquire()
        .unwrap();
    let bytes = std::fs::read(region.path()).unwrap();
    Region::unlink("sample", &options).unwrap();
    let _ = std::fs::remove_dir(&dir);
    bytes
}

fn verdict(r: &Result<impl Sized, RegionError>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(e) => format!("{e}"),
    }
}

/// Damage: (offset, byte) overwrites, then a new length.
fn damage(mut bytes: Vec<u8>, writes: &[(usize, u8)], len: Option<usize>) -> Vec<u8> {
    for &(at, v) in writes {
        let at = at % bytes.len();
        bytes[at] = v;
    }
    if let Some(len) = len {
        bytes.resize(len, 0xA5);
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn damaged_region_bytes_never_panic(
        writes in prop::collection::vec((any::<usize>(), any::<u8>()), 0..64),
        len in prop::option::weighted(0.2, 0usize..20_000),
        past_header in any::<bool>(),
    ) {
        let sample = sample_region();
        let writes: Vec<_> = if past_header {
            writes
                .into_iter()
                .map(|(at, v)| (HEADER_SIZE + at % (sample.len() - HEADER_SIZE), v))
                .collect()
        } else {
            writes
        };
        let bytes = damage(sample, &writes, len);
        let checked = check_region_bytes(&bytes);

        // The same bytes as a file: the opener reaches the same verdict on the header,
        // and attaching to every slot by its listed configuration never panics.
        let dir = std::env::temp_dir()
            .join(format!("fastbreaker-shm-prop-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let options = RegionOptions::new()
            .dir(&dir)
            .create(false)
            .init_timeout(std::time::Duration::ZERO);
        let path: PathBuf = options.path("damaged").unwrap();
        std::fs::write(&path, &bytes).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let opened = Region::open("damaged", &options);
        match (&checked, &opened) {
            (Ok(_), Ok(_)) => {}
            (Err(a), Err(b)) => prop_assert_eq!(a.to_string(), b.to_string()),
            _ => prop_assert!(false, "{} vs {}", verdict(&checked), verdict(&opened)),
        }
        if let Ok(region) = &opened {
            for entry in region.list() {
                if let fastbreaker::shm::SlotEntry::Ready(info) = entry {
                    let _ = region.reconfigure(&info.name, info.config);
                }
            }
        }
        drop(opened);
        std::fs::remove_file(&path).unwrap();
        let _ = std::fs::remove_dir(&dir);
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..4_096)) {
        prop_assert!(check_region_bytes(&bytes).is_err());
    }
}
