//! Host-shared state: breakers, buckets and bulkheads that every process on a host shares,
//! through a named shared-memory region (feature `shm`, Unix).
//!
//! A region is a file, `/dev/shm/fastbreaker.<name>` (or under the directory given in
//! [`RegionOptions::dir`]), created with mode 0600: only the same user can open it. It
//! holds a versioned, checksummed header and a fixed number of slots, each holding one
//! primitive's atomics in place, found by name. The first process to ask for a slot
//! initialises it; later ones attach, after checking that they ask for the same
//! configuration ([`RegionError::ConfigMismatch`] otherwise). Time is `CLOCK_MONOTONIC`,
//! the same in every process of the host ([`MonotonicClock`](crate::MonotonicClock)).
//!
//! ```
//! use fastbreaker::shm::{Region, RegionOptions};
//! use fastbreaker::{BreakerConfig, BucketConfig, Outcome, State};
//! # let dir = std::env::temp_dir().join(format!("fb-doc-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir).unwrap();
//! let options = RegionOptions::new().dir(&dir).capacity(16);
//! let region = Region::open("myapp", &options)?;
//! let config = BreakerConfig { failure_threshold: Some(1), ..BreakerConfig::new() };
//! let breaker = region.breaker_count("payments", &config)?;
//! let permit = breaker.acquire(0).unwrap();
//! breaker.record(permit, Outcome::Failure, 0);
//!
//! // Another process (here: another opening) sees the same breaker.
//! let other = Region::open("myapp", &options)?;
//! assert_eq!(other.breaker_count("payments", &config)?.state(), State::Open);
//! let bucket = other.bucket("github", BucketConfig::per_second(100, 20))?;
//! assert!(bucket.try_acquire(1, 0).is_ok());
//! # Region::unlink("myapp", &options)?;
//! # std::fs::remove_dir(&dir).ok();
//! # Ok::<(), fastbreaker::shm::RegionError>(())
//! ```
//!
//! ## Creation and attachment
//! The creator builds the whole file under a temporary name (`.fastbreaker.<name>.<pid>.<n>.tmp`,
//! `O_CREAT|O_EXCL`, mode 0600), writes the header, then links it into place with `link(2)`,
//! which fails if the name exists: exactly one creator wins, and a region file under its
//! final name is always complete. So an opener never waits for a region's creator, and a
//! creator that dies mid-way leaves only its temporary file behind (harmless; remove it by
//! hand). Openers refuse a file that is not a regular file owned by this user with no
//! group or other permission bits ([`RegionError::Untrusted`]), and follow no symlink.
//!
//! A slot's claim word moves empty -> initialising (with the initialiser's pid) -> ready.
//! An opener that finds a slot initialising waits (polling with growing sleeps, up to
//! [`RegionOptions::init_timeout`]) for it to become ready. If the initialiser's pid is
//! dead (`kill(pid, 0)` fails with `ESRCH`), the slot is reclaimed and initialised again;
//! if it is alive but does not finish in time, [`RegionError::SlotBusy`] (try again).
//! Processes in different pid namespaces must not share a region: pids are compared as is.
//!
//! ## What is checked
//! Opening a region checks the magic, the layout version ([`LAYOUT_VERSION`]), the header
//! checksum, every size in the header against this build's, the capacity, and the file's
//! length (all before mapping it). Attaching a slot checks its metadata checksum, kind and
//! name, decodes and validates the stored configuration, compares it with the request,
//! rebuilds the primitive from it and checks that the settings of the primitive in place
//! (its non-atomic fields) are the rebuilt one's: corrupt settings never reach the state
//! machines. Any bit pattern in the atomic words is survivable (no panic, no hang).
//! [`check_region_bytes`] runs the same checks on a byte buffer, for fuzzing.
//!
//! ## Keyed tables
//! [`Region::keyed`] gives a [`KeyedBuckets`](crate::KeyedBuckets) (a token bucket per
//! key) that every process opening the region shares, slots and counters alike. A table is
//! too large for a slot: it lives in a file of its own beside the region's,
//! `fastbreaker.<region>.keyed.<table>`, created and checked as a region file is, with a
//! checksummed header holding its configuration and hash seed. Tables are found by file
//! name (not listed by [`Region::list`]: see [`Region::keyed_tables`]); a later opener
//! with another configuration gets [`RegionError::KeyedConfigMismatch`];
//! [`Region::unlink`] removes them with the region. Region names may therefore not contain
//! `.keyed.` nor end with `.keyed`. See `keyed.rs` for the file layout.
//! [`Region::keyed_counters`] gives a [`KeyedCounters`](crate::KeyedCounters) (per-key
//! fixed-window counters and moving-window logs: the `fastbreaker+shm://` storage of
//! Python's `limits`) in a keyed table file of another magic; see `counters.rs`.
//!
//! ## Limits (phase 1)
//! - Slots are never freed; [`Region::unlink`] removes the whole region. Processes that
//!   still have the old one mapped keep using it, while new openers create a new one.
//! - Changing a slot's configuration ([`Region::reconfigure`]) is not supported yet.
//! - Bulkhead permits taken through [`Region::owned_bulkhead`] record their owner process
//!   (pid and start time) and come back when it dies (see [`OwnedBulkhead`]); permits
//!   taken from the plain [`Bulkhead`] of [`Region::bulkhead`] do not. A half-open probe
//!   of a process that dies is presumed hung after the open wait, as in one process (the
//!   breaker's existing rule), so it never wedges the breaker.
//! - A process that truncates the file makes the others fault (SIGBUS); only the same user
//!   can.

