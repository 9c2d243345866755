//! The Rust runner of the shared scenario files, `tests/scenarios/*.scn` (syntax in
//! `tests/scenarios/FORMAT.md`). The C and Python runners read the same files; each runner
//! must produce the expected result at every step.
//!
//! The parser is small and strict: a line it does not understand fails its scenario with
//! `file:line`. Every scenario runs; every failing step is reported with `file:line`, the
//! expected and the actual result, and the test fails at the end.
#![cfg(not(loom))]

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use fastbreaker::{
    binding, AdaptiveConfig, AdaptiveLimiter, AdaptiveMode, AdaptiveOutcome, AdaptivePermit,
    AdaptiveRejected, AdaptiveThrottle, AnyRule, BreakerConfig, BucketConfig, BucketRejected,
    Bulkhead, BulkheadPermit, CircuitBreaker, ConfigError, CountWindow1024, Outcome, Permit,
    PermitKind, ReconfigureError, Rejected, ThrottleConfig, TimeWindow64, TokenBucket, Transition,
    Window,
};

// ----- the parsed form -----

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Breaker,
    Bucket,
    Bulkhead,
    Adaptive,
    Throttle,
}

#[derive(Debug, Clone)]
enum Header {
    Breaker {
        time: bool,
        config: BreakerConfig,
    },
    Bucket(BucketConfig),
    Bulkhead(u32),
    Adaptive {
        config: AdaptiveConfig,
        rule: AnyRule,
    },
    Throttle {
        config: ThrottleConfig,
        seed: u64,
    },
}

