//! The region's byte layout, and the pure functions that encode and check it.
//!
//! Nothing here touches the mapping: the header and slot metadata are handled as arrays of
//! `u64` words, loaded from the mapping's atomics (or from a file's bytes) by the caller.
//! Every word is in the host's byte order: a region never leaves its host.
//!
//! ```text
//! offset 0      header, 16 words (128 bytes)
//!   w0  magic "FBREGION"
//!   w1  layout version (low 32) | header size (high 32)
//!   w2  capacity, in slots (low 32) | slot size (high 32)
//!   w3  slot metadata size (low 32) | primitive area size (high 32)
//!   w4  size of CircuitBreaker<CountWindow1024> | size of CircuitBreaker<TimeWindow64>
//!   w5  size of TokenBucket | size of a bulkhead slot (Bulkhead, reap stamp, 64 owners)
//!   w6  pid of the creator (information only)
//!   w7..=w14 reserved, 0
//!   w15 checksum (FNV-1a 64) of w0..=w14
//! offset 128 + i * 2048   slot i
//!   +0    metadata, 32 words (256 bytes)
//!     m0  claim: state (low 8 bits: 0 empty, 1 initialising, 2 ready) | pid (high 32)
//!     m1  kind (low 32: 1 breaker-count, 2 breaker-time, 3 bucket, 4 bulkhead) | name length (high 32)
//!     m2..=m9   name, 64 bytes, zero-padded
//!     m10..=m25 the configuration it was created with (see `SlotConfig::encode`); the one
//!               in force is in the primitive (it changes with `Region::reconfigure`)
//!     m26 checksum (FNV-1a 64) of m1..=m25
//!     m27 reconfiguration lock: 0 free, else the pid of the process reconfiguring the slot
//!     m28..=m31 reserved, 0
//!   +256  the primitive, in place (at most 1792 bytes)
//! ```
//!
//! A name's slot is found by linear probing from `FNV-1a-64(name bytes) % capacity`; the
//! probe ends at the name, or at an empty slot (which the caller then claims). Slots are
//! never emptied, so a name cannot be found twice. The hash is part of the layout: a
//! change to it needs a new [`LAYOUT_VERSION`].

use super::error::{RegionError, SlotConfig, SlotKind};
use crate::{
    BreakerConfig, BucketConfig, CircuitBreaker, CountWindow1024, TimeWindow64, TokenBucket,
};
use core::mem::size_of;

/// "FBREGION" read as a little-endian word.
pub const MAGIC: u64 = u64::from_le_bytes(*b"FBREGION");
/// The layout version. Bumped by any change to the header, the slot metadata or the byte
/// layout of a primitive; a region of another version is refused, never reused.
pub const LAYOUT_VERSION: u32 = 2;
/// Words of the header.
pub const HEADER_WORDS: usize = 16;
/// Bytes of the header; slot 0 starts here.
pub const HEADER_SIZE: usize = HEADER_WORDS * 8;
/// Words of a slot's metadata.
pub const META_WORDS: usize = 32;
/// Bytes of a slot's metadata; the primitive starts here, within the slot.
pub const META_SIZE: usize = META_WORDS * 8;
/// Bytes reserved for the primitive in each slot.
pub const AREA_SIZE: usize = 1792;
/// Bytes of one slot.
pub const SLOT_SIZE: usize = META_SIZE + AREA_SIZE;
/// The longest slot name, in bytes.
pub const MAX_SLOT_NAME_LEN: usize = 64;
/// The longest region name, in bytes.
pub const MAX_REGION_NAME_LEN: usize = 100;
/// Slots in a region when the options do not say.
pub const DEFAULT_CAPACITY: u32 = 256;
/// The most slots a region may have (128 MiB of slots).
pub const MAX_CAPACITY: u32 = 65_536;

/// Claim states (low byte of the claim word).
pub(crate) const EMPTY: u64 = 0;
pub(crate) const INITIALISING: u64 = 1;
pub(crate) const READY: u64 = 2;

/// Configuration words in a slot's metadata.
pub(crate) const CONFIG_WORDS: usize = 16;
const NAME_WORDS: usize = MAX_SLOT_NAME_LEN / 8;
const KIND_WORD: usize = 1;
const NAME_WORD: usize = 2;
const CONFIG_WORD: usize = NAME_WORD + NAME_WORDS;
const META_CHECKSUM_WORD: usize = CONFIG_WORD + CONFIG_WORDS;
/// The slot's reconfiguration lock (outside the checksum: it changes).
pub(crate) const WRITER_WORD: usize = META_CHECKSUM_WORD + 1;

