//! Counter table files (`KeyedCounters` in shared memory, the `fastbreaker+shm://` storage
//! of `limits`), damaged: `check_counters_bytes` runs every check an opener makes, then
//! exercises the table on a private copy. It must never panic or hang, whatever the bytes.
//!
//! As for region files, the input is read twice: as a whole file, and as (position, value)
//! pairs XORed into a valid table past its header (checksummed), which holds counters and
//! moving-window logs of a few keys: those words are not checksummed and any bits must be
//! survivable.
#![no_main]

use std::sync::OnceLock;

use fastbreaker::shm::{check_counters_bytes, CountersConfig, Region, RegionOptions};
use fastbreaker::WhenFull;
use libfuzzer_sys::fuzz_target;

/// The bytes of a valid table of 8 keys with logs of 4, a few of them in use.
fn valid_table() -> &'static [u8] {
    static IMAGE: OnceLock<Vec<u8>> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("fastbreaker-fuzz-c-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let options = RegionOptions::new().dir(&dir).capacity(1);
        let _ = Region::unlink("fuzz", &options);
        let region = Region::open("fuzz", &options).expect("a new region");
        let config = CountersConfig {
            capacity: 8,
            window_entries: 4,
            when_full: WhenFull::Reject,
        };
        let table = region.keyed_counters("limits", config).expect("a table");
        for k in 0..5u8 {
            let _ = table.incr(&[k], 1 << 30, 1 + u64::from(k), 1 << 20);
            let _ = table.acquire_entry(&[k, k], 3, 1 << 30, 2, 1 << 20);
        }
        let bytes = std::fs::read(table.storage().path()).expect("the table file");
        drop(table);
        let _ = Region::unlink("fuzz", &options);
        let _ = std::fs::remove_dir(&dir);
        bytes
    })
}

/// The header's size: damage starts past it, so the header's checksum still holds.
const HEADER: usize = 128;

fuzz_target!(|data: &[u8]| {
    let _ = check_counters_bytes(data);
    let mut image = valid_table().to_vec();
    let span = image.len() - HEADER;
    for pair in data.chunks_exact(3) {
        let at = HEADER + usize::from(u16::from_le_bytes([pair[0], pair[1]])) * 7 % span;
        image[at] ^= pair[2];
    }
    let _ = check_counters_bytes(&image);
});
