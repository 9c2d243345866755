//! Shared parts of the fuzz targets: the breaker's reference model (the same file the
//! property tests use), numbers biased toward the edges of each range, and a lockstep
//! driver that runs a breaker and its model on the same steps and panics on the first
//! disagreement.

#[path = "../../tests/model/breaker.rs"]
pub mod breaker_model;

use arbitrary::Arbitrary;
use breaker_model::{observed_since, plain_delay, Model, ModelPermit, WindowSpec};
use fastbreaker::binding;
use fastbreaker::limits::MAX_WAIT_DURATION_NS;
use fastbreaker::{BreakerConfig, CircuitBreaker, ManualClock, Outcome, Permit, State, Window};

/// A number that is small, at an edge of its field, or anything: `Small` takes the raw
/// value modulo `small`, `Edge` picks one of the field's edge values.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Num {
    Small(u64),
    Edge(u8),
    Any(u64),
}

impl Num {
    pub fn get(self, small: u64, edges: &[u64]) -> u64 {
        match self {
            Num::Small(x) => x % small.max(1),
            Num::Edge(i) if !edges.is_empty() => edges[usize::from(i) % edges.len()],
            Num::Edge(i) => u64::from(i),
            Num::Any(x) => x,
        }
    }
}

/// Edges shared by the time fields.
pub const TIME_EDGES: &[u64] = &[
    0,
    1,
    2,
    1_000,
    1_000_000_000,
    60_000_000_000,
    MAX_WAIT_DURATION_NS - 1,
    MAX_WAIT_DURATION_NS,
    MAX_WAIT_DURATION_NS + 1,
    1 << 56,
    u64::MAX,
];

/// Every field of a breaker configuration, raw.
#[derive(Arbitrary, Debug, Clone)]
pub struct RawBreakerConfig {
    pub failure_threshold: Option<Num>,
    pub failure_rate_threshold: Option<u8>,
    pub slow_call_rate_threshold: Option<u8>,
    pub slow_call_duration_ns: Num,
    pub minimum_calls: Num,
    pub window_size: Option<Num>,
    pub window_buckets: Option<Num>,
    pub bucket_duration_ns: Num,
    pub wait_duration_ns: Num,
    pub backoff_factor_milli: Num,
    pub max_wait_duration_ns: Option<Num>,
    pub jitter_permille: Num,
    pub jitter_seed: Option<u64>,
    pub half_open_max_calls: Num,
    pub success_threshold: Num,
}

fn to_u32(x: u64) -> u32 {
    u32::try_from(x).unwrap_or(x as u32)
}

fn to_u16(x: u64) -> u16 {
    u16::try_from(x).unwrap_or(x as u16)
}

impl RawBreakerConfig {
    /// The configuration, every field near its legal range (or anything, now and then).
    pub fn build(&self) -> BreakerConfig {
        let small_times = |n: Num| n.get(2_000, TIME_EDGES);
        BreakerConfig {
            failure_threshold: self
                .failure_threshold
                .map(|n| to_u32(n.get(8, &[0, 1, (1 << 24) - 1, 1 << 24, u32::MAX.into()]))),
            failure_rate_threshold: self.failure_rate_threshold,
            slow_call_rate_threshold: self.slow_call_rate_threshold,
            slow_call_duration_ns: small_times(self.slow_call_duration_ns),
            minimum_calls: to_u32(self.minimum_calls.get(12, &[0, 1, 64, 65, 1024, 1025])),
            window_size: self
                .window_size
                .map(|n| to_u16(n.get(70, &[0, 1, 63, 64, 65, 100, 1024, 1025]))),
            window_buckets: self
                .window_buckets
                .map(|n| to_u16(n.get(70, &[0, 1, 4, 5, 10, 64, 65]))),
            bucket_duration_ns: self.bucket_duration_ns.get(100, TIME_EDGES),
            wait_duration_ns: small_times(self.wait_duration_ns),
            backoff_factor_milli: to_u32(self.backoff_factor_milli.get(
                4_000,
                &[
                    0,
                    999,
                    1000,
                    1001,
                    1100,
                    1500,
                    2000,
                    10_000,
                    u32::MAX.into(),
                ],
            )),
            max_wait_duration_ns: self.max_wait_duration_ns.map(small_times),
            jitter_permille: to_u16(self.jitter_permille.get(1002, &[0, 1, 999, 1000, 1001])),
            jitter_seed: self.jitter_seed,
            half_open_max_calls: to_u16(self.half_open_max_calls.get(4, &[0, 1, 1023, 1024])),
            success_threshold: to_u16(self.success_threshold.get(4, &[0, 1, 1023, 1024])),
        }
    }
}

/// One step of a breaker run.
#[derive(Arbitrary, Debug, Clone)]
pub enum Step {
    Acquire {
        clock: bool,
    },
    Record {
        which: u8,
        outcome: u8,
        duration: Option<u8>,
        clock: bool,
    },
    RecordNewest(u8),
    Drop(u8),
    Advance(Num),
    ToDeadline(i8),
    Manual(u8),
}

fn outcome(x: u8) -> Outcome {
    match x % 5 {
        0 | 1 => Outcome::Failure,
        2 | 3 => Outcome::Success,
        _ => Outcome::Ignored,
    }
}

/// A breaker and its model in lockstep; every breaker call comes before the model's (the
/// model adopts a random jitter seed once the breaker has drawn one).
pub struct Lockstep<W> {
    pub breaker: CircuitBreaker<W>,
    pub model: Model,
    pub clock: ManualClock,
    pub now: u64,
    pub end: u64,
    pub permits: Vec<(Permit, ModelPermit)>,
}