mod counters;
mod error;
mod keyed;
mod layout;
mod map;
mod owners;
#[cfg(test)]
mod tests;

pub use crate::keyed::{KeyCounters, KeyStorage};
pub use counters::{
    check_counters_bytes, counters_file_size, counters_log_offset, CountersConfig, CountersFile,
    SharedCounters, COUNTERS_LAYOUT_VERSION, COUNTERS_MAGIC, COUNTERS_SLOTS_OFFSET,
};
pub use error::{KeyedConfig, RegionError, SlotConfig, SlotKind};
pub use keyed::{
    check_keyed_bytes, keyed_file_size, KeyedFile, SharedKeyed, KEYED_COUNTERS_OFFSET,
    KEYED_LAYOUT_VERSION, KEYED_MAGIC, KEYED_SLOTS_OFFSET, MAX_KEYED_NAME_LEN,
};
pub use layout::{
    region_size, AREA_SIZE, DEFAULT_CAPACITY, HEADER_SIZE, LAYOUT_VERSION, MAGIC, MAX_CAPACITY,
    MAX_REGION_NAME_LEN, MAX_SLOT_NAME_LEN, META_SIZE, SLOT_SIZE,
};
pub use map::Shared;
pub use owners::{
    BulkheadSlot, OwnedBulkhead, OwnedPermit, RawOwnedPermit, OWNERS, REAP_INTERVAL_NS,
};

use crate::sync::Ordering;
use crate::window::SameSettings;
use crate::{
    BreakerConfig, BucketConfig, Bulkhead, CircuitBreaker, ConfigError, CountWindow1024,
    TimeWindow64, TokenBucket,
};
use layout::{HEADER_WORDS, INITIALISING, META_WORDS, READY};
use map::{InPlace, Mapping};
use std::boxed::Box;
use std::format;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::string::{String, ToString};
use std::sync::Arc;
use std::time::{Duration, Instant};
use std::vec::Vec;

/// The directory regions live in unless the options give another.
pub const DEFAULT_DIR: &str = "/dev/shm";

/// How to open a region. Build with [`RegionOptions::new`] and the setters.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RegionOptions {
    /// The directory of the region file; `None`: [`DEFAULT_DIR`].
    pub dir: Option<PathBuf>,
    /// Slots of a region this call creates (1..=[`MAX_CAPACITY`]; default
    /// [`DEFAULT_CAPACITY`]). An existing region keeps the capacity it was created with.
    pub capacity: u32,
    /// Create the region if it does not exist (default `true`); otherwise
    /// [`RegionError::NotFound`].
    pub create: bool,
    /// How long to wait for a live process that is initialising a slot (default 2 s).
    pub init_timeout: Duration,
}

impl Default for RegionOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl RegionOptions {
    /// The defaults: `/dev/shm`, [`DEFAULT_CAPACITY`] slots, create if missing, 2 s.
    pub fn new() -> Self {
        RegionOptions {
            dir: None,
            capacity: DEFAULT_CAPACITY,
            create: true,
            init_timeout: Duration::from_secs(2),
        }
    }

    /// Puts the region file in `dir` instead of `/dev/shm`.
    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    /// The number of slots of a region this call creates.
    pub fn capacity(mut self, capacity: u32) -> Self {
        self.capacity = capacity;
        self
    }

    /// Whether to create a missing region.
    pub fn create(mut self, create: bool) -> Self {
        self.create = create;
        self
    }

    /// How long to wait for a slot's live initialiser.
    pub fn init_timeout(mut self, timeout: Duration) -> Self {
        self.init_timeout = timeout;
        self
    }

    /// The file of region `name` (after checking the name).
    pub fn path(&self, name: &str) -> Result<PathBuf, RegionError> {
        check_name("region", name, layout::check_region_name)?;
        let dir = self.dir.as_deref().unwrap_or(Path::new(DEFAULT_DIR));
        Ok(dir.join(format!("fastbreaker.{name}")))
    }
}