#[derive(Debug, Clone)]
enum Action {
    Acquire,
    Record {
        id: String,
        outcome: Outcome,
        duration: Option<u64>,
    },
    Drop(String),
    /// trip, half_open, force_open, disable, metrics_only, reset (breaker).
    Manual(&'static str),
    Take(u64),
    RetryAfter(u64),
    Available,
    /// `reserve <n> [max_wait=<ns>]`.
    Reserve(u64, Option<u64>),
    Refund(u64),
    BucketReset,
    Enter,
    Release,
    /// `record success <latency_ns> | overload [<retry_after_ns>] | ignore` (adaptive).
    AdaptiveRecord(AdaptiveOutcome),
    /// `record accepted|rejected` (throttle).
    ThrottleRecord(bool),
    /// `reconfigure key=value ...`: the keys, checked against the primitive's kind.
    Reconfigure(Vec<(String, String)>),
    Expect {
        what: &'static str,
        value: String,
    },
}

#[derive(Debug, Clone)]
struct Step {
    line: usize,
    t: u64,
    action: Action,
    /// The expected result, tokens joined by one space (`None`: not checked).
    expect: Option<String>,
}

#[derive(Debug)]
struct Scenario {
    header: Header,
    header_line: usize,
    /// `=> config_error <field> <value>`: (line, field, value).
    config_error: Option<(usize, String, u64)>,
    steps: Vec<Step>,
    /// The kinds of header, action, result and check the file uses (for the coverage test).
    features: BTreeSet<String>,
}

const MANUAL: [&str; 6] = [
    "trip",
    "half_open",
    "force_open",
    "disable",
    "metrics_only",
    "reset",
];
const STATES: [&str; 6] = [
    "closed",
    "open",
    "half_open",
    "forced_open",
    "disabled",
    "metrics_only",
];
const BREAKER_CHECKS: [&str; 14] = [
    "state",
    "retry_after",
    "consecutive_failures",
    "trips",
    "rejected",
    "permitted",
    "succeeded",
    "failed",
    "ignored",
    "slow",
    "half_open_in_flight",
    "window_samples",
    "window_failures",
    "window_slow",
];

const ADAPTIVE_CHECKS: [&str; 9] = [
    "limit",
    "in_flight",
    "paused_for",
    "admitted",
    "rejected",
    "paused_rejections",
    "overloads",
    "decreases",
    "unmatched_records",
];

/// Every header, action, result and check kind of FORMAT.md: each must appear in at least
/// one scenario file.
const ALL_FEATURES: &[&str] = &[
    "header breaker",
    "header breaker window=count",
    "header breaker window=time",
    "header bucket",
    "header bulkhead",
    "config_error",
    "value none",
    "repeat",
    "relative time",
    "acquire => permit",
    "acquire => permit probe",
    "acquire => rejected open",
    "acquire => rejected half_open_full",
    "acquire => rejected forced_open",
    "record success",
    "record failure",
    "record ignored",
    "record duration=",
    "record => none",
    "record => transition",
    "record => permit_used",
    "drop",
    "reconfigure => ok",
    "reconfigure => config_error",
    "trip",
    "half_open",
    "force_open",
    "disable",
    "metrics_only",
    "reset",
    "manual => none",
    "manual => transition",
    "take => ok",
    "take => limited",
    "take => exceeds",
    "retry_after => ns",
    "retry_after => exceeds",
    "available",
    "reserve => ns",
    "reserve => limited",
    "reserve => exceeds",
    "refund",
    "bucket reset",
    "enter => ok",
    "enter => full",
    "release => ok",
    "release => not_held",
    "expect state",
    "expect retry_after",
    "expect consecutive_failures",
    "expect trips",
    "expect rejected",
    "expect permitted",
    "expect succeeded",
    "expect failed",
    "expect ignored",
    "expect slow",
    "expect half_open_in_flight",
    "expect window_samples",
    "expect window_failures",
    "expect window_slow",
    "expect available",
    "expect in_flight",
    "header adaptive",
    "header adaptive mode=concurrency",
    "header adaptive mode=rate",
    "header adaptive rule=aimd",
    "header adaptive rule=gradient",
    "header throttle",
    "adaptive acquire => admitted",
    "adaptive acquire => rejected limit",
    "adaptive acquire => rejected rate",
    "adaptive acquire => rejected paused",
    "adaptive record success",
    "adaptive record overload",
    "adaptive record overload retry_after",
    "adaptive record ignore",
    "expect limit",
    "expect paused_for",
    "expect admitted",
    "expect paused_rejections",
    "expect overloads",
    "expect decreases",
    "expect unmatched_records",
    "throttle acquire => admitted",
    "throttle acquire => rejected",
    "throttle record accepted",
    "throttle record rejected",
    "expect reject_probability_ppm",
    "state closed",
    "state open",
    "state half_open",
    "state forced_open",
    "state disabled",
    "state metrics_only",
];

// ----- parsing -----

fn number(s: &str) -> Result<u64, String> {
    if s.is_empty()
        || !s.bytes().all(|b| b.is_ascii_digit() || b == b'_')
        || !s.as_bytes()[0].is_ascii_digit()
    {
        return Err(format!("not an unsigned decimal number: {s:?}"));
    }
    s.replace('_', "")
        .parse::<u64>()
        .map_err(|e| format!("{s:?}: {e}"))
}

fn narrow<T: TryFrom<u64>>(key: &str, s: &str) -> Result<T, String> {
    T::try_from(number(s)?).map_err(|_| format!("{key}={s} does not fit the core's field type"))
}

fn is_id(s: &str) -> bool {
    s.len() > 1 && s.starts_with('p') && s[1..].bytes().all(|b| b.is_ascii_digit())
}

fn transition_ok(s: &str) -> bool {
    matches!(s.split_once("->"), Some((a, b)) if STATES.contains(&a) && STATES.contains(&b))
}

fn key_values<'a>(
    toks: &[&'a str],
    features: &mut BTreeSet<String>,
) -> Result<Vec<(&'a str, &'a str)>, String> {
    let mut pairs = Vec::new();
    for tok in toks {
        let (k, v) = tok
            .split_once('=')
            .ok_or_else(|| format!("expected key=value, found {tok:?}"))?;
        if pairs.iter().any(|(key, _)| *key == k) {
            return Err(format!("key {k} given twice"));
        }
        if v == "none" {
            features.insert("value none".into());
        }
        pairs.push((k, v));
    }
    Ok(pairs)
}

/// Sets breaker key `k` to `v` in `c` (`window=` is the header's alone).
fn set_breaker_key(c: &mut BreakerConfig, k: &str, v: &str) -> Result<(), String> {
    let o = if v == "none" {
        None
    } else {
        Some(number(v).map_err(|e| format!("{k}: {e}"))?)
    };
    fn fit<T: TryFrom<u64>>(k: &str, v: Option<u64>) -> Result<Option<T>, String> {
        v.map(|x| T::try_from(x).map_err(|_| format!("{k}={x} does not fit the core's field type")))
            .transpose()
    }
    fn req<T>(k: &str, v: Option<T>) -> Result<T, String> {
        v.ok_or_else(|| format!("{k} cannot be none"))
    }
    match k {
        "failure_threshold" => c.failure_threshold = fit(k, o)?,
        "failure_rate_threshold" => c.failure_rate_threshold = fit(k, o)?,
        "slow_call_rate_threshold" => c.slow_call_rate_threshold = fit(k, o)?,
        "slow_call_duration_ns" => c.slow_call_duration_ns = req(k, o)?,
        "minimum_calls" => c.minimum_calls = req(k, fit(k, o)?)?,
        "window_size" => c.window_size = fit(k, o)?,
        "window_buckets" => c.window_buckets = fit(k, o)?,
        "bucket_duration_ns" => c.bucket_duration_ns = req(k, o)?,
        "wait_duration_ns" => c.wait_duration_ns = req(k, o)?,
        "backoff_factor_milli" => c.backoff_factor_milli = req(k, fit(k, o)?)?,
        "max_wait_duration_ns" => c.max_wait_duration_ns = o,
        "jitter_permille" => c.jitter_permille = req(k, fit(k, o)?)?,
        "jitter_seed" => c.jitter_seed = o,
        "half_open_max_calls" => c.half_open_max_calls = req(k, fit(k, o)?)?,
        "success_threshold" => c.success_threshold = req(k, fit(k, o)?)?,
        _ => return Err(format!("unknown breaker key {k:?}")),
    }
    Ok(())
}

/// Sets bucket key `k` to `v` in `c`.
fn set_bucket_key(c: &mut BucketConfig, k: &str, v: &str) -> Result<(), String> {
    match k {
        "rate" => c.rate = number(v)?,
        "period_ns" => c.period_ns = number(v)?,
        "burst" => c.burst = number(v)?,
        _ => return Err(format!("unknown bucket key {k:?}")),
    }
    Ok(())
}

/// Sets adaptive-limiter key `k` to `v` in `c`: the keys both the header and `reconfigure`
/// take (`mode`, `rule` and `initial_limit_milli` are the header's alone).
fn set_adaptive_key(c: &mut AdaptiveConfig, k: &str, v: &str) -> Result<(), String> {
    match k {
        "min_limit_milli" => c.min_limit_milli = number(v)?,
        "max_limit_milli" => c.max_limit_milli = number(v)?,
        "increase_milli" => c.increase_milli = number(v)?,
        "decrease_permille" => c.decrease_permille = narrow(k, v)?,
        "rtt_ns" => c.rtt_ns = number(v)?,
        "latency_target_ns" => c.latency_target_ns = number(v)?,
        _ => return Err(format!("unknown adaptive key {k:?}")),
    }
    Ok(())
}

/// Sets throttle key `k` to `v` in `c` (`seed` is the header's alone).
fn set_throttle_key(c: &mut ThrottleConfig, k: &str, v: &str) -> Result<(), String> {
    match k {
        "k_milli" => c.k_milli = number(v)?,
        "window_ns" => c.window_ns = number(v)?,
        "buckets" => c.buckets = narrow(k, v)?,
        _ => return Err(format!("unknown throttle key {k:?}")),
    }
    Ok(())
}

fn parse_header(toks: &[&str], features: &mut BTreeSet<String>) -> Result<Header, String> {
    let pairs = key_values(&toks[1..], features)?;
    features.insert(format!("header {}", toks[0]));
    match toks[0] {
        "breaker" => {
            let mut c = BreakerConfig::new();
            let mut time = false;
            for (k, v) in pairs {
                match (k, v) {
                    ("window", "count") => time = false,
                    ("window", "time") => time = true,
                    ("window", _) => {
                        return Err(format!("window must be count or time, found {v:?}"))
                    }
                    _ => set_breaker_key(&mut c, k, v)?,
                }
            }
            let window = if time { "time" } else { "count" };
            features.insert(format!("header breaker window={window}"));
            Ok(Header::Breaker { time, config: c })
        }
        "bucket" => {
            let mut c = BucketConfig {
                rate: 0,
                period_ns: fastbreaker::SECOND,
                burst: 0,
            };
            let mut seen = (false, false);
            for (k, v) in pairs {
                set_bucket_key(&mut c, k, v)?;
                seen.0 |= k == "rate";
                seen.1 |= k == "burst";
            }
            if !seen.0 {
                return Err("bucket needs rate=".into());
            }
            if !seen.1 {
                return Err("bucket needs burst=".into());
            }
            Ok(Header::Bucket(c))
        }
        "bulkhead" => match pairs.as_slice() {
            [("max_concurrent", v)] => Ok(Header::Bulkhead(narrow("max_concurrent", v)?)),
            _ => Err("bulkhead takes exactly max_concurrent=N".into()),
        },
        "adaptive" => {
            let (mut mode, mut rule, mut initial) =
                (AdaptiveMode::Concurrency, AnyRule::Aimd, None);
            let mut rest = Vec::new();
            for (k, v) in pairs {
                match (k, v) {
                    ("mode", "concurrency") => mode = AdaptiveMode::Concurrency,
                    ("mode", "rate") => mode = AdaptiveMode::Rate,
                    ("rule", "aimd") => rule = AnyRule::Aimd,
                    ("rule", "gradient") => rule = AnyRule::Gradient,
                    ("mode" | "rule", _) => return Err(format!("{k}={v}: unknown {k}")),
                    ("initial_limit_milli", _) => initial = Some(number(v)?),
                    _ => rest.push((k, v)),
                }
            }
            let initial = initial.ok_or("adaptive needs initial_limit_milli=")?;
            let mut config = AdaptiveConfig::new(mode, initial);
            for (k, v) in rest {
                set_adaptive_key(&mut config, k, v)?;
            }
            let mode = match mode {
                AdaptiveMode::Concurrency => "concurrency",
                AdaptiveMode::Rate => "rate",
            };
            let rule_name = match rule {
                AnyRule::Aimd => "aimd",
                AnyRule::Gradient => "gradient",
            };
            features.insert(format!("header adaptive mode={mode}"));
            features.insert(format!("header adaptive rule={rule_name}"));
            Ok(Header::Adaptive { config, rule })
        }
        "throttle" => {
            let mut config = ThrottleConfig::new();
            let mut seed = None;
            for (k, v) in pairs {
                match k {
                    "seed" => seed = Some(number(v)?),
                    _ => set_throttle_key(&mut config, k, v)?,
                }
            }
            let seed = seed.ok_or("throttle needs seed= (the draws must be reproducible)")?;
            Ok(Header::Throttle { config, seed })
        }
        other => Err(format!(
            "the first statement must be breaker, bucket, bulkhead, adaptive or throttle, \
             found {other:?}"
        )),
    }
}

/// Parses one step's action and expected result, checking that the result is one the
/// action can have.
fn parse_action(
    kind: Kind,
    act: &[&str],
    exp: Option<&[&str]>,
    features: &mut BTreeSet<String>,
) -> Result<Action, String> {
    let mut feat = |s: &str| {
        features.insert(s.to_string());
    };
    let need = |what: &str| -> Result<&[&str], String> {
        exp.ok_or_else(|| format!("{what} needs `=> <expected>`"))
    };
    let none_allowed = |what: &str| -> Result<(), String> {
        match exp {
            None => Ok(()),
            Some(_) => Err(format!("{what} has no result: remove `=>`")),
        }
    };
    let num_only = |e: &[&str]| e.len() == 1 && number(e[0]).is_ok();
    let exceeds = |e: &[&str]| {
        e.len() == 3 && e[0] == "exceeds" && number(e[1]).is_ok() && number(e[2]).is_ok()
    };
    match (kind, act) {
        (_, ["expect", what, value]) => {
            let what: &'static str = match kind {
                Kind::Breaker => BREAKER_CHECKS.iter().find(|w| *w == what).copied(),
                Kind::Bucket => (*what == "available").then_some("available"),
                Kind::Bulkhead => (*what == "in_flight").then_some("in_flight"),
                Kind::Adaptive => ADAPTIVE_CHECKS.iter().find(|w| *w == what).copied(),
                Kind::Throttle => {
                    (*what == "reject_probability_ppm").then_some("reject_probability_ppm")
                }
            }
            .ok_or_else(|| format!("unknown check {what:?} for this primitive"))?;
            if what == "state" {
                if !STATES.contains(value) {
                    return Err(format!("unknown state {value:?}"));
                }
                feat(&format!("state {value}"));
            }
            let value = match number(value) {
                Ok(n) => n.to_string(),
                Err(e) if what != "state" => return Err(e),
                Err(_) => value.to_string(),
            };
            none_allowed("expect")?;
            feat(&format!("expect {what}"));
            Ok(Action::Expect { what, value })
        }
        (_, ["reconfigure", kvs @ ..]) => {
            let pairs = key_values(kvs, features)?;
            // Check the keys now (a bad key is an error of the file, not a config_error).
            match kind {
                Kind::Breaker => {
                    let mut c = BreakerConfig::new();
                    for (k, v) in &pairs {
                        set_breaker_key(&mut c, k, v)?;
                    }
                }
                Kind::Bucket => {
                    let mut c = BucketConfig::per_second(1, 1);
                    for (k, v) in &pairs {
                        set_bucket_key(&mut c, k, v)?;
                    }
                }
                Kind::Bulkhead => match pairs.as_slice() {
                    [("max_concurrent", v)] => {
                        narrow::<u32>("max_concurrent", v)?;
                    }
                    _ => return Err("a bulkhead reconfigures exactly max_concurrent=N".into()),
                },
                Kind::Adaptive => {
                    let mut c = AdaptiveConfig::new(AdaptiveMode::Concurrency, 1000);
                    for (k, v) in &pairs {
                        set_adaptive_key(&mut c, k, v)?;
                    }
                }
                Kind::Throttle => {
                    let mut c = ThrottleConfig::new();
                    for (k, v) in &pairs {
                        set_throttle_key(&mut c, k, v)?;
                    }
                }
            }
            match exp {
                Some(["ok"]) => {
                    features.insert("reconfigure => ok".into());
                }
                Some(["config_error", _, v]) if number(v).is_ok() => {
                    features.insert("reconfigure => config_error".into());
                }
                _ => {
                    return Err(
                        "reconfigure needs `=> ok` or `=> config_error <field> <value>`".into(),
                    )
                }
            }
            Ok(Action::Reconfigure(
                pairs
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ))
        }
        (Kind::Breaker, ["acquire"]) => {
            let e = need("acquire")?;
            match e {
                ["permit", id] if is_id(id) => feat("acquire => permit"),
                ["permit", id, "probe"] if is_id(id) => feat("acquire => permit probe"),
                ["rejected", "open", n] if number(n).is_ok() => feat("acquire => rejected open"),
                ["rejected", "half_open_full"] => feat("acquire => rejected half_open_full"),
                ["rejected", "forced_open"] => feat("acquire => rejected forced_open"),
                _ => return Err(format!("not a result of acquire: {:?}", e.join(" "))),
            }
            Ok(Action::Acquire)
        }
        (Kind::Breaker, ["record", id, outcome, rest @ ..]) if is_id(id) => {
            let outcome = match *outcome {
                "success" => Outcome::Success,
                "failure" => Outcome::Failure,
                "ignored" => Outcome::Ignored,
                _ => return Err(format!("unknown outcome {outcome:?}")),
            };
            feat(&format!("record {}", act[2]));
            let duration = match rest {
                [] => None,
                [d] if d.starts_with("duration=") => {
                    feat("record duration=");
                    Some(number(&d["duration=".len()..])?)
                }
                _ => return Err(format!("unexpected {:?} after the outcome", rest.join(" "))),
            };
            match need("record")? {
                ["none"] => feat("record => none"),
                ["permit_used"] => feat("record => permit_used"),
                [t] if transition_ok(t) => feat("record => transition"),
                e => return Err(format!("not a result of record: {:?}", e.join(" "))),
            }
            Ok(Action::Record {
                id: id.to_string(),
                outcome,
                duration,
            })
        }
        (Kind::Breaker, ["drop", id]) if is_id(id) => {
            none_allowed("drop")?;
            feat("drop");
            Ok(Action::Drop(id.to_string()))
        }
        (Kind::Breaker, [m]) if MANUAL.contains(m) => {
            let m = MANUAL.iter().find(|x| *x == m).copied().unwrap();
            feat(m);
            match exp {
                None => {}
                Some(["none"]) => feat("manual => none"),
                Some([t]) if transition_ok(t) => feat("manual => transition"),
                Some(e) => return Err(format!("not a result of {m}: {:?}", e.join(" "))),
            }
            Ok(Action::Manual(m))
        }
        (Kind::Bucket, ["take", n]) => {
            let n = number(n)?;
            match need("take")? {
                ["ok"] => feat("take => ok"),
                ["limited", x] if number(x).is_ok() => feat("take => limited"),
                e if exceeds(e) => feat("take => exceeds"),
                e => return Err(format!("not a result of take: {:?}", e.join(" "))),
            }
            Ok(Action::Take(n))
        }
        (Kind::Bucket, ["retry_after", n]) => {
            let n = number(n)?;
            match need("retry_after")? {
                e if num_only(e) => feat("retry_after => ns"),
                e if exceeds(e) => feat("retry_after => exceeds"),
                e => return Err(format!("not a result of retry_after: {:?}", e.join(" "))),
            }
            Ok(Action::RetryAfter(n))
        }
        (Kind::Bucket, ["available"]) => {
            let e = need("available")?;
            if !num_only(e) {
                return Err(format!("not a result of available: {:?}", e.join(" ")));
            }
            feat("available");
            Ok(Action::Available)
        }
        (Kind::Bucket, ["reserve", n, rest @ ..]) => {
            let n = number(n)?;
            let max_wait = match rest {
                [] => None,
                [m] if m.starts_with("max_wait=") => Some(number(&m["max_wait=".len()..])?),
                _ => return Err(format!("unexpected {:?} after reserve's n", rest.join(" "))),
            };
            match need("reserve")? {
                e if num_only(e) => feat("reserve => ns"),
                ["limited", x] if number(x).is_ok() => feat("reserve => limited"),
                e if exceeds(e) => feat("reserve => exceeds"),
                e => return Err(format!("not a result of reserve: {:?}", e.join(" "))),
            }
            Ok(Action::Reserve(n, max_wait))
        }
        (Kind::Bucket, ["refund", n]) => {
            let n = number(n)?;
            none_allowed("refund")?;
            feat("refund");
            Ok(Action::Refund(n))
        }
        (Kind::Bucket, ["reset"]) => {
            none_allowed("reset")?;
            feat("bucket reset");
            Ok(Action::BucketReset)
        }
        (Kind::Bulkhead, ["enter"]) => {
            match need("enter")? {
                ["ok"] => feat("enter => ok"),
                ["full"] => feat("enter => full"),
                e => return Err(format!("not a result of enter: {:?}", e.join(" "))),
            }
            Ok(Action::Enter)
        }
        (Kind::Bulkhead, ["release"]) => {
            match need("release")? {
                ["ok"] => feat("release => ok"),
                ["not_held"] => feat("release => not_held"),
                e => return Err(format!("not a result of release: {:?}", e.join(" "))),
            }
            Ok(Action::Release)
        }
        (Kind::Adaptive, ["acquire"]) => {
            match need("acquire")? {
                ["admitted"] => feat("adaptive acquire => admitted"),
                ["rejected", "limit"] => feat("adaptive acquire => rejected limit"),
                ["rejected", why @ ("rate" | "paused"), n] if number(n).is_ok() => {
                    feat(&format!("adaptive acquire => rejected {why}"))
                }
                e => return Err(format!("not a result of acquire: {:?}", e.join(" "))),
            }
            Ok(Action::Acquire)
        }
        (Kind::Adaptive, ["record", outcome, rest @ ..]) => {
            none_allowed("record")?;
            let outcome = match (*outcome, rest) {
                ("success", [latency]) => AdaptiveOutcome::Success {
                    latency_ns: number(latency)?,
                },
                ("overload", []) => AdaptiveOutcome::Overload {
                    retry_after_ns: None,
                },
                ("overload", [wait]) => {
                    feat("adaptive record overload retry_after");
                    AdaptiveOutcome::Overload {
                        retry_after_ns: Some(number(wait)?),
                    }
                }
                ("ignore", []) => AdaptiveOutcome::Ignore,
                _ => {
                    return Err(format!(
                        "record success <latency_ns> | overload [<retry_after_ns>] | ignore, \
                         found {:?}",
                        act.join(" ")
                    ))
                }
            };
            feat(&format!("adaptive record {}", act[1]));
            Ok(Action::AdaptiveRecord(outcome))
        }
        (Kind::Throttle, ["acquire"]) => {
            match need("acquire")? {
                ["admitted"] => feat("throttle acquire => admitted"),
                ["rejected"] => feat("throttle acquire => rejected"),
                e => return Err(format!("not a result of acquire: {:?}", e.join(" "))),
            }
            Ok(Action::Acquire)
        }
        (Kind::Throttle, ["record", answer @ ("accepted" | "rejected")]) => {
            none_allowed("record")?;
            feat(&format!("throttle record {answer}"));
            Ok(Action::ThrottleRecord(*answer == "accepted"))
        }
        _ => Err(format!(
            "unknown action for a {kind:?}: {:?}",
            act.join(" ")
        )),
    }
}