const SIZE_BREAKER_COUNT: usize = size_of::<CircuitBreaker<CountWindow1024>>();
const SIZE_BREAKER_TIME: usize = size_of::<CircuitBreaker<TimeWindow64>>();
const SIZE_BUCKET: usize = size_of::<TokenBucket>();
const SIZE_BULKHEAD: usize = size_of::<super::owners::BulkheadSlot>();

const _: () = {
    assert!(SIZE_BREAKER_COUNT <= AREA_SIZE);
    assert!(SIZE_BREAKER_TIME <= AREA_SIZE);
    assert!(SIZE_BUCKET <= AREA_SIZE);
    assert!(SIZE_BULKHEAD <= AREA_SIZE);
    assert!(WRITER_WORD < META_WORDS);
    assert!(HEADER_SIZE % 64 == 0 && SLOT_SIZE % 64 == 0 && META_SIZE % 64 == 0);
};

/// FNV-1a, 64 bits, over the bytes of `words`.
pub(crate) fn checksum(words: &[u64]) -> u64 {
    let mut h = FNV_OFFSET;
    for w in words {
        for b in w.to_ne_bytes() {
            h = (h ^ b as u64).wrapping_mul(FNV_PRIME);
        }
    }
    h
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0100_0000_01b3;

/// The slot where the probe for `name` starts.
pub(crate) fn home(name: &str, capacity: u32) -> u32 {
    (fnv_bytes(name.as_bytes()) % capacity as u64) as u32
}

fn fnv_bytes(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(FNV_OFFSET, |h, &b| (h ^ b as u64).wrapping_mul(FNV_PRIME))
}

/// The total size of a region of `capacity` slots.
pub const fn region_size(capacity: u32) -> u64 {
    HEADER_SIZE as u64 + capacity as u64 * SLOT_SIZE as u64
}

/// Byte offset of slot `index`'s metadata.
pub(crate) const fn slot_offset(index: u32) -> usize {
    HEADER_SIZE + index as usize * SLOT_SIZE
}

fn pair(lo: usize, hi: usize) -> u64 {
    lo as u64 | (hi as u64) << 32
}

/// The header of a new region.
pub(crate) fn new_header(capacity: u32, pid: u32) -> [u64; HEADER_WORDS] {
    let mut w = [0u64; HEADER_WORDS];
    w[0] = MAGIC;
    w[1] = pair(LAYOUT_VERSION as usize, HEADER_SIZE);
    w[2] = pair(capacity as usize, SLOT_SIZE);
    w[3] = pair(META_SIZE, AREA_SIZE);
    w[4] = pair(SIZE_BREAKER_COUNT, SIZE_BREAKER_TIME);
    w[5] = pair(SIZE_BUCKET, SIZE_BULKHEAD);
    w[6] = pid as u64;
    w[HEADER_WORDS - 1] = checksum(&w[..HEADER_WORDS - 1]);
    w
}

/// Checks the stamp every shared file's header starts and ends with, in this order: the
/// magic (`w[0]`), the layout version (`w[1]`; a file of another version may checksum
/// differently), then the checksum in the last word over all the others.
pub(crate) fn check_stamp(
    w: &[u64; HEADER_WORDS],
    magic: u64,
    version: u32,
) -> Result<(), RegionError> {
    if w[0] != magic {
        return Err(RegionError::BadMagic { found: w[0] });
    }
    let found = w[1] as u32;
    if found != version {
        return Err(RegionError::VersionMismatch {
            found,
            expected: version,
        });
    }
    let computed = checksum(&w[..HEADER_WORDS - 1]);
    if w[HEADER_WORDS - 1] != computed {
        return Err(RegionError::ChecksumMismatch {
            stored: w[HEADER_WORDS - 1],
            computed,
        });
    }
    Ok(())
}

/// Checks a header read from a file of `file_len` bytes; returns the capacity.
///
/// Order: magic, version (a region of another version may checksum differently), checksum,
/// the layout's sizes, capacity, then the file's length against what the header implies.
pub(crate) fn check_header(w: &[u64; HEADER_WORDS], file_len: u64) -> Result<u32, RegionError> {
    check_stamp(w, MAGIC, LAYOUT_VERSION)?;
    let expected = new_header(w[2] as u32, w[6] as u32);
    let fields: [(&'static str, usize, bool); 8] = [
        ("header_size", 1, true),
        ("slot_size", 2, true),
        ("meta_size", 3, false),
        ("area_size", 3, true),
        ("breaker_count_size", 4, false),
        ("breaker_time_size", 4, true),
        ("bucket_size", 5, false),
        ("bulkhead_size", 5, true),
    ];
    for (field, i, high) in fields {
        let part = |x: u64| if high { x >> 32 } else { x & 0xFFFF_FFFF };
        if part(w[i]) != part(expected[i]) {
            return Err(RegionError::LayoutMismatch {
                field,
                found: part(w[i]),
                expected: part(expected[i]),
            });
        }
    }
    let capacity = w[2] as u32;
    if capacity == 0 || capacity > MAX_CAPACITY {
        return Err(RegionError::CorruptHeader {
            field: "capacity",
            value: capacity as u64,
        });
    }
    let size = region_size(capacity);
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
    Ok(capacity)
}

/// What a ready slot's metadata says.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Meta {
    pub kind: SlotKind,
    pub name: [u8; MAX_SLOT_NAME_LEN],
    pub name_len: usize,
    pub config: SlotConfig,
}

impl Meta {
    pub(crate) fn name_bytes(&self) -> &[u8] {
        &self.name[..self.name_len]
    }
}

/// The metadata words of a slot being initialised (all but the claim word, left 0).
pub(crate) fn new_meta(name: &str, config: &SlotConfig) -> [u64; META_WORDS] {
    let mut w = [0u64; META_WORDS];
    w[KIND_WORD] = config.kind() as u64 | (name.len() as u64) << 32;
    let mut bytes = [0u8; MAX_SLOT_NAME_LEN];
    bytes[..name.len()].copy_from_slice(name.as_bytes());
    for (i, chunk) in bytes.chunks_exact(8).enumerate() {
        w[NAME_WORD + i] = u64::from_ne_bytes(chunk.try_into().expect("8 bytes"));
    }
    w[CONFIG_WORD..CONFIG_WORD + CONFIG_WORDS].copy_from_slice(&config.encode());
    w[META_CHECKSUM_WORD] = checksum(&w[KIND_WORD..META_CHECKSUM_WORD]);
    w
}

/// Parses the metadata of a ready slot. Errors say what is corrupt.
pub(crate) fn parse_meta(w: &[u64; META_WORDS]) -> Result<Meta, &'static str> {
    if w[META_CHECKSUM_WORD] != checksum(&w[KIND_WORD..META_CHECKSUM_WORD]) {
        return Err("metadata checksum mismatch");
    }
    let kind = SlotKind::from_u32(w[KIND_WORD] as u32).ok_or("unknown kind")?;
    let name_len = (w[KIND_WORD] >> 32) as usize;
    if name_len == 0 || name_len > MAX_SLOT_NAME_LEN {
        return Err("name length out of range");
    }
    let mut name = [0u8; MAX_SLOT_NAME_LEN];
    for i in 0..NAME_WORDS {
        name[i * 8..i * 8 + 8].copy_from_slice(&w[NAME_WORD + i].to_ne_bytes());
    }
    let mut config = [0u64; CONFIG_WORDS];
    config.copy_from_slice(&w[CONFIG_WORD..CONFIG_WORD + CONFIG_WORDS]);
    let config = SlotConfig::decode(kind, &config).ok_or("configuration words out of range")?;
    Ok(Meta {
        kind,
        name,
        name_len,
        config,
    })
}