/// A ready slot, as listed by [`Region::list`].
#[derive(Debug, Clone, PartialEq)]
pub struct SlotInfo {
    /// The slot's index in the region.
    pub index: u32,
    /// Its name (bytes that are not UTF-8 are replaced).
    pub name: String,
    /// Its configuration in force (as given by its initialiser, or by the latest
    /// [`Region::reconfigure`]; it says the slot's kind).
    pub config: SlotConfig,
}

/// One used slot of a region, as listed by [`Region::list`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum SlotEntry {
    /// Initialised and checked.
    Ready(SlotInfo),
    /// Being initialised by `pid`.
    Initialising {
        /// The slot's index.
        index: u32,
        /// The initialiser.
        pid: u32,
    },
    /// Not to be trusted.
    Corrupt {
        /// The slot's index.
        index: u32,
        /// What is wrong.
        reason: &'static str,
    },
}

/// A primitive a slot can hold.
trait Primitive: InPlace + SameSettings {
    fn build(config: &SlotConfig) -> Result<Self, ConfigError>;
    /// Whether the settings fixed for the primitive's life are `other`'s.
    fn fixed_matches(&self, other: &Self) -> bool;
    /// The configuration in force.
    fn current(&self) -> SlotConfig;
    /// Applies `config` (of this kind) under the slot's writer lock.
    fn apply(&self, config: &SlotConfig) -> Result<(), ConfigError>;
}

impl Primitive for CircuitBreaker<CountWindow1024> {
    fn build(config: &SlotConfig) -> Result<Self, ConfigError> {
        match config {
            SlotConfig::BreakerCount(c) => Self::new(*c),
            _ => unreachable!("kind checked by the caller"),
        }
    }
    fn fixed_matches(&self, other: &Self) -> bool {
        self.same_shape(other)
    }
    fn current(&self) -> SlotConfig {
        SlotConfig::BreakerCount(self.config())
    }
    fn apply(&self, config: &SlotConfig) -> Result<(), ConfigError> {
        match config {
            SlotConfig::BreakerCount(c) => self.reconfigure_exclusive(*c),
            _ => unreachable!("kind checked by the caller"),
        }
    }
}

impl Primitive for CircuitBreaker<TimeWindow64> {
    fn build(config: &SlotConfig) -> Result<Self, ConfigError> {
        match config {
            SlotConfig::BreakerTime(c) => Self::new(*c),
            _ => unreachable!("kind checked by the caller"),
        }
    }
    fn fixed_matches(&self, other: &Self) -> bool {
        self.same_shape(other)
    }
    fn current(&self) -> SlotConfig {
        SlotConfig::BreakerTime(self.config())
    }
    fn apply(&self, config: &SlotConfig) -> Result<(), ConfigError> {
        match config {
            SlotConfig::BreakerTime(c) => self.reconfigure_exclusive(*c),
            _ => unreachable!("kind checked by the caller"),
        }
    }
}

impl Primitive for TokenBucket {
    fn build(config: &SlotConfig) -> Result<Self, ConfigError> {
        match config {
            SlotConfig::Bucket(c) => Self::new(*c),
            _ => unreachable!("kind checked by the caller"),
        }
    }
    fn fixed_matches(&self, other: &Self) -> bool {
        self.same_shape(other)
    }
    fn current(&self) -> SlotConfig {
        SlotConfig::Bucket(self.config())
    }
    fn apply(&self, config: &SlotConfig) -> Result<(), ConfigError> {
        match config {
            SlotConfig::Bucket(c) => {
                self.reconfigure_exclusive(*c, crate::Clock::now_ns(&crate::MonotonicClock))
            }
            _ => unreachable!("kind checked by the caller"),
        }
    }
}

impl Primitive for BulkheadSlot {
    fn build(config: &SlotConfig) -> Result<Self, ConfigError> {
        match config {
            SlotConfig::Bulkhead { max_concurrent } => Self::new(*max_concurrent),
            _ => unreachable!("kind checked by the caller"),
        }
    }
    fn fixed_matches(&self, _: &Self) -> bool {
        true // the limit is all there is, and it changes at run time
    }
    fn current(&self) -> SlotConfig {
        SlotConfig::Bulkhead {
            max_concurrent: self.bulkhead.max_concurrent(),
        }
    }
    fn apply(&self, config: &SlotConfig) -> Result<(), ConfigError> {
        match config {
            SlotConfig::Bulkhead { max_concurrent } => self.bulkhead.reconfigure(*max_concurrent),
            _ => unreachable!("kind checked by the caller"),
        }
    }
}

fn check_name(
    of: &'static str,
    name: &str,
    check: fn(&str) -> Result<(), &'static str>,
) -> Result<(), RegionError> {
    check(name).map_err(|reason| RegionError::InvalidName {
        of,
        name: name.to_string(),
        reason,
    })
}

/// Whether process `pid` may still be running (a pid that cannot exist is dead).
fn alive(pid: u32) -> bool {
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    !matches!(
        rustix::process::test_kill_process(pid),
        Err(rustix::io::Errno::SRCH)
    )
}

