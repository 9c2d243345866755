//! Benchmarks of fastbreaker against governor, failsafe and recloser, and the report that turns
//! criterion's results into a markdown table.
//!
//! * `cargo bench -p fastbreaker-benches` runs `benches/compare.rs`: every benchmark of
//!   [`CATALOGUE`], in one process, with a short criterion configuration (warm-up 0.5 s,
//!   measurement 2 s, 30 samples).
//! * `cargo run -p fastbreaker-benches --release --bin report -- [--out PATH]` reads
//!   `target/criterion/<group>/<bench>/new/estimates.json` for each entry of the catalogue and
//!   prints (and writes) a markdown table with [`render`].
//!
//! # What is reported
//! The figure of every row is criterion's **median** estimate of the time of one iteration
//! (`median.point_estimate` of `estimates.json`), with the bootstrap 95% confidence interval
//! of that median.
//!
//! * One-thread groups: one iteration is one operation (for a breaker's closed path: an
//!   acquire and the record of its success; for a rejection: one refused acquire).
//! * [`group::TWO_THREADS`]: benchmarked with criterion's `iter_custom`. Two std threads
//!   (spawned with `std::thread::scope` for every sample) share one object by reference, as
//!   they would through an `Arc` or a `static`; each waits on a barrier, then performs
//!   `iters` operations. The time returned to
//!   criterion is the wall time from the earlier thread's start to the later thread's end,
//!   so the figure (that time divided by `iters`) is **nanoseconds per operation per
//!   thread**. An object that scales perfectly shows its one-thread figure; one that
//!   serializes the two threads completely shows twice that. Aggregate throughput is two
//!   operations per reported time.
//!
//! The ratio of a row is its figure divided by the figure of the peer row it is compared with
//! ([`BenchSpec::peer`]); a row meets its target when the ratio is at most
//! [`BenchSpec::target`].

use std::collections::HashMap;
use std::fmt::Write as _;

/// Criterion group names (the first directory level under `target/criterion`).
pub mod group {
    /// One thread: acquire + record success on a closed circuit breaker.
    pub const BREAKER_CLOSED: &str = "breaker_closed";
    /// One thread: an acquire refused by an open circuit breaker.
    pub const BREAKER_OPEN: &str = "breaker_open";
    /// One thread: a rate limiter that always lets the call through.
    pub const BUCKET_ALLOWED: &str = "bucket_allowed";
    /// One thread: an exhausted rate limiter refusing the call.
    pub const BUCKET_REJECTED: &str = "bucket_rejected";
    /// Two threads sharing one object, reported per operation per thread.
    pub const TWO_THREADS: &str = "two_threads";
    /// One thread: the cost of reading each clock involved, for reference.
    pub const CLOCK_READ: &str = "clock_read";
    /// One thread: each primitive in a host-shared region (feature `shm`) beside the same
    /// primitive in process memory.
    pub const SHARED_REGION: &str = "shared_region";
}

