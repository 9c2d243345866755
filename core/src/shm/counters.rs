//! Keyed counter tables of a region: one [`KeyedCounters`] (the state of `limits`'
//! strategies per key) shared by every process that opens it.
//!
//! A counter table is a keyed table of another kind: it lives in a file of its own beside
//! the region's, `<dir>/fastbreaker.<region>.keyed.<table>` (the keyed tables' namespace,
//! so [`Region::keyed_tables`] lists it and [`Region::unlink`] removes it), made and checked
//! exactly as a keyed bucket table's file is (mode 0600, built under a temporary name and
//! linked into place; on open: a regular file of this user with no group or other bits, no
//! symlink followed, then the header). Its magic differs: opening a counter table as a
//! bucket table, or the reverse, is [`RegionError::BadMagic`].
//!
//! ```text
//! header (16 words, 128 bytes)
//!   w0  magic "FBKEYCNT"            w1  layout version | header size (high 32)
//!   w2  capacity (slots)            w3  size of a CounterSlot
//!   w4  window entries per key      w5  slots offset | log offset (high 32)
//!   w6  when_full (0 reject, 1 admit)
//!   w7  hash seed (random at creation)     w8  creator's pid    w9..=w14 0
//!   w15 checksum (FNV-1a 64) of w0..=w14
//! +128  capacity CounterSlots (all zero: empty)
//! then  capacity * window entries log words (u64 each)
//! ```
//!
//! The header never changes once linked: every process rebuilds the table's settings from
//! it, and one asking for another capacity, window length or full-table policy gets
//! [`RegionError::InvalidOptions`] naming the field. The slots and log are atomic words in
//! which any bits are survivable.

use super::error::RegionError;
use super::layout::{check_stamp, checksum, HEADER_SIZE, HEADER_WORDS};
use super::map::Mapping;
use super::{open_file, FileSpec, Region};
use crate::keyed_counters::{
    CounterSlot, CounterStorage, MAX_COUNTER_CAPACITY, MAX_WINDOW_ENTRIES,
};
use crate::sync::AtomicU64;
use crate::{KeyedCounters, WhenFull};
use core::mem::size_of;
use std::format;
use std::path::{Path, PathBuf};
use std::string::String;

/// "FBKEYCNT" read as a little-endian word.
pub const COUNTERS_MAGIC: u64 = u64::from_le_bytes(*b"FBKEYCNT");
/// The layout version of counter table files.
pub const COUNTERS_LAYOUT_VERSION: u32 = 1;
/// Byte offset of the slots in a counter table file.
pub const COUNTERS_SLOTS_OFFSET: usize = HEADER_SIZE;

/// The byte offset of the log in a counter table file of `capacity` slots.
pub const fn counters_log_offset(capacity: usize) -> usize {
    COUNTERS_SLOTS_OFFSET + capacity * size_of::<CounterSlot>()
}

/// The size of a counter table file of `capacity` slots with `entries` log words each.
pub const fn counters_file_size(capacity: usize, entries: usize) -> u64 {
    counters_log_offset(capacity) as u64 + (capacity as u64) * (entries as u64) * 8
}

/// The settings of a counter table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CountersConfig {
    /// Slots (keys tracked at once).
    pub capacity: usize,
    /// Moving-window log entries per key.
    pub window_entries: usize,
    /// What a new key of a full window gets.
    pub when_full: WhenFull,
}

fn pair(lo: u64, hi: u64) -> u64 {
    lo | hi << 32
}

fn new_header(c: &CountersConfig, seed: u64, pid: u32) -> [u64; HEADER_WORDS] {
    let mut w = [0u64; HEADER_WORDS];
    w[0] = COUNTERS_MAGIC;
    w[1] = pair(COUNTERS_LAYOUT_VERSION as u64, HEADER_SIZE as u64);
    w[2] = c.capacity as u64;
    w[3] = size_of::<CounterSlot>() as u64;
    w[4] = c.window_entries as u64;
    w[5] = pair(
        COUNTERS_SLOTS_OFFSET as u64,
        counters_log_offset(c.capacity) as u64,
    );
    w[6] = match c.when_full {
        WhenFull::Reject => 0,
        WhenFull::Admit => 1,
    };
    w[7] = seed;
    w[8] = pid as u64;
    w[HEADER_WORDS - 1] = checksum(&w[..HEADER_WORDS - 1]);
    w
}

