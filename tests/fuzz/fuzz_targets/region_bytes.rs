//! Region files, damaged: `check_region_bytes` runs every check an opener makes, then
//! attaches to and exercises every slot it accepts. It must never panic or hang, whatever
//! the bytes (another process, a corrupt file).
//!
//! Random bytes never get past the header's checksum, so the input is read in two ways: as
//! a whole file, and as (position, value) pairs XORed into a valid region holding one
//! primitive of each kind. The second reaches the slots: their metadata (checksummed) and
//! the primitives' atomic words (not checksummed: any bits must be survivable).
#![no_main]

use std::sync::OnceLock;

use fastbreaker::shm::{check_region_bytes, Region, RegionOptions};
use fastbreaker::{BreakerConfig, BucketConfig};
use libfuzzer_sys::fuzz_target;

/// The bytes of a valid region with a breaker of each window, a bucket and two bulkheads.
fn valid_region() -> &'static [u8] {
    static IMAGE: OnceLock<Vec<u8>> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("fastbreaker-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let options = RegionOptions::new().dir(&dir).capacity(8);
        let _ = Region::unlink("fuzz", &options);
        let region = Region::open("fuzz", &options).expect("a new region");
        let rates = BreakerConfig {
            failure_rate_threshold: Some(50),
            slow_call_rate_threshold: Some(50),
            minimum_calls: 4,
            ..BreakerConfig::new()
        };
        region
            .breaker_count("count", &rates)
            .expect("count breaker");
        region.breaker_time("time", &rates).expect("time breaker");
        region
            .bucket("bucket", BucketConfig::per_second(100, 10))
            .expect("bucket");
        region.bulkhead("bulkhead", 3).expect("bulkhead");
        region.owned_bulkhead("owned", 3).expect("owned bulkhead");
        let bytes = std::fs::read(region.path()).expect("the region file");
        drop(region);
        let _ = Region::unlink("fuzz", &options);
        let _ = std::fs::remove_dir(&dir);
        bytes
    })
}

/// The header's size: damage starts past it, so the header's checksum still holds.
const HEADER: usize = 128;

fuzz_target!(|data: &[u8]| {
    let _ = check_region_bytes(data);
    let mut image = valid_region().to_vec();
    let span = image.len() - HEADER;
    for pair in data.chunks_exact(3) {
        let at = HEADER + usize::from(u16::from_le_bytes([pair[0], pair[1]])) * 7 % span;
        image[at] ^= pair[2];
    }
    let _ = check_region_bytes(&image);
});