/// Region names become file names: no `/`, no `..`, no NUL or control characters, no
/// `.keyed.` and no `.keyed` at the end (keyed tables' files), 1..=100 bytes.
pub(crate) fn check_region_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("must not be empty");
    }
    if name.len() > MAX_REGION_NAME_LEN {
        return Err("must be at most 100 bytes");
    }
    if name.contains('/') {
        return Err("must not contain '/'");
    }
    if name.contains("..") {
        return Err("must not contain '..'");
    }
    if name.contains('\0') {
        return Err("must not contain NUL");
    }
    if name.chars().any(char::is_control) {
        return Err("must not contain control characters");
    }
    // Keyed tables live in `fastbreaker.<region>.keyed.<table>`: no region's name may make
    // its file, or its tables' files, another region's table file.
    if name.contains(".keyed.") || name.ends_with(".keyed") {
        return Err("must not contain \".keyed.\" or end with \".keyed\"");
    }
    Ok(())
}

/// Slot names: 1..=64 bytes, no NUL.
pub(crate) fn check_slot_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("must not be empty");
    }
    if name.len() > MAX_SLOT_NAME_LEN {
        return Err("must be at most 64 bytes");
    }
    if name.contains('\0') {
        return Err("must not contain NUL");
    }
    Ok(())
}