/// Checks a counter table's header read from a file of `file_len` bytes.
fn check_header(
    w: &[u64; HEADER_WORDS],
    file_len: u64,
) -> Result<(CountersConfig, u64), RegionError> {
    check_stamp(w, COUNTERS_MAGIC, COUNTERS_LAYOUT_VERSION)?;
    let corrupt = |field, value| RegionError::CorruptHeader { field, value };
    let capacity = w[2];
    if capacity == 0 || capacity > MAX_COUNTER_CAPACITY as u64 {
        return Err(corrupt("capacity", capacity));
    }
    let entries = w[4];
    if entries == 0 || entries > MAX_WINDOW_ENTRIES as u64 {
        return Err(corrupt("window_entries", entries));
    }
    let (capacity, entries) = (capacity as usize, entries as usize);
    let fields: [(&'static str, u64, u64); 4] = [
        ("header_size", w[1] >> 32, HEADER_SIZE as u64),
        ("counter_slot_size", w[3], size_of::<CounterSlot>() as u64),
        (
            "slots_offset",
            w[5] & 0xFFFF_FFFF,
            COUNTERS_SLOTS_OFFSET as u64,
        ),
        (
            "log_offset",
            w[5] >> 32,
            counters_log_offset(capacity) as u64,
        ),
    ];
    for (field, found, expected) in fields {
        if found != expected {
            return Err(RegionError::LayoutMismatch {
                field,
                found,
                expected,
            });
        }
    }
    let when_full = match w[6] {
        0 => WhenFull::Reject,
        1 => WhenFull::Admit,
        v => return Err(corrupt("when_full", v)),
    };
    if let Some(i) = (9..HEADER_WORDS - 1).find(|&i| w[i] != 0) {
        return Err(corrupt("reserved", w[i]));
    }
    let size = counters_file_size(capacity, entries);
    if file_len < size {
        return Err(RegionError::Truncated {
            expected: size,
            actual: file_len,
        });
    }
    if file_len > size {
        return Err(RegionError::LayoutMismatch {
            field: "file_size",
            found: file_len,
            expected: size,
        });
    }
    Ok((
        CountersConfig {
            capacity,
            window_entries: entries,
            when_full,
        },
        w[7],
    ))
}

/// The storage of a counter table in shared memory: its file's mapping.
#[derive(Debug)]
pub struct CountersFile {
    map: Mapping,
    config: CountersConfig,
    path: PathBuf,
    created: bool,
}

impl CountersFile {
    /// The table's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether this opening created the table.
    pub fn created(&self) -> bool {
        self.created
    }

    /// The table's settings (from its header).
    pub fn config(&self) -> CountersConfig {
        self.config
    }
}

impl CounterStorage for CountersFile {
    fn slots(&self) -> &[CounterSlot] {
        self.map
            .slice_at(COUNTERS_SLOTS_OFFSET, self.config.capacity)
    }

    fn log(&self) -> &[AtomicU64] {
        self.map.slice_at(
            counters_log_offset(self.config.capacity),
            self.config.capacity * self.config.window_entries,
        )
    }
}

/// A counter table in shared memory (from [`Region::keyed_counters`]).
pub type SharedCounters = KeyedCounters<CountersFile>;

impl Region {
    /// The counter table `name` of this region, shared by every process that opens it:
    /// made with `config` if it does not exist (with a random hash seed), else checked and
    /// attached, as a keyed bucket table's file is ([`Region::keyed`]). Its file is
    /// [`keyed_path(name)`](Self::keyed_path), with a header of magic [`COUNTERS_MAGIC`]
    /// (opening it as a bucket table, or the reverse, is [`RegionError::BadMagic`]); a
    /// table that exists with another capacity, window length or full-table policy is
    /// [`RegionError::InvalidOptions`] naming the field.
    pub fn keyed_counters(
        &self,
        name: &str,
        config: CountersConfig,
    ) -> Result<SharedCounters, RegionError> {
        let path = self.keyed_path(name)?;
        if config.capacity == 0 || config.capacity > MAX_COUNTER_CAPACITY {
            return Err(RegionError::InvalidOptions {
                field: "capacity",
                value: config.capacity as u64,
                reason: "a counter table has 1..=2^24 slots",
            });
        }
        if config.window_entries == 0 || config.window_entries > MAX_WINDOW_ENTRIES {
            return Err(RegionError::InvalidOptions {
                field: "window_entries",
                value: config.window_entries as u64,
                reason: "a counter table has 1..=65536 moving-window entries per key",
            });
        }
        let stem = format!("{}.keyed.{name}", self.name());
        let spec = FileSpec {
            path: &path,
            stem: &stem,
            create: true,
            size: counters_file_size(config.capacity, config.window_entries),
            header: new_header(&config, super::keyed::random_seed(), std::process::id()),
            check: &check_header,
        };
        let (map, (found, seed), created) = open_file(&spec)?;
        let mismatch = |field, value: usize, reason| RegionError::InvalidOptions {
            field,
            value: value as u64,
            reason,
        };
        if found.capacity != config.capacity {
            return Err(mismatch(
                "capacity",
                config.capacity,
                "the counter table exists with another capacity",
            ));
        }
        if found.window_entries != config.window_entries {
            return Err(mismatch(
                "window_entries",
                config.window_entries,
                "the counter table exists with another window_entries",
            ));
        }
        if found.when_full != config.when_full {
            return Err(mismatch(
                "when_full",
                config.when_full as usize,
                "the counter table exists with another when_full",
            ));
        }
        let storage = CountersFile {
            map,
            config: found,
            path,
            created,
        };
        KeyedCounters::new(found.when_full, seed, found.window_entries, storage).map_err(|error| {
            RegionError::InvalidConfig {
                name: String::from(name),
                error,
            }
        })
    }
}

/// Runs every check an opener makes on `bytes` taken as a counter table file (for tests
/// and fuzzing), then exercises the table on a private copy: its words may hold any bits.
pub fn check_counters_bytes(bytes: &[u8]) -> Result<CountersConfig, RegionError> {
    if bytes.len() < HEADER_SIZE {
        return Err(RegionError::Truncated {
            expected: HEADER_SIZE as u64,
            actual: bytes.len() as u64,
        });
    }
    let header: [u64; HEADER_WORDS] = super::words_of(&bytes[..HEADER_SIZE]);
    let (found, seed) = check_header(&header, bytes.len() as u64)?;
    let map =
        Mapping::copy_of(bytes).map_err(|e| RegionError::io("mmap", Path::new("<bytes>"), e))?;
    let storage = CountersFile {
        map,
        config: found,
        path: PathBuf::from("<bytes>"),
        created: false,
    };
    let table = KeyedCounters::new(found.when_full, seed, found.window_entries, storage).map_err(
        |error| RegionError::InvalidConfig {
            name: String::from("<bytes>"),
            error,
        },
    )?;
    for (i, now) in [0u64, 1 << 20, 1 << 40, u64::MAX].into_iter().enumerate() {
        let key = [i as u8; 5];
        let _ = table.incr(&key, 1 << 30, 1, now);
        let _ = table.decr(&key, 1, now);
        let _ = table.get(&key, now);
        let _ = table.expiry(&key, now);
        let _ = table.acquire_entry(&key, 1, 1 << 30, 1, now);
        let _ = table.moving_window(&key, 1 << 30, now);
        let _ = table.clear(&key, now);
        let _ = table.live_keys(now);
    }
    let _ = table.clear_all(0);
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::super::RegionOptions;
    use super::*;
    use crate::SECOND;
    use std::os::unix::fs::FileExt;
    use std::string::ToString;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("fastbreaker-counters-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    const CONFIG: CountersConfig = CountersConfig {
        capacity: 16,
        window_entries: 4,
        when_full: WhenFull::Reject,
    };

    #[test]
    fn two_openings_share_a_table_and_settings_are_checked() {
        let dir = temp_dir("share");
        let options = RegionOptions::new().dir(&dir).capacity(8);
        let a = Region::open("app", &options).unwrap();
        let b = Region::open("app", &options).unwrap();
        let ta = a.keyed_counters("limits", CONFIG).unwrap();
        let tb = b.keyed_counters("limits", CONFIG).unwrap();
        assert!(ta.storage().created() && !tb.storage().created());
        assert_eq!(ta.incr(b"k", SECOND, 2, 0), Ok(2));
        assert_eq!(tb.incr(b"k", SECOND, 1, 1), Ok(3));
        assert_eq!(tb.acquire_entry(b"m", 1, SECOND, 1, 0), Ok(true));
        assert_eq!(ta.acquire_entry(b"m", 1, SECOND, 1, 1), Ok(false));
        let other = CountersConfig {
            window_entries: 5,
            ..CONFIG
        };
        let e = b.keyed_counters("limits", other).unwrap_err();
        assert!(e.to_string().contains("window_entries"), "{e}");
        // A bucket table of the same name is another kind of file.
        let bucket = b.keyed(
            "limits",
            crate::BucketConfig::per_second(1, 1),
            WhenFull::Reject,
            16,
        );
        assert!(matches!(bucket, Err(RegionError::BadMagic { .. })));
        assert_eq!(b.keyed_tables().unwrap(), ["limits"]);
        Region::unlink("app", &options).unwrap();
        assert!(!ta.storage().path().exists(), "unlink removes the table");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn scrambled_file_bytes_are_survivable() {
        let dir = temp_dir("scramble");
        let options = RegionOptions::new().dir(&dir).capacity(8);
        let region = Region::open("app", &options).unwrap();
        let table = region.keyed_counters("limits", CONFIG).unwrap();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(table.storage().path())
            .unwrap();
        let size = counters_file_size(CONFIG.capacity, CONFIG.window_entries);
        let mut next = crate::breaker::tests::arbitrary_words(0xC0DE_5EED);
        for i in 0..3_000u64 {
            // Arbitrary bytes anywhere after the header, through the file: the mapping
            // sees them.
            for _ in 0..4 {
                let at = HEADER_SIZE as u64 + next() % (size - HEADER_SIZE as u64 - 8);
                file.write_all_at(&next().to_ne_bytes(), at).unwrap();
            }
            let key = [(i % 5) as u8; 2];
            let now = next() >> (i % 64);
            let e = next() >> (i % 64);
            let _ = table.incr(&key, e, next() % 3, now);
            let _ = table.decr(&key, 1, now);
            let _ = table.get(&key, now);
            let _ = table.expiry(&key, now);
            let _ = table.acquire_entry(&key, next() % 5, e, next() % 5, now);
            let _ = table.moving_window(&key, e, now);
            let _ = table.clear(&key, now);
            if i % 500 == 0 {
                let _ = table.clear_all(now);
                let _ = table.live_keys(now);
            }
        }
        // Arbitrary bytes anywhere, header included: refused or survived by the checks.
        let mut bytes = std::vec![0u8; size as usize];
        file.read_exact_at(&mut bytes, 0).unwrap();
        assert!(check_counters_bytes(&bytes).is_ok());
        for _ in 0..200 {
            let mut b = bytes.clone();
            for _ in 0..8 {
                let at = (next() % size) as usize;
                b[at] = next() as u8;
            }
            let _ = check_counters_bytes(&b);
        }
        assert!(check_counters_bytes(&bytes[..100]).is_err());
        Region::unlink("app", &options).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
