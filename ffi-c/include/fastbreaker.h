/*
 * fastbreaker: a lock-free circuit breaker, GCRA token bucket and bulkhead.
 * C API of libfastbreaker.a / libfastbreaker.so. SPDX-License-Identifier: MIT OR Apache-2.0
 *
 * GENERATED from ffi-c/src by cbindgen (`make ffi-header`); do not edit by hand.
 *
 * Conventions. Functions return an fb_result: FB_OK (0), FB_REJECTED (1, not an error), or a
 * negative FB_ERR_*; fb_last_error() then describes the failure on this thread. Every pointer
 * argument is checked: a NULL handle, configuration, permit, storage or out-parameter gives
 * FB_ERR_NULL (fb_last_error() names the argument) and the call changes and writes nothing.
 * The optional out-parameters are retry_after_ns of fb_bucket_try_acquire[_at] and
 * fb_keyed_try_acquire[_at] and found of fb_keyed_reset: NULL there means "do not store it";
 * the optional inputs are the options of fb_region_open and the dir
 * of fb_region_unlink and fb_region_options (NULL: the defaults). Every _free accepts NULL. Every function runs inside a panic
 * boundary (FB_ERR_PANIC). Every function may be called from many threads at once on one
 * handle, except _free, which must be the last call on its handle. Times are nanoseconds on a
 * monotonic clock: the functions without _at read CLOCK_MONOTONIC (fb_now_ns()); the _at
 * variants take the caller's now_ns, which must come from one monotonic clock per handle.
 * Limits: every limit the core enforces has an FB_MAX_* / FB_MIN_* constant below, and the
 * core checks every configuration (FB_ERR_INVALID_CONFIG with the core's message).
 *
 * Host-shared state (fb_region_*). A region is one file, /dev/shm/fastbreaker.<name> unless
 * fb_region_options.dir says otherwise, created with mode 0600 and mapped by every process of
 * the same user on this host that opens the name (forked or started separately). It holds
 * breakers, buckets and bulkheads in place, found by name and handed out as ordinary
 * fb_breaker / fb_bucket / fb_bulkhead handles, freed by their _free functions; each such
 * handle keeps the mapping alive, so it stays valid after fb_region_free. What a region is not:
 * shared across hosts, users, or pid namespaces (containers), or kept across a reboot (/dev/shm
 * is memory) or an fb_region_unlink (processes that have it open keep the old one, new openers
 * get a new one). Opening checks the name, the file's owner and mode, and the header (magic,
 * layout version, checksum, sizes): every failure is an FB_ERR_REGION_* code (or
 * FB_ERR_INVALID_ARGUMENT / FB_ERR_INVALID_CONFIG), never a crash or a silent reuse. One thing
 * is not caught: a process of the same user that truncates the file makes the others fault
 * (SIGBUS). Bulkhead permits of a process killed while holding them come back (see
 * fb_region_bulkhead).
 */

#ifndef FASTBREAKER_H
#define FASTBREAKER_H

/* Generated with cbindgen:0.29.4 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#define FB_STRINGIFY_(x) #x
#define FB_STRINGIFY(x) FB_STRINGIFY_(x)
/** The version of this header, "MAJOR.MINOR.PATCH"; fb_version() gives the library's. */
#define FB_VERSION_STRING \
    FB_STRINGIFY(FB_VERSION_MAJOR) "." FB_STRINGIFY(FB_VERSION_MINOR) "." FB_STRINGIFY(FB_VERSION_PATCH)

/**
 * Major version of the library this header belongs to.
 */
#define FB_VERSION_MAJOR 0

/**
 * Minor version of the library this header belongs to.
 */
#define FB_VERSION_MINOR 1

/**
 * Patch version of the library this header belongs to.
 */
#define FB_VERSION_PATCH 0

/**
 * One microsecond in the library's unit of time (nanoseconds). A `uint64_t` constant
 * (`UINT64_C`), so `x / FB_SECOND` prints with `PRIu64`.
 */
#define FB_MICROSECOND UINT64_C(1000)

/**
 * One millisecond in nanoseconds (`uint64_t`).
 */
#define FB_MILLISECOND UINT64_C(1000000)

/**
 * One second in nanoseconds (`uint64_t`).
 */
#define FB_SECOND UINT64_C(1000000000)

/**
 * Largest `failure_threshold` (the consecutive-failure counter has 24 bits).
 */
#define FB_MAX_FAILURE_THRESHOLD 16777215

/**
 * Largest `failure_rate_threshold` and `slow_call_rate_threshold`: they are percentages,
 * 1..=100 (0 turns the rule off).
 */
#define FB_MAX_RATE_THRESHOLD 100

/**
 * Largest `window_size` of a count window. With a rate rule on, `minimum_calls` must also
 * be at most `window_size`.
 */
#define FB_MAX_WINDOW_SIZE 1024

/**
 * Largest `window_buckets` of a time window.
 */
#define FB_MAX_WINDOW_BUCKETS 64

/**
 * Longest open wait, about 208 days (2^54 ns): `wait_duration_ns` and `max_wait_duration_ns`
 * must not exceed it, and a growing wait with no cap stops there. Every wait ends.
 */
#define FB_MAX_WAIT_DURATION_NS UINT64_C(18014398509481984)

/**
 * Smallest `backoff_factor_milli` (a factor of 1.0: the wait does not grow).
 */
#define FB_MIN_BACKOFF_FACTOR_MILLI 1000

/**
 * Most growth steps of the open wait: a configuration whose wait cannot reach its cap
 * (`max_wait_duration_ns`, or `FB_MAX_WAIT_DURATION_NS`) within this many reopenings is
 * refused; raise `backoff_factor_milli` or lower the cap.
 */
#define FB_MAX_BACKOFF_STEPS 1023

/**
 * Largest `jitter_permille` (jitter may take away the whole wait).
 */
#define FB_MAX_JITTER_PERMILLE 1000

/**
 * Largest `half_open_max_calls`.
 */
#define FB_MAX_HALF_OPEN_MAX_CALLS 1023

/**
 * Largest `success_threshold`.
 */
#define FB_MAX_SUCCESS_THRESHOLD 1023

/**
 * Largest `burst` of a bucket (2^32 tokens).
 */
#define FB_MAX_BURST UINT64_C(4294967296)

/**
 * Longest key of a keyed table (`fb_keyed_*`), in bytes: the table keeps every key whole,
 * so that two keys are never merged. Digest longer keys (e.g. SHA-256) before passing them.
 */
#define FB_MAX_KEY_LEN 64

/**
 * Largest `capacity` of a keyed table, in slots (2^24).
 */
#define FB_MAX_KEYED_CAPACITY 16777216

/**
 * Smallest `max_concurrent` of a bulkhead.
 */
#define FB_MIN_MAX_CONCURRENT 1

/**
 * A rule that is off: the value of `failure_threshold`, `failure_rate_threshold` or
 * `slow_call_rate_threshold` that turns the rule off (the Rust core's `None`). 0 is not off:
 * the core refuses it, as it refuses `Some(0)`.
 */
#define FB_OFF 4294967295u

/**
 * `jitter_seed` that asks for a random seed (the Rust core's `None`, and the default): the
 * breaker draws one from the operating system the first time it jitters, so processes and
 * instances do not jitter alike. Every other value is used as the seed.
 */
#define FB_RANDOM_SEED UINT64_C(18446744073709551615)

/**
 * `duration_ns` for `fb_breaker_record`: measure the call from its acquire instead.
 */
#define FB_DURATION_AUTO UINT64_C(18446744073709551615)

/**
 * Bytes of storage that hold any breaker (`fb_breaker_init`); `fb_breaker_storage_size`
 * gives the exact, smaller, need of a count window.
 */
#define FB_BREAKER_STORAGE_SIZE 1800

/**
 * Alignment of breaker storage.
 */
#define FB_BREAKER_STORAGE_ALIGN 8

/**
 * Concurrency mode: admits while fewer than `floor(limit)` calls are in flight.
 */
#define FB_ADAPTIVE_CONCURRENCY 0

/**
 * Rate mode: admits `limit` calls per second, paced (a burst of one call).
 */
#define FB_ADAPTIVE_RATE 1

/**
 * The AIMD rule: additive increase, multiplicative decrease.
 */
#define FB_ADAPTIVE_AIMD 0

/**
 * The gradient rule (min-RTT over sampled latency, with a queue term).
 */
#define FB_ADAPTIVE_GRADIENT 1

/**
 * Outcome: the backend served the call (pass its latency).
 */
#define FB_ADAPTIVE_SUCCESS 0

/**
 * Outcome: the backend is overloaded (a 429/503 or a timeout; pass its Retry-After).
 */
#define FB_ADAPTIVE_OVERLOAD 1

/**
 * Outcome: neither (a 404, a cancellation): the call is just released.
 */
#define FB_ADAPTIVE_IGNORE 2

/**
 * Bytes of storage that hold a bucket (`fb_bucket_init`).
 */
#define FB_BUCKET_STORAGE_SIZE 128

/**
 * Alignment of bucket storage.
 */
#define FB_BUCKET_STORAGE_ALIGN 8

/**
 * Bytes of storage that hold a bulkhead (`fb_bulkhead_init`).
 */
#define FB_BULKHEAD_STORAGE_SIZE 40

/**
 * Alignment of bulkhead storage.
 */
#define FB_BULKHEAD_STORAGE_ALIGN 8

/**
 * Slots of a region created with the default options.
 */
#define FB_REGION_DEFAULT_CAPACITY 256

/**
 * The most slots a region can have.
 */
#define FB_REGION_MAX_CAPACITY 65536

/**
 * The longest region name, in bytes.
 */
#define FB_REGION_MAX_NAME_LEN 100

/**
 * The longest slot name, in bytes.
 */
#define FB_REGION_MAX_SLOT_NAME_LEN 64

/**
 * The layout version this library reads and writes (a region of another version is
 * refused with `FB_ERR_REGION_VERSION`).
 */
#define FB_REGION_LAYOUT_VERSION 2

/**
 * The least time between two automatic reclaims of dead processes' permits on one
 * bulkhead (100 ms, in nanoseconds).
 */
#define FB_REGION_REAP_INTERVAL_NS UINT64_C(100000000)

/**
 * Processes whose bulkhead permits one region bulkhead tracks at once; permits of further
 * processes are granted untracked (not reclaimed if their process dies).
 */
#define FB_REGION_BULKHEAD_OWNERS 64

/**
 * Permits one region bulkhead handle tracks at once in one process; further ones are
 * granted untracked.
 */
#define FB_REGION_BULKHEAD_TRACKED_PER_HANDLE 1024

/**
 * An adaptive limiter (opaque): a concurrency or rate limit moved by the backend's
 * answers (AIMD or gradient rule). Create it with `fb_adaptive_new`.
 */
typedef struct fb_adaptive fb_adaptive;

/**
 * A circuit breaker (opaque). Create it with `fb_breaker_new` or `fb_breaker_init`.
 */
typedef struct fb_breaker fb_breaker;

/**
 * A GCRA token bucket (opaque). Create it with `fb_bucket_new` or `fb_bucket_init`.
 */
typedef struct fb_bucket fb_bucket;

/**
 * A bulkhead, a limit on calls in flight (opaque). Create it with `fb_bulkhead_new` or
 * `fb_bulkhead_init`.
 */
typedef struct fb_bulkhead fb_bulkhead;

/**
 * A table of GCRA token buckets, one per key (opaque): keyed rate limits. Create it with
 * `fb_keyed_new`.
 */
typedef struct fb_keyed fb_keyed;

/**
 * A named shared-memory region holding breakers, buckets and bulkheads shared by every
 * process of the same user on this host (opaque). Open it with `fb_region_open`.
 */
typedef struct fb_region fb_region;

/**
 * An adaptive throttle (opaque): Google SRE client-side throttling. Create it with
 * `fb_throttle_new`.
 */
typedef struct fb_throttle fb_throttle;

/**
 * Result of an `fb_*` call: `FB_OK` (0), `FB_REJECTED` (1), or a negative `FB_ERR_*`.
 */
typedef int32_t fb_result;

/**
 * An adaptive limiter's configuration. Limits are in thousandths of a call (in flight, or
 * per second in rate mode): 10000 is a limit of 10. Start from
 * `fb_adaptive_config_default`.
 */