/// An open region: a shared mapping of its file. References to the primitives it hands out
/// live as long as it does. `Send` and `Sync`; after `fork`, the child keeps the mapping
/// (it is `MAP_SHARED`) and may go on using the region.
#[derive(Debug)]
pub struct Region {
    map: Mapping,
    capacity: u32,
    name: String,
    path: PathBuf,
    created: bool,
    init_timeout: Duration,
}

impl Region {
    /// Opens region `name`, creating it if it does not exist (see the module docs).
    pub fn open(name: &str, options: &RegionOptions) -> Result<Region, RegionError> {
        let path = options.path(name)?;
        if options.capacity == 0 || options.capacity > MAX_CAPACITY {
            return Err(RegionError::InvalidOptions {
                field: "capacity",
                value: options.capacity as u64,
                reason: "must be in 1..=65536",
            });
        }
        let spec = FileSpec {
            path: &path,
            stem: name,
            create: options.create,
            size: region_size(options.capacity),
            header: layout::new_header(options.capacity, std::process::id()),
            check: &layout::check_header,
        };
        let (map, capacity, created) = open_file(&spec)?;
        Ok(Region {
            map,
            capacity,
            name: name.to_string(),
            path,
            created,
            init_timeout: options.init_timeout,
        })
    }

    /// Removes region `name`'s file, and its keyed tables' files. Returns whether there was
    /// a region file. Processes that have them open keep using them; the next
    /// [`open`](Self::open) creates a new region (and tables).
    pub fn unlink(name: &str, options: &RegionOptions) -> Result<bool, RegionError> {
        let path = options.path(name)?;
        let dir = path.parent().unwrap_or(Path::new("."));
        for (_, table) in keyed::keyed_files(dir, name)? {
            match std::fs::remove_file(&table) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(RegionError::io("unlink", &table, e)),
            }
        }
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(RegionError::io("unlink", &path, e)),
        }
    }

    /// The region's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The region's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its number of slots.
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// Whether this call to [`open`](Self::open) created the region.
    pub fn created(&self) -> bool {
        self.created
    }

    /// The breaker on a count window ([`CountWindow1024`]) in slot `name`, initialised with
    /// `config` if the slot is new. An existing slot must have been given an equivalent
    /// configuration (one that builds the same breaker): otherwise
    /// [`RegionError::ConfigMismatch`].
    pub fn breaker_count(
        &self,
        name: &str,
        config: &BreakerConfig,
    ) -> Result<&CircuitBreaker<CountWindow1024>, RegionError> {
        self.slot(name, SlotConfig::BreakerCount(*config))
    }

    /// The breaker on a time window ([`TimeWindow64`]) in slot `name` (as
    /// [`breaker_count`](Self::breaker_count)).
    pub fn breaker_time(
        &self,
        name: &str,
        config: &BreakerConfig,
    ) -> Result<&CircuitBreaker<TimeWindow64>, RegionError> {
        self.slot(name, SlotConfig::BreakerTime(*config))
    }

    /// The token bucket in slot `name` (as [`breaker_count`](Self::breaker_count)).
    pub fn bucket(&self, name: &str, config: BucketConfig) -> Result<&TokenBucket, RegionError> {
        self.slot(name, SlotConfig::Bucket(config))
    }

    /// The bulkhead in slot `name` (as [`breaker_count`](Self::breaker_count)).
    ///
    /// Permits taken from it directly are not tracked: those of a process killed while
    /// holding them stay taken. Use [`owned_bulkhead`](Self::owned_bulkhead) for permits
    /// that come back.
    pub fn bulkhead(&self, name: &str, max_concurrent: u32) -> Result<&Bulkhead, RegionError> {
        self.slot::<BulkheadSlot>(name, SlotConfig::Bulkhead { max_concurrent })
            .map(|slot| &slot.bulkhead)
    }

    /// The same bulkhead as [`bulkhead`](Self::bulkhead), through a handle whose permits
    /// record their owner process, so that a process killed while holding permits does not
    /// leak them (see [`OwnedBulkhead`]).
    pub fn owned_bulkhead(
        &self,
        name: &str,
        max_concurrent: u32,
    ) -> Result<OwnedBulkhead<'_>, RegionError> {
        self.slot::<BulkheadSlot>(name, SlotConfig::Bulkhead { max_concurrent })
            .map(OwnedBulkhead::new)
    }

    /// [`breaker_count`](Self::breaker_count), as a [`Shared`] handle that keeps the
    /// region open (for bindings).
    pub fn shared_breaker_count(
        self: &Arc<Self>,
        name: &str,
        config: &BreakerConfig,
    ) -> Result<Shared<CircuitBreaker<CountWindow1024>>, RegionError> {
        Ok(Shared::new(self, self.breaker_count(name, config)?))
    }

    /// [`breaker_time`](Self::breaker_time), as a [`Shared`] handle.
    pub fn shared_breaker_time(
        self: &Arc<Self>,
        name: &str,
        config: &BreakerConfig,
    ) -> Result<Shared<CircuitBreaker<TimeWindow64>>, RegionError> {
        Ok(Shared::new(self, self.breaker_time(name, config)?))
    }

    /// [`bucket`](Self::bucket), as a [`Shared`] handle.
    pub fn shared_bucket(
        self: &Arc<Self>,
        name: &str,
        config: BucketConfig,
    ) -> Result<Shared<TokenBucket>, RegionError> {
        Ok(Shared::new(self, self.bucket(name, config)?))
    }

    /// The bulkhead slot `name` (as [`bulkhead`](Self::bulkhead)), as a [`Shared`] handle:
    /// [`BulkheadSlot::owned`] gives permits that record their owner,
    /// [`BulkheadSlot::bulkhead`] the plain bulkhead.
    pub fn shared_bulkhead(
        self: &Arc<Self>,
        name: &str,
        max_concurrent: u32,
    ) -> Result<Shared<BulkheadSlot>, RegionError> {
        let slot = self.slot::<BulkheadSlot>(name, SlotConfig::Bulkhead { max_concurrent })?;
        Ok(Shared::new(self, slot))
    }

    /// Gives slot `name` the configuration `config`, for every process that uses it, in
    /// place: the primitive keeps its state, permits and probes (see `reconfigure` on
    /// [`CircuitBreaker`], [`TokenBucket`] and [`Bulkhead`] for what carries over). A
    /// missing slot is created with `config`. The configuration must be valid and of the
    /// slot's kind ([`RegionError::KindMismatch`]), and may not change what is fixed for
    /// the slot's life (a breaker's window, a bucket's time unit:
    /// [`RegionError::InvalidConfig`] naming the field).
    ///
    /// Reconfigurations of one slot are serialised by a lock word in its metadata holding
    /// the writer's pid; the lock of a writer that died is taken over (so is the
    /// primitive's own writer bit, which a writer killed midway leaves set). A live
    /// writer that holds it longer than [`RegionOptions::init_timeout`]:
    /// [`RegionError::SlotBusy`].
    pub fn reconfigure(&self, name: &str, config: SlotConfig) -> Result<(), RegionError> {
        match config {
            SlotConfig::BreakerCount(c) => {
                let b = self.slot_any::<CircuitBreaker<CountWindow1024>>(name, config)?;
                self.locked_apply(name, b, &SlotConfig::BreakerCount(c))
            }
            SlotConfig::BreakerTime(c) => {
                let b = self.slot_any::<CircuitBreaker<TimeWindow64>>(name, config)?;
                self.locked_apply(name, b, &SlotConfig::BreakerTime(c))
            }
            SlotConfig::Bucket(c) => {
                let b = self.slot_any::<TokenBucket>(name, config)?;
                self.locked_apply(name, b, &SlotConfig::Bucket(c))
            }
            SlotConfig::Bulkhead { .. } => {
                let b = self.slot_any::<BulkheadSlot>(name, config)?;
                self.locked_apply(name, b, &config)
            }
        }
    }

    /// The slot of `name` whatever its configuration (created with `config` if missing),
    /// and its index.
    fn slot_any<T: Primitive>(
        &self,
        name: &str,
        config: SlotConfig,
    ) -> Result<(u32, &T), RegionError> {
        self.slot_matching::<T>(name, config, false)
    }

    /// Applies `config` to `primitive` (slot `name`) under the slot's writer lock.
    fn locked_apply<T: Primitive>(
        &self,
        name: &str,
        (index, primitive): (u32, &T),
        config: &SlotConfig,
    ) -> Result<(), RegionError> {
        let lock = &self.map.meta(index)[layout::WRITER_WORD];
        let pid = std::process::id() as u64;
        let deadline = Instant::now() + self.init_timeout;
        let mut pause = Duration::from_micros(20);
        // Bounded in count as well as time: every round takes the lock, or sleeps.
        let mut taken = false;
        for _ in 0..100_000 {
            let holder = lock.load(Ordering::Relaxed);
            if (holder == 0 || !alive(holder as u32))
                && lock
                    .compare_exchange(holder, pid, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                taken = true;
                break;
            }
            if Instant::now() >= deadline {
                return Err(RegionError::SlotBusy {
                    name: name.to_string(),
                    index,
                    pid: holder as u32,
                });
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(5));
        }
        if !taken {
            return Err(RegionError::SlotBusy {
                name: name.to_string(),
                index,
                pid: 0,
            });
        }
        let result = primitive.apply(config);
        // Release: the next writer sees this one's settings published.
        let _ = lock.compare_exchange(pid, 0, Ordering::Release, Ordering::Relaxed);
        result.map_err(|error| RegionError::InvalidConfig {
            name: name.to_string(),
            error,
        })
    }

    /// Every used slot, in index order, for a `region ls` command. Ready slots are checked
    /// as an attach would check them, and reported corrupt if they fail.
    pub fn list(&self) -> Vec<SlotEntry> {
        let mut entries = Vec::new();
        for index in 0..self.capacity {
            // Acquire: pairs with the Release store of READY in `Mapping::place`.
            let claim = self.map.meta(index)[0].load(Ordering::Acquire);
            match claim & 0xFF {
                layout::EMPTY if claim == 0 => continue,
                INITIALISING => entries.push(SlotEntry::Initialising {
                    index,
                    pid: (claim >> 32) as u32,
                }),
                READY => entries.push(match self.check_ready(index) {
                    Ok(info) => SlotEntry::Ready(info),
                    Err(reason) => SlotEntry::Corrupt { index, reason },
                }),
                _ => entries.push(SlotEntry::Corrupt {
                    index,
                    reason: "unknown claim state",
                }),
            }
        }
        entries
    }

    /// Checks a ready slot fully (metadata, configuration, settings in place).
    fn check_ready(&self, index: u32) -> Result<SlotInfo, &'static str> {
        let meta = layout::parse_meta(&self.meta_words(index))?;
        fn current<T: Primitive>(
            region: &Region,
            index: u32,
            c: &SlotConfig,
        ) -> Result<SlotConfig, &'static str> {
            region.checked_view::<T>(index, c).map(T::current)
        }
        let config = match meta.config.kind() {
            SlotKind::BreakerCount => {
                current::<CircuitBreaker<CountWindow1024>>(self, index, &meta.config)?
            }
            SlotKind::BreakerTime => {
                current::<CircuitBreaker<TimeWindow64>>(self, index, &meta.config)?
            }
            SlotKind::Bucket => current::<TokenBucket>(self, index, &meta.config)?,
            SlotKind::Bulkhead => current::<BulkheadSlot>(self, index, &meta.config)?,
        };
        Ok(SlotInfo {
            index,
            name: String::from_utf8_lossy(meta.name_bytes()).into_owned(),
            config,
        })
    }

    fn meta_words(&self, index: u32) -> [u64; META_WORDS] {
        let words = self.map.meta(index);
        core::array::from_fn(|i| words[i].load(Ordering::Relaxed))
    }

    /// The primitive of ready slot `index`, once its fixed settings (those no
    /// reconfiguration changes: a window's shape, a bucket's time unit) match those rebuilt
    /// from its stored configuration `stored` (the one it was created with). The settings
    /// that change at run time are words that any bits are safe in.
    fn checked_view<T: Primitive>(
        &self,
        index: u32,
        stored: &SlotConfig,
    ) -> Result<&T, &'static str> {
        let rebuilt = T::build(stored).map_err(|_| "stored configuration does not validate")?;
        let in_place = self.map.view::<T>(index);
        if !in_place.fixed_matches(&rebuilt) {
            return Err("the primitive's settings do not match its stored configuration");
        }
        Ok(in_place)
    }

    fn slot<T: Primitive>(&self, name: &str, config: SlotConfig) -> Result<&T, RegionError> {
        self.slot_matching(name, config, true)
            .map(|(_, found)| found)
    }

    /// The slot of `name`, created with `config` if missing; if it exists and `matching`,
    /// its configuration in force must be equivalent to `config`.
    fn slot_matching<T: Primitive>(
        &self,
        name: &str,
        config: SlotConfig,
        matching: bool,
    ) -> Result<(u32, &T), RegionError> {
        check_name("slot", name, layout::check_slot_name)?;
        let fresh = T::build(&config).map_err(|error| RegionError::InvalidConfig {
            name: name.to_string(),
            error,
        })?;
        let start = layout::home(name, self.capacity);
        let mut fresh = Some(fresh);
        for probe in 0..self.capacity {
            let index = (start + probe) % self.capacity;
            if let Some(found) = self.settle(index, name, &config, &mut fresh, matching)? {
                return Ok((index, found));
            }
        }
        Err(RegionError::Full {
            capacity: self.capacity,
        })
    }

    /// Looks at slot `index` for `name`: initialises it if empty (or abandoned by a dead
    /// initialiser), attaches if it holds `name`, `None` if it holds another name.
    fn settle<T: Primitive>(
        &self,
        index: u32,
        name: &str,
        config: &SlotConfig,
        fresh: &mut Option<T>,
        matching: bool,
    ) -> Result<Option<&T>, RegionError> {
        let pid = std::process::id();
        let deadline = Instant::now() + self.init_timeout;
        let mut pause = Duration::from_micros(20);
        let corrupt = |reason| RegionError::CorruptSlot { index, reason };
        // Bounded in count as well as time: every round either returns, or sleeps.
        for _ in 0..100_000 {
            // Acquire: pairs with the Release store of READY in `Mapping::place`.
            let claim = self.map.meta(index)[0].load(Ordering::Acquire);
            let owner = (claim >> 32) as u32;
            match claim & 0xFF {
                layout::EMPTY if claim == 0 => {}
                INITIALISING if !alive(owner) => {}
                INITIALISING => {
                    if Instant::now() >= deadline {
                        return Err(RegionError::SlotBusy {
                            name: name.to_string(),
                            index,
                            pid: owner,
                        });
                    }
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(5));
                    continue;
                }
                READY => {
                    let meta = layout::parse_meta(&self.meta_words(index)).map_err(corrupt)?;
                    if meta.name_bytes() != name.as_bytes() {
                        return Ok(None);
                    }
                    if meta.kind != config.kind() {
                        return Err(RegionError::KindMismatch {
                            name: name.to_string(),
                            existing: meta.kind,
                            requested: config.kind(),
                        });
                    }
                    let in_place = self
                        .checked_view::<T>(index, &meta.config)
                        .map_err(corrupt)?;
                    let requested = fresh.as_ref().expect("not placed yet");
                    if matching && !requested.same_settings(in_place) {
                        return Err(RegionError::ConfigMismatch {
                            name: name.to_string(),
                            existing: Box::new(in_place.current()),
                            requested: Box::new(*config),
                        });
                    }
                    return Ok(Some(in_place));
                }
                _ => return Err(corrupt("unknown claim state")),
            }
            // Empty, or abandoned by a dead initialiser: try to claim it.
            if let Some(claimed) = self.map.claim(index, claim, pid) {
                let meta = layout::new_meta(name, config);
                let value = fresh.take().expect("placed once");
                return Ok(Some(self.map.place(claimed, &meta, value)));
            }
        }
        Err(RegionError::SlotBusy {
            name: name.to_string(),
            index,
            pid: 0,
        })
    }
}

