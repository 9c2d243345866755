//! Keyed tables of a region: one [`KeyedBuckets`] shared by every process that opens it.
//!
//! A region's slots (1792 bytes of area) are too small for a table, so a keyed table lives
//! in a file of its own beside the region's, `<dir>/fastbreaker.<region>.keyed.<table>`,
//! made and checked exactly as a region file is (mode 0600, built under a temporary name
//! and linked into place, so a file under its final name is always complete; on open: a
//! regular file of this user with no group or other bits, no symlink followed, then the
//! header). The table is found by its file name, not through a region slot: table names
//! are a namespace of their own (a table and a slot may share a name), and
//! [`Region::list`] does not show tables ([`Region::keyed_tables`] does).
//! [`Region::unlink`] removes the region's table files too.
//!
//! ```text
//! header (16 words, 128 bytes)
//!   w0  magic "FBKEYTBL"            w1  layout version | header size (high 32)
//!   w2  capacity (slots)            w3  size of a KeySlot | size of the counters (high 32)
//!   w4  counters offset | slots offset (high 32)
//!   w5  rate   w6  period_ns   w7  burst   w8  when_full (0 reject, 1 admit)
//!   w9  hash seed (random at creation)     w10 creator's pid    w11..=w14 0
//!   w15 checksum (FNV-1a 64) of w0..=w14
//! +128  counters: allowed, limited, full_rejected, full_admitted (AtomicU64 each), padded
//!       to 64 bytes
//! +192  capacity KeySlots (all zero: empty)
//! ```
//!
//! The header never changes once linked, so its checksum covers everything an opener
//! trusts: the bucket settings of every process are rebuilt from it, and a process asking
//! for another configuration (rate, period, burst, when_full or capacity) gets
//! [`RegionError::KeyedConfigMismatch`] naming both. The counters and the slots are atomic
//! words in which any bits are survivable (the core's contract for [`KeySlot`]s), so the
//! metrics of [`KeyedBuckets::metrics`] are the table's, across processes.

use super::error::{KeyedConfig, RegionError};
use super::layout::{check_stamp, checksum, HEADER_SIZE, HEADER_WORDS};
use super::map::Mapping;
use super::{check_name, open_file, FileSpec, Region};
use crate::keyed::{KeyCounters, KeyStorage};
use crate::limits::MAX_KEYED_CAPACITY;
use crate::{BucketConfig, KeySlot, KeyedBuckets, WhenFull};
use core::mem::size_of;
use std::format;
use std::path::{Path, PathBuf};
use std::string::{String, ToString};
use std::sync::Arc;
use std::vec::Vec;

/// "FBKEYTBL" read as a little-endian word.
pub const KEYED_MAGIC: u64 = u64::from_le_bytes(*b"FBKEYTBL");
/// The layout version of keyed table files.
pub const KEYED_LAYOUT_VERSION: u32 = 2;
/// Byte offset of the counters in a keyed table file.
pub const KEYED_COUNTERS_OFFSET: usize = HEADER_SIZE;
/// Byte offset of the slots in a keyed table file.
pub const KEYED_SLOTS_OFFSET: usize = HEADER_SIZE + 64;
/// The longest keyed table name, in bytes.
pub const MAX_KEYED_NAME_LEN: usize = 64;

const _: () = assert!(size_of::<KeyCounters>() <= 64);

/// The size of a keyed table file of `capacity` slots.
pub const fn keyed_file_size(capacity: usize) -> u64 {
    KEYED_SLOTS_OFFSET as u64 + capacity as u64 * size_of::<KeySlot>() as u64
}

fn pair(lo: u64, hi: u64) -> u64 {
    lo | hi << 32
}

/// What a keyed table's header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TableHeader {
    config: KeyedConfig,
    seed: u64,
}

fn new_header(c: &KeyedConfig, seed: u64, pid: u32) -> [u64; HEADER_WORDS] {
    let mut w = [0u64; HEADER_WORDS];
    w[0] = KEYED_MAGIC;
    w[1] = pair(KEYED_LAYOUT_VERSION as u64, HEADER_SIZE as u64);
    w[2] = c.capacity as u64;
    w[3] = pair(size_of::<KeySlot>() as u64, size_of::<KeyCounters>() as u64);
    w[4] = pair(KEYED_COUNTERS_OFFSET as u64, KEYED_SLOTS_OFFSET as u64);
    w[5] = c.config.rate;
    w[6] = c.config.period_ns;
    w[7] = c.config.burst;
    w[8] = match c.when_full {
        WhenFull::Reject => 0,
        WhenFull::Admit => 1,
    };
    w[9] = seed;
    w[10] = pid as u64;
    w[HEADER_WORDS - 1] = checksum(&w[..HEADER_WORDS - 1]);
    w
}