typedef struct fb_adaptive_config {
    /**
     * `FB_ADAPTIVE_CONCURRENCY` or `FB_ADAPTIVE_RATE`; fixed once built.
     */
    uint32_t mode;
    /**
     * `FB_ADAPTIVE_AIMD` or `FB_ADAPTIVE_GRADIENT`; fixed once built.
     */
    uint32_t rule;
    /**
     * The limit to start from, within the bounds (ignored by `fb_adaptive_reconfigure`).
     */
    uint64_t initial_limit_milli;
    /**
     * The floor: at least 1 (rate) or 1000 (concurrency). Default 1000.
     */
    uint64_t min_limit_milli;
    /**
     * The ceiling: the floor ..= 10^9. Default 10^6 (a limit of 1000).
     */
    uint64_t max_limit_milli;
    /**
     * Additive increase per `limit` successes. Default 1000.
     */
    uint64_t increase_milli;
    /**
     * Multiplicative decrease on overload, 1..=999 thousandths. Default 500.
     */
    uint32_t decrease_permille;
    /**
     * The gradient rule's smoothing, 1..=1000 thousandths. Default 200.
     */
    uint32_t smoothing_permille;
    /**
     * At most one decrease per this window, 1 ns ..= 1 hour. Default 1 s.
     */
    uint64_t rtt_ns;
    /**
     * A success slower than this is an overload; 0: no target.
     */
    uint64_t latency_target_ns;
    /**
     * The gradient rule's queue term. Default 4000.
     */
    uint64_t queue_milli;
} fb_adaptive_config;

/**
 * Counters of an adaptive limiter, from `fb_adaptive_metrics`.
 */
typedef struct fb_adaptive_stats {
    /**
     * The limit now, in thousandths.
     */
    uint64_t limit_milli;
    /**
     * Calls in flight.
     */
    uint32_t in_flight;
    /**
     * Calls admitted in all.
     */
    uint64_t admitted;
    /**
     * Calls refused in all.
     */
    uint64_t rejected;
    /**
     * Calls refused during a Retry-After pause.
     */
    uint64_t paused_rejections;
    /**
     * Overload signals recorded.
     */
    uint64_t overloads;
    /**
     * Decreases applied (at most one per RTT window).
     */
    uint64_t decreases;
    /**
     * Records with no call in flight (ignored).
     */
    uint64_t unmatched_records;
    /**
     * Nanoseconds until a Retry-After pause ends (0: not paused).
     */
    uint64_t paused_for_ns;
} fb_adaptive_stats;

/**
 * An adaptive throttle's configuration. Start from `fb_throttle_config_default`.
 */
typedef struct fb_throttle_config {
    /**
     * K in thousandths, 1000..=1000000. Default 2000.
     */
    uint64_t k_milli;
    /**
     * The sliding window, `buckets` ns ..= one day. Default 60 s.
     */
    uint64_t window_ns;
    /**
     * Buckets of the window, 1..=64. Default 10.
     */
    uint32_t buckets;
} fb_throttle_config;

/**
 * The kind of sliding window a breaker computes its rates over (`FB_WINDOW_*`).
 */
typedef uint32_t fb_window_kind;

/**
 * How a breaker decides to open and when it tries again. Start from
 * `fb_breaker_config_default()` (the core's defaults) and change fields. Times are
 * nanoseconds. The core checks every field when the breaker is made: a value it refuses
 * gives `FB_ERR_INVALID_CONFIG` with its message in `fb_last_error()`.
 *
 * Each field is passed to the core as it is, so every binding accepts and refuses the same
 * values; the core's `None` is spelled `FB_OFF` for the three rules and `FB_RANDOM_SEED` for
 * the jitter seed (and 0 is refused where Rust refuses `Some(0)`).
 */
typedef struct fb_breaker_config {
    /**
     * Open after this many failures in a row, 1..=`FB_MAX_FAILURE_THRESHOLD`; `FB_OFF` =
     * rule off. Default 5.
     */
    uint32_t failure_threshold;
    /**
     * Open when at least this percentage (1..=`FB_MAX_RATE_THRESHOLD`) of the window's
     * outcomes are failures, once it holds `minimum_calls`; `FB_OFF` = rule off. Default
     * `FB_OFF`.
     */
    uint32_t failure_rate_threshold;
    /**
     * Open when at least this percentage (1..=`FB_MAX_RATE_THRESHOLD`) of the window's
     * outcomes were slow, once it holds `minimum_calls`; `FB_OFF` = rule off. Default
     * `FB_OFF`.
     */
    uint32_t slow_call_rate_threshold;
    /**
     * Outcomes the window must hold before the rate rules apply. At least 1; with a rate
     * rule on and a count window, at most `window_size`. Default 10.
     */
    uint32_t minimum_calls;
    /**
     * A call that took longer than this is slow (used when `slow_call_rate_threshold` is
     * set). Non-zero. Default 60 s.
     */
    uint64_t slow_call_duration_ns;
    /**
     * `FB_WINDOW_COUNT` (default) or `FB_WINDOW_TIME`.
     */
    fb_window_kind window_kind;
    /**
     * Count window: how many of the last outcomes count, 1..=`FB_MAX_WINDOW_SIZE`.
     * Default 100.
     */
    uint32_t window_size;
    /**
     * Time window: number of buckets, 1..=`FB_MAX_WINDOW_BUCKETS`. Default 10.
     */
    uint32_t window_buckets;
    /**
     * Time window: span of one bucket. Non-zero. Default 1 s.
     */
    uint64_t bucket_duration_ns;
    /**
     * How long the breaker stays open before admitting a probe, and how long probes may be
     * out before they are presumed hung. 1..=`FB_MAX_WAIT_DURATION_NS`. Default 60 s.
     */
    uint64_t wait_duration_ns;
    /**
     * Growth of the wait per repeated trip, in thousandths (1000 = none, 2000 = doubling).
     * At least `FB_MIN_BACKOFF_FACTOR_MILLI`, and large enough that the wait reaches its cap
     * within `FB_MAX_BACKOFF_STEPS` reopenings. Default 1000.
     */
    uint32_t backoff_factor_milli;
    /**
     * Part of the wait, in thousandths (0..=`FB_MAX_JITTER_PERMILLE`), that jitter may take
     * away. Default 0.
     */
    uint32_t jitter_permille;
    /**
     * Cap of the grown wait, `wait_duration_ns..=FB_MAX_WAIT_DURATION_NS`. Default
     * `FB_MAX_WAIT_DURATION_NS` (the Rust core's `None`: no cap of its own).
     */
    uint64_t max_wait_duration_ns;
    /**
     * Seed of the jitter: the same seed gives the same waits. Default `FB_RANDOM_SEED`: a
     * random seed per breaker.
     */
    uint64_t jitter_seed;
    /**
     * Probes admitted at once in half-open, 1..=`FB_MAX_HALF_OPEN_MAX_CALLS`. Default 1.
     */
    uint32_t half_open_max_calls;
    /**
     * Probe successes that close the breaker, 1..=`FB_MAX_SUCCESS_THRESHOLD`. Default 1.
     */
    uint32_t success_threshold;
} fb_breaker_config;

/**
 * Why an acquire was refused (`FB_REJECT_*`).
 */
typedef uint32_t fb_reject_reason;

/**
 * The kind of call a permit admits (`fb_permit.kind`, `FB_PERMIT_*`): read it, never set it.
 */
typedef uint8_t fb_permit_kind;

/**
 * Leave to make one call (from `fb_breaker_acquire`), or why there is none.
 *
 * After `FB_OK`, make the call, then hand a pointer to this very struct to
 * `fb_breaker_record` with the call's outcome. A permit counts once: the record sets
 * `used`, and a second record of it returns `FB_ERR_PERMIT_USED` and changes nothing. Do
 * not change `kind`, `generation` or `started_at`, and do not record copies of one permit
 * (each copy has its own `used` flag). A permit belongs to one thread at a time.
 *
 * A permit that is never recorded (the call was abandoned and the struct dropped) needs no
 * clean-up and counts nowhere. A dropped half-open probe keeps its probe slot until the
 * wait (`wait_duration_ns`) has passed since the latest probe was admitted; then the probes
 * out are presumed hung and a new probe is admitted, so a lost permit never wedges the
 * breaker. Record `FB_OUTCOME_IGNORED` to hand a slot back at once.
 *
 * An outcome recorded after the breaker changed state (a stale permit) is counted but moves
 * nothing. After `FB_REJECTED`, `reason` and `retry_after_ns` say why.
 */
typedef struct fb_permit {
    /**
     * `FB_REJECT_NONE` when permitted, else why the call was refused.
     */
    fb_reject_reason reason;
    /**
     * The kind of call admitted (`FB_PERMIT_*`); read-only.
     */
    fb_permit_kind kind;
    /**
     * Set by the first `fb_breaker_record*` of this permit; false after an acquire.
     */
    bool used;
    /**
     * `FB_REJECT_OPEN`: nanoseconds until a probe is admitted; otherwise 0.
     */
    uint64_t retry_after_ns;
    /**
     * Private: the generation of the state that issued the permit.
     */
    uint64_t generation;
    /**
     * Private: when the call started, if the breaker needed to know.
     */
    uint64_t started_at;
} fb_permit;

/**
 * What became of a permitted call (`FB_OUTCOME_*`).
 */
typedef uint32_t fb_outcome;

/**
 * A breaker state (`FB_STATE_*`).
 */
typedef uint32_t fb_state;

/**
 * A snapshot of a breaker's state and counters, from `fb_breaker_metrics` (C cannot
 * name a type and a function alike, hence `_stats`).
 */
typedef struct fb_breaker_stats {
    /**
     * Current state (`FB_STATE_*`).
     */
    fb_state state;
    /**
     * Consecutive failures so far in the closed state.
     */
    uint32_t consecutive_failures;
    /**
     * Current generation (bumped by every state change).
     */
    uint64_t generation;
    /**
     * Calls let through (not counting the disabled state); a closed-state call is counted
     * when its outcome is recorded, probes and metrics-only calls when admitted.
     */
    uint64_t permitted;
    /**
     * Calls refused.
     */
    uint64_t rejected;
    /**
     * Successful outcomes recorded.
     */
    uint64_t succeeded;
    /**
     * Failed outcomes recorded.
     */
    uint64_t failed;
    /**
     * Ignored outcomes recorded.
     */
    uint64_t ignored;
    /**
     * Slow outcomes recorded (also counted as succeeded or failed).
     */
    uint64_t slow;
    /**
     * Times the breaker opened on its own or by `fb_breaker_trip`.
     */
    uint64_t trips;
    /**
     * Outcomes in the window now.
     */
    uint64_t window_samples;
    /**
     * Failures among them.
     */
    uint64_t window_failures;
    /**
     * Slow calls among them.
     */
    uint64_t window_slow;
    /**
     * Probes in flight (half-open only).
     */
    uint32_t half_open_in_flight;
    /**
     * Whether `last_transition_at_ns` is known (false until the first state change).
     */
    bool has_last_transition;
    /**
     * When the current state began.
     */
    uint64_t last_transition_at_ns;
    /**
     * Nanoseconds until an open breaker admits a probe (0 otherwise).
     */
    uint64_t retry_after_ns;
} fb_breaker_stats;

/**
 * A state-change listener: called with the breaker, the state it left, the state it
 * entered and the `user_data` given to `fb_breaker_set_listener`.
 *
 * It runs on the thread whose call made the change (an acquire, a record or a manual
 * change), after the change is committed and outside any critical section: the breaker
 * holds no lock while it runs. It may call any `fb_*` function, including on the same
 * breaker (a change it makes there notifies it again, nested, before it returns) and
 * `fb_breaker_set_listener`, but not `fb_breaker_free` on the breaker it was called for (the
 * call that made the change is still running). It must return normally: no C++ exception or
 * `longjmp` may leave it. Changes made on several threads at once notify on those threads at once, in no
 * guaranteed order.
 */
typedef void (*fb_breaker_listener)(const struct fb_breaker *breaker,
                                    fb_state from,
                                    fb_state to,
                                    void *user_data);

/**
 * How a bucket refills: `rate` tokens every `period_ns`, holding at most `burst`.
 */
typedef struct fb_bucket_config {
    /**
     * Tokens added per period: at least 1, at most one per nanosecond of the period.
     * Default 1.
     */
    uint64_t rate;
    /**
     * The period, non-zero. Default 1 s.
     */
    uint64_t period_ns;
    /**
     * Capacity: the most tokens that can be taken at once, 1..=`FB_MAX_BURST`. Default 1.
     */
    uint64_t burst;
} fb_bucket_config;

/**
 * What a caller needs for `X-RateLimit-*` and `Retry-After` headers (`fb_bucket_state`).
 */
typedef struct fb_bucket_stats {
    /**
     * The capacity (`X-RateLimit-Limit`).
     */
    uint64_t limit;
    /**
     * Tokens that can be taken now (`X-RateLimit-Remaining`).
     */
    uint64_t remaining;
    /**
     * Nanoseconds until the bucket is full again (`X-RateLimit-Reset`, relative).
     */
    uint64_t reset_after_ns;
    /**
     * Nanoseconds until one token is available, 0 if one is (`Retry-After`).
     */
    uint64_t retry_after_ns;
} fb_bucket_stats;