/// Benchmark names inside the groups (the second directory level).
pub mod bench {
    /// fastbreaker with an explicit, fixed `now`.
    pub const FASTBREAKER_NOW: &str = "fastbreaker_now";
    /// fastbreaker through `MonotonicClock` (the `_with` forms).
    pub const FASTBREAKER_CLOCK: &str = "fastbreaker_clock";
    /// fastbreaker through a `Clock` that reads quanta exactly as governor's default clock.
    pub const FASTBREAKER_QUANTA: &str = "fastbreaker_quanta";
    /// `MonotonicClock::now_ns` (clock-read group).
    pub const MONOTONIC_CLOCK: &str = "monotonic_clock";
    /// governor's default clock, quanta: raw TSC read scaled to ns (clock-read group).
    pub const QUANTA: &str = "quanta";
    /// fastbreaker's breaker on a time window, through `MonotonicClock`.
    pub const FASTBREAKER_TIME_WINDOW_CLOCK: &str = "fastbreaker_time_window_clock";
    /// fastbreaker's breaker (count window, explicit `now`) in the two-thread group.
    pub const FASTBREAKER_BREAKER_NOW: &str = "fastbreaker_breaker_now";
    /// fastbreaker's breaker (count window, `MonotonicClock`) in the two-thread group.
    pub const FASTBREAKER_BREAKER_CLOCK: &str = "fastbreaker_breaker_clock";
    /// fastbreaker's token bucket through `MonotonicClock` in the two-thread group.
    pub const FASTBREAKER_BUCKET_CLOCK: &str = "fastbreaker_bucket_clock";
    /// failsafe's `StateMachine` with the consecutive-failures policy.
    pub const FAILSAFE: &str = "failsafe";
    /// recloser's `Recloser::call`.
    pub const RECLOSER: &str = "recloser";
    /// governor's direct `RateLimiter::check`.
    pub const GOVERNOR: &str = "governor";
    /// A breaker (`CountWindow1024`) in process memory (shared-region group).
    pub const BREAKER_IN_PROCESS: &str = "breaker_in_process";
    /// The same breaker in a shared region (`Region::breaker_count`).
    pub const BREAKER_SHARED: &str = "breaker_shared";
    /// A token bucket in process memory (shared-region group).
    pub const BUCKET_IN_PROCESS: &str = "bucket_in_process";
    /// The same token bucket in a shared region (`Region::bucket`).
    pub const BUCKET_SHARED: &str = "bucket_shared";
    /// A bulkhead in process memory (shared-region group).
    pub const BULKHEAD_IN_PROCESS: &str = "bulkhead_in_process";
    /// The same bulkhead in a shared region, plain (`Region::bulkhead`, untracked permits).
    pub const BULKHEAD_SHARED: &str = "bulkhead_shared";
    /// The same bulkhead in a shared region through `Region::owned_bulkhead` (permits
    /// recorded against their owner process).
    pub const BULKHEAD_OWNED_SHARED: &str = "bulkhead_owned_shared";
}

/// One benchmark of the catalogue: where its results are, what it measures, and what it is
/// compared with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BenchSpec {
    /// Criterion group.
    pub group: &'static str,
    /// Criterion benchmark name within the group.
    pub name: &'static str,
    /// What one operation is, for the table.
    pub what: &'static str,
    /// The `(group, name)` of the peer benchmark this one is divided by, if any.
    pub peer: Option<(&'static str, &'static str)>,
    /// The largest acceptable ratio to the peer, if the row has a target.
    pub target: Option<f64>,
}

impl BenchSpec {
    /// `group/name`, as criterion names the benchmark.
    pub fn id(&self) -> String {
        format!("{}/{}", self.group, self.name)
    }
}

const fn spec(
    group: &'static str,
    name: &'static str,
    what: &'static str,
    peer: Option<(&'static str, &'static str)>,
    target: Option<f64>,
) -> BenchSpec {
    BenchSpec {
        group,
        name,
        what,
        peer,
        target,
    }
}

const FAILSAFE_CLOSED: Option<(&str, &str)> = Some((group::BREAKER_CLOSED, bench::FAILSAFE));
const FAILSAFE_OPEN: Option<(&str, &str)> = Some((group::BREAKER_OPEN, bench::FAILSAFE));
const GOVERNOR_ALLOWED: Option<(&str, &str)> = Some((group::BUCKET_ALLOWED, bench::GOVERNOR));
const GOVERNOR_REJECTED: Option<(&str, &str)> = Some((group::BUCKET_REJECTED, bench::GOVERNOR));
const GOVERNOR_TWO: Option<(&str, &str)> = Some((group::TWO_THREADS, bench::GOVERNOR));
const BREAKER_IN_PROCESS: Option<(&str, &str)> =
    Some((group::SHARED_REGION, bench::BREAKER_IN_PROCESS));
const BUCKET_IN_PROCESS: Option<(&str, &str)> =
    Some((group::SHARED_REGION, bench::BUCKET_IN_PROCESS));