/// Checks a keyed table's header read from a file of `file_len` bytes (magic, version,
/// checksum, sizes, fields, then the file's length).
fn check_header(w: &[u64; HEADER_WORDS], file_len: u64) -> Result<TableHeader, RegionError> {
    check_stamp(w, KEYED_MAGIC, KEYED_LAYOUT_VERSION)?;
    let fields: [(&'static str, u64, u64); 5] = [
        ("header_size", w[1] >> 32, HEADER_SIZE as u64),
        (
            "key_slot_size",
            w[3] & 0xFFFF_FFFF,
            size_of::<KeySlot>() as u64,
        ),
        ("counters_size", w[3] >> 32, size_of::<KeyCounters>() as u64),
        (
            "counters_offset",
            w[4] & 0xFFFF_FFFF,
            KEYED_COUNTERS_OFFSET as u64,
        ),
        ("slots_offset", w[4] >> 32, KEYED_SLOTS_OFFSET as u64),
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
    let corrupt = |field, value| RegionError::CorruptHeader { field, value };
    let capacity = w[2];
    if capacity == 0 || capacity > MAX_KEYED_CAPACITY as u64 {
        return Err(corrupt("capacity", capacity));
    }
    let when_full = match w[8] {
        0 => WhenFull::Reject,
        1 => WhenFull::Admit,
        v => return Err(corrupt("when_full", v)),
    };
    if let Some(i) = (11..HEADER_WORDS - 1).find(|&i| w[i] != 0) {
        return Err(corrupt("reserved", w[i]));
    }
    let config = BucketConfig {
        rate: w[5],
        period_ns: w[6],
        burst: w[7],
    };
    if crate::TokenBucket::new(config).is_err() {
        return Err(corrupt("bucket_config", w[5]));
    }
    let size = keyed_file_size(capacity as usize);
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
    Ok(TableHeader {
        config: KeyedConfig {
            config,
            when_full,
            capacity: capacity as usize,
        },
        seed: w[9],
    })
}

/// Keyed table names become part of file names: 1..=64 bytes, no `/`, no `..`, no NUL or
/// control characters.
fn check_keyed_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("must not be empty");
    }
    if name.len() > MAX_KEYED_NAME_LEN {
        return Err("must be at most 64 bytes");
    }
    if name.contains('/') {
        return Err("must not contain '/'");
    }
    if name.contains("..") {
        return Err("must not contain '..'");
    }
    if name.contains('\0') || name.chars().any(char::is_control) {
        return Err("must not contain NUL or control characters");
    }
    Ok(())
}

/// A random seed for a new table's hash (std's per-process random keys, the time and the
/// pid).
pub(crate) fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    h.finish()
}

/// The storage of a keyed table in shared memory: its file's mapping (slots and counters).
#[derive(Debug)]
pub struct KeyedFile {
    map: Mapping,
    capacity: usize,
    path: PathBuf,
    created: bool,
}

impl KeyedFile {
    /// The table's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether this opening created the table.
    pub fn created(&self) -> bool {
        self.created
    }
}

impl KeyStorage for KeyedFile {
    fn slots(&self) -> &[KeySlot] {
        self.map.slice_at(KEYED_SLOTS_OFFSET, self.capacity)
    }

    fn counters(&self) -> Option<&KeyCounters> {
        self.map
            .slice_at::<KeyCounters>(KEYED_COUNTERS_OFFSET, 1)
            .first()
    }
}

/// A keyed table in shared memory (from [`Region::keyed`]).
pub type SharedKeyed = KeyedBuckets<KeyedFile>;

impl Region {
    /// The file of this region's keyed table `name` (after checking the name).
    pub fn keyed_path(&self, name: &str) -> Result<PathBuf, RegionError> {
        check_name("keyed table", name, check_keyed_name)?;
        let dir = self.path().parent().unwrap_or(Path::new("."));
        Ok(dir.join(format!("fastbreaker.{}.keyed.{name}", self.name())))
    }

    /// The keyed table `name` of this region, shared by every process that opens it: made
    /// with `config`, `when_full` and `capacity` slots if it does not exist (with a random
    /// hash seed), else checked and attached (see the [module docs](super)). A table
    /// that exists with another configuration: [`RegionError::KeyedConfigMismatch`].
    ///
    /// The handle owns its own mapping of the table's file: it does not borrow the region.
    pub fn keyed(
        &self,
        name: &str,
        config: BucketConfig,
        when_full: WhenFull,
        capacity: usize,
    ) -> Result<SharedKeyed, RegionError> {
        let path = self.keyed_path(name)?;
        if capacity == 0 || capacity > MAX_KEYED_CAPACITY {
            return Err(RegionError::InvalidOptions {
                field: "capacity",
                value: capacity as u64,
                reason: "a keyed table has 1..=2^24 slots",
            });
        }
        crate::TokenBucket::new(config).map_err(|error| RegionError::InvalidConfig {
            name: name.to_string(),
            error,
        })?;
        let requested = KeyedConfig {
            config,
            when_full,
            capacity,
        };
        let stem = format!("{}.keyed.{name}", self.name());
        let spec = FileSpec {
            path: &path,
            stem: &stem,
            create: true,
            size: keyed_file_size(capacity),
            header: new_header(&requested, random_seed(), std::process::id()),
            check: &check_header,
        };
        let (map, found, created) = open_file(&spec)?;
        if found.config != requested {
            return Err(RegionError::KeyedConfigMismatch {
                name: name.to_string(),
                existing: found.config,
                requested,
            });
        }
        let storage = KeyedFile {
            map,
            capacity,
            path,
            created,
        };
        KeyedBuckets::new(config, when_full, found.seed, storage).map_err(|error| {
            RegionError::InvalidConfig {
                name: name.to_string(),
                error,
            }
        })
    }