/**
 * A bulkhead's limit.
 */
typedef struct fb_bulkhead_config {
    /**
     * Calls allowed in flight at once, at least `FB_MIN_MAX_CONCURRENT`. Default 10.
     */
    uint32_t max_concurrent;
} fb_bulkhead_config;

/**
 * Counters of a bulkhead, from `fb_bulkhead_metrics`.
 */
typedef struct fb_bulkhead_stats {
    /**
     * The limit.
     */
    uint32_t max_concurrent;
    /**
     * Calls in flight now.
     */
    uint32_t in_flight;
    /**
     * Most calls ever in flight at once.
     */
    uint32_t peak;
    /**
     * Slots granted in all.
     */
    uint64_t acquired;
    /**
     * Requests refused in all.
     */
    uint64_t rejected;
} fb_bulkhead_stats;

/**
 * What a keyed table does with a new key when every slot it may live in holds a live key
 * (`fb_keyed_new`): `FB_WHEN_FULL_REJECT` or `FB_WHEN_FULL_ADMIT`.
 */
typedef uint32_t fb_when_full;

/**
 * Counters of a keyed table, from `fb_keyed_metrics`.
 */
typedef struct fb_keyed_stats {
    /**
     * Slots in the table (the `capacity` it was made with).
     */
    size_t capacity;
    /**
     * Requests granted to tracked keys, in all.
     */
    uint64_t allowed;
    /**
     * Requests refused for want of tokens (`FB_REJECTED`), in all.
     */
    uint64_t limited;
    /**
     * New keys refused because the table had no room for them (`FB_ERR_TABLE_FULL`).
     */
    uint64_t full_rejected;
    /**
     * New keys let through untracked because the table had no room for them
     * (`FB_WHEN_FULL_ADMIT`).
     */
    uint64_t full_admitted;
    /**
     * Keys holding tokens (not full) at the time of the call: a scan of the whole table.
     */
    size_t live_keys;
} fb_keyed_stats;

/**
 * How to open a region; start from `fb_region_options_default()`.
 */
typedef struct fb_region_options {
    /**
     * The directory of the region file, NUL-terminated; NULL: `/dev/shm`. Read during the
     * call only. Every process must give the same directory to share a region.
     */
    const char *dir;
    /**
     * Slots of a region this call creates, 1..=`FB_REGION_MAX_CAPACITY` (each takes 2 KiB
     * of the file). An existing region keeps the capacity it was made with. Default
     * `FB_REGION_DEFAULT_CAPACITY`.
     */
    uint32_t capacity;
    /**
     * Create the region if it does not exist (default true); false: `FB_ERR_REGION_NOT_FOUND`.
     */
    bool create;
    /**
     * How long to wait for another live process that is initialising a slot, in
     * nanoseconds (default 2 s); then `FB_ERR_REGION_SLOT_BUSY`.
     */
    uint64_t init_timeout_ns;
} fb_region_options;

/**
 * About an open region, from `fb_region_info`.
 */
typedef struct fb_region_stats {
    /**
     * Its number of slots.
     */
    uint32_t capacity;
    /**
     * Whether the `fb_region_open` that made this handle created the region file.
     */
    bool created;
} fb_region_stats;

/**
 * What a slot of a region holds (`fb_region_slot.kind`).
 */
typedef uint32_t fb_slot_kind;

/**
 * One used slot of a region, as `fb_region_list` reports it. The strings are valid during
 * the callback only.
 */
typedef struct fb_region_slot {
    /**
     * The slot's index in the region.
     */
    uint32_t index;
    /**
     * `FB_SLOT_*`.
     */
    fb_slot_kind kind;
    /**
     * The slot's name (bytes that are not UTF-8 replaced by U+FFFD); `""` unless the kind
     * is a primitive's. Never NULL.
     */
    const char *name;
    /**
     * The configuration as text, for a primitive, or why the slot is corrupt. Never NULL.
     */
    const char *detail;
    /**
     * The initialiser's pid, for `FB_SLOT_INITIALISING`; else 0.
     */
    uint32_t pid;
    /**
     * For `FB_SLOT_BREAKER_COUNT`/`_TIME`: the configuration its first opener gave, which
     * `fb_region_breaker` attaches with. Else the default.
     */
    struct fb_breaker_config breaker;
    /**
     * For `FB_SLOT_BUCKET`: its configuration. Else the default.
     */
    struct fb_bucket_config bucket;
    /**
     * For `FB_SLOT_BULKHEAD`: its configuration. Else the default.
     */
    struct fb_bulkhead_config bulkhead;
} fb_region_slot;

/**
 * Called by `fb_region_list` for each used slot, with the `user_data` given; return 0 to go
 * on, anything else to stop.
 */
typedef int32_t (*fb_region_list_fn)(const struct fb_region_slot *slot,
                                     void *user_data);

/**
 * Success.
 */
#define FB_OK 0

/**
 * Not an error: the breaker, bucket or bulkhead refused the call (see the function).
 */
#define FB_REJECTED 1

/**
 * A required pointer argument was NULL.
 */
#define FB_ERR_NULL -1

/**
 * A configuration value cannot work; `fb_last_error()` gives the core's message, naming
 * the field, the value and the legal range.
 */
#define FB_ERR_INVALID_CONFIG -2

/**
 * A Rust panic was caught at the boundary (a bug in fastbreaker); see `fb_last_error()`.
 */
#define FB_ERR_PANIC -3

/**
 * More tokens asked of a bucket at once than its burst: no wait can help. Never reported as
 * a plain `FB_REJECTED`.
 */
#define FB_ERR_EXCEEDS_CAPACITY -4

/**
 * The storage given to an `_init` function is too small or misaligned.
 */
#define FB_ERR_BUFFER -5

/**
 * An argument is out of range: an unknown outcome, a permit that was not granted, a
 * pointer that is not a live handle of the expected kind.
 */
#define FB_ERR_INVALID_ARGUMENT -6

/**
 * The permit was already recorded: a permit counts once. Nothing changed.
 */
#define FB_ERR_PERMIT_USED -7

/**
 * `fb_bulkhead_release` with no slot out: an extra release. Nothing changed. (On a bulkhead
 * from a region: no slot out that this process took through this handle.)
 */
#define FB_ERR_NOT_HELD -8

/**
 * A region failure not covered by the codes below (a newer library's); see
 * `fb_last_error()`.
 */
#define FB_ERR_REGION -9

/**
 * A region or slot name is not allowed: empty, too long (`FB_REGION_MAX_NAME_LEN`,
 * `FB_REGION_MAX_SLOT_NAME_LEN`), not UTF-8, or holding `/`, `..`, a NUL or a control
 * character; `fb_last_error()` says which rule.
 */
#define FB_ERR_REGION_NAME -10

/**
 * A system call on the region file failed (open, create, mmap, unlink, ...);
 * `fb_last_error()` names the call, the file and the OS error (`ENOENT` for a missing
 * directory, `EACCES`, `ENOSPC`, `ENOMEM`, ...).
 */
#define FB_ERR_REGION_IO -11

/**
 * No region of that name, and the options said not to create one (or, from
 * `fb_region_unlink`, nothing to remove).
 */
#define FB_ERR_REGION_NOT_FOUND -12

/**
 * The file is not one this user should trust: another owner, group or other permission
 * bits, or not a regular file (symlinks are not followed).
 */
#define FB_ERR_REGION_UNTRUSTED -13

/**
 * The file is not a fastbreaker region (wrong magic).
 */
#define FB_ERR_REGION_BAD_MAGIC -14

/**
 * The region was made by a build with another layout version: unlink it once no process
 * of the other version uses it.
 */
#define FB_ERR_REGION_VERSION -15

/**
 * The region header's checksum does not match: a corrupt file.
 */
#define FB_ERR_REGION_CHECKSUM -16

/**
 * Same layout version, but a size in the header differs from this build's (another target
 * or compiler made it), or the file's length disagrees with its header.
 */
#define FB_ERR_REGION_LAYOUT -17

/**
 * A header field is out of range under a valid checksum.
 */
#define FB_ERR_REGION_CORRUPT_HEADER -18

/**
 * The file is shorter than a region header (or its header) needs.
 */
#define FB_ERR_REGION_TRUNCATED -19

/**
 * The slot cannot be trusted (bad metadata checksum, unknown kind or claim state, stored
 * settings that do not validate or do not match the primitive in place).
 */
#define FB_ERR_REGION_CORRUPT_SLOT -20

/**
 * Every slot of the region holds another name.
 */
#define FB_ERR_REGION_FULL -21

/**
 * A live process is still initialising the slot after the options' `init_timeout_ns`:
 * try again.
 */
#define FB_ERR_REGION_SLOT_BUSY -22

/**
 * The slot holds another kind of primitive (a bucket asked for as a breaker, or a breaker
 * asked for with the other window kind).
 */
#define FB_ERR_REGION_KIND_MISMATCH -23

/**
 * The slot exists with another configuration; `fb_last_error()` shows both, the one in
 * the region and the one asked for. Nothing changed.
 */
#define FB_ERR_REGION_CONFIG_MISMATCH -24

/**
 * Another reconfiguration of the same primitive (`fb_*_reconfigure`) was under way for
 * longer than a bounded wait (in a region: possibly in another process), or, in a keyed
 * table, another caller was giving a slot near the key's to a new key for that long. Nothing
 * changed: try again.
 */
#define FB_ERR_BUSY -25

/**
 * A new key found no room in a keyed table made with `FB_WHEN_FULL_REJECT` (every slot it
 * may live in holds a live key). Nothing changed; the key may find room once other keys'
 * buckets are full again.
 */
#define FB_ERR_TABLE_FULL -26

/**
 * A key longer than `FB_MAX_KEY_LEN` bytes; `fb_last_error()` gives its length. Nothing
 * changed.
 */
#define FB_ERR_KEY_TOO_LONG -27

/**
 * Calls go through; outcomes are recorded and may trip the breaker.
 */
#define FB_STATE_CLOSED 0

/**
 * Calls are rejected until the wait has passed.
 */
#define FB_STATE_OPEN 1

/**
 * A limited number of probe calls go through to test recovery.
 */
#define FB_STATE_HALF_OPEN 2

/**
 * Manual: every call is rejected until a reset.
 */
#define FB_STATE_FORCED_OPEN 3

/**
 * Manual: every call goes through and nothing is recorded.
 */
#define FB_STATE_DISABLED 4

/**
 * Manual: every call goes through, outcomes are recorded, nothing trips.
 */
#define FB_STATE_METRICS_ONLY 5

/**
 * The call worked.
 */
#define FB_OUTCOME_SUCCESS 0

/**
 * The call failed: counts toward the trip rules.
 */
#define FB_OUTCOME_FAILURE 1

/**
 * Neither (an excluded error, a cancellation): counts only in `ignored`, and hands a
 * half-open probe slot back.
 */
#define FB_OUTCOME_IGNORED 2

/**
 * Not refused.
 */
#define FB_REJECT_NONE 0

/**
 * Open: a probe is admitted in `retry_after_ns`.
 */
#define FB_REJECT_OPEN 1

/**
 * Half-open, and every probe slot is taken.
 */
#define FB_REJECT_HALF_OPEN_FULL 2

/**
 * Forced open by hand.
 */
#define FB_REJECT_FORCED_OPEN 3

/**
 * The last `window_size` outcomes.
 */
#define FB_WINDOW_COUNT 0

/**
 * The outcomes of the last `window_buckets` buckets of `bucket_duration_ns` each.
 */
#define FB_WINDOW_TIME 1

/**
 * A call in the closed state: its outcome enters the window and may trip the breaker.
 */
#define FB_PERMIT_NORMAL 0

/**
 * A half-open probe: its outcome may close or reopen the breaker.
 */
#define FB_PERMIT_PROBE 1

/**
 * A call in the metrics-only state: its outcome is counted, never trips.
 */
#define FB_PERMIT_OBSERVE 2

/**
 * A call in the disabled state: its outcome is not recorded at all.
 */
#define FB_PERMIT_PASSIVE 3

/**
 * Refuse the new key: `fb_keyed_try_acquire` returns `FB_ERR_TABLE_FULL`.
 */
#define FB_WHEN_FULL_REJECT 0

/**
 * Let the new key through untracked (`FB_OK`): it is not limited until it finds a slot.
 */
#define FB_WHEN_FULL_ADMIT 1

/**
 * A breaker on a count window (`fb_region_slot.breaker` is its configuration).
 */
#define FB_SLOT_BREAKER_COUNT 1

/**
 * A breaker on a time window (`fb_region_slot.breaker`).
 */
#define FB_SLOT_BREAKER_TIME 2