fn parse(text: &str) -> Result<Scenario, (usize, String)> {
    let lines: Vec<(usize, Vec<&str>)> = text
        .lines()
        .enumerate()
        .map(|(i, l)| {
            (
                i + 1,
                l.split('#').next().unwrap().split_whitespace().collect(),
            )
        })
        .filter(|(_, toks): &(usize, Vec<&str>)| !toks.is_empty())
        .collect();
    let mut it = lines.into_iter();
    let (header_line, htoks) = it.next().ok_or((1, "empty scenario".to_string()))?;
    let mut features = BTreeSet::new();
    let header = parse_header(&htoks, &mut features).map_err(|e| (header_line, e))?;
    let kind = match header {
        Header::Breaker { .. } => Kind::Breaker,
        Header::Bucket(_) => Kind::Bucket,
        Header::Bulkhead(_) => Kind::Bulkhead,
        Header::Adaptive { .. } => Kind::Adaptive,
        Header::Throttle { .. } => Kind::Throttle,
    };
    let rest: Vec<_> = it.collect();
    if let Some((line, toks)) = rest.first() {
        if toks.first() == Some(&"=>") {
            return match toks.as_slice() {
                ["=>", "config_error", field, value] if rest.len() == 1 => {
                    let value = number(value).map_err(|e| (*line, e))?;
                    features.insert("config_error".into());
                    Ok(Scenario {
                        header,
                        header_line,
                        config_error: Some((*line, field.to_string(), value)),
                        steps: vec![],
                        features,
                    })
                }
                ["=>", "config_error", _, _] => Err((
                    rest[1].0,
                    "a config_error scenario has exactly one step".into(),
                )),
                _ => Err((*line, "expected `=> config_error <field> <value>`".into())),
            };
        }
    }
    // Expand loops, then parse each step at its absolute time.
    let mut steps = Vec::new();
    let mut t = 0u64;
    let mut i = 0;
    while i < rest.len() {
        let (line, toks) = &rest[i];
        match toks.as_slice() {
            ["repeat", k] => {
                let k = number(k).map_err(|e| (*line, e))?;
                features.insert("repeat".into());
                let end = (i + 1..rest.len())
                    .find(|&j| rest[j].1.as_slice() == ["end"])
                    .ok_or((*line, "repeat without end".to_string()))?;
                let body = &rest[i + 1..end];
                if let Some((l, _)) = body.iter().find(|(_, b)| b[0] == "repeat") {
                    return Err((*l, "loops do not nest".into()));
                }
                if body.is_empty() {
                    return Err((*line, "empty loop".into()));
                }
                for _ in 0..k {
                    for (l, b) in body {
                        if !b[0].starts_with("@+") {
                            return Err((*l, "inside a loop, times are written @+<d>".into()));
                        }
                        steps.push(step(kind, *l, b, &mut t, &mut features).map_err(|e| (*l, e))?);
                    }
                }
                if k == 0 {
                    for (l, b) in body {
                        let mut t0 = t;
                        step(kind, *l, b, &mut t0, &mut features).map_err(|e| (*l, e))?;
                    }
                }
                i = end + 1;
            }
            ["end"] => return Err((*line, "end without repeat".into())),
            _ => {
                steps.push(step(kind, *line, toks, &mut t, &mut features).map_err(|e| (*line, e))?);
                i += 1;
            }
        }
    }
    Ok(Scenario {
        header,
        header_line,
        config_error: None,
        steps,
        features,
    })
}