/// Checks a header read from a file of the given length; what it says.
type CheckHeader<'a, T> = &'a dyn Fn(&[u64; HEADER_WORDS], u64) -> Result<T, RegionError>;

/// A file to open, or to create if missing: a region's, or a keyed table's beside it.
struct FileSpec<'a, T> {
    /// Its final name.
    path: &'a Path,
    /// What temporary names are made of (`.fastbreaker.<stem>.<pid>.<n>.tmp`).
    stem: &'a str,
    /// Whether to create it if missing ([`RegionError::NotFound`] otherwise).
    create: bool,
    /// Its size when created (zeros after the header).
    size: u64,
    /// Its header when created.
    header: [u64; HEADER_WORDS],
    /// Checks a header read from a file of the given length; what it says.
    check: CheckHeader<'a, T>,
}

/// Opens `spec`'s file (checking it: see the module docs), or creates it; the mapping, what
/// its header says, and whether this call created it.
fn open_file<T>(spec: &FileSpec<'_, T>) -> Result<(Mapping, T, bool), RegionError> {
    let path = spec.path;
    // Bounded: each round either opens the file or loses a creation race to a file that
    // someone then removed again.
    for _ in 0..16 {
        let mut open = OpenOptions::new();
        open.read(true)
            .write(true)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32);
        match open.open(path) {
            Ok(file) => return attach_file(file, spec).map(|(map, t)| (map, t, false)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if !spec.create {
                    return Err(RegionError::NotFound {
                        path: path.to_path_buf(),
                    });
                }
            }
            Err(e) => return Err(RegionError::io("open", path, e)),
        }
        if let Some((map, t)) = create_file(spec)? {
            return Ok((map, t, true));
        }
    }
    Err(RegionError::io(
        "open",
        path,
        std::io::Error::other("the file kept appearing and disappearing"),
    ))
}