const BULKHEAD_IN_PROCESS: Option<(&str, &str)> =
    Some((group::SHARED_REGION, bench::BULKHEAD_IN_PROCESS));

/// Target: the breaker's closed path at most half of failsafe's (one thread).
pub const TARGET_CLOSED_VS_FAILSAFE: f64 = 0.5;
/// Target: the token bucket on the same kind of clock at most governor's time.
pub const TARGET_BUCKET_VS_GOVERNOR: f64 = 1.0;
/// Target: two threads on one breaker at most half of governor's per-op time (two threads).
pub const TARGET_TWO_THREADS_VS_GOVERNOR: f64 = 0.5;
/// Target: a primitive in a shared region at most 1.2 times the same one in process memory.
pub const TARGET_SHARED_VS_IN_PROCESS: f64 = 1.2;

/// Every benchmark that `benches/compare.rs` runs, in the order of the report.
pub const CATALOGUE: &[BenchSpec] = &[
    spec(
        group::BREAKER_CLOSED,
        bench::FASTBREAKER_NOW,
        "CircuitBreaker<CountWindow64>: acquire(now) + record(Success, now), fixed now",
        FAILSAFE_CLOSED,
        Some(TARGET_CLOSED_VS_FAILSAFE),
    ),
    spec(
        group::BREAKER_CLOSED,
        bench::FASTBREAKER_CLOCK,
        "CircuitBreaker<CountWindow64>: acquire_with + record_with(&MonotonicClock), reads no clock",
        FAILSAFE_CLOSED,
        Some(TARGET_CLOSED_VS_FAILSAFE),
    ),
    spec(
        group::BREAKER_CLOSED,
        bench::FASTBREAKER_TIME_WINDOW_CLOCK,
        "CircuitBreaker<TimeWindow<10>>: acquire_with + record_with(&MonotonicClock), one clock read",
        FAILSAFE_CLOSED,
        Some(TARGET_CLOSED_VS_FAILSAFE),
    ),
    spec(
        group::BREAKER_CLOSED,
        bench::FAILSAFE,
        "failsafe 1.3 consecutive_failures(5, constant 60 s): is_call_permitted() + on_success()",
        None,
        None,
    ),
    spec(
        group::BREAKER_CLOSED,
        bench::RECLOSER,
        "recloser 1.x (default): call(|| Ok(()))",
        None,
        None,
    ),
    spec(
        group::BREAKER_OPEN,
        bench::FASTBREAKER_NOW,
        "CircuitBreaker<CountWindow64> open (5 failures, wait 1 h): acquire(now) refused",
        FAILSAFE_OPEN,
        None,
    ),
    spec(
        group::BREAKER_OPEN,
        bench::FASTBREAKER_CLOCK,
        "CircuitBreaker<CountWindow64> open: acquire_with(&MonotonicClock) refused",
        FAILSAFE_OPEN,
        None,
    ),
    spec(
        group::BREAKER_OPEN,
        bench::FAILSAFE,
        "failsafe open (5 failures, 60 s): is_call_permitted() == false (reads Instant::now)",
        None,
        None,
    ),
    spec(
        group::BREAKER_OPEN,
        bench::RECLOSER,
        "recloser open (wait 1 h): call refused (reads Instant::now)",
        None,
        None,
    ),
    spec(
        group::BUCKET_ALLOWED,
        bench::FASTBREAKER_NOW,
        "TokenBucket 1e9/s, burst 2^32: try_acquire(1, now), now advancing 1 ns per call",
        GOVERNOR_ALLOWED,
        None,
    ),
    spec(
        group::BUCKET_ALLOWED,
        bench::FASTBREAKER_CLOCK,
        "TokenBucket 1e9/s, burst 2^32: try_acquire_with(1, &MonotonicClock)",
        GOVERNOR_ALLOWED,
        Some(TARGET_BUCKET_VS_GOVERNOR),
    ),
    spec(
        group::BUCKET_ALLOWED,
        bench::FASTBREAKER_QUANTA,
        "TokenBucket 1e9/s, burst 2^32: try_acquire_with(1, &quanta clock), governor's clock",
        GOVERNOR_ALLOWED,
        Some(TARGET_BUCKET_VS_GOVERNOR),
    ),
    spec(
        group::BUCKET_ALLOWED,
        bench::GOVERNOR,
        "governor 0.10 direct, per_second(1e9): check() allowed (quanta clock)",
        None,
        None,
    ),
    spec(
        group::BUCKET_REJECTED,
        bench::FASTBREAKER_NOW,
        "TokenBucket 1 per 1e6 s, burst 1, exhausted: try_acquire(1, now) refused",
        GOVERNOR_REJECTED,
        None,
    ),
    spec(
        group::BUCKET_REJECTED,
        bench::FASTBREAKER_CLOCK,
        "TokenBucket 1 per 1e6 s, burst 1, exhausted: try_acquire_with(1, &MonotonicClock) refused",
        GOVERNOR_REJECTED,
        Some(TARGET_BUCKET_VS_GOVERNOR),
    ),
    spec(
        group::BUCKET_REJECTED,
        bench::FASTBREAKER_QUANTA,
        "TokenBucket 1 per 1e6 s, exhausted: try_acquire_with(1, &quanta clock) refused",
        GOVERNOR_REJECTED,
        Some(TARGET_BUCKET_VS_GOVERNOR),
    ),
    spec(
        group::BUCKET_REJECTED,
        bench::GOVERNOR,
        "governor 0.10 direct, per_hour(1), exhausted: check() refused (quanta clock)",
        None,
        None,
    ),
    spec(
        group::TWO_THREADS,
        bench::FASTBREAKER_BREAKER_NOW,
        "2 threads, one CircuitBreaker<CountWindow64>: acquire(now) + record(Success, now)",
        GOVERNOR_TWO,
        Some(TARGET_TWO_THREADS_VS_GOVERNOR),
    ),
    spec(
        group::TWO_THREADS,
        bench::FASTBREAKER_BREAKER_CLOCK,
        "2 threads, one CircuitBreaker<CountWindow64>: acquire_with + record_with(&MonotonicClock)",
        GOVERNOR_TWO,
        Some(TARGET_TWO_THREADS_VS_GOVERNOR),
    ),
    spec(
        group::TWO_THREADS,
        bench::FASTBREAKER_BUCKET_CLOCK,
        "2 threads, one TokenBucket 1e9/s: try_acquire_with(1, &MonotonicClock) allowed",
        GOVERNOR_TWO,
        None,
    ),
    spec(
        group::TWO_THREADS,
        bench::GOVERNOR,
        "2 threads, one governor limiter per_second(1e9): check() allowed",
        None,
        None,
    ),
    spec(
        group::TWO_THREADS,
        bench::FAILSAFE,
        "2 threads, one failsafe StateMachine: is_call_permitted() + on_success()",
        None,
        None,
    ),
    spec(
        group::CLOCK_READ,
        bench::MONOTONIC_CLOCK,
        "fastbreaker MonotonicClock::now_ns(): clock_gettime(CLOCK_MONOTONIC) via rustix (vDSO)",
        None,
        None,
    ),
    spec(
        group::CLOCK_READ,
        bench::QUANTA,
        "quanta::Clock raw() + delta_as_nanos(): what governor's default clock does per check",
        None,
        None,
    ),
    spec(
        group::SHARED_REGION,
        bench::BREAKER_IN_PROCESS,
        "CircuitBreaker<CountWindow1024> in process memory: acquire_with + record_with(&MonotonicClock)",
        None,
        None,
    ),
    spec(
        group::SHARED_REGION,
        bench::BREAKER_SHARED,
        "the same breaker in a shared region (Region::breaker_count): acquire_with + record_with",
        BREAKER_IN_PROCESS,
        Some(TARGET_SHARED_VS_IN_PROCESS),
    ),
    spec(
        group::SHARED_REGION,
        bench::BUCKET_IN_PROCESS,
        "TokenBucket 1e9/s, burst 2^32, in process memory: try_acquire_with(1, &MonotonicClock)",
        None,
        None,
    ),
    spec(
        group::SHARED_REGION,
        bench::BUCKET_SHARED,
        "the same bucket in a shared region (Region::bucket): try_acquire_with(1, &MonotonicClock)",
        BUCKET_IN_PROCESS,
        Some(TARGET_SHARED_VS_IN_PROCESS),
    ),
    spec(
        group::SHARED_REGION,
        bench::BULKHEAD_IN_PROCESS,
        "Bulkhead(64) in process memory: try_acquire() + drop of the permit (release)",
        None,
        None,
    ),
    spec(
        group::SHARED_REGION,
        bench::BULKHEAD_SHARED,
        "the same bulkhead in a shared region (Region::bulkhead): try_acquire() + release",
        BULKHEAD_IN_PROCESS,
        Some(TARGET_SHARED_VS_IN_PROCESS),
    ),
    spec(
        group::SHARED_REGION,
        bench::BULKHEAD_OWNED_SHARED,
        "Region::owned_bulkhead(64): try_acquire() recording the owner process + release",
        BULKHEAD_IN_PROCESS,
        None,
    ),
];