fn step(
    kind: Kind,
    line: usize,
    toks: &[&str],
    t: &mut u64,
    features: &mut BTreeSet<String>,
) -> Result<Step, String> {
    let at = toks[0]
        .strip_prefix('@')
        .ok_or_else(|| format!("a step starts with @<t>, found {:?}", toks[0]))?;
    let new_t = match at.strip_prefix('+') {
        Some(d) => {
            features.insert("relative time".into());
            t.checked_add(number(d)?).ok_or("time overflows u64")?
        }
        None => number(at)?,
    };
    if new_t < *t {
        return Err(format!("time goes backwards: {new_t} < {t}"));
    }
    *t = new_t;
    let body = &toks[1..];
    let (act, exp) = match body.iter().position(|x| *x == "=>") {
        Some(p) => (&body[..p], Some(&body[p + 1..])),
        None => (body, None),
    };
    if act.is_empty() {
        return Err("a step needs an action".into());
    }
    if exp.is_some_and(|e| e.is_empty()) {
        return Err("nothing after =>".into());
    }
    let action = parse_action(kind, act, exp, features)?;
    Ok(Step {
        line,
        t: new_t,
        action,
        // Numbers compare by value: `1_000` is `1000`.
        expect: exp.map(|e| {
            e.iter()
                .map(|x| number(x).map_or_else(|_| x.to_string(), |n| n.to_string()))
                .collect::<Vec<_>>()
                .join(" ")
        }),
    })
}

