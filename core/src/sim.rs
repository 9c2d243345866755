//! Replays a trace of calls through the real primitives, with explicit time (feature `sim`).
//!
//! The core takes `now` on every call, so hours of recorded (or generated) traffic replay in
//! milliseconds through the same code that runs in production. A trace is a list of
//! [`Event`]s: calls starting at `t_ns`, taking `duration_ns`, failing or not. [`replay`]
//! runs them through one [`Subject`] (a breaker, a rate limiter, a keyed limiter or a
//! bulkhead), and reports what the configuration would have done: calls refused while the
//! service was healthy, failed calls let through during an outage, how long each outage took
//! to detect and to recover from, time spent open, tokens granted and refused.
//!
//! Calls overlap as in production: a call admitted at `t` finishes at `t + duration_ns`, and
//! its outcome is recorded then; completions are processed in time order, each before any
//! later start. A refused call is never made (it neither fails nor takes time).
//!
//! Outages are read from the trace alone ([`outages`]): runs of time buckets whose failure
//! ratio reaches a threshold, so that "healthy" and "outage" do not depend on the
//! configuration under test.
//!
//! ```
//! use fastbreaker::sim::{outages, replay, Event, OutageRule, Subject};
//! use fastbreaker::{BreakerConfig, SECOND};
//! // 10 calls a second for 60 s; every call from 20 s to 30 s fails.
//! let events: Vec<Event> = (0..600u64)
//!     .map(|i| Event { t_ns: i * SECOND / 10, duration_ns: 1_000_000, failed: (200..300).contains(&i), key: 0 })
//!     .collect();
//! let spans = outages(&events, &OutageRule::default());
//! assert_eq!((spans[0].start_ns, spans[0].end_ns), (20 * SECOND, 30 * SECOND));
//! let config = BreakerConfig { failure_threshold: Some(5), wait_duration_ns: 2 * SECOND, ..BreakerConfig::new() };
//! let report = replay(&Subject::Breaker(config), &events, &spans).unwrap();
//! // Open at 20.401 s (5th failure, recorded 1 ms after its start); a failed probe every
//! // 2.1 s (22.5, 24.6, 26.7, 28.8) reopens it; the probe at 30.9 s closes it.
//! assert_eq!(report.trips, 5);
//! assert_eq!(report.missed_protection, 5 + 4);
//! assert_eq!(report.false_rejections, 9);          // 30.0 s to 30.8 s: healthy, still open
//! assert_eq!(report.outages[0].detected_after_ns, Some(401_000_000));
//! assert_eq!(report.outages[0].recovered_after_ns, Some(901_000_000));
//! ```

use crate::binding::{bulkhead_release, bulkhead_try_acquire};
use crate::keyed::{KeySlot, KeyedBuckets, WhenFull};
use crate::{
    BreakerConfig, BucketConfig, Bulkhead, CircuitBreaker, ConfigError, CountWindow1024, Outcome,
    Permit, State, TimeWindow64, TokenBucket, Transition, Window,
};
use std::boxed::Box;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::vec::Vec;

/// One call of a trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    /// When the call starts (ns; events are in non-decreasing order of it).
    pub t_ns: u64,
    /// How long the call takes (ns).
    pub duration_ns: u64,
    /// Whether it fails (an error, a timeout, a 5xx: the trace's reader decides).
    pub failed: bool,
    /// The caller's key (a client), for keyed limiters; 0 if none.
    pub key: u32,
}

/// How [`outages`] reads outages from a trace.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OutageRule {
    /// The width of a time bucket (default 1 s).
    pub bucket_ns: u64,
    /// Calls a bucket needs before its failure ratio counts (default 5).
    pub min_calls: u32,
    /// The failure ratio at which a bucket is part of an outage (default 0.5).
    pub failure_ratio: f64,
}

impl Default for OutageRule {
    fn default() -> Self {
        OutageRule {
            bucket_ns: crate::SECOND,
            min_calls: 5,
            failure_ratio: 0.5,
        }
    }
}

/// A span of time, `[start_ns, end_ns)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// Its start.
    pub start_ns: u64,
    /// Its end (excluded).
    pub end_ns: u64,
}