fn attach_file<T>(file: File, spec: &FileSpec<'_, T>) -> Result<(Mapping, T), RegionError> {
    let path = spec.path;
    let meta = file
        .metadata()
        .map_err(|e| RegionError::io("fstat", path, e))?;
    let untrusted = |reason: String| RegionError::Untrusted {
        path: path.to_path_buf(),
        reason,
    };
    if !meta.file_type().is_file() {
        return Err(untrusted("not a regular file".into()));
    }
    let uid = rustix::process::geteuid().as_raw();
    if meta.uid() != uid {
        return Err(untrusted(format!(
            "owned by uid {}, not this user ({uid})",
            meta.uid()
        )));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(untrusted(format!(
            "mode {:o} lets other users in (0600 expected)",
            meta.mode() & 0o777
        )));
    }
    let len = meta.len();
    if len < HEADER_SIZE as u64 {
        return Err(RegionError::Truncated {
            expected: HEADER_SIZE as u64,
            actual: len,
        });
    }
    let mut bytes = [0u8; HEADER_SIZE];
    file.read_exact_at(&mut bytes, 0)
        .map_err(|e| RegionError::io("read header", path, e))?;
    let said = (spec.check)(&words_of(&bytes), len)?;
    let map = Mapping::file(&file, len as usize).map_err(|e| RegionError::io("mmap", path, e))?;
    Ok((map, said))
}