// ----- running -----

/// Failures of one scenario, each `file:line: message`.
struct Report<'a> {
    file: &'a str,
    failures: Vec<String>,
}

impl Report<'_> {
    fn fail(&mut self, line: usize, msg: impl std::fmt::Display) {
        self.failures
            .push(format!("{}:{}: {}", self.file, line, msg));
    }

    fn check(&mut self, step: &Step, actual: &str) {
        if let Some(expected) = &step.expect {
            if expected != actual {
                self.fail(
                    step.line,
                    format_args!("@{}: expected `{expected}`, got `{actual}`", step.t),
                );
            }
        }
    }
}

fn transition(t: Option<Transition>) -> String {
    match t {
        None => "none".into(),
        Some(t) => format!("{}->{}", t.from.as_str(), t.to.as_str()),
    }
}

fn check_config_error(r: &mut Report, s: &Scenario, result: Result<(), ConfigError>) -> bool {
    match (&s.config_error, result) {
        (None, Ok(())) => true,
        (Some((line, field, value)), Err(e)) => {
            if e.field != field || e.value != *value {
                r.fail(
                    *line,
                    format_args!(
                        "expected `config_error {field} {value}`, got `config_error {} {}` ({e})",
                        e.field, e.value
                    ),
                );
            }
            false
        }
        (Some((line, field, value)), Ok(())) => {
            r.fail(
                *line,
                format_args!("expected `config_error {field} {value}`, but construction succeeded"),
            );
            false
        }
        (None, Err(e)) => {
            r.fail(s.header_line, format_args!("construction failed: {e}"));
            false
        }
    }
}

/// The result of a `reconfigure` step as the file writes it.
fn reconfigured(result: Result<(), ReconfigureError>) -> String {
    match result {
        Ok(()) => "ok".into(),
        Err(ReconfigureError::Invalid(ConfigError { field, value, .. })) => {
            format!("config_error {field} {value}")
        }
        Err(other) => format!("unexpected {other:?}"),
    }
}