impl Span {
    fn contains(&self, t: u64) -> bool {
        (self.start_ns..self.end_ns).contains(&t)
    }
}

/// The outages of a trace: maximal runs of consecutive buckets of `rule.bucket_ns` (from the
/// first event's bucket) each holding at least `rule.min_calls` calls, of which at least
/// `rule.failure_ratio` failed. A bucket of too few calls ends a run.
pub fn outages(events: &[Event], rule: &OutageRule) -> Vec<Span> {
    let width = rule.bucket_ns.max(1);
    let mut spans: Vec<Span> = Vec::new();
    let mut i = 0;
    while i < events.len() {
        let bucket = events[i].t_ns / width;
        let (mut calls, mut failed) = (0u64, 0u64);
        while i < events.len() && events[i].t_ns / width == bucket {
            calls += 1;
            failed += events[i].failed as u64;
            i += 1;
        }
        let down = calls >= rule.min_calls.max(1) as u64
            && failed as f64 >= rule.failure_ratio * calls as f64;
        if !down {
            continue;
        }
        let start = bucket * width;
        match spans.last_mut() {
            Some(last) if last.end_ns == start => last.end_ns = start + width,
            _ => spans.push(Span {
                start_ns: start,
                end_ns: start + width,
            }),
        }
    }
    spans
}

/// What a trace is replayed through.
#[derive(Debug, Clone, PartialEq)]
pub enum Subject {
    /// A breaker on a count window ([`CountWindow1024`], as in the bindings).
    Breaker(BreakerConfig),
    /// A breaker on a time window ([`TimeWindow64`]).
    BreakerTime(BreakerConfig),
    /// A token bucket: each call takes one token.
    Limiter(BucketConfig),
    /// A keyed table: each call takes one token of its key's bucket.
    KeyedLimiter {
        /// Each key's bucket.
        config: BucketConfig,
        /// Slots of the table.
        capacity: usize,
    },
    /// A bulkhead: each call holds a permit for its duration.
    Bulkhead(u32),
}

/// How one outage went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutageOutcome {
    /// The outage.
    pub span: Span,
    /// From its start to the first transition to Open within it (`None`: not detected).
    pub detected_after_ns: Option<u64>,
    /// From its end to the next transition to Closed, if the breaker was not closed when it
    /// ended (0 if it was; `None` if it never closed again).
    pub recovered_after_ns: Option<u64>,
}

/// What a configuration did with a trace.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Report {
    /// Calls in the trace.
    pub calls: u64,
    /// Calls let through.
    pub admitted: u64,
    /// Calls refused.
    pub rejected: u64,
    /// Calls refused outside every outage.
    pub false_rejections: u64,
    /// Failed calls let through during an outage.
    pub missed_protection: u64,
    /// Transitions to Open.
    pub trips: u64,
    /// Time spent open (Open or ForcedOpen), up to the end of the replay.
    pub time_open_ns: u64,
    /// Each outage, in order.
    pub outages: Vec<OutageOutcome>,
    /// Every state change of a breaker: time, from, to.
    pub transitions: Vec<(u64, State, State)>,
    /// Tokens granted (limiters; 0 otherwise).
    pub tokens_granted: u64,
    /// Tokens refused (limiters; 0 otherwise).
    pub tokens_rejected: u64,
    /// When the replay ended: the last start or completion.
    pub end_ns: u64,
}

/// One primitive under replay: admits a call or not, and is told when it finishes.
trait Guard {
    type Ticket;
    fn admit(&mut self, e: &Event, report: &mut Report) -> Option<Self::Ticket>;
    fn finish(&mut self, ticket: Self::Ticket, e: &Event, end: u64, report: &mut Report);
    fn tokens(&self) -> bool {
        false
    }
}

struct BreakerGuard<W> {
    breaker: CircuitBreaker<W>,
}

fn note(report: &mut Report, t: Option<Transition>) {
    if let Some(t) = t {
        report.transitions.push((t.at, t.from, t.to));
    }
}