/// The catalogue entry of `group/name`, if there is one.
pub fn find(group: &str, name: &str) -> Option<&'static BenchSpec> {
    CATALOGUE
        .iter()
        .find(|s| s.group == group && s.name == name)
}

/// One estimate from criterion's `estimates.json`: a point estimate and its 95% confidence
/// interval, in nanoseconds per iteration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// The point estimate.
    pub point: f64,
    /// Lower bound of the confidence interval.
    pub lower: f64,
    /// Upper bound of the confidence interval.
    pub upper: f64,
}

/// The statistic of `estimates.json` that the report uses.
pub const STATISTIC: &str = "median";

/// Reads the [`STATISTIC`] (median) estimate from the text of a criterion `estimates.json`.
pub fn parse_estimates(json: &str) -> Result<Estimate, String> {
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("not JSON: {e}"))?;
    let stat = value
        .get(STATISTIC)
        .ok_or_else(|| format!("no \"{STATISTIC}\" estimate"))?;
    let number = |v: Option<&serde_json::Value>, what: &str| {
        v.and_then(serde_json::Value::as_f64)
            .ok_or_else(|| format!("\"{STATISTIC}\" has no numeric {what}"))
    };
    let interval = stat.get("confidence_interval");
    Ok(Estimate {
        point: number(stat.get("point_estimate"), "point_estimate")?,
        lower: number(
            interval.and_then(|i| i.get("lower_bound")),
            "confidence_interval.lower_bound",
        )?,
        upper: number(
            interval.and_then(|i| i.get("upper_bound")),
            "confidence_interval.upper_bound",
        )?,
    })
}