impl<W: Window> Lockstep<W> {
    pub fn new(
        breaker: CircuitBreaker<W>,
        config: BreakerConfig,
        spec: WindowSpec,
        origin: u64,
        span: u64,
    ) -> Self {
        let run = Lockstep {
            breaker,
            model: Model::new(config, spec, origin),
            clock: ManualClock::new(origin),
            now: origin,
            end: origin.saturating_add(span),
            permits: Vec::new(),
        };
        run.compare("start");
        run
    }

    fn sync_seed(&mut self) {
        self.model.adopt_seed(self.breaker.config().jitter_seed);
    }

    /// Everything observable, breaker first.
    pub fn compare(&self, what: &str) {
        let (b, now) = (&self.breaker, self.now);
        let (state, generation) = (b.state(), b.generation());
        let retry_after = b.retry_after(now);
        let metrics = b.metrics(now);
        let window = binding::window(b).stats(now);
        let config = b.config();
        let backoff = b.backoff();
        let mut model = self.model.clone();
        model.adopt_seed(config.jitter_seed);
        assert_eq!(state, model.state, "state after {what}");
        assert_eq!(generation, model.generation, "generation after {what}");
        assert_eq!(
            retry_after,
            model.retry_after(now),
            "retry_after after {what} at {now}"
        );
        assert_eq!(metrics, model.metrics(now), "metrics after {what} at {now}");
        assert_eq!(window, model.window.stats(now), "window after {what}");
        assert_eq!(config, model.read_back(), "config after {what}");
        assert_eq!(backoff, model.backoff(), "backoff after {what}");
    }

    pub fn step(&mut self, step: &Step) {
        let now = self.now;
        self.clock.set(now);
        match *step {
            Step::Acquire { clock } => {
                let got = if clock {
                    self.breaker.acquire_with(&self.clock)
                } else {
                    self.breaker.acquire(now)
                };
                self.sync_seed();
                let want = self.model.acquire(now);
                let view = |p: &Permit| (p.kind(), p.generation(), p.started_at(), p.transition());
                assert_eq!(
                    got.as_ref().map(view).map_err(|r| *r),
                    want.map(|(m, t)| (m.kind, m.generation, m.started_at, t)),
                    "acquire at {now}"
                );
                if let (Ok(p), Ok((m, _))) = (got, want) {
                    self.permits.push((p, m));
                }
            }
            Step::Record {
                which,
                outcome: o,
                duration,
                clock,
            } => {
                if self.permits.is_empty() {
                    return;
                }
                let i = usize::from(which) % self.permits.len();
                let (p, m) = self.permits.swap_remove(i);
                let o = outcome(o);
                let duration = duration.map(u64::from);
                let got = match duration {
                    Some(d) => self.breaker.record_with_duration(p, o, d, now),
                    None if clock => self.breaker.record_with(&self.clock, p, o),
                    None => self.breaker.record(p, o, now),
                };
                self.sync_seed();
                let want = self
                    .model
                    .record(m, o, duration.unwrap_or(now - m.started_at), now);
                assert_eq!(got, want, "record {o:?} at {now}");
            }
            Step::RecordNewest(o) => {
                let Some((p, m)) = self.permits.pop() else {
                    return;
                };
                let o = outcome(o);
                let got = self.breaker.record(p, o, now);
                self.sync_seed();
                let want = self.model.record(m, o, now - m.started_at, now);
                assert_eq!(got, want, "record {o:?} at {now}");
            }
            Step::Drop(which) => {
                if self.permits.is_empty() {
                    return;
                }
                let i = usize::from(which) % self.permits.len();
                let (p, m) = self.permits.swap_remove(i);
                drop(p);
                self.model.drop_permit(m);
            }
            Step::Advance(d) => {
                let d = d.get(1_000, TIME_EDGES);
                self.now = now.saturating_add(d).min(self.end);
            }
            Step::ToDeadline(offset) => {
                let _ = self.breaker.retry_after(now);
                self.sync_seed();
                let m = &self.model;
                if m.needs_wait() {
                    let left = if m.config.jitter_permille > 0 && m.seed.is_none() {
                        plain_delay(&m.config, m.step)
                            .saturating_sub(now - observed_since(m.since, now))
                    } else {
                        m.remaining(now)
                    };
                    let target = left.saturating_add_signed(i64::from(offset));
                    self.now = now.saturating_add(target).min(self.end);
                }
            }
            Step::Manual(x) => {
                let to = State::ALL[usize::from(x) % State::ALL.len()];
                let b = &self.breaker;
                let got = match to {
                    State::Closed => b.reset(now),
                    State::Open => b.trip(now),
                    State::HalfOpen => b.half_open(now),
                    State::ForcedOpen => b.force_open(now),
                    State::Disabled => b.disable(now),
                    State::MetricsOnly => b.metrics_only(now),
                };
                let want = self.model.manual(to, now);
                assert_eq!(got, want, "manual {to:?} at {now}");
            }
        }
        self.compare(&format!("{step:?}"));
    }

    /// Records every outstanding permit (a success each).
    pub fn drain(&mut self) {
        while let Some((p, m)) = self.permits.pop() {
            let now = self.now;
            let got = self.breaker.record(p, Outcome::Success, now);
            self.sync_seed();
            let want = self
                .model
                .record(m, Outcome::Success, now - m.started_at, now);
            assert_eq!(got, want, "final record at {now}");
            self.compare("final record");
        }
    }
}