fn run_breaker<W: Window>(
    r: &mut Report,
    b: &CircuitBreaker<W>,
    reconfigure: &dyn Fn(BreakerConfig) -> Result<(), ReconfigureError>,
    steps: &[Step],
) {
    // The permits the file names: `Some` until recorded, `None` once recorded (a second
    // record is `permit_used`); a dropped permit's id names nothing.
    let mut permits: HashMap<String, Option<Permit>> = HashMap::new();
    for step in steps {
        let t = step.t;
        match &step.action {
            Action::Acquire => {
                let exp: Vec<&str> = step.expect.as_deref().unwrap_or("").split(' ').collect();
                if exp[0] == "permit" {
                    // The id names this acquire's permit or, if it is refused, nothing.
                    permits.remove(exp[1]);
                }
                let actual = match b.acquire(t) {
                    Ok(p) => {
                        let kind = match p.kind() {
                            PermitKind::Normal => "normal",
                            PermitKind::Probe => "probe",
                            PermitKind::Observe => "observe",
                            PermitKind::Passive => "passive",
                        };
                        let id = if exp[0] == "permit" { exp[1] } else { "?" };
                        let actual = if exp.len() == 2 && exp[0] == "permit" {
                            format!("permit {id}")
                        } else {
                            format!("permit {id} {kind}")
                        };
                        if id != "?" {
                            // Reusing an id (a loop's next iteration) drops the permit it named.
                            permits.insert(id.to_string(), Some(p));
                        }
                        actual
                    }
                    Err(Rejected::Open { retry_after }) => format!("rejected open {retry_after}"),
                    Err(Rejected::HalfOpenFull) => "rejected half_open_full".into(),
                    Err(Rejected::ForcedOpen) => "rejected forced_open".into(),
                    Err(other) => format!("rejected {other:?}"),
                };
                r.check(step, &actual);
            }
            Action::Record {
                id,
                outcome,
                duration,
            } => {
                let Some(held) = permits.get_mut(id) else {
                    r.fail(
                        step.line,
                        format_args!(
                            "no permit {id} (never acquired, dropped, or its acquire failed)"
                        ),
                    );
                    continue;
                };
                let actual = match held.take() {
                    // Recording consumes the permit: Rust cannot record it twice (checked
                    // by the compile_fail doctests of `Permit`). The bindings refuse a second
                    // record and change nothing; here the step is the check that nothing
                    // changed, which holds since nothing is called.
                    None => "permit_used".to_string(),
                    Some(p) => {
                        let tr = match duration {
                            Some(d) => b.record_with_duration(p, *outcome, *d, t),
                            // `record` times the call from its acquire (`t` minus the
                            // acquire's `t`), as FORMAT.md says.
                            None => b.record(p, *outcome, t),
                        };
                        transition(tr)
                    }
                };
                r.check(step, &actual);
            }
            Action::Drop(id) => match permits.remove(id) {
                Some(Some(p)) => drop(p),
                Some(_) => r.fail(step.line, format_args!("permit {id} was already recorded")),
                None => r.fail(step.line, format_args!("no permit {id}")),
            },
            Action::Reconfigure(pairs) => {
                // Keys not given keep the value in force.
                let mut c = b.config();
                for (k, v) in pairs {
                    set_breaker_key(&mut c, k, v).expect("checked by the parser");
                }
                let before = b.config();
                let actual = reconfigured(reconfigure(c));
                if actual != "ok" && b.config() != before {
                    r.fail(
                        step.line,
                        "a refused reconfiguration changed the configuration",
                    );
                }
                r.check(step, &actual);
            }
            Action::Manual(m) => {
                let tr = match *m {
                    "trip" => b.trip(t),
                    "half_open" => b.half_open(t),
                    "force_open" => b.force_open(t),
                    "disable" => b.disable(t),
                    "metrics_only" => b.metrics_only(t),
                    "reset" => b.reset(t),
                    _ => unreachable!(),
                };
                r.check(step, &transition(tr));
            }
            Action::Expect { what, value } => {
                let m = b.metrics(t);
                let actual = match *what {
                    "state" => m.state.as_str().to_string(),
                    "retry_after" => {
                        let ra = b.retry_after(t);
                        if ra != m.retry_after {
                            r.fail(
                                step.line,
                                format_args!(
                                    "retry_after() = {ra} but metrics().retry_after = {}",
                                    m.retry_after
                                ),
                            );
                        }
                        ra.to_string()
                    }
                    "consecutive_failures" => m.consecutive_failures.to_string(),
                    "trips" => m.trips.to_string(),
                    "rejected" => m.rejected.to_string(),
                    "permitted" => m.permitted.to_string(),
                    "succeeded" => m.succeeded.to_string(),
                    "failed" => m.failed.to_string(),
                    "ignored" => m.ignored.to_string(),
                    "slow" => m.slow.to_string(),
                    "half_open_in_flight" => m.half_open_in_flight.to_string(),
                    "window_samples" => m.window.samples.to_string(),
                    "window_failures" => m.window.failures.to_string(),
                    "window_slow" => m.window.slow.to_string(),
                    _ => unreachable!(),
                };
                if actual != *value {
                    r.fail(
                        step.line,
                        format_args!("@{t}: expected {what} {value}, got {what} {actual}"),
                    );
                }
            }
            _ => unreachable!("checked by the parser"),
        }
    }
}

fn bucket_rejected(e: BucketRejected) -> String {
    match e {
        BucketRejected::RateLimited { retry_after } => format!("limited {retry_after}"),
        BucketRejected::ExceedsCapacity {
            requested,
            capacity,
        } => format!("exceeds {requested} {capacity}"),
        other => format!("{other:?}"),
    }
}

fn run_bucket(r: &mut Report, b: &TokenBucket, steps: &[Step]) {
    for step in steps {
        let t = step.t;
        let actual = match &step.action {
            Action::Take(n) => match b.try_acquire(*n, t) {
                Ok(()) => "ok".to_string(),
                Err(e) => bucket_rejected(e),
            },
            Action::RetryAfter(n) => match b.retry_after(*n, t) {
                Ok(ns) => ns.to_string(),
                Err(e) => match bucket_rejected(e) {
                    s if s.starts_with("exceeds") => s,
                    s => format!("unexpected error {s}"),
                },
            },
            Action::Available => b.available(t).to_string(),
            Action::Reserve(n, max_wait) => {
                let r = match max_wait {
                    None => b.reserve(*n, t),
                    Some(m) => b.reserve_within(*n, t, *m),
                };
                match r {
                    Ok(wait) => wait.to_string(),
                    Err(e) => bucket_rejected(e),
                }
            }
            Action::Refund(n) => {
                b.refund(*n, t);
                String::new()
            }
            Action::BucketReset => {
                b.reset();
                String::new()
            }
            Action::Reconfigure(pairs) => {
                let mut c = b.config();
                for (k, v) in pairs {
                    set_bucket_key(&mut c, k, v).expect("checked by the parser");
                }
                let before = b.config();
                let actual = reconfigured(b.reconfigure(c, t));
                if actual != "ok" && b.config() != before {
                    r.fail(
                        step.line,
                        "a refused reconfiguration changed the configuration",
                    );
                }
                actual
            }
            Action::Expect { value, .. } => {
                let a = b.available(t).to_string();
                if a != *value {
                    r.fail(
                        step.line,
                        format_args!("@{t}: expected available {value}, got available {a}"),
                    );
                }
                continue;
            }
            _ => unreachable!("checked by the parser"),
        };
        r.check(step, &actual);
    }
}

fn run_bulkhead(r: &mut Report, b: &Bulkhead, steps: &[Step]) {
    // The slots out, as the guards the public API gives; a release drops the oldest.
    let mut held: Vec<BulkheadPermit<'_>> = Vec::new();
    for step in steps {
        let actual = match &step.action {
            Action::Enter => match b.try_acquire() {
                Ok(g) => {
                    held.push(g);
                    "ok".to_string()
                }
                Err(_) => "full".to_string(),
            },
            Action::Release => {
                if held.is_empty() {
                    // What the bindings do with a release that holds nothing: the core
                    // refuses it and changes nothing.
                    let before = b.metrics();
                    let released = binding::bulkhead_release(b);
                    if released || b.metrics() != before {
                        r.fail(step.line, "an extra release changed the bulkhead");
                    }
                    "not_held".to_string()
                } else {
                    drop(held.remove(0));
                    "ok".to_string()
                }
            }
            Action::Reconfigure(pairs) => {
                let n = narrow::<u32>("max_concurrent", &pairs[0].1).expect("checked");
                let before = b.max_concurrent();
                let actual = reconfigured(b.reconfigure(n).map_err(ReconfigureError::Invalid));
                if actual != "ok" && b.max_concurrent() != before {
                    r.fail(step.line, "a refused reconfiguration changed the limit");
                }
                actual
            }
            Action::Expect { value, .. } => {
                let a = b.in_flight().to_string();
                if a != *value {
                    r.fail(
                        step.line,
                        format_args!("@{}: expected in_flight {value}, got in_flight {a}", step.t),
                    );
                }
                continue;
            }
            _ => unreachable!("checked by the parser"),
        };
        r.check(step, &actual);
    }
}