/// The first `model name` of a `/proc/cpuinfo` text.
pub fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == "model name").then(|| value.trim().to_string())
    })
}

/// How many `processor` entries (logical CPUs) a `/proc/cpuinfo` text lists.
pub fn processor_count(cpuinfo: &str) -> usize {
    cpuinfo
        .lines()
        .filter(|line| {
            line.split_once(':')
                .is_some_and(|(key, _)| key.trim() == "processor")
        })
        .count()
}

/// `secs` since the Unix epoch as `YYYY-MM-DD HH:MM UTC` (proleptic Gregorian calendar).
pub fn format_utc(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// Year, month and day of the `days`-th day after 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

fn ns(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// `text` made safe for a markdown table cell (`|` escaped).
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

/// The report: `header` (a line naming the machine and the date), a markdown table with one
/// row per entry of `specs` (figure from `results`, keyed by [`BenchSpec::id`]; ratio to the
/// peer's figure; target and whether it is met), and notes on what the figures mean.
/// Entries without a result are shown as not measured.
pub fn render(header: &str, specs: &[BenchSpec], results: &HashMap<String, Estimate>) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{header}\n");
    out.push_str(
        "| benchmark | operation | ns/op (median) | 95% CI | compared with | ratio | target | met |\n",
    );
    out.push_str("|---|---|---:|---:|---|---:|---:|:---:|\n");
    for s in specs {
        let id = s.id();
        let own = results.get(&id);
        let (figure, ci) = match own {
            Some(e) => (ns(e.point), format!("{}–{}", ns(e.lower), ns(e.upper))),
            None => ("not measured".to_string(), "—".to_string()),
        };
        let peer_id = s.peer.map(|(g, n)| format!("{g}/{n}"));
        let ratio = match (own, peer_id.as_ref().and_then(|p| results.get(p))) {
            (Some(a), Some(b)) if b.point > 0.0 => Some(a.point / b.point),
            _ => None,
        };
        let target = s.target.map_or("—".to_string(), |t| format!("≤ {t:.2}x"));
        let met = match (ratio, s.target) {
            (Some(r), Some(t)) if r <= t => "yes",
            (Some(_), Some(_)) => "**no**",
            (None, Some(_)) => "?",
            _ => "",
        };
        let _ = writeln!(
            out,
            "| `{id}` | {} | {figure} | {ci} | {} | {} | {target} | {met} |",
            cell(s.what),
            peer_id.map_or("—".to_string(), |p| format!("`{p}`")),
            ratio.map_or("—".to_string(), |r| format!("{r:.2}x")),
        );
    }
    out.push_str(concat!(
        "\nns/op: criterion's median estimate of the time per iteration. One-thread rows: one ",
        "operation per iteration. `two_threads/*`: two threads share one object and each does ",
        "N operations; the figure is the wall time until both are done divided by N, i.e. ns ",
        "per operation per thread (perfect scaling = the one-thread figure, full serialization = ",
        "twice it; aggregate throughput = 2 operations per figure).\n",
        "Clocks: `*_now` rows pass `now` explicitly and read no clock; `*_clock` rows use ",
        "fastbreaker's `MonotonicClock` (clock_gettime(CLOCK_MONOTONIC) through rustix), which ",
        "a closed breaker on a count window never reads; `*_quanta` rows give fastbreaker a ",
        "`Clock` reading quanta exactly as governor's default clock does (the TSC, scaled), ",
        "which governor reads on every check; failsafe and recloser read `Instant::now` when ",
        "open. `clock_read/*` is the cost of one read of each clock. Targets compare ",
        "fastbreaker with a peer doing the same job on the same kind of clock.\n",
        "`shared_region/*`: each primitive in a host-shared region (feature `shm`, a file ",
        "mapped MAP_SHARED, in a temporary directory under /dev/shm when there is one) beside ",
        "the same primitive in process memory, doing the same operation; the ratio is shared / ",
        "in-process.\n",
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ESTIMATES: &str = r#"{"mean":{"confidence_interval":{"confidence_level":0.95,
        "lower_bound":10.5,"upper_bound":11.5},"point_estimate":11.0,"standard_error":0.2},
        "median":{"confidence_interval":{"confidence_level":0.95,"lower_bound":9.75,
        "upper_bound":10.25},"point_estimate":10.0,"standard_error":0.1},
        "median_abs_dev":null,"slope":null,"std_dev":{"confidence_interval":
        {"confidence_level":0.95,"lower_bound":0.1,"upper_bound":0.3},"point_estimate":0.2,
        "standard_error":0.05}}"#;

    #[test]
    fn parses_the_median() {
        assert_eq!(
            parse_estimates(ESTIMATES),
            Ok(Estimate {
                point: 10.0,
                lower: 9.75,
                upper: 10.25
            })
        );
        assert!(parse_estimates("{}").unwrap_err().contains("median"));
        assert!(parse_estimates(r#"{"median":{"point_estimate":1.0}}"#)
            .unwrap_err()
            .contains("lower_bound"));
        assert!(parse_estimates("not json").unwrap_err().contains("JSON"));
    }

    #[test]
    fn reads_cpuinfo() {
        let cpuinfo = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\n\
                       flags\t\t: fpu\n\nprocessor\t: 1\nmodel name\t: AMD EPYC 7B13\n";
        assert_eq!(cpu_model(cpuinfo).as_deref(), Some("AMD EPYC 7B13"));
        assert_eq!(processor_count(cpuinfo), 2);
        assert_eq!(cpu_model("processor : 0\n"), None);
    }

    #[test]
    fn formats_dates() {
        assert_eq!(format_utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(format_utc(951_782_400 + 3_661), "2000-02-29 01:01 UTC");
        assert_eq!(format_utc(1_767_225_599), "2025-12-31 23:59 UTC");
        assert_eq!(format_utc(1_767_225_600), "2026-01-01 00:00 UTC");
    }

    #[test]
    fn catalogue_is_consistent() {
        for (i, s) in CATALOGUE.iter().enumerate() {
            assert!(
                CATALOGUE[..i].iter().all(|o| o.id() != s.id()),
                "{} twice",
                s.id()
            );
            if let Some((g, n)) = s.peer {
                let peer = find(g, n).unwrap_or_else(|| panic!("{}: no peer {g}/{n}", s.id()));
                assert_eq!(peer.peer, None, "peers are compared with nothing");
            }
            assert!(
                s.target.is_none() || s.peer.is_some(),
                "{}: target without a peer",
                s.id()
            );
        }
    }

    #[test]
    fn renders_ratios_and_targets() {
        let mut results = HashMap::new();
        let put = |r: &mut HashMap<String, Estimate>, g: &str, n: &str, v: f64| {
            r.insert(
                format!("{g}/{n}"),
                Estimate {
                    point: v,
                    lower: v - 1.0,
                    upper: v + 1.0,
                },
            );
        };
        put(&mut results, group::BREAKER_CLOSED, bench::FAILSAFE, 40.0);
        put(
            &mut results,
            group::BREAKER_CLOSED,
            bench::FASTBREAKER_NOW,
            10.0,
        );
        put(
            &mut results,
            group::BREAKER_CLOSED,
            bench::FASTBREAKER_CLOCK,
            30.0,
        );
        let specs: Vec<BenchSpec> = CATALOGUE
            .iter()
            .filter(|s| s.group == group::BREAKER_CLOSED)
            .copied()
            .collect();
        let table = render("Machine: test", &specs, &results);
        assert!(table.starts_with("Machine: test\n\n| benchmark |"));
        let row = |name: &str| {
            table
                .lines()
                .find(|l| l.starts_with(&format!("| `breaker_closed/{name}`")))
                .unwrap_or_else(|| panic!("no row {name} in\n{table}"))
                .to_string()
        };
        let fast = row(bench::FASTBREAKER_NOW);
        assert!(fast.contains("| 10.0 | 9.00–11.0 |"), "{fast}");
        assert!(fast.contains("| 0.25x | ≤ 0.50x | yes |"), "{fast}");
        let slow = row(bench::FASTBREAKER_CLOCK);
        assert!(slow.contains("| 0.75x | ≤ 0.50x | **no** |"), "{slow}");
        let missing = row(bench::FASTBREAKER_TIME_WINDOW_CLOCK);
        assert!(missing.contains("not measured"), "{missing}");
        assert!(missing.ends_with("| — | ≤ 0.50x | ? |"), "{missing}");
        let peer = row(bench::FAILSAFE);
        assert!(peer.ends_with("| — | — | — |  |"), "{peer}");
        let recloser = row(bench::RECLOSER);
        assert!(recloser.contains("call(\\|\\| Ok(()))"), "{recloser}");
        assert_eq!(
            recloser.replace("\\|", "").matches('|').count(),
            9,
            "eight cells: {recloser}"
        );
    }
}