impl SlotConfig {
    /// The configuration as 16 words: the form stored in a slot.
    ///
    /// Breakers: w0 holds a bit per optional field that is set (bit 0 failure_threshold,
    /// 1 failure_rate_threshold, 2 slow_call_rate_threshold, 3 window_size,
    /// 4 window_buckets, 5 max_wait_duration_ns, 6 jitter_seed), then one word per field in
    /// declaration order (an unset optional field is 0). Buckets: rate, period_ns, burst.
    /// Bulkheads: max_concurrent.
    pub(crate) fn encode(&self) -> [u64; CONFIG_WORDS] {
        let mut w = [0u64; CONFIG_WORDS];
        match self {
            SlotConfig::BreakerCount(c) | SlotConfig::BreakerTime(c) => {
                let mut flags = 0u64;
                let mut opt = |bit: u32, v: Option<u64>| match v {
                    Some(v) => {
                        flags |= 1 << bit;
                        v
                    }
                    None => 0,
                };
                w[1] = opt(0, c.failure_threshold.map(u64::from));
                w[2] = opt(1, c.failure_rate_threshold.map(u64::from));
                w[3] = opt(2, c.slow_call_rate_threshold.map(u64::from));
                w[6] = opt(3, c.window_size.map(u64::from));
                w[7] = opt(4, c.window_buckets.map(u64::from));
                w[11] = opt(5, c.max_wait_duration_ns);
                w[13] = opt(6, c.jitter_seed);
                w[0] = flags;
                w[4] = c.slow_call_duration_ns;
                w[5] = c.minimum_calls as u64;
                w[8] = c.bucket_duration_ns;
                w[9] = c.wait_duration_ns;
                w[10] = c.backoff_factor_milli as u64;
                w[12] = c.jitter_permille as u64;
                w[14] = c.half_open_max_calls as u64;
                w[15] = c.success_threshold as u64;
            }
            SlotConfig::Bucket(b) => {
                w[0] = b.rate;
                w[1] = b.period_ns;
                w[2] = b.burst;
            }
            SlotConfig::Bulkhead { max_concurrent } => w[0] = *max_concurrent as u64,
        }
        w
    }

    /// The inverse of [`encode`](Self::encode); `None` if a word does not fit its field or a
    /// word that must be 0 is not.
    pub(crate) fn decode(kind: SlotKind, w: &[u64; CONFIG_WORDS]) -> Option<SlotConfig> {
        fn fit<T: TryFrom<u64>>(v: u64) -> Option<T> {
            T::try_from(v).ok()
        }
        /// An optional field: `Some(None)` if unset, `None` if set to a value that does
        /// not fit.
        fn ofit<T: TryFrom<u64>>(v: Option<u64>) -> Option<Option<T>> {
            match v {
                None => Some(None),
                Some(v) => fit(v).map(Some),
            }
        }
        let zero_from = |i: usize| w[i..].iter().all(|&x| x == 0);
        match kind {
            SlotKind::BreakerCount | SlotKind::BreakerTime => {
                let flags = w[0];
                if flags >> 7 != 0 {
                    return None;
                }
                let opt = |bit: u32, v: u64| -> Option<Option<u64>> {
                    if flags & (1 << bit) != 0 {
                        Some(Some(v))
                    } else if v == 0 {
                        Some(None)
                    } else {
                        None
                    }
                };
                let c = BreakerConfig {
                    failure_threshold: ofit(opt(0, w[1])?)?,
                    failure_rate_threshold: ofit(opt(1, w[2])?)?,
                    slow_call_rate_threshold: ofit(opt(2, w[3])?)?,
                    slow_call_duration_ns: w[4],
                    minimum_calls: fit(w[5])?,
                    window_size: ofit(opt(3, w[6])?)?,
                    window_buckets: ofit(opt(4, w[7])?)?,
                    bucket_duration_ns: w[8],
                    wait_duration_ns: w[9],
                    backoff_factor_milli: fit(w[10])?,
                    max_wait_duration_ns: opt(5, w[11])?,
                    jitter_permille: fit(w[12])?,
                    jitter_seed: opt(6, w[13])?,
                    half_open_max_calls: fit(w[14])?,
                    success_threshold: fit(w[15])?,
                };
                Some(if kind == SlotKind::BreakerCount {
                    SlotConfig::BreakerCount(c)
                } else {
                    SlotConfig::BreakerTime(c)
                })
            }
            SlotKind::Bucket => zero_from(3).then_some(SlotConfig::Bucket(BucketConfig {
                rate: w[0],
                period_ns: w[1],
                burst: w[2],
            })),
            SlotKind::Bulkhead => zero_from(1).then_some(SlotConfig::Bulkhead {
                max_concurrent: fit(w[0])?,
            }),
        }
    }
}