fn adaptive_rejected(e: AdaptiveRejected) -> String {
    match e {
        AdaptiveRejected::LimitReached { .. } => "rejected limit".into(),
        AdaptiveRejected::RateLimited { retry_after_ns } => {
            format!("rejected rate {retry_after_ns}")
        }
        AdaptiveRejected::Paused { retry_after_ns } => format!("rejected paused {retry_after_ns}"),
        other => format!("{other:?}"),
    }
}

fn run_adaptive(r: &mut Report, l: &AdaptiveLimiter<AnyRule>, steps: &[Step]) {
    // The permits out; a record gives back the oldest. With none out, the record is made
    // with a permit the runner builds (what the bindings do: they keep no permit), which the
    // core counts as unmatched.
    let mut held: Vec<AdaptivePermit> = Vec::new();
    for step in steps {
        let t = step.t;
        let actual = match &step.action {
            Action::Acquire => {
                let before = l.metrics(t);
                match l.try_acquire(t) {
                    Ok(p) => {
                        held.push(p);
                        "admitted".to_string()
                    }
                    Err(e) => {
                        // The rejection agrees with the readings at the same instant.
                        let m = l.metrics(t);
                        let consistent = match e {
                            AdaptiveRejected::LimitReached {
                                limit_milli,
                                in_flight,
                            } => {
                                limit_milli == m.limit_milli
                                    && in_flight == m.in_flight
                                    && l.retry_after(t) == 0
                            }
                            AdaptiveRejected::RateLimited { retry_after_ns } => {
                                l.retry_after(t) == retry_after_ns && m.paused_for_ns == 0
                            }
                            AdaptiveRejected::Paused { retry_after_ns } => {
                                m.paused_for_ns == retry_after_ns
                                    && m.paused_rejections == before.paused_rejections + 1
                            }
                            _ => false,
                        };
                        if !consistent {
                            r.fail(
                                step.line,
                                format_args!("@{t}: {e:?} disagrees with the metrics {m:?}"),
                            );
                        }
                        adaptive_rejected(e)
                    }
                }
            }
            Action::AdaptiveRecord(outcome) => {
                let p = if held.is_empty() {
                    binding::adaptive_permit(t)
                } else {
                    held.remove(0)
                };
                l.record(p, *outcome, t);
                continue;
            }
            Action::Reconfigure(pairs) => {
                let mut c = l.config();
                for (k, v) in pairs {
                    set_adaptive_key(&mut c, k, v).expect("checked by the parser");
                }
                let before = l.config();
                let actual = reconfigured(l.reconfigure(c));
                if actual != "ok" && l.config() != before {
                    r.fail(
                        step.line,
                        "a refused reconfiguration changed the configuration",
                    );
                }
                actual
            }
            Action::Expect { what, value } => {
                let m = l.metrics(t);
                let a = match *what {
                    "limit" => {
                        if m.limit_milli != l.limit_milli() {
                            r.fail(step.line, "metrics().limit_milli != limit_milli()");
                        }
                        m.limit_milli.to_string()
                    }
                    "in_flight" => m.in_flight.to_string(),
                    "paused_for" => m.paused_for_ns.to_string(),
                    "admitted" => m.admitted.to_string(),
                    "rejected" => m.rejected.to_string(),
                    "paused_rejections" => m.paused_rejections.to_string(),
                    "overloads" => m.overloads.to_string(),
                    "decreases" => m.decreases.to_string(),
                    "unmatched_records" => m.unmatched_records.to_string(),
                    _ => unreachable!(),
                };
                if a != *value {
                    r.fail(
                        step.line,
                        format_args!("@{t}: expected {what} {value}, got {what} {a}"),
                    );
                }
                continue;
            }
            _ => unreachable!("checked by the parser"),
        };
        r.check(step, &actual);
    }
}

fn run_throttle(r: &mut Report, th: &AdaptiveThrottle, config: ThrottleConfig, steps: &[Step]) {
    // The configuration in force, kept here: `config()` reads the window back as whole
    // buckets (10 ns in 3 buckets reads 9 ns), and a key not given keeps its value as given.
    let mut in_force = config;
    for step in steps {
        let t = step.t;
        let actual = match &step.action {
            Action::Acquire => {
                let p = th.reject_probability_ppm(t);
                match th.try_acquire(t) {
                    Ok(()) => "admitted".to_string(),
                    Err(fastbreaker::ThrottleRejected::Throttled { probability_ppm }) => {
                        if probability_ppm != p {
                            r.fail(
                                step.line,
                                format_args!(
                                    "@{t}: refused at {probability_ppm} ppm, but the \
                                     probability read {p} ppm just before"
                                ),
                            );
                        }
                        "rejected".to_string()
                    }
                    Err(other) => format!("{other:?}"),
                }
            }
            Action::ThrottleRecord(accepted) => {
                th.record(*accepted, t);
                continue;
            }
            Action::Reconfigure(pairs) => {
                let mut c = in_force;
                for (k, v) in pairs {
                    set_throttle_key(&mut c, k, v).expect("checked by the parser");
                }
                let before = th.config();
                let actual = reconfigured(th.reconfigure(c, t));
                if actual == "ok" {
                    in_force = c;
                } else if th.config() != before {
                    r.fail(
                        step.line,
                        "a refused reconfiguration changed the configuration",
                    );
                }
                actual
            }
            Action::Expect { what, value } => {
                let p = th.reject_probability_ppm(t);
                let m = th.metrics(t);
                if m.reject_probability_ppm != p {
                    r.fail(step.line, "metrics() and reject_probability_ppm() disagree");
                }
                if p.to_string() != *value {
                    r.fail(
                        step.line,
                        format_args!("@{t}: expected {what} {value}, got {what} {p}"),
                    );
                }
                continue;
            }
            _ => unreachable!("checked by the parser"),
        };
        r.check(step, &actual);
    }
}

fn run(file: &str, s: &Scenario) -> Vec<String> {
    let mut r = Report {
        file,
        failures: Vec::new(),
    };
    match &s.header {
        Header::Breaker {
            time: false,
            config,
        } => {
            let b = CircuitBreaker::<CountWindow1024>::new(*config);
            if check_config_error(&mut r, s, b.as_ref().map(|_| ()).map_err(|e| *e)) {
                let b = b.unwrap();
                run_breaker(&mut r, &b, &|c| b.reconfigure(c), &s.steps);
            }
        }
        Header::Breaker { time: true, config } => {
            let b = CircuitBreaker::<TimeWindow64>::new(*config);
            if check_config_error(&mut r, s, b.as_ref().map(|_| ()).map_err(|e| *e)) {
                let b = b.unwrap();
                run_breaker(&mut r, &b, &|c| b.reconfigure(c), &s.steps);
            }
        }
        Header::Bucket(config) => {
            let b = TokenBucket::new(*config);
            if check_config_error(&mut r, s, b.as_ref().map(|_| ()).map_err(|e| *e)) {
                run_bucket(&mut r, &b.unwrap(), &s.steps);
            }
        }
        Header::Bulkhead(n) => {
            let b = Bulkhead::new(*n);
            if check_config_error(&mut r, s, b.as_ref().map(|_| ()).map_err(|e| *e)) {
                run_bulkhead(&mut r, &b.unwrap(), &s.steps);
            }
        }
        Header::Adaptive { config, rule } => {
            let l = AdaptiveLimiter::with_rule(*config, *rule);
            if check_config_error(&mut r, s, l.as_ref().map(|_| ()).map_err(|e| *e)) {
                run_adaptive(&mut r, &l.unwrap(), &s.steps);
            }
        }
        Header::Throttle { config, seed } => {
            let th = AdaptiveThrottle::with_seed(*config, *seed);
            if check_config_error(&mut r, s, th.as_ref().map(|_| ()).map_err(|e| *e)) {
                run_throttle(&mut r, &th.unwrap(), *config, &s.steps);
            }
        }
    }
    r.failures
}