/// Builds the file under a temporary name and links it into place. `None`: another process
/// linked its file first.
fn create_file<T>(spec: &FileSpec<'_, T>) -> Result<Option<(Mapping, T)>, RegionError> {
    static COUNTER: portable_atomic::AtomicU32 = portable_atomic::AtomicU32::new(0);
    let path = spec.path;
    let dir = path.parent().unwrap_or(Path::new("."));
    let pid = std::process::id();
    let (tmp, file) = loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".fastbreaker.{}.{pid}.{n}.tmp", spec.stem));
        let mut open = OpenOptions::new();
        open.read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32);
        match open.open(&tmp) {
            Ok(file) => break (tmp, file),
            // A leftover of a dead process whose pid we now have: take the next number.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n % 1024 != 1023 => {}
            Err(e) => return Err(RegionError::io("create", &tmp, e)),
        }
    };
    let result = (|| {
        let said = (spec.check)(&spec.header, spec.size)?;
        file.set_len(spec.size)
            .map_err(|e| RegionError::io("ftruncate", &tmp, e))?;
        let map = Mapping::file(&file, spec.size as usize)
            .map_err(|e| RegionError::io("mmap", &tmp, e))?;
        for (word, &v) in map.header().iter().zip(&spec.header) {
            // Relaxed: nobody else can open the file before it is linked into place, and
            // the link is a system call made after these stores.
            word.store(v, Ordering::Relaxed);
        }
        match std::fs::hard_link(&tmp, path) {
            Ok(()) => Ok(Some((map, said))),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(None),
            Err(e) => Err(RegionError::io("link", path, e)),
        }
    })();
    let _ = std::fs::remove_file(&tmp);
    result
}

