//! What a region can refuse, and the kinds and configurations of its slots.

use crate::{BreakerConfig, BucketConfig, ConfigError, WhenFull};
use std::boxed::Box;
use std::fmt;
use std::path::PathBuf;
use std::string::String;

/// The kind of primitive a slot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u32)]
pub enum SlotKind {
    /// `CircuitBreaker<CountWindow1024>`.
    BreakerCount = 1,
    /// `CircuitBreaker<TimeWindow64>`.
    BreakerTime = 2,
    /// `TokenBucket`.
    Bucket = 3,
    /// `Bulkhead`.
    Bulkhead = 4,
}

impl SlotKind {
    pub(crate) const fn from_u32(v: u32) -> Option<Self> {
        match v {
            1 => Some(SlotKind::BreakerCount),
            2 => Some(SlotKind::BreakerTime),
            3 => Some(SlotKind::Bucket),
            4 => Some(SlotKind::Bulkhead),
            _ => None,
        }
    }

    /// A short name: `breaker-count`, `breaker-time`, `bucket`, `bulkhead`.
    pub const fn as_str(self) -> &'static str {
        match self {
            SlotKind::BreakerCount => "breaker-count",
            SlotKind::BreakerTime => "breaker-time",
            SlotKind::Bucket => "bucket",
            SlotKind::Bulkhead => "bulkhead",
        }
    }
}

impl fmt::Display for SlotKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A slot's configuration, as given by the process that initialised it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotConfig {
    /// A breaker on a count window ([`CountWindow1024`](crate::CountWindow1024)).
    BreakerCount(BreakerConfig),
    /// A breaker on a time window ([`TimeWindow64`](crate::TimeWindow64)).
    BreakerTime(BreakerConfig),
    /// A token bucket.
    Bucket(BucketConfig),
    /// A bulkhead.
    Bulkhead {
        /// Its limit.
        max_concurrent: u32,
    },
}

impl SlotConfig {
    /// The kind of primitive this configures.
    pub const fn kind(&self) -> SlotKind {
        match self {
            SlotConfig::BreakerCount(_) => SlotKind::BreakerCount,
            SlotConfig::BreakerTime(_) => SlotKind::BreakerTime,
            SlotConfig::Bucket(_) => SlotKind::Bucket,
            SlotConfig::Bulkhead { .. } => SlotKind::Bulkhead,
        }
    }
}

impl fmt::Display for SlotConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SlotConfig::BreakerCount(c) | SlotConfig::BreakerTime(c) => {
                write!(f, "{} {c:?}", self.kind())
            }
            SlotConfig::Bucket(b) => write!(
                f,
                "bucket {{ rate: {}, period_ns: {}, burst: {} }}",
                b.rate, b.period_ns, b.burst
            ),
            SlotConfig::Bulkhead { max_concurrent } => {
                write!(f, "bulkhead {{ max_concurrent: {max_concurrent} }}")
            }
        }
    }
}

/// The configuration of a keyed table in a region (see [`Region::keyed`](super::Region::keyed)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyedConfig {
    /// Every key's bucket.
    pub config: BucketConfig,
    /// What a new key of a full window gets.
    pub when_full: WhenFull,
    /// Slots in the table.
    pub capacity: usize,
}

impl fmt::Display for KeyedConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.config;
        write!(
            f,
            "keyed {{ rate: {}, period_ns: {}, burst: {}, when_full: {}, capacity: {} }}",
            b.rate,
            b.period_ns,
            b.burst,
            match self.when_full {
                WhenFull::Reject => "reject",
                WhenFull::Admit => "admit",
            },
            self.capacity
        )
    }
}