/**
 * A token bucket (`fb_region_slot.bucket`).
 */
#define FB_SLOT_BUCKET 3

/**
 * A bulkhead (`fb_region_slot.bulkhead`).
 */
#define FB_SLOT_BULKHEAD 4

/**
 * Being initialised by process `fb_region_slot.pid` (no name or configuration yet).
 */
#define FB_SLOT_INITIALISING 5

/**
 * Not to be trusted; `fb_region_slot.detail` says why.
 */
#define FB_SLOT_CORRUPT 6

#ifdef __cplusplus
extern "C" {
#endif // __cplusplus

/**
 * The library's version, `"MAJOR.MINOR.PATCH"` (compare with `FB_VERSION_STRING` to detect a
 * header/library mismatch). Static storage; never NULL.
 *
 * Thread safety: safe from any thread.
 */
const char *fb_version(void);

/**
 * Nanoseconds on the clock the functions without `_at` read: `CLOCK_MONOTONIC`, which is
 * the same in every process of the machine. Pass it (or your own monotonic time) to the
 * `_at` variants.
 *
 * Thread safety: safe from any thread.
 */
uint64_t fb_now_ns(void);

/**
 * A static description of a result code, e.g. `"FB_ERR_NULL: a required pointer argument
 * was NULL"`; unknown codes give `"unknown fb_result code"`. Never NULL.
 *
 * Thread safety: safe from any thread.
 */
const char *fb_result_str(fb_result code);

/**
 * The message of the last call that returned an error code on this thread, naming the
 * function and what was wrong, e.g. `"fb_breaker_new: invalid failure_rate_threshold =
 * 120: must be a percentage in 1..=100"`; `""` if there was none.
 *
 * Successful calls (and `FB_REJECTED`) leave it unchanged: read it right after the failing
 * call. The pointer stays valid until the next failing call on this thread or the thread's
 * end. Never NULL.
 *
 * Thread safety: safe from any thread; each thread has its own message.
 */
const char *fb_last_error(void);

/**
 * The default configuration (the core's table) in `mode`, starting at
 * `initial_limit_milli`, with the AIMD rule. An unknown mode reads as concurrency.
 *
 * Thread safety: safe from any thread.
 */
struct fb_adaptive_config fb_adaptive_config_default(uint32_t mode,
                                                     uint64_t initial_limit_milli);

/**
 * Creates an adaptive limiter and stores its handle in `*out`; free it with
 * `fb_adaptive_free`.
 *
 * Returns `FB_OK`, `FB_ERR_INVALID_CONFIG` (`fb_last_error()` names the field, the value and
 * the range), `FB_ERR_INVALID_ARGUMENT` (an unknown mode or rule), `FB_ERR_NULL`.
 *
 * Thread safety: safe from any thread.
 *
 * # Safety
 * `config` is NULL or points to an `fb_adaptive_config`; `out` is NULL or writable.
 */
fb_result fb_adaptive_new(const struct fb_adaptive_config *config,
                          struct fb_adaptive **out);

/**
 * Frees a limiter made by `fb_adaptive_new`; NULL is ignored.
 *
 * Thread safety: must be the last call on this limiter.
 *
 * # Safety
 * `limiter` is NULL or a live handle that no other thread is using or will use.
 */
void fb_adaptive_free(struct fb_adaptive *limiter);

/**
 * Admits a call at `now_ns`: `FB_OK` (record it once with `fb_adaptive_record`) or
 * `FB_REJECTED`, storing in `*retry_after_ns` (optional: NULL to skip) the nanoseconds until
 * a retry could succeed as far as time goes (a Retry-After pause, the rate's pacing; 0 when
 * a full concurrency limit waits for a record).
 *
 * Other results: `FB_ERR_NULL`, `FB_ERR_INVALID_ARGUMENT`.
 *
 * Thread safety: safe from many threads at once (lock-free).
 *
 * # Safety
 * `limiter` is NULL or a live handle; `retry_after_ns` is NULL or writable.
 */
fb_result fb_adaptive_try_acquire(const struct fb_adaptive *limiter,
                                  uint64_t now_ns,
                                  uint64_t *retry_after_ns);

/**
 * Records how an admitted call ended at `now_ns`: `FB_ADAPTIVE_SUCCESS` (with
 * `latency_ns`, which the gradient rule needs; 0: unknown), `FB_ADAPTIVE_OVERLOAD` (with
 * `retry_after_ns` from the server, 0: none; it pauses every acquire until it passes) or
 * `FB_ADAPTIVE_IGNORE`. A record with no call in flight changes no count (it is counted as
 * unmatched).
 *
 * Returns `FB_OK`, `FB_ERR_NULL`, `FB_ERR_INVALID_ARGUMENT` (an unknown outcome).
 *
 * Thread safety: safe from many threads at once.
 *
 * # Safety
 * `limiter` is NULL or a live handle.
 */
fb_result fb_adaptive_record(const struct fb_adaptive *limiter,
                             uint32_t outcome,
                             uint64_t latency_ns,
                             uint64_t retry_after_ns,
                             uint64_t now_ns);

/**
 * The limit now, in thousandths (0 for a NULL or foreign handle: see `fb_last_error()`).
 *
 * Thread safety: safe from many threads at once.
 *
 * # Safety
 * `limiter` is NULL or a live handle.
 */
uint64_t fb_adaptive_limit(const struct fb_adaptive *limiter);

/**
 * Changes the bounds, increase, decrease, RTT window, latency target and gradient terms at
 * run time, all at once or none; the limit in force (clamped into the new bounds), the
 * calls in flight and a pause are kept. `mode` cannot change (`FB_ERR_INVALID_CONFIG`
 * naming `mode`); `rule` and `initial_limit_milli` are ignored.
 *
 * Returns `FB_OK`, `FB_ERR_INVALID_CONFIG`, `FB_ERR_BUSY` (another reconfiguration held on
 * too long: try again), `FB_ERR_NULL`, `FB_ERR_INVALID_ARGUMENT`.
 *
 * Thread safety: safe from many threads at once.
 *
 * # Safety
 * `limiter` is NULL or a live handle; `config` is NULL or points to an `fb_adaptive_config`.
 */
fb_result fb_adaptive_reconfigure(const struct fb_adaptive *limiter,
                                  const struct fb_adaptive_config *config);

/**
 * Stores a snapshot of the counters at `now_ns` in `*stats`.
 *
 * Returns `FB_OK`, `FB_ERR_NULL`, `FB_ERR_INVALID_ARGUMENT`.
 *
 * Thread safety: safe from many threads at once (loads only).
 *
 * # Safety
 * `limiter` is NULL or a live handle; `stats` is NULL or writable.
 */
fb_result fb_adaptive_metrics(const struct fb_adaptive *limiter,
                              uint64_t now_ns,
                              struct fb_adaptive_stats *stats);

/**
 * The default throttle configuration: K = 2 over 60 s in 10 buckets.
 *
 * Thread safety: safe from any thread.
 */
struct fb_throttle_config fb_throttle_config_default(void);

/**
 * Creates a throttle drawing from a generator seeded with `*seed` (NULL: from the
 * operating system's randomness) and stores its handle in `*out`; free it with
 * `fb_throttle_free`.
 *
 * Returns `FB_OK`, `FB_ERR_INVALID_CONFIG`, `FB_ERR_NULL`.
 *
 * Thread safety: safe from any thread.
 *
 * # Safety
 * `config` is NULL or points to an `fb_throttle_config`; `seed` is NULL or points to a
 * `uint64_t`; `out` is NULL or writable.
 */
fb_result fb_throttle_new(const struct fb_throttle_config *config,
                          const uint64_t *seed,
                          struct fb_throttle **out);

/**
 * Frees a throttle made by `fb_throttle_new`; NULL is ignored.
 *
 * Thread safety: must be the last call on this throttle.
 *
 * # Safety
 * `throttle` is NULL or a live handle that no other thread is using or will use.
 */
void fb_throttle_free(struct fb_throttle *throttle);

/**
 * Counts a request at `now_ns` (before the call) and admits it (`FB_OK`) or refuses it
 * locally (`FB_REJECTED`) with probability `max(0, (requests - K*accepts) / (requests+1))`
 * of the counts before it.
 *
 * Other results: `FB_ERR_NULL`, `FB_ERR_INVALID_ARGUMENT`.
 *
 * Thread safety: safe from many threads at once (lock-free).
 *
 * # Safety
 * `throttle` is NULL or a live handle.
 */
fb_result fb_throttle_try_acquire(const struct fb_throttle *throttle,
                                  uint64_t now_ns);

/**
 * Records the backend's answer to an admitted request at `now_ns`: `accepted` counts an
 * accept.
 *
 * Returns `FB_OK`, `FB_ERR_NULL`, `FB_ERR_INVALID_ARGUMENT`.
 *
 * Thread safety: safe from many threads at once.
 *
 * # Safety
 * `throttle` is NULL or a live handle.
 */
fb_result fb_throttle_record(const struct fb_throttle *throttle,
                             bool accepted,
                             uint64_t now_ns);

/**
 * The probability at `now_ns` that the next request is refused, in millionths (0 for a
 * NULL or foreign handle: see `fb_last_error()`).
 *
 * Thread safety: safe from many threads at once.
 *
 * # Safety
 * `throttle` is NULL or a live handle.
 */
uint32_t fb_throttle_reject_probability_ppm(const struct fb_throttle *throttle,
                                            uint64_t now_ns);

/**
 * Changes K, the window and the buckets at run time (at `now_ns`), all at once or none.
 *
 * Returns `FB_OK`, `FB_ERR_INVALID_CONFIG`, `FB_ERR_BUSY`, `FB_ERR_NULL`,
 * `FB_ERR_INVALID_ARGUMENT`.
 *
 * Thread safety: safe from many threads at once.
 *
 * # Safety
 * `throttle` is NULL or a live handle; `config` is NULL or points to an
 * `fb_throttle_config`.
 */
fb_result fb_throttle_reconfigure(const struct fb_throttle *throttle,
                                  const struct fb_throttle_config *config,
                                  uint64_t now_ns);

/**
 * The default configuration: the core's defaults (`BreakerConfig::new()`) on a count
 * window. Rules off are `FB_OFF`; the jitter seed is `FB_RANDOM_SEED` (a random seed per
 * breaker).
 *
 * Thread safety: safe from any thread.
 */
struct fb_breaker_config fb_breaker_config_default(void);

/**
 * Checks `*config` with the core and stores in `*size` the bytes of storage
 * `fb_breaker_init` needs for it (at most `FB_BREAKER_STORAGE_SIZE`; a count window needs
 * about a quarter of that).
 *
 * Returns `FB_OK`, `FB_ERR_INVALID_CONFIG` (see `fb_last_error()`; `*size` is left
 * unchanged), `FB_ERR_NULL` (`config` or `size` NULL).
 *
 * Thread safety: safe from any thread.
 *
 * # Safety
 * `config` is NULL or points to an `fb_breaker_config`; `size` is NULL or writable.
 */
fb_result fb_breaker_storage_size(const struct fb_breaker_config *config,
                                  size_t *size);

/**
 * Creates a breaker on the heap and stores its handle in `*out`; free it with
 * `fb_breaker_free`.
 *
 * Returns `FB_OK`, `FB_ERR_INVALID_CONFIG` (`fb_last_error()` gives the core's message,
 * naming the field, the value and the legal range; `*out` is left unchanged),
 * `FB_ERR_NULL` (`config` or `out` NULL).
 *
 * Thread safety: safe from any thread.
 *
 * # Safety
 * `config` is NULL or points to an `fb_breaker_config`; `out` is NULL or writable.
 */
fb_result fb_breaker_new(const struct fb_breaker_config *config,
                         struct fb_breaker **out);

/**
 * Creates a breaker in `storage` (`size` bytes, aligned to `FB_BREAKER_STORAGE_ALIGN`),
 * without touching the heap, and stores its handle in `*out`.
 *
 * `FB_BREAKER_STORAGE_SIZE` bytes always suffice; `fb_breaker_storage_size` gives the exact
 * need. The storage stays the caller's: keep it alive and unmoved while the handle is used,
 * and do not free the handle (`fb_breaker_free` ignores it); there is nothing to tear down.
 *
 * Returns `FB_OK`, `FB_ERR_BUFFER` (too small or misaligned), `FB_ERR_INVALID_CONFIG`,
 * `FB_ERR_NULL` (`storage`, `config` or `out` NULL). On an error `*out` is left unchanged.
 *
 * Thread safety: safe from any thread, on distinct storage.
 *
 * # Safety
 * `storage` is NULL or valid for writes of `size` bytes and not used for anything else while
 * the breaker lives; `config` is NULL or points to an `fb_breaker_config`; `out` is NULL or
 * writable.
 */
fb_result fb_breaker_init(void *storage,
                          size_t size,
                          const struct fb_breaker_config *config,
                          struct fb_breaker **out);

/**
 * Frees a breaker made by `fb_breaker_new`. NULL is ignored, and so is a breaker made by
 * `fb_breaker_init` (its storage is the caller's).
 *
 * Thread safety: must be the last call on this breaker, from any thread.
 *
 * # Safety
 * `breaker` is NULL or a live handle that no other thread is using or will use.
 */
void fb_breaker_free(struct fb_breaker *breaker);

/**
 * Asks to make one call now (on `fb_now_ns()`'s clock, read only if the breaker needs the
 * time: a closed breaker on a count window without slow-call detection reads none).
 *
 * Returns `FB_OK` with the permit in `*permit` (make the call, then `fb_breaker_record`
 * it), or `FB_REJECTED` with `permit->reason` and `permit->retry_after_ns` set. Errors:
 * `FB_ERR_NULL` (`breaker` or `permit` NULL), `FB_ERR_INVALID_ARGUMENT` (not a breaker
 * handle). An acquire that admits the first probe moves the breaker from open to half-open
 * and notifies the listener.
 *
 * Thread safety: safe from many threads at once on one breaker (lock-free).
 *
 * # Safety
 * `breaker` is NULL or a live handle; `permit` is NULL or writable.
 */
fb_result fb_breaker_acquire(const struct fb_breaker *breaker,
                             struct fb_permit *permit);

/**
 * `fb_breaker_acquire` at time `now_ns` (a monotonic clock of the caller's, in
 * nanoseconds, the same for every call on this breaker).
 *
 * Thread safety: safe from many threads at once on one breaker (lock-free).
 *
 * # Safety
 * As `fb_breaker_acquire`.
 */
fb_result fb_breaker_acquire_at(const struct fb_breaker *breaker,
                                struct fb_permit *permit,
                                uint64_t now_ns);

/**
 * Records the outcome of a call permitted by `fb_breaker_acquire`, now, and marks the
 * permit used.
 *
 * `permit` points to the struct the acquire filled. A permit counts once: recording it
 * again returns `FB_ERR_PERMIT_USED` and changes nothing. `duration_ns` is the call's
 * duration, for slow-call detection; `FB_DURATION_AUTO` measures it from the acquire. The
 * clock is read only if the breaker needs the time. A record that changes the state (a
 * trip, a close, a reopen) notifies the listener before it returns.
 *
 * Returns `FB_OK`; errors: `FB_ERR_NULL` (`breaker` or `permit` NULL),
 * `FB_ERR_PERMIT_USED`, `FB_ERR_INVALID_ARGUMENT` (an unknown outcome, a permit that was
 * rejected or altered, not a breaker handle). On an error nothing changes.
 *
 * Thread safety: safe from many threads at once on one breaker (lock-free), each with its
 * own permit.
 *
 * # Safety
 * `breaker` is NULL or a live handle; `permit` is NULL or points to an `fb_permit` that no
 * other thread accesses during the call.
 */
fb_result fb_breaker_record(const struct fb_breaker *breaker,
                            struct fb_permit *permit,
                            fb_outcome outcome,
                            uint64_t duration_ns);

/**
 * `fb_breaker_record` at time `now_ns`; with `FB_DURATION_AUTO` the duration is `now_ns`
 * minus the acquire's `now_ns`.
 *
 * Thread safety: safe from many threads at once on one breaker (lock-free), each with its
 * own permit.
 *
 * # Safety
 * As `fb_breaker_record`.
 */
fb_result fb_breaker_record_at(const struct fb_breaker *breaker,
                               struct fb_permit *permit,
                               fb_outcome outcome,
                               uint64_t duration_ns,
                               uint64_t now_ns);

/**
 * Stores the current state (`FB_STATE_*`) in `*state`.
 *
 * Returns `FB_OK`, `FB_ERR_NULL` (`breaker` or `state` NULL), `FB_ERR_INVALID_ARGUMENT`.
 *
 * Thread safety: safe from many threads at once on one breaker.
 *
 * # Safety
 * `breaker` is NULL or a live handle; `state` is NULL or writable.
 */
fb_result fb_breaker_state(const struct fb_breaker *breaker,
                           fb_state *state);

/**
 * Stores a snapshot of the state and counters, now, in `*metrics`.
 *
 * Returns `FB_OK`, `FB_ERR_NULL` (`breaker` or `metrics` NULL), `FB_ERR_INVALID_ARGUMENT`.
 *
 * Thread safety: safe from many threads at once on one breaker (loads only).
 *
 * # Safety
 * `breaker` is NULL or a live handle; `metrics` is NULL or writable.
 */
fb_result fb_breaker_metrics(const struct fb_breaker *breaker,
                             struct fb_breaker_stats *metrics);

/**
 * `fb_breaker_metrics` at time `now_ns`.
 *
 * Thread safety: safe from many threads at once on one breaker (loads only).
 *
 * # Safety
 * As `fb_breaker_metrics`.
 */
fb_result fb_breaker_metrics_at(const struct fb_breaker *breaker,
                                struct fb_breaker_stats *metrics,
                                uint64_t now_ns);

/**
 * Stores the breaker's configuration, read back from the breaker, in `*config`: every
 * field as the core resolved it (the window's size or bucket count as built, the window
 * fields of the other kind at their defaults). `jitter_seed` is the seed in use: the given
 * one, or the random one drawn the first time the breaker jittered (`FB_RANDOM_SEED` until
 * then). Passing it to `fb_breaker_new` builds a breaker with the same rules.
 *
 * Returns `FB_OK`, `FB_ERR_NULL` (`breaker` or `config` NULL), `FB_ERR_INVALID_ARGUMENT`.
 *
 * Thread safety: safe from many threads at once on one breaker (loads only).
 *
 * # Safety
 * `breaker` is NULL or a live handle; `config` is NULL or writable.
 */
fb_result fb_breaker_get_config(const struct fb_breaker *breaker,
                                struct fb_breaker_config *config);

/**
 * Changes the breaker's configuration at run time, keeping its state: the state, the
 * window's outcomes, the consecutive failures, the backoff step, the probes and the permits
 * out all carry over, and the next decision is made on the new settings (a lowered
 * `failure_threshold` that the failures so far already reach trips at the next failure; an
 * open breaker's wait is measured from when it opened, with the new wait). Start from
 * `fb_breaker_get_config` and change fields.
 *
 * `*config` is checked as `fb_breaker_new` checks it. The window is fixed for the breaker's
 * life: `window_kind`, and `window_size` (count window) or `window_buckets` and
 * `bucket_duration_ns` (time window), must be the breaker's (the other kind's window fields
 * are ignored). `jitter_seed` = `FB_RANDOM_SEED` keeps a seed already drawn at random.
 * Atomic: every decision reads either the old settings or the new ones. No state change,
 * so the listener is not called.
 *
 * On a breaker from `fb_region_breaker`, the change is made in the region: every process
 * attached to the slot decides on the new settings, and later attaches must ask for them.
 *
 * Returns `FB_OK`; `FB_ERR_INVALID_CONFIG` (`fb_last_error()` names the field, the value and
 * the legal range, or says that the field cannot change at run time); `FB_ERR_BUSY` (another
 * reconfiguration of this breaker was under way for too long: try again); `FB_ERR_NULL`
 * (`breaker` or `config` NULL); `FB_ERR_INVALID_ARGUMENT` (not a breaker handle). On an
 * error nothing changes.
 *
 * Thread safety: safe from many threads at once on one breaker; reconfigurations are
 * serialised, and acquires and records never wait for them.
 *
 * # Safety
 * `breaker` is NULL or a live handle; `config` is NULL or points to an `fb_breaker_config`.
 */
fb_result fb_breaker_reconfigure(const struct fb_breaker *breaker,
                                 const struct fb_breaker_config *config);

/**
 * Installs `listener`, called with `user_data` after each state change of this breaker
 * (see `fb_breaker_listener` for where it runs and what it may call); NULL removes it. One
 * listener per breaker: this replaces the previous one.
 *
 * A change being notified on another thread while this runs may still call the previous
 * listener with the previous `user_data`: keep that data valid until such calls are over.
 *
 * Returns `FB_OK`, `FB_ERR_NULL` (`breaker` NULL), `FB_ERR_INVALID_ARGUMENT`.
 *
 * Thread safety: safe from many threads at once on one breaker, and from inside a listener.
 *
 * # Safety
 * `breaker` is NULL or a live handle; `listener` is NULL or a function that may be called
 * with `user_data` from any thread that uses the breaker, until it is replaced.
 */
fb_result fb_breaker_set_listener(const struct fb_breaker *breaker,
                                  fb_breaker_listener listener,
                                  void *user_data);

/**
 * Forces the breaker open: every call is rejected (`FB_REJECT_FORCED_OPEN`) until
 * `fb_breaker_reset`.
 *
 * Notifies the listener if the state changed. Returns `FB_OK`, `FB_ERR_NULL` (`breaker`
 * NULL), `FB_ERR_INVALID_ARGUMENT`.
 *
 * Thread safety: safe from many threads at once on one breaker.
 *
 * # Safety
 * `breaker` is NULL or a live handle.
 */
fb_result fb_breaker_force_open(const struct fb_breaker *breaker);

/**
 * `fb_breaker_force_open` at time `now_ns`.
 *
 * Thread safety: safe from many threads at once on one breaker.
 *
 * # Safety
 * `breaker` is NULL or a live handle.
 */
fb_result fb_breaker_force_open_at(const struct fb_breaker *breaker,
                                   uint64_t now_ns);

/**
 * Disables the breaker: every call goes through and nothing is recorded, until
 * `fb_breaker_reset`.
 *
 * Notifies the listener if the state changed. Returns `FB_OK`, `FB_ERR_NULL` (`breaker`
 * NULL), `FB_ERR_INVALID_ARGUMENT`.
 *
 * Thread safety: safe from many threads at once on one breaker.
 *
 * # Safety
 * `breaker` is NULL or a live handle.
 */
fb_result fb_breaker_disable(const struct fb_breaker *breaker);

/**
 * `fb_breaker_disable` at time `now_ns`.
 *
 * Thread safety: safe from many threads at once on one breaker.
 *
 * # Safety
 * `breaker` is NULL or a live handle.
 */
fb_result fb_breaker_disable_at(const struct fb_breaker *breaker,
                                uint64_t now_ns);

/**
 * Metrics-only: every call goes through, outcomes are recorded, nothing trips, until
 * `fb_breaker_reset`.
 *
 * Notifies the listener if the state changed. Returns `FB_OK`, `FB_ERR_NULL` (`breaker`
 * NULL), `FB_ERR_INVALID_ARGUMENT`.
 *
 * Thread safety: safe from many threads at once on one breaker.
 *
 * # Safety
 * `breaker` is NULL or a live handle.
 */
fb_result fb_breaker_metrics_only(const struct fb_breaker *breaker);

/**
 * `fb_breaker_metrics_only` at time `now_ns`.
 *
 * Thread safety: safe from many threads at once on one breaker.
 *
 * # Safety
 * `breaker` is NULL or a live handle.
 */
fb_result fb_breaker_metrics_only_at(const struct fb_breaker *breaker,
                                     uint64_t now_ns);

/**
 * Back to closed with an empty window, a zero backoff step and a new generation
 * (outstanding permits become stale); lifetime counters are kept. Also ends the manual
 * states.
 *
 * Notifies the listener if the state changed. Returns `FB_OK`, `FB_ERR_NULL` (`breaker`
 * NULL), `FB_ERR_INVALID_ARGUMENT`.
 *
 * Thread safety: safe from many threads at once on one breaker.
 *
 * # Safety
 * `breaker` is NULL or a live handle.
 */
fb_result fb_breaker_reset(const struct fb_breaker *breaker);

/**
 * `fb_breaker_reset` at time `now_ns`.
 *
 * Thread safety: safe from many threads at once on one breaker.
 *
 * # Safety
 * `breaker` is NULL or a live handle.
 */
fb_result fb_breaker_reset_at(const struct fb_breaker *breaker,
                              uint64_t now_ns);

/**
 * Opens the breaker now, as if a rule had fired: calls are refused until the first open
 * wait (`wait_duration_ns`, no backoff) has passed, then probes are admitted. Starts a new
 * generation (outstanding permits become stale) and counts as a trip.
 *
 * Notifies the listener if the state changed. Returns `FB_OK`, `FB_ERR_NULL` (`breaker`
 * NULL), `FB_ERR_INVALID_ARGUMENT`.
 *
 * Thread safety: safe from many threads at once on one breaker.
 *
 * # Safety
 * `breaker` is NULL or a live handle.
 */
fb_result fb_breaker_trip(const struct fb_breaker *breaker);

/**
 * `fb_breaker_trip` at time `now_ns`.
 *
 * Thread safety: safe from many threads at once on one breaker.
 *
 * # Safety
 * `breaker` is NULL or a live handle.
 */
fb_result fb_breaker_trip_at(const struct fb_breaker *breaker,
                             uint64_t now_ns);

/**
 * Moves the breaker to half-open now: the next calls are probes (up to
 * `half_open_max_calls` at once), and `success_threshold` successes close it. Starts a new
 * generation (outstanding permits become stale).
 *
 * Notifies the listener if the state changed. Returns `FB_OK`, `FB_ERR_NULL` (`breaker`
 * NULL), `FB_ERR_INVALID_ARGUMENT`.
 *
 * Thread safety: safe from many threads at once on one breaker.
 *
 * # Safety
 * `breaker` is NULL or a live handle.
 */
fb_result fb_breaker_half_open(const struct fb_breaker *breaker);

/**
 * `fb_breaker_half_open` at time `now_ns`.
 *
 * Thread safety: safe from many threads at once on one breaker.
 *
 * # Safety
 * `breaker` is NULL or a live handle.
 */
fb_result fb_breaker_half_open_at(const struct fb_breaker *breaker,
                                  uint64_t now_ns);

/**
 * The name of a state: `"closed"`, `"open"`, `"half_open"`, `"forced_open"`,
 * `"disabled"`, `"metrics_only"`, or `"unknown"`. Static storage; never NULL.
 *
 * Thread safety: safe from any thread.
 */
const char *fb_state_str(fb_state state);

/**
 * The default configuration (the core's table): 1 token per second, burst 1.
 *
 * Thread safety: safe from any thread.
 */
struct fb_bucket_config fb_bucket_config_default(void);

/**
 * `rate` tokens per second (the core's `BucketConfig::per_second`), holding at most
 * `burst`. Checked when the bucket is made.
 *
 * Thread safety: safe from any thread.
 */
struct fb_bucket_config fb_bucket_config_per_second(uint64_t rate,
                                                    uint64_t burst);

/**
 * Creates a full bucket on the heap and stores its handle in `*out`; free it with
 * `fb_bucket_free`.
 *
 * Returns `FB_OK`, `FB_ERR_INVALID_CONFIG` (`fb_last_error()` names the field and the
 * value), `FB_ERR_NULL`.
 *
 * Thread safety: safe from any thread.
 *
 * # Safety
 * `config` is NULL or points to an `fb_bucket_config`; `out` is NULL or writable.
 */
fb_result fb_bucket_new(const struct fb_bucket_config *config,
                        struct fb_bucket **out);

/**
 * Creates a full bucket in `storage` (at least `FB_BUCKET_STORAGE_SIZE` bytes, aligned to
 * `FB_BUCKET_STORAGE_ALIGN`) without touching the heap. The storage stays the caller's: keep
 * it alive and unmoved while the handle is used; `fb_bucket_free` ignores the handle.
 *
 * Returns `FB_OK`, `FB_ERR_BUFFER`, `FB_ERR_INVALID_CONFIG`, `FB_ERR_NULL`.
 *
 * Thread safety: safe from any thread, on distinct storage.
 *
 * # Safety
 * `storage` is NULL or valid for writes of `size` bytes and not used for anything else while
 * the bucket lives; `config` is NULL or points to an `fb_bucket_config`; `out` is NULL or
 * writable.
 */
fb_result fb_bucket_init(void *storage,
                         size_t size,
                         const struct fb_bucket_config *config,
                         struct fb_bucket **out);

/**
 * Frees a bucket made by `fb_bucket_new`. NULL is ignored, and so is a bucket made by
 * `fb_bucket_init`.
 *
 * Thread safety: must be the last call on this bucket, from any thread.
 *
 * # Safety
 * `bucket` is NULL or a live handle that no other thread is using or will use.
 */
void fb_bucket_free(struct fb_bucket *bucket);

/**
 * Takes `n` tokens now if they are all there; otherwise takes nothing.
 *
 * Returns `FB_OK` (`*retry_after_ns` = 0), `FB_REJECTED` with the nanoseconds until the
 * tokens would be there in `*retry_after_ns`, or `FB_ERR_EXCEEDS_CAPACITY` (`n` above the
 * burst: no wait helps). `n` = 0 always succeeds. `retry_after_ns` may be NULL.
 * Other errors: `FB_ERR_NULL` (`bucket`), `FB_ERR_INVALID_ARGUMENT`.
 *
 * Thread safety: safe from many threads at once on one bucket (one CAS).
 *
 * # Safety
 * `bucket` is NULL or a live handle; `retry_after_ns` is NULL or writable.
 */
fb_result fb_bucket_try_acquire(const struct fb_bucket *bucket,
                                uint64_t n,
                                uint64_t *retry_after_ns);

/**
 * `fb_bucket_try_acquire` at time `now_ns`.
 *
 * Thread safety: safe from many threads at once on one bucket (one CAS).
 *
 * # Safety
 * As `fb_bucket_try_acquire`.
 */
fb_result fb_bucket_try_acquire_at(const struct fb_bucket *bucket,
                                   uint64_t n,
                                   uint64_t *retry_after_ns,
                                   uint64_t now_ns);

/**
 * Takes `n` tokens now, in the queue's order, and stores in `*wait_ns` how long to wait
 * before using them (0: use them now). Fair blocking and async waiters build on this: each
 * sleeps for its own reservation; `fb_bucket_refund` gives back one that is abandoned.
 *
 * Returns `FB_OK`, `FB_ERR_EXCEEDS_CAPACITY` (`n` above the burst), `FB_ERR_NULL`,
 * `FB_ERR_INVALID_ARGUMENT`.
 *
 * Thread safety: safe from many threads at once on one bucket.
 *
 * # Safety
 * `bucket` is NULL or a live handle; `wait_ns` is NULL or writable.
 */
fb_result fb_bucket_reserve(const struct fb_bucket *bucket,
                            uint64_t n,
                            uint64_t *wait_ns);

/**
 * `fb_bucket_reserve` at time `now_ns`.
 *
 * Thread safety: safe from many threads at once on one bucket.
 *
 * # Safety
 * As `fb_bucket_reserve`.
 */
fb_result fb_bucket_reserve_at(const struct fb_bucket *bucket,
                               uint64_t n,
                               uint64_t *wait_ns,
                               uint64_t now_ns);

/**
 * `fb_bucket_reserve`, but only if the wait would be at most `max_wait_ns`; otherwise takes
 * nothing and returns `FB_REJECTED` with the wait in `*wait_ns`.
 *
 * Thread safety: safe from many threads at once on one bucket.
 *
 * # Safety
 * As `fb_bucket_reserve`.
 */
fb_result fb_bucket_reserve_within(const struct fb_bucket *bucket,
                                   uint64_t n,
                                   uint64_t max_wait_ns,
                                   uint64_t *wait_ns);

/**
 * `fb_bucket_reserve_within` at time `now_ns`.
 *
 * Thread safety: safe from many threads at once on one bucket.
 *
 * # Safety
 * As `fb_bucket_reserve`.
 */
fb_result fb_bucket_reserve_within_at(const struct fb_bucket *bucket,
                                      uint64_t n,
                                      uint64_t max_wait_ns,
                                      uint64_t *wait_ns,
                                      uint64_t now_ns);

/**
 * Gives back `n` tokens of a reservation that will not be used. Never makes the bucket
 * fuller than full.
 *
 * Returns `FB_OK`, `FB_ERR_NULL`, `FB_ERR_INVALID_ARGUMENT`.
 *
 * Thread safety: safe from many threads at once on one bucket.
 *
 * # Safety
 * `bucket` is NULL or a live handle.
 */
fb_result fb_bucket_refund(const struct fb_bucket *bucket,
                           uint64_t n);

/**
 * `fb_bucket_refund` at time `now_ns`.
 *
 * Thread safety: safe from many threads at once on one bucket.
 *
 * # Safety
 * `bucket` is NULL or a live handle.
 */
fb_result fb_bucket_refund_at(const struct fb_bucket *bucket,
                              uint64_t n,
                              uint64_t now_ns);

/**
 * Stores in `*tokens` how many tokens could be taken now.
 *
 * Returns `FB_OK`, `FB_ERR_NULL`, `FB_ERR_INVALID_ARGUMENT`.
 *
 * Thread safety: safe from many threads at once on one bucket (one load).
 *
 * # Safety
 * `bucket` is NULL or a live handle; `tokens` is NULL or writable.
 */
fb_result fb_bucket_available(const struct fb_bucket *bucket,
                              uint64_t *tokens);

/**
 * `fb_bucket_available` at time `now_ns`.
 *
 * Thread safety: safe from many threads at once on one bucket (one load).
 *
 * # Safety
 * As `fb_bucket_available`.
 */
fb_result fb_bucket_available_at(const struct fb_bucket *bucket,
                                 uint64_t *tokens,
                                 uint64_t now_ns);

/**
 * Stores limit, remaining, reset and retry-after, from one read of the bucket, in
 * `*stats`.
 *
 * Returns `FB_OK`, `FB_ERR_NULL`, `FB_ERR_INVALID_ARGUMENT`.
 *
 * Thread safety: safe from many threads at once on one bucket (one load).
 *
 * # Safety
 * `bucket` is NULL or a live handle; `stats` is NULL or writable.
 */
fb_result fb_bucket_state(const struct fb_bucket *bucket,
                          struct fb_bucket_stats *stats);

/**
 * `fb_bucket_state` at time `now_ns`.
 *
 * Thread safety: safe from many threads at once on one bucket (one load).
 *
 * # Safety
 * As `fb_bucket_state`.
 */
fb_result fb_bucket_state_at(const struct fb_bucket *bucket,
                             struct fb_bucket_stats *stats,
                             uint64_t now_ns);

/**
 * Refills the bucket completely.
 *
 * Returns `FB_OK`, `FB_ERR_NULL`, `FB_ERR_INVALID_ARGUMENT`.
 *
 * Thread safety: safe from many threads at once on one bucket.
 *
 * # Safety
 * `bucket` is NULL or a live handle.
 */
fb_result fb_bucket_reset(const struct fb_bucket *bucket);

/**
 * `fb_bucket_reset` at time `now_ns`, for symmetry with the other `_at` functions: a reset
 * bucket is full at every time, so `now_ns` changes nothing.
 *
 * Returns `FB_OK`, `FB_ERR_NULL` (`bucket` NULL), `FB_ERR_INVALID_ARGUMENT`.
 *
 * Thread safety: safe from many threads at once on one bucket.
 *
 * # Safety
 * `bucket` is NULL or a live handle.
 */
fb_result fb_bucket_reset_at(const struct fb_bucket *bucket,
                             uint64_t now_ns);

/**
 * Stores in `*wait_ns` the nanoseconds until `n` tokens could be taken (0: now), taking
 * nothing.
 *
 * Returns `FB_OK`, `FB_ERR_EXCEEDS_CAPACITY` (`n` above the burst: no wait helps;
 * `*wait_ns` is left unchanged), `FB_ERR_NULL` (`bucket` or `wait_ns` NULL),
 * `FB_ERR_INVALID_ARGUMENT`.
 *
 * Thread safety: safe from many threads at once on one bucket (one load).
 *
 * # Safety
 * `bucket` is NULL or a live handle; `wait_ns` is NULL or writable.
 */
fb_result fb_bucket_retry_after(const struct fb_bucket *bucket,
                                uint64_t n,
                                uint64_t *wait_ns);

/**
 * `fb_bucket_retry_after` at time `now_ns`.
 *
 * Thread safety: safe from many threads at once on one bucket (one load).
 *
 * # Safety
 * As `fb_bucket_retry_after`.
 */
fb_result fb_bucket_retry_after_at(const struct fb_bucket *bucket,
                                   uint64_t n,
                                   uint64_t *wait_ns,
                                   uint64_t now_ns);

/**
 * Stores the bucket's configuration in force, read back from the bucket (the one it was
 * built with, or the last `fb_bucket_reconfigure`'s), in `*config`.
 *
 * Returns `FB_OK`, `FB_ERR_NULL` (`bucket` or `config` NULL), `FB_ERR_INVALID_ARGUMENT`.
 *
 * Thread safety: safe from many threads at once on one bucket (loads only).
 *
 * # Safety
 * `bucket` is NULL or a live handle; `config` is NULL or writable.
 */
fb_result fb_bucket_get_config(const struct fb_bucket *bucket,
                               struct fb_bucket_config *config);

/**
 * Changes the bucket's rate, period and burst at run time, now (on `fb_now_ns()`'s clock),
 * keeping its state: the tokens in use stay in use, counted at the new interval, and drain
 * at the new rate. A burst lowered below the tokens in use leaves the bucket over its limit
 * (nothing can be taken) until they drain.
 *
 * `*config` is checked as `fb_bucket_new` checks it. The bucket's time unit is fixed when
 * it is built (1 ns unless `burst * period_ns / rate` exceeds 2^62 ns): a configuration that
 * needs a coarser one is `FB_ERR_INVALID_CONFIG` naming `burst`. Atomic: every grant is
 * decided on either the old settings or the new ones.
 *
 * On a bucket from `fb_region_bucket`, the change is made in the region, for every process
 * attached to the slot.
 *
 * Returns `FB_OK`; `FB_ERR_INVALID_CONFIG` (`fb_last_error()` names the field, the value and
 * the legal range); `FB_ERR_BUSY` (another reconfiguration of this bucket was under way for
 * too long: try again); `FB_ERR_NULL` (`bucket` or `config` NULL);
 * `FB_ERR_INVALID_ARGUMENT` (not a bucket handle). On an error nothing changes.
 *
 * Thread safety: safe from many threads at once on one bucket; reconfigurations are
 * serialised.
 *
 * # Safety
 * `bucket` is NULL or a live handle; `config` is NULL or points to an `fb_bucket_config`.
 */
fb_result fb_bucket_reconfigure(const struct fb_bucket *bucket,
                                const struct fb_bucket_config *config);

/**
 * `fb_bucket_reconfigure` at time `now_ns` (the clock of the other `_at` calls on this
 * bucket): the tokens in use at `now_ns` stay in use.
 *
 * Thread safety: safe from many threads at once on one bucket; reconfigurations are
 * serialised.
 *
 * # Safety
 * As `fb_bucket_reconfigure`.
 */
fb_result fb_bucket_reconfigure_at(const struct fb_bucket *bucket,
                                   const struct fb_bucket_config *config,
                                   uint64_t now_ns);

/**
 * The default configuration (the core's table): 10 calls in flight.
 *
 * Thread safety: safe from any thread.
 */
struct fb_bulkhead_config fb_bulkhead_config_default(void);

/**
 * Creates a bulkhead on the heap and stores its handle in `*out`; free it with
 * `fb_bulkhead_free`.
 *
 * Returns `FB_OK`, `FB_ERR_INVALID_CONFIG` (`fb_last_error()` names the field and the
 * value), `FB_ERR_NULL`.
 *
 * Thread safety: safe from any thread.
 *
 * # Safety
 * `config` is NULL or points to an `fb_bulkhead_config`; `out` is NULL or writable.
 */
fb_result fb_bulkhead_new(const struct fb_bulkhead_config *config,
                          struct fb_bulkhead **out);

/**
 * Creates a bulkhead in `storage` (at least `FB_BULKHEAD_STORAGE_SIZE` bytes, aligned to
 * `FB_BULKHEAD_STORAGE_ALIGN`) without touching the heap. The storage stays the caller's;
 * `fb_bulkhead_free` ignores the handle.
 *
 * Returns `FB_OK`, `FB_ERR_BUFFER`, `FB_ERR_INVALID_CONFIG`, `FB_ERR_NULL`.
 *
 * Thread safety: safe from any thread, on distinct storage.
 *
 * # Safety
 * `storage` is NULL or valid for writes of `size` bytes and not used for anything else while
 * the bulkhead lives; `config` is NULL or points to an `fb_bulkhead_config`; `out` is NULL
 * or writable.
 */
fb_result fb_bulkhead_init(void *storage,
                           size_t size,
                           const struct fb_bulkhead_config *config,
                           struct fb_bulkhead **out);

/**
 * Frees a bulkhead made by `fb_bulkhead_new`. NULL is ignored, and so is a bulkhead made
 * by `fb_bulkhead_init`.
 *
 * Thread safety: must be the last call on this bulkhead, from any thread.
 *
 * # Safety
 * `bulkhead` is NULL or a live handle that no other thread is using or will use.
 */
void fb_bulkhead_free(struct fb_bulkhead *bulkhead);

/**
 * Takes a slot: `FB_OK` (give it back with `fb_bulkhead_release` when the call ends) or
 * `FB_REJECTED` (all slots are out).
 *
 * Other results: `FB_ERR_NULL`, `FB_ERR_INVALID_ARGUMENT`.
 *
 * Thread safety: safe from many threads at once on one bulkhead (lock-free; the count never
 * exceeds the limit, even transiently).
 *
 * # Safety
 * `bulkhead` is NULL or a live handle.
 */
fb_result fb_bulkhead_try_acquire(const struct fb_bulkhead *bulkhead);

/**
 * Gives back a slot taken by `fb_bulkhead_try_acquire`.
 *
 * Returns `FB_OK`, `FB_ERR_NOT_HELD` (no slot was out: an extra release, which changes
 * nothing), `FB_ERR_NULL` (`bulkhead` NULL), `FB_ERR_INVALID_ARGUMENT`.
 *
 * Thread safety: safe from many threads at once on one bulkhead.
 *
 * # Safety
 * `bulkhead` is NULL or a live handle.
 */
fb_result fb_bulkhead_release(const struct fb_bulkhead *bulkhead);

/**
 * Changes the limit at run time. Slots out stay out: a limit lowered below the calls in
 * flight admits nothing until enough of them are released. Atomic (one word): every
 * `fb_bulkhead_try_acquire` decides on the old limit or the new one.
 *
 * On a bulkhead from `fb_region_bulkhead`, the change is made in the region, for every
 * process attached to the slot.
 *
 * Returns `FB_OK`, `FB_ERR_INVALID_CONFIG` (`max_concurrent` below `FB_MIN_MAX_CONCURRENT`:
 * `fb_last_error()` names the field and the value; nothing changes), `FB_ERR_NULL`
 * (`bulkhead` NULL), `FB_ERR_INVALID_ARGUMENT` (not a bulkhead handle).
 *
 * Thread safety: safe from many threads at once on one bulkhead (one store).
 *
 * # Safety
 * `bulkhead` is NULL or a live handle.
 */
fb_result fb_bulkhead_reconfigure(const struct fb_bulkhead *bulkhead,
                                  uint32_t max_concurrent);

/**
 * Stores a snapshot of the counters in `*stats`.
 *
 * Returns `FB_OK`, `FB_ERR_NULL`, `FB_ERR_INVALID_ARGUMENT`.
 *
 * Thread safety: safe from many threads at once on one bulkhead (loads only).
 *
 * # Safety
 * `bulkhead` is NULL or a live handle; `stats` is NULL or writable.
 */
fb_result fb_bulkhead_metrics(const struct fb_bulkhead *bulkhead,
                              struct fb_bulkhead_stats *stats);

/**
 * Creates a keyed table of `capacity` slots on the heap, each key a bucket of `*config`,
 * and stores its handle in `*out`; free it with `fb_keyed_free`. The table never allocates
 * again: a key lives in one of the few slots from its home slot (its hash, seeded at random
 * here so that clients cannot choose keys that collide), a key whose bucket is full again
 * holds no slot (after a grace of 1 s), and a new key that finds no room is refused or let
 * through untracked as `when_full` says. A live key is never evicted.
 *
 * Returns `FB_OK`, `FB_ERR_INVALID_CONFIG` (`fb_last_error()` names the field, the value
 * and the legal range: the bucket's fields, or `capacity`, 1..=`FB_MAX_KEYED_CAPACITY`),
 * `FB_ERR_INVALID_ARGUMENT` (an unknown `when_full`), `FB_ERR_NULL`.
 *
 * Thread safety: safe from any thread.
 *
 * # Safety
 * `config` is NULL or points to an `fb_bucket_config`; `out` is NULL or writable.
 */
fb_result fb_keyed_new(const struct fb_bucket_config *config,
                       size_t capacity,
                       fb_when_full when_full,
                       struct fb_keyed **out);

/**
 * Frees a keyed table made by `fb_keyed_new`. NULL is ignored.
 *
 * Thread safety: must be the last call on this table, from any thread.
 *
 * # Safety
 * `keyed` is NULL or a live handle that no other thread is using or will use.
 */
void fb_keyed_free(struct fb_keyed *keyed);

/**
 * Takes `n` tokens of the bucket of the key `key[0..key_len)` (any bytes, at most
 * `FB_MAX_KEY_LEN`) now if they are all there; otherwise takes nothing. A key not in the
 * table starts full and is given a slot.
 *
 * Returns `FB_OK` (`*retry_after_ns` = 0), `FB_REJECTED` with the nanoseconds until the
 * key's tokens would be there in `*retry_after_ns`, `FB_ERR_EXCEEDS_CAPACITY` (`n` above the
 * burst: no wait helps), `FB_ERR_TABLE_FULL` (a new key found no room, and the table was made
 * with `FB_WHEN_FULL_REJECT`; with `FB_WHEN_FULL_ADMIT` it is `FB_OK`), `FB_ERR_KEY_TOO_LONG`
 * (`fb_last_error()` gives the length), `FB_ERR_BUSY` (another caller was claiming a slot
 * near the key's for longer than a bounded wait: try again). `n` = 0 always succeeds.
 * `retry_after_ns` may be NULL; it is written only with `FB_OK` and `FB_REJECTED`.
 * Other errors: `FB_ERR_NULL` (`keyed` or `key`), `FB_ERR_INVALID_ARGUMENT`.
 *
 * Thread safety: safe from many threads at once on one table (a key's tokens: one CAS;
 * giving a new key a slot waits only for claims of keys with the same home slot).
 *
 * # Safety
 * `keyed` is NULL or a live handle; `key` is NULL or valid for reads of `key_len` bytes;
 * `retry_after_ns` is NULL or writable.
 */
fb_result fb_keyed_try_acquire(const struct fb_keyed *keyed,
                               const uint8_t *key,
                               size_t key_len,
                               uint64_t n,
                               uint64_t *retry_after_ns);

/**
 * `fb_keyed_try_acquire` at time `now_ns`.
 *
 * Thread safety: safe from many threads at once on one table.
 *
 * # Safety
 * As `fb_keyed_try_acquire`.
 */
fb_result fb_keyed_try_acquire_at(const struct fb_keyed *keyed,
                                  const uint8_t *key,
                                  size_t key_len,
                                  uint64_t n,
                                  uint64_t *retry_after_ns,
                                  uint64_t now_ns);

/**
 * Stores in `*wait_ns` the nanoseconds until `n` tokens of the key `key[0..key_len)` could
 * be taken (0: now; a key not in the table is full), taking nothing and claiming no slot.
 *
 * Returns `FB_OK`, `FB_ERR_EXCEEDS_CAPACITY` (`n` above the burst: no wait helps),
 * `FB_ERR_KEY_TOO_LONG`, `FB_ERR_NULL` (`keyed`, `key` or `wait_ns` NULL),
 * `FB_ERR_INVALID_ARGUMENT`. On an error `*wait_ns` is left unchanged.
 *
 * Thread safety: safe from many threads at once on one table (loads only).
 *
 * # Safety
 * `keyed` is NULL or a live handle; `key` is NULL or valid for reads of `key_len` bytes;
 * `wait_ns` is NULL or writable.
 */
fb_result fb_keyed_retry_after(const struct fb_keyed *keyed,
                               const uint8_t *key,
                               size_t key_len,
                               uint64_t n,
                               uint64_t *wait_ns);

/**
 * `fb_keyed_retry_after` at time `now_ns`.
 *
 * Thread safety: safe from many threads at once on one table (loads only).
 *
 * # Safety
 * As `fb_keyed_retry_after`.
 */
fb_result fb_keyed_retry_after_at(const struct fb_keyed *keyed,
                                  const uint8_t *key,
                                  size_t key_len,
                                  uint64_t n,
                                  uint64_t *wait_ns,
                                  uint64_t now_ns);

/**
 * Stores limit, remaining, reset and retry-after of the key `key[0..key_len)`, from one
 * read of its slot, in `*stats` (for `RateLimit` headers; a key not in the table is full).
 *
 * Returns `FB_OK`, `FB_ERR_KEY_TOO_LONG`, `FB_ERR_NULL` (`keyed`, `key` or `stats` NULL),
 * `FB_ERR_INVALID_ARGUMENT`.
 *
 * Thread safety: safe from many threads at once on one table (loads only).
 *
 * # Safety
 * `keyed` is NULL or a live handle; `key` is NULL or valid for reads of `key_len` bytes;
 * `stats` is NULL or writable.
 */
fb_result fb_keyed_state(const struct fb_keyed *keyed,
                         const uint8_t *key,
                         size_t key_len,
                         struct fb_bucket_stats *stats);

/**
 * `fb_keyed_state` at time `now_ns`.
 *
 * Thread safety: safe from many threads at once on one table (loads only).
 *
 * # Safety
 * As `fb_keyed_state`.
 */
fb_result fb_keyed_state_at(const struct fb_keyed *keyed,
                            const uint8_t *key,
                            size_t key_len,
                            struct fb_bucket_stats *stats,
                            uint64_t now_ns);

/**
 * Refills the bucket of the key `key[0..key_len)` completely (its slot becomes free for
 * another key). `*found` (may be NULL) says whether the key was in the table; a key that
 * was not is `FB_OK` too.
 *
 * Returns `FB_OK`, `FB_ERR_KEY_TOO_LONG`, `FB_ERR_BUSY` (the key's slot kept changing
 * hands: try again), `FB_ERR_NULL` (`keyed` or `key` NULL), `FB_ERR_INVALID_ARGUMENT`.
 *
 * Thread safety: safe from many threads at once on one table.
 *
 * # Safety
 * `keyed` is NULL or a live handle; `key` is NULL or valid for reads of `key_len` bytes;
 * `found` is NULL or writable.
 */
fb_result fb_keyed_reset(const struct fb_keyed *keyed,
                         const uint8_t *key,
                         size_t key_len,
                         bool *found);

/**
 * Stores the table's counters, and the keys live now, in `*stats`.
 *
 * Returns `FB_OK`, `FB_ERR_NULL`, `FB_ERR_INVALID_ARGUMENT`.
 *
 * Thread safety: safe from many threads at once on one table (relaxed loads: statistics;
 * `live_keys` scans the whole table, so call it for metrics, not on hot paths).
 *
 * # Safety
 * `keyed` is NULL or a live handle; `stats` is NULL or writable.
 */
fb_result fb_keyed_metrics(const struct fb_keyed *keyed,
                           struct fb_keyed_stats *stats);

/**
 * `fb_keyed_metrics` at time `now_ns` (the time at which `live_keys` is counted).
 *
 * Thread safety: safe from many threads at once on one table.
 *
 * # Safety
 * As `fb_keyed_metrics`.
 */
fb_result fb_keyed_metrics_at(const struct fb_keyed *keyed,
                              struct fb_keyed_stats *stats,
                              uint64_t now_ns);

/**
 * The default options: `/dev/shm` (`dir` NULL), `FB_REGION_DEFAULT_CAPACITY` slots, create
 * if missing, wait up to 2 s for a slot's initialiser.
 *
 * Thread safety: safe from any thread.
 */
struct fb_region_options fb_region_options_default(void);

/**
 * Opens region `name` (creating it unless `options->create` is false) and stores its
 * handle in `*out`; free it with `fb_region_free`.
 *
 * A region is one file, `<dir>/fastbreaker.<name>` (`dir` defaults to `/dev/shm`, a
 * memory-backed file system), created with mode 0600: only processes of the same user on
 * the same host can open it, and it is lost on reboot (or when unlinked). Every process that
 * opens it by the same name and directory maps the same memory; breakers, buckets and
 * bulkheads are then found in it by name (`fb_region_breaker`, `fb_region_bucket`,
 * `fb_region_bulkhead`). The creator builds the file under a temporary name and links it
 * into place, so openers never see a half-made region and never wait for its creator.
 *
 * `name`: 1..=`FB_REGION_MAX_NAME_LEN` bytes of UTF-8, without `/`, `..`, NUL or control
 * characters. `options` may be NULL (the defaults).
 *
 * Returns `FB_OK`; `FB_ERR_NULL` (`name` or `out`); `FB_ERR_REGION_NAME`;
 * `FB_ERR_INVALID_ARGUMENT` (capacity out of range); `FB_ERR_REGION_NOT_FOUND` (no region
 * and `create` false); `FB_ERR_REGION_IO` (a system call failed: a missing directory, no
 * permission, no space or memory); `FB_ERR_REGION_UNTRUSTED` (another owner, a mode other
 * than 0600 or not a regular file); `FB_ERR_REGION_BAD_MAGIC`, `FB_ERR_REGION_VERSION`,
 * `FB_ERR_REGION_CHECKSUM`, `FB_ERR_REGION_LAYOUT`, `FB_ERR_REGION_CORRUPT_HEADER`,
 * `FB_ERR_REGION_TRUNCATED` (the file is not a region this build can use: nothing is
 * reused or repaired). `fb_last_error()` gives the details.
 *
 * After `fork()` the child may go on using the handle and every handle from it (the
 * mapping is shared); processes in different pid namespaces must not share a region.
 *
 * Thread safety: safe from any thread.
 *
 * # Safety
 * `name` is NULL or a NUL-terminated string; `options` is NULL or points to an
 * `fb_region_options` whose `dir` is NULL or a NUL-terminated string; `out` is NULL or
 * writable.
 */
fb_result fb_region_open(const char *name,
                         const struct fb_region_options *options,
                         struct fb_region **out);

/**
 * Frees a region handle. NULL is ignored.
 *
 * The breakers, buckets and bulkheads taken from the region stay valid: each holds the
 * region open (the mapping is unmapped when the region handle and every handle from it are
 * freed). Freeing changes nothing in the region itself, which stays for other processes
 * (see `fb_region_unlink`).
 *
 * Thread safety: must be the last call on this region handle, from any thread; handles
 * taken from it may go on being used on other threads.
 *
 * # Safety
 * `region` is NULL or a live region handle that no other thread is using or will use.
 */
void fb_region_free(struct fb_region *region);

/**
 * Removes region `name`'s file from `dir` (NULL: `/dev/shm`).
 *
 * Processes that have it open keep using the old region (the memory lives until the last
 * one unmaps it), while the next `fb_region_open` of the name creates a new, empty one: so
 * unlink only when no process should share state through it any more (at deployment,
 * after a layout version change, in tests).
 *
 * Returns `FB_OK` (removed), `FB_ERR_REGION_NOT_FOUND` (there was none), `FB_ERR_NULL`
 * (`name`), `FB_ERR_REGION_NAME`, `FB_ERR_REGION_IO`.
 *
 * Thread safety: safe from any thread.
 *
 * # Safety
 * `name` is NULL or a NUL-terminated string; `dir` is NULL or a NUL-terminated string.
 */
fb_result fb_region_unlink(const char *name,
                           const char *dir);

/**
 * Stores the region's capacity and whether this handle's open created it in `*info`.
 *
 * Returns `FB_OK`, `FB_ERR_NULL`, `FB_ERR_INVALID_ARGUMENT` (not a region handle).
 *
 * Thread safety: safe from any thread.
 *
 * # Safety
 * `region` is NULL or a live region handle; `info` is NULL or writable.
 */
fb_result fb_region_info(const struct fb_region *region,
                         struct fb_region_stats *info);

/**
 * The breaker in slot `name` of the region, as an `fb_breaker` handle that every
 * `fb_breaker_*` function takes; free it with `fb_breaker_free`.
 *
 * The first process to ask for the slot initialises it with `*config` (a count or time
 * window, per `config->window_kind`); later ones attach to the same breaker, and must ask
 * for the same configuration: otherwise `FB_ERR_REGION_CONFIG_MISMATCH`, with both
 * configurations in `fb_last_error()`, or `FB_ERR_REGION_KIND_MISMATCH` for another
 * window kind (or another primitive). Configurations are compared as the breakers they
 * build (so `jitter_seed` `FB_RANDOM_SEED` matches `FB_RANDOM_SEED`, not a fixed seed).
 * Every process sees and moves the same state, counters and window; times are
 * `CLOCK_MONOTONIC` (`fb_now_ns()`), the same in every process, so give the `_at`
 * functions of a region breaker times from that clock only.
 *
 * The listener (`fb_breaker_set_listener`) is this handle's: it hears of the changes
 * made through this handle, not of those made by other handles or processes. A probe of a
 * half-open breaker whose process dies is presumed hung after the open wait (as in one
 * process), so it never wedges the breaker.
 *
 * Each call makes a new handle (several handles to one slot are fine); the handle keeps
 * the region mapped, so it stays valid after `fb_region_free(region)`. Not for
 * `fb_breaker_init`: region handles live on the heap.
 *
 * Returns `FB_OK`; `FB_ERR_NULL`; `FB_ERR_INVALID_CONFIG` (the core's message);
 * `FB_ERR_REGION_NAME` (1..=`FB_REGION_MAX_SLOT_NAME_LEN` bytes of UTF-8, no NUL);
 * `FB_ERR_REGION_CONFIG_MISMATCH`; `FB_ERR_REGION_KIND_MISMATCH`; `FB_ERR_REGION_FULL`;
 * `FB_ERR_REGION_SLOT_BUSY` (try again); `FB_ERR_REGION_CORRUPT_SLOT`;
 * `FB_ERR_INVALID_ARGUMENT` (not a region handle).
 *
 * Thread safety: safe from any thread, and from many processes at once on one slot (one
 * of them initialises it).
 *
 * # Safety
 * `region` is NULL or a live region handle; `name` is NULL or a NUL-terminated string;
 * `config` is NULL or points to an `fb_breaker_config`; `out` is NULL or writable.
 */
fb_result fb_region_breaker(const struct fb_region *region,
                            const char *name,
                            const struct fb_breaker_config *config,
                            struct fb_breaker **out);

/**
 * The token bucket in slot `name` of the region, as an `fb_bucket` handle (free it with
 * `fb_bucket_free`): one budget for every process, e.g. 100 per second across all workers.
 * Initialised full by the first process that asks for it, as `fb_region_breaker` (same
 * rules for names, configurations, lifetime and results).
 *
 * Thread safety: safe from any thread and any process.
 *
 * # Safety
 * `region` is NULL or a live region handle; `name` is NULL or a NUL-terminated string;
 * `config` is NULL or points to an `fb_bucket_config`; `out` is NULL or writable.
 */
fb_result fb_region_bucket(const struct fb_region *region,
                           const char *name,
                           const struct fb_bucket_config *config,
                           struct fb_bucket **out);

/**
 * The bulkhead in slot `name` of the region, as an `fb_bulkhead` handle (free it with
 * `fb_bulkhead_free`): a limit on calls in flight across every process. Initialised by
 * the first process that asks for it, as `fb_region_breaker` (same rules for names,
 * configurations, lifetime and results).
 *
 * Its permits record their owner process: the permits of a process that dies holding them
 * (SIGKILL, the OOM killer) are reclaimed when the bulkhead is found full, at most once per
 * `FB_REGION_REAP_INTERVAL_NS` across processes, so they come back at the first rejected
 * `fb_bulkhead_try_acquire` that much after the previous reclaim. A process is judged dead
 * by its pid and start time (a reused pid is not mistaken for it). Permits are beyond
 * tracking, and are not reclaimed, when more than `FB_REGION_BULKHEAD_OWNERS` processes
 * hold permits at once, or one handle holds more than
 * `FB_REGION_BULKHEAD_TRACKED_PER_HANDLE` in one process.
 *
 * `fb_bulkhead_release` gives back a permit that this process took through this handle
 * (`FB_ERR_NOT_HELD` if it holds none through it), so release through the handle you
 * acquired with. Permits held when the process forks stay the parent's: the child cannot
 * release them. `fb_bulkhead_free` gives back the permits this process still holds through
 * the handle.
 *
 * Thread safety: safe from any thread and any process.
 *
 * # Safety
 * `region` is NULL or a live region handle; `name` is NULL or a NUL-terminated string;
 * `config` is NULL or points to an `fb_bulkhead_config`; `out` is NULL or writable.
 */
fb_result fb_region_bulkhead(const struct fb_region *region,
                             const char *name,
                             const struct fb_bulkhead_config *config,
                             struct fb_bulkhead **out);

/**
 * Calls `callback` with each used slot of the region, in index order, with `user_data`,
 * until it returns non-zero: for tools (a `region ls`). A slot holding a primitive is
 * checked as attaching to it would check it (`FB_SLOT_CORRUPT` if that fails). To read a
 * primitive's state and counters, attach to it with the listed configuration
 * (`fb_region_breaker(region, slot->name, &slot->breaker, &b)`, then
 * `fb_breaker_metrics`).
 *
 * Returns `FB_OK`, `FB_ERR_NULL` (`region` or `callback`), `FB_ERR_INVALID_ARGUMENT`.
 *
 * Thread safety: safe from any thread (the listing is not a snapshot: slots made meanwhile
 * may or may not be listed).
 *
 * # Safety
 * `region` is NULL or a live region handle; `callback` may be called with `user_data`; it
 * must return normally (no `longjmp`, no C++ exception) and must not free `region`.
 */
fb_result fb_region_list(const struct fb_region *region,
                         fb_region_list_fn callback,
                         void *user_data);

#ifdef __cplusplus
}  // extern "C"
#endif  // __cplusplus

#endif  /* FASTBREAKER_H */