fn words_of<const N: usize>(bytes: &[u8]) -> [u64; N] {
    core::array::from_fn(|i| u64::from_ne_bytes(bytes[i * 8..i * 8 + 8].try_into().expect("8")))
}

/// Runs every check an opener makes on `bytes` taken as a region file, and attaches to
/// every ready slot as a process asking for its stored configuration would, then exercises
/// each primitive a little (their atomic words may hold any bit pattern). Returns the
/// slots, as [`Region::list`] does. Never panics, whatever the bytes: a fuzz target calls
/// it with arbitrary input.
pub fn check_region_bytes(bytes: &[u8]) -> Result<Vec<SlotEntry>, RegionError> {
    if bytes.len() < HEADER_SIZE {
        return Err(RegionError::Truncated {
            expected: HEADER_SIZE as u64,
            actual: bytes.len() as u64,
        });
    }
    let header: [u64; HEADER_WORDS] = words_of(&bytes[..HEADER_SIZE]);
    let capacity = layout::check_header(&header, bytes.len() as u64)?;
    let map =
        Mapping::copy_of(bytes).map_err(|e| RegionError::io("mmap", Path::new("<bytes>"), e))?;
    let region = Region {
        map,
        capacity,
        name: String::from("<bytes>"),
        path: PathBuf::from("<bytes>"),
        created: false,
        init_timeout: Duration::ZERO,
    };
    let entries = region.list();
    for entry in &entries {
        let SlotEntry::Ready(info) = entry else {
            continue;
        };
        // Attach by name, as another process would: the probe may stop earlier at a slot
        // that is corrupt or initialising (an error), or find an earlier slot of the same
        // name; either way nothing may panic.
        let now = 1 << 40;
        match info.config {
            SlotConfig::BreakerCount(c) => {
                if let Ok(b) = region.breaker_count(&info.name, &c) {
                    exercise_breaker(b, now);
                }
            }
            SlotConfig::BreakerTime(c) => {
                if let Ok(b) = region.breaker_time(&info.name, &c) {
                    exercise_breaker(b, now);
                }
            }
            SlotConfig::Bucket(c) => {
                if let Ok(b) = region.bucket(&info.name, c) {
                    let _ = b.try_acquire(1, now);
                    let _ = b.reserve_within(1, now, 1 << 30);
                    let _ = b.state(now);
                    b.refund(1, now);
                }
            }
            SlotConfig::Bulkhead { max_concurrent } => {
                if let Ok(b) = region.owned_bulkhead(&info.name, max_concurrent) {
                    drop(b.try_acquire());
                    let _ = b.bulkhead().metrics();
                    let _ = b.held_by_owners().count();
                }
            }
        }
    }
    Ok(entries)
}

fn exercise_breaker<W: crate::Window>(b: &CircuitBreaker<W>, now: u64) {
    let _ = b.metrics(now);
    let _ = b.config();
    if let Ok(p) = b.acquire(now) {
        b.record(p, crate::Outcome::Failure, now + 1);
    }
    let _ = b.retry_after(now);
}