impl<W: Window> Guard for BreakerGuard<W> {
    type Ticket = Permit;
    fn admit(&mut self, e: &Event, report: &mut Report) -> Option<Permit> {
        let permit = self.breaker.acquire(e.t_ns).ok()?;
        note(report, permit.transition()); // Open -> HalfOpen, when the wait is over
        Some(permit)
    }
    fn finish(&mut self, permit: Permit, e: &Event, end: u64, report: &mut Report) {
        let outcome = if e.failed {
            Outcome::Failure
        } else {
            Outcome::Success
        };
        let t = self
            .breaker
            .record_with_duration(permit, outcome, e.duration_ns, end);
        note(report, t);
    }
}

struct LimiterGuard(TokenBucket);

impl Guard for LimiterGuard {
    type Ticket = ();
    fn admit(&mut self, e: &Event, _: &mut Report) -> Option<()> {
        self.0.try_acquire(1, e.t_ns).ok()
    }
    fn finish(&mut self, _: (), _: &Event, _: u64, _: &mut Report) {}
    fn tokens(&self) -> bool {
        true
    }
}

struct KeyedGuard(KeyedBuckets<Box<[KeySlot]>>);

impl Guard for KeyedGuard {
    type Ticket = ();
    fn admit(&mut self, e: &Event, _: &mut Report) -> Option<()> {
        self.0.try_acquire(&e.key.to_le_bytes(), 1, e.t_ns).ok()
    }
    fn finish(&mut self, _: (), _: &Event, _: u64, _: &mut Report) {}
    fn tokens(&self) -> bool {
        true
    }
}

struct BulkheadGuard(Bulkhead);

impl Guard for BulkheadGuard {
    type Ticket = ();
    fn admit(&mut self, _: &Event, _: &mut Report) -> Option<()> {
        bulkhead_try_acquire(&self.0).then_some(())
    }
    fn finish(&mut self, _: (), _: &Event, _: u64, _: &mut Report) {
        bulkhead_release(&self.0);
    }
}

/// Replays `events` through `subject`, judging them against `outages` (from [`outages`]).
/// Events must be in non-decreasing order of `t_ns` (a [`ConfigError`] naming `events`
/// otherwise); the configuration's errors are the usual ones.
pub fn replay(
    subject: &Subject,
    events: &[Event],
    outages: &[Span],
) -> Result<Report, ConfigError> {
    if let Some(i) = (1..events.len()).find(|&i| events[i].t_ns < events[i - 1].t_ns) {
        return Err(ConfigError::new(
            "events",
            i as u64,
            "must be in non-decreasing order of t_ns (this index goes back in time)",
        ));
    }
    let report = match subject {
        Subject::Breaker(c) => run(
            BreakerGuard {
                breaker: CircuitBreaker::<CountWindow1024>::new(*c)?,
            },
            events,
            outages,
        ),
        Subject::BreakerTime(c) => run(
            BreakerGuard {
                breaker: CircuitBreaker::<TimeWindow64>::new(*c)?,
            },
            events,
            outages,
        ),
        Subject::Limiter(c) => run(LimiterGuard(TokenBucket::new(*c)?), events, outages),
        Subject::KeyedLimiter { config, capacity } => run(
            KeyedGuard(KeyedBuckets::with_capacity(
                *config,
                WhenFull::Admit,
                0x5EED,
                *capacity,
            )?),
            events,
            outages,
        ),
        Subject::Bulkhead(n) => run(BulkheadGuard(Bulkhead::new(*n)?), events, outages),
    };
    Ok(report)
}