/// Why a region or a slot could not be opened. Each variant names the problem; none is a
/// panic, and no variant reuses a region or slot it could not check.
#[derive(Debug)]
#[non_exhaustive]
pub enum RegionError {
    /// A region or slot name is not allowed.
    InvalidName {
        /// `"region"` or `"slot"`.
        of: &'static str,
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An option is out of range.
    InvalidOptions {
        /// The option.
        field: &'static str,
        /// The value given.
        value: u64,
        /// What it accepts.
        reason: &'static str,
    },
    /// A system call failed.
    Io {
        /// What was being done.
        op: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// No region of that name exists, and the options said not to create one.
    NotFound {
        /// The file looked for.
        path: PathBuf,
    },
    /// The file is not one this user should trust: another owner, a mode that lets other
    /// users in, or not a regular file.
    Untrusted {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The file does not start with the region magic: not a fastbreaker region.
    BadMagic {
        /// The first word found.
        found: u64,
    },
    /// The region was made by a build with another layout version.
    VersionMismatch {
        /// The region's version.
        found: u32,
        /// This build's version.
        expected: u32,
    },
    /// The header's checksum does not match its contents.
    ChecksumMismatch {
        /// The checksum stored in the header.
        stored: u64,
        /// The checksum of the header as read.
        computed: u64,
    },
    /// Same version, but a size in the header differs from this build's (a build of another
    /// target or compiler), or the file is larger than its header says.
    LayoutMismatch {
        /// The size that differs.
        field: &'static str,
        /// In the region.
        found: u64,
        /// In this build.
        expected: u64,
    },
    /// A header field out of range, under a valid checksum.
    CorruptHeader {
        /// The field.
        field: &'static str,
        /// Its value.
        value: u64,
    },
    /// The file is shorter than its header (or a header) needs.
    Truncated {
        /// Bytes needed.
        expected: u64,
        /// Bytes found.
        actual: u64,
    },
    /// A slot that cannot be trusted: bad metadata checksum, unknown kind or claim state, a
    /// stored configuration that does not validate, or a primitive whose settings do not
    /// match its stored configuration.
    CorruptSlot {
        /// The slot's index.
        index: u32,
        /// What is wrong.
        reason: &'static str,
    },
    /// Every slot holds another name.
    Full {
        /// The region's capacity.
        capacity: u32,
    },
    /// A slot's initialiser is alive but did not finish within the options' `init_timeout`.
    SlotBusy {
        /// The slot name asked for.
        name: String,
        /// The slot's index.
        index: u32,
        /// The initialiser's pid.
        pid: u32,
    },
    /// The requested configuration does not validate.
    InvalidConfig {
        /// The slot name.
        name: String,
        /// The error from the primitive's constructor.
        error: ConfigError,
    },
    /// The slot holds another kind of primitive.
    KindMismatch {
        /// The slot name.
        name: String,
        /// The kind in the region.
        existing: SlotKind,
        /// The kind asked for.
        requested: SlotKind,
    },
    /// The slot exists with another configuration.
    ConfigMismatch {
        /// The slot name.
        name: String,
        /// The configuration in force in the region.
        existing: Box<SlotConfig>,
        /// The configuration asked for.
        requested: Box<SlotConfig>,
    },
    /// The keyed table exists with another configuration.
    KeyedConfigMismatch {
        /// The table's name.
        name: String,
        /// The configuration in its file.
        existing: KeyedConfig,
        /// The configuration asked for.
        requested: KeyedConfig,
    },
}

impl RegionError {
    /// An I/O error of `op` on `path`.
    pub(crate) fn io(op: &'static str, path: &std::path::Path, source: std::io::Error) -> Self {
        RegionError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

impl fmt::Display for RegionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use RegionError::*;
        match self {
            InvalidName { of, name, reason } => write!(f, "invalid {of} name {name:?}: {reason}"),
            InvalidOptions {
                field,
                value,
                reason,
            } => write!(f, "invalid region option {field} = {value}: {reason}"),
            Io { op, path, source } => write!(f, "{op} {}: {source}", path.display()),
            NotFound { path } => write!(f, "no region at {}", path.display()),
            Untrusted { path, reason } => {
                write!(f, "refusing region file {}: {reason}", path.display())
            }
            BadMagic { found } => write!(
                f,
                "not a fastbreaker region (magic {found:#018x}, expected {:#018x})",
                super::layout::MAGIC
            ),
            VersionMismatch { found, expected } => write!(
                f,
                "region has layout version {found}, this build uses {expected}: \
                 unlink it once no process of the other version uses it"
            ),
            ChecksumMismatch { stored, computed } => write!(
                f,
                "region header checksum mismatch (stored {stored:#018x}, computed {computed:#018x})"
            ),
            LayoutMismatch {
                field,
                found,
                expected,
            } => write!(
                f,
                "region layout mismatch: {field} is {found}, this build expects {expected}"
            ),
            CorruptHeader { field, value } => {
                write!(f, "corrupt region header: {field} = {value}")
            }
            Truncated { expected, actual } => write!(
                f,
                "region file truncated: {actual} bytes, {expected} needed"
            ),
            CorruptSlot { index, reason } => write!(f, "corrupt region slot {index}: {reason}"),
            Full { capacity } => write!(f, "region full: all {capacity} slots are taken"),
            SlotBusy { name, index, pid } => write!(
                f,
                "slot {index} ({name:?} or another name) is still being initialised by live pid {pid}"
            ),
            InvalidConfig { name, error } => write!(f, "slot {name:?}: {error}"),
            KindMismatch {
                name,
                existing,
                requested,
            } => write!(
                f,
                "slot {name:?} holds a {existing}, not a {requested}"
            ),
            ConfigMismatch {
                name,
                existing,
                requested,
            } => write!(
                f,
                "slot {name:?} exists with another configuration\n  existing:  {existing}\n  requested: {requested}"
            ),
            KeyedConfigMismatch {
                name,
                existing,
                requested,
            } => write!(
                f,
                "keyed table {name:?} exists with another configuration\n  existing:  {existing}\n  requested: {requested}"
            ),
        }
    }
}

impl std::error::Error for RegionError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RegionError::Io { source, .. } => Some(source),
            RegionError::InvalidConfig { error, .. } => Some(error),
            _ => None,
        }
    }
}