// ----- the tests -----

fn scenario_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "scn"))
        .collect();
    files.sort();
    files
}

fn load(path: &Path) -> (String, Result<Scenario, (usize, String)>) {
    let name = format!(
        "tests/scenarios/{}",
        path.file_name().unwrap().to_string_lossy()
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{name}: {e}"));
    let first = text.lines().next().unwrap_or("");
    let parsed = if first.trim_start().starts_with('#') {
        parse(&text)
    } else {
        Err((
            1,
            "the first line must be a comment saying what the scenario checks".into(),
        ))
    };
    (name, parsed)
}

/// Runs every scenario file; reports every failing step of every file, then fails.
#[test]
fn every_scenario_file_passes() {
    let mut failures = Vec::new();
    let mut summary = String::new();
    let files = scenario_files();
    for path in &files {
        let (name, parsed) = load(path);
        let f = match parsed {
            Ok(s) => run(&name, &s),
            Err((line, e)) => vec![format!("{name}:{line}: {e}")],
        };
        let _ = writeln!(
            summary,
            "{} {name}",
            if f.is_empty() { "ok  " } else { "FAIL" }
        );
        failures.extend(f);
    }
    println!("{summary}");
    assert!(
        failures.is_empty(),
        "{} failing step(s) in {} scenario file(s):\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}

/// At least 40 scenarios, and every header, action, result and check kind of FORMAT.md
/// appears in at least one of them.
#[test]
fn scenarios_cover_every_kind_of_step() {
    let files = scenario_files();
    assert!(files.len() >= 40, "only {} scenario files", files.len());
    let mut seen = BTreeSet::new();
    for path in &files {
        if let (_, Ok(s)) = load(path) {
            seen.extend(s.features);
        }
    }
    let missing: Vec<_> = ALL_FEATURES
        .iter()
        .filter(|f| !seen.contains(**f))
        .collect();
    assert!(missing.is_empty(), "no scenario uses: {missing:?}");
}

/// The parser refuses what FORMAT.md does not define, with the line.
#[test]
fn the_parser_is_strict() {
    let bad = [
        ("breaker\n@0 frobnicate => ok\n", 2),
        ("breaker\n@0 acquire\n", 2),
        ("breaker\n@0 acquire => permit\n", 2),
        ("breaker colour=red\n", 1),
        ("breaker\n@5 reset\n@4 reset\n", 3),
        ("breaker\nrepeat 2\n@1 reset\nend\n", 3),
        ("breaker\nrepeat 2\n@+1 reset\n", 2),
        ("breaker\n@0 take 1 => ok\n", 2),
        ("bucket rate=1 burst=1\n@0 take x => ok\n", 2),
        ("bulkhead max_concurrent=1\n@0 enter => maybe\n", 2),
        (
            "breaker failure_threshold=0\n=> config_error failure_threshold 0\n@0 reset\n",
            3,
        ),
        ("breaker\n@0 expect colour 1\n", 2),
        (
            "breaker\n@0 record p1 success duration=5 extra => none\n",
            2,
        ),
        ("adaptive mode=rate\n", 1),
        ("adaptive initial_limit_milli=1000 queue_milli=4\n", 1),
        ("adaptive initial_limit_milli=1000 mode=fast\n", 1),
        (
            "adaptive initial_limit_milli=1000\n@0 acquire => permit p1\n",
            2,
        ),
        (
            "adaptive initial_limit_milli=1000\n@0 acquire => rejected rate\n",
            2,
        ),
        ("adaptive initial_limit_milli=1000\n@0 record success\n", 2),
        (
            "adaptive initial_limit_milli=1000\n@0 record ignore => none\n",
            2,
        ),
        (
            "adaptive initial_limit_milli=1000\n@0 reconfigure initial_limit_milli=5 => ok\n",
            2,
        ),
        ("throttle k_milli=2000\n", 1),
        ("throttle seed=1\n@0 record maybe\n", 2),
        ("throttle seed=1\n@0 expect limit 1\n", 2),
        ("throttle seed=1\n@0 reconfigure seed=2 => ok\n", 2),
    ];
    for (text, line) in bad {
        match parse(text) {
            Ok(_) => panic!("accepted:\n{text}"),
            Err((l, e)) => assert_eq!(l, line, "{text}: {e}"),
        }
    }
    let good = parse("breaker window=time failure_threshold=none # c\n\nrepeat 3\n@+1 trip\nend\n@+2 expect trips 3\n").unwrap();
    assert_eq!(good.steps.len(), 4);
    assert_eq!(good.steps[3].t, 5);
}

/// Every number of a file (and every step's time) survives the Python runner's conversion,
/// ns -> float seconds -> ns, unless the file is marked `# exact-ns`; FORMAT.md lists the
/// marked files.
#[test]
fn nanoseconds_survive_float_seconds_unless_marked() {
    let survives = |x: u64| ((x as f64 / 1e9) * 1e9).round() as u64 == x;
    let format =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/FORMAT.md"))
            .unwrap();
    let mut bad = Vec::new();
    for path in scenario_files() {
        let (name, parsed) = load(&path);
        let text = std::fs::read_to_string(&path).unwrap();
        let short = path.file_name().unwrap().to_string_lossy().into_owned();
        let marked = text.starts_with("# exact-ns");
        if marked != format.contains(&format!("- `{short}`")) {
            bad.push(format!(
                "{name}: marked exact-ns {marked}, but FORMAT.md's list says otherwise"
            ));
        }
        if marked {
            continue;
        }
        let mut values: Vec<u64> = text
            .lines()
            .flat_map(|l| l.split('#').next().unwrap().split_whitespace())
            .flat_map(|tok| tok.rsplit(['=', '@', '+']).next())
            .filter_map(|tok| number(tok).ok())
            .collect();
        if let Ok(s) = parsed {
            values.extend(s.steps.iter().map(|s| s.t));
        }
        if let Some(x) = values.into_iter().find(|&x| !survives(x)) {
            bad.push(format!(
                "{name}: {x} does not survive float seconds: mark the file exact-ns"
            ));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}