    /// This region's existing keyed table `name`, attached with the configuration its
    /// header holds (rate, period, burst, `when_full`, capacity): for tools that list or
    /// export a region's tables without knowing how they were made. Never creates one: a
    /// missing table is [`RegionError::NotFound`]; the file is checked as by
    /// [`keyed`](Self::keyed).
    pub fn open_keyed(&self, name: &str) -> Result<SharedKeyed, RegionError> {
        let path = self.keyed_path(name)?;
        let stem = format!("{}.keyed.{name}", self.name());
        let spec = FileSpec {
            path: &path,
            stem: &stem,
            create: false,
            size: 0,
            header: [0; HEADER_WORDS],
            check: &check_header,
        };
        let (map, found, _) = open_file(&spec)?;
        let KeyedConfig {
            config,
            when_full,
            capacity,
        } = found.config;
        let storage = KeyedFile {
            map,
            capacity,
            path,
            created: false,
        };
        KeyedBuckets::new(config, when_full, found.seed, storage).map_err(|error| {
            RegionError::InvalidConfig {
                name: name.to_string(),
                error,
            }
        })
    }

    /// [`keyed`](Self::keyed), behind an `Arc` (for bindings: `'static`, `Send`, `Sync`,
    /// cheap to clone). The table keeps its own mapping, so it stays usable whatever
    /// becomes of the region handle.
    pub fn shared_keyed(
        self: &Arc<Self>,
        name: &str,
        config: BucketConfig,
        when_full: WhenFull,
        capacity: usize,
    ) -> Result<Arc<SharedKeyed>, RegionError> {
        self.keyed(name, config, when_full, capacity).map(Arc::new)
    }

    /// The names of this region's keyed tables (their files in the region's directory),
    /// sorted. Files are not opened or checked.
    pub fn keyed_tables(&self) -> Result<Vec<String>, RegionError> {
        keyed_files(self.path().parent().unwrap_or(Path::new(".")), self.name())
            .map(|files| files.into_iter().map(|(name, _)| name).collect())
    }
}

/// The keyed table files of region `region` in `dir`: (table name, path), sorted.
pub(crate) fn keyed_files(dir: &Path, region: &str) -> Result<Vec<(String, PathBuf)>, RegionError> {
    let prefix = format!("fastbreaker.{region}.keyed.");
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(RegionError::io("read_dir", dir, e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| RegionError::io("read_dir", dir, e))?;
        let file = entry.file_name();
        let Some(file) = file.to_str() else { continue };
        if let Some(table) = file.strip_prefix(&prefix) {
            if check_keyed_name(table).is_ok() {
                out.push((table.to_string(), entry.path()));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Runs every check an opener makes on `bytes` taken as a keyed table file (for tests and
/// fuzzing), then exercises the table on a private copy: its words may hold any bits.
pub fn check_keyed_bytes(bytes: &[u8]) -> Result<KeyedConfig, RegionError> {
    if bytes.len() < HEADER_SIZE {
        return Err(RegionError::Truncated {
            expected: HEADER_SIZE as u64,
            actual: bytes.len() as u64,
        });
    }
    let header: [u64; HEADER_WORDS] = super::words_of(&bytes[..HEADER_SIZE]);
    let found = check_header(&header, bytes.len() as u64)?;
    let map =
        Mapping::copy_of(bytes).map_err(|e| RegionError::io("mmap", Path::new("<bytes>"), e))?;
    let storage = KeyedFile {
        map,
        capacity: found.config.capacity,
        path: PathBuf::from("<bytes>"),
        created: false,
    };
    let c = found.config;
    let table = KeyedBuckets::new(c.config, c.when_full, found.seed, storage).map_err(|error| {
        RegionError::InvalidConfig {
            name: String::from("<bytes>"),
            error,
        }
    })?;
    for (i, now) in [0u64, 1 << 20, 1 << 40, u64::MAX].into_iter().enumerate() {
        let key = [i as u8; 5];
        let _ = table.try_acquire(&key, 1, now);
        let _ = table.retry_after(&key, 1, now);
        let _ = table.state(&key, now);
        let _ = table.reset(&key);
        let _ = table.live_keys(now);
    }
    let _ = table.metrics();
    Ok(c)
}