fn run<G: Guard>(mut guard: G, events: &[Event], outages: &[Span]) -> Report {
    let mut report = Report {
        calls: events.len() as u64,
        ..Report::default()
    };
    // Calls in flight: (end, ticket slot, event index), their tickets in a slab.
    let mut pending: BinaryHeap<Reverse<(u64, usize, usize)>> = BinaryHeap::new();
    let mut tickets: Vec<Option<G::Ticket>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut outage = 0; // index of the first outage not yet over
    let mut end = 0u64;
    let finish_until = |until: u64,
                        guard: &mut G,
                        report: &mut Report,
                        pending: &mut BinaryHeap<Reverse<(u64, usize, usize)>>,
                        tickets: &mut Vec<Option<G::Ticket>>,
                        free: &mut Vec<usize>,
                        end: &mut u64| {
        while let Some(&Reverse((t_end, slot, ei))) = pending.peek() {
            if t_end > until {
                break;
            }
            pending.pop();
            if let Some(ticket) = tickets[slot].take() {
                guard.finish(ticket, &events[ei], t_end, report);
            }
            free.push(slot);
            *end = (*end).max(t_end);
        }
    };
    for (i, e) in events.iter().enumerate() {
        finish_until(
            e.t_ns,
            &mut guard,
            &mut report,
            &mut pending,
            &mut tickets,
            &mut free,
            &mut end,
        );
        end = end.max(e.t_ns);
        while outage < outages.len() && outages[outage].end_ns <= e.t_ns {
            outage += 1;
        }
        let in_outage = outages.get(outage).is_some_and(|s| s.contains(e.t_ns));
        match guard.admit(e, &mut report) {
            Some(ticket) => {
                report.admitted += 1;
                if e.failed && in_outage {
                    report.missed_protection += 1;
                }
                let slot = match free.pop() {
                    Some(s) => {
                        tickets[s] = Some(ticket);
                        s
                    }
                    None => {
                        tickets.push(Some(ticket));
                        tickets.len() - 1
                    }
                };
                pending.push(Reverse((e.t_ns.saturating_add(e.duration_ns), slot, i)));
            }
            None => {
                report.rejected += 1;
                if !in_outage {
                    report.false_rejections += 1;
                }
            }
        }
    }
    finish_until(
        u64::MAX,
        &mut guard,
        &mut report,
        &mut pending,
        &mut tickets,
        &mut free,
        &mut end,
    );
    report.end_ns = end;
    if guard.tokens() {
        report.tokens_granted = report.admitted;
        report.tokens_rejected = report.rejected;
    }
    summarise(&mut report, outages);
    report
}

/// Trips, time open and each outage's detection and recovery, from the transitions.
fn summarise(report: &mut Report, outages: &[Span]) {
    let open = |s: State| matches!(s, State::Open | State::ForcedOpen);
    let mut opened_at: Option<u64> = None;
    for &(t, from, to) in &report.transitions {
        if to == State::Open {
            report.trips += 1;
        }
        if open(to) && !open(from) {
            opened_at = Some(t);
        } else if !open(to) && open(from) {
            if let Some(o) = opened_at.take() {
                report.time_open_ns += t.saturating_sub(o);
            }
        }
    }
    if let Some(o) = opened_at {
        report.time_open_ns += report.end_ns.saturating_sub(o);
    }
    let state_at = |t: u64| {
        report
            .transitions
            .iter()
            .take_while(|x| x.0 <= t)
            .last()
            .map_or(State::Closed, |x| x.2)
    };
    report.outages = outages
        .iter()
        .map(|span| {
            let detected_after_ns = report
                .transitions
                .iter()
                .find(|x| x.2 == State::Open && span.contains(x.0))
                .map(|x| x.0 - span.start_ns);
            let recovered_after_ns = if state_at(span.end_ns) == State::Closed {
                Some(0)
            } else {
                report
                    .transitions
                    .iter()
                    .find(|x| x.0 >= span.end_ns && x.2 == State::Closed)
                    .map(|x| x.0 - span.end_ns)
            };
            OutageOutcome {
                span: *span,
                detected_after_ns,
                recovered_after_ns,
            }
        })
        .collect();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MILLISECOND, SECOND};
    use std::vec;

    fn ev(t_ms: u64, dur_ms: u64, failed: bool) -> Event {
        Event {
            t_ns: t_ms * MILLISECOND,
            duration_ns: dur_ms * MILLISECOND,
            failed,
            key: 0,
        }
    }

    #[test]
    fn outages_are_runs_of_failing_buckets_with_enough_calls() {
        let mut events = vec![];
        for s in 0..10u64 {
            for k in 0..10u64 {
                // Seconds 3 and 4 fail 6 in 10; second 6 fails 10 in 10 but has 10 calls too;
                // second 8 has only 2 calls, both failing (too few).
                let failed = match s {
                    3 | 4 => k < 6,
                    6 => true,
                    _ => false,
                };
                if s == 8 && k >= 2 {
                    continue;
                }
                events.push(ev(s * 1000 + k * 100, 1, failed || s == 8));
            }
        }
        let spans = outages(&events, &OutageRule::default());
        assert_eq!(
            spans,
            vec![
                Span {
                    start_ns: 3 * SECOND,
                    end_ns: 5 * SECOND
                },
                Span {
                    start_ns: 6 * SECOND,
                    end_ns: 7 * SECOND
                }
            ]
        );
    }

    #[test]
    fn a_breaker_report_counts_by_hand() {
        // Calls every 100 ms taking 10 ms; 1.0 s to 2.0 s fails. Threshold 3, wait 500 ms.
        let events: Vec<Event> = (0..40u64)
            .map(|i| ev(i * 100, 10, (10..20).contains(&i)))
            .collect();
        let spans = outages(&events, &OutageRule::default());
        assert_eq!(spans.len(), 1);
        let config = BreakerConfig {
            failure_threshold: Some(3),
            wait_duration_ns: 500 * MILLISECOND,
            ..BreakerConfig::new()
        };
        let r = replay(&Subject::Breaker(config), &events, &spans).unwrap();
        // Failures at 1.0, 1.1, 1.2 (recorded at +10 ms): open at 1.21 s. Calls 1.3 to 1.7
        // refused (the wait ends at 1.71); the probe at 1.8 fails: open again at 1.81; calls
        // 1.9 to 2.3 refused (the wait ends at 2.31); the probe at 2.4 succeeds: closed at
        // 2.41. The outage is [1 s, 2 s): refusals at 2.0 to 2.3 are false ones.
        assert_eq!(r.trips, 2);
        assert_eq!(r.missed_protection, 3 + 1);
        assert_eq!(r.rejected, 5 + 5);
        assert_eq!(r.false_rejections, 4);
        assert_eq!(r.outages[0].detected_after_ns, Some(210 * MILLISECOND));
        assert_eq!(r.outages[0].recovered_after_ns, Some(410 * MILLISECOND));
        // Open from 1.21 to the probe at 1.8, and from 1.81 to the probe at 2.4.
        assert_eq!(r.time_open_ns, (1800 - 1210 + 2400 - 1810) * MILLISECOND);
        assert_eq!(r.admitted + r.rejected, 40);
        assert_eq!(r.transitions.len(), 5);
    }

    #[test]
    fn limiters_and_bulkheads_count_tokens_and_permits() {
        let events: Vec<Event> = (0..10u64).map(|i| ev(i, 1000, false)).collect();
        let r = replay(
            &Subject::Limiter(BucketConfig::per_second(1, 3)),
            &events,
            &[],
        )
        .unwrap();
        assert_eq!((r.tokens_granted, r.tokens_rejected), (3, 7));
        assert_eq!(r.false_rejections, 7);
        let r = replay(&Subject::Bulkhead(4), &events, &[]).unwrap();
        assert_eq!((r.admitted, r.rejected), (4, 6), "calls of 1 s overlap");
        let keyed: Vec<Event> = (0..10u64)
            .map(|i| Event {
                key: (i % 2) as u32,
                ..ev(i, 1, false)
            })
            .collect();
        let r = replay(
            &Subject::KeyedLimiter {
                config: BucketConfig::per_second(1, 2),
                capacity: 64,
            },
            &keyed,
            &[],
        )
        .unwrap();
        assert_eq!(r.tokens_granted, 4, "2 per key");
    }

    #[test]
    fn bad_input_is_named() {
        let events = [ev(5, 1, false), ev(4, 1, false)];
        assert_eq!(
            replay(&Subject::Bulkhead(1), &events, &[])
                .unwrap_err()
                .field,
            "events"
        );
        assert_eq!(
            replay(&Subject::Bulkhead(0), &[], &[]).unwrap_err().field,
            "max_concurrent"
        );
    }
}
