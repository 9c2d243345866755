//! States, outcomes, the packed state word and the pure transition function.
//!
//! Every change of a breaker's state is one compare-and-swap of one `u64` built here. The
//! function [`next`] decides what the new word is; it contains no atomics and is tested
//! exhaustively below, for every (state, event) pair.

/// The state of a circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum State {
    /// Calls go through; outcomes are recorded and may trip the breaker.
    Closed = 0,
    /// Calls are rejected until the wait has passed.
    Open = 1,
    /// A limited number of probe calls go through to test recovery.
    HalfOpen = 2,
    /// Manual: every call is rejected until [`reset`](crate::CircuitBreaker::reset).
    ForcedOpen = 3,
    /// Manual: every call goes through and nothing is recorded.
    Disabled = 4,
    /// Manual: every call goes through, outcomes are recorded and reported, nothing trips.
    MetricsOnly = 5,
}

impl State {
    /// All states, in the order of their numeric values.
    pub const ALL: [State; 6] = [
        State::Closed,
        State::Open,
        State::HalfOpen,
        State::ForcedOpen,
        State::Disabled,
        State::MetricsOnly,
    ];

    /// The state with this numeric value.
    #[inline]
    pub const fn from_u8(v: u8) -> Option<State> {
        match v {
            0 => Some(State::Closed),
            1 => Some(State::Open),
            2 => Some(State::HalfOpen),
            3 => Some(State::ForcedOpen),
            4 => Some(State::Disabled),
            5 => Some(State::MetricsOnly),
            _ => None,
        }
    }

    /// The snake_case name used by the bindings: `"closed"`, `"open"`, `"half_open"`,
    /// `"forced_open"`, `"disabled"`, `"metrics_only"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half_open",
            State::ForcedOpen => "forced_open",
            State::Disabled => "disabled",
            State::MetricsOnly => "metrics_only",
        }
    }
}

impl core::fmt::Display for State {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What became of a permitted call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Outcome {
    /// The call worked.
    Success = 0,
    /// The call failed: counts toward the trip rules.
    Failure = 1,
    /// Neither (an excluded error, a cancellation): counts nowhere but the lifetime
    /// `ignored` counter, and hands a half-open probe slot back.
    Ignored = 2,
}

/// Largest `half_open_max_calls` and `success_threshold`: the width of their fields.
pub(crate) const MAX_PROBES: u16 = (1 << 10) - 1;
/// Largest backoff step kept in the word.
pub(crate) const MAX_STEP: u16 = (1 << 10) - 1;
/// Generations are 25 bits wide and wrap.
pub(crate) const GENERATION_BITS: u32 = 25;
/// The generation bits of a word.
pub(crate) const GENERATION_MASK: u64 = (1 << GENERATION_BITS) - 1;
const STEP_SHIFT: u32 = 3;
const IN_FLIGHT_SHIFT: u32 = 13;
const SUCCESSES_SHIFT: u32 = 23;
const SEQ_SHIFT: u32 = 33;
const GENERATION_SHIFT: u32 = 39;
const FIELD_MASK: u64 = (1 << 10) - 1;
/// The probe-admission sequence: 6 bits, wrapping.
pub(crate) const SEQ_MASK: u8 = (1 << 6) - 1;

// The limits table fits the word's fields.
const _: () = assert!(
    crate::limits::MAX_HALF_OPEN_MAX_CALLS <= MAX_PROBES
        && crate::limits::MAX_SUCCESS_THRESHOLD <= MAX_PROBES
        && crate::limits::MAX_BACKOFF_STEPS <= MAX_STEP
);

/// Whether generation `a` is later than `b`, on the wrapping 25-bit circle (a later
/// generation is less than half the circle ahead).
#[inline]
pub(crate) const fn generation_after(a: u64, b: u64) -> bool {
    let d = a.wrapping_sub(b) & GENERATION_MASK;
    d != 0 && d < (1 << (GENERATION_BITS - 1))
}

/// The unpacked state word.
///
/// Layout of the packed `u64`: bits 0..3 state, 3..13 backoff step, 13..23 probes in
/// flight, 23..33 probe successes, 33..39 probe-admission sequence, 39..64 generation.
///
/// The sequence changes with every probe admitted within a half-open period, so a word
/// read before a probe handed its slot back and another took it differs from the word
/// after (no ABA): a caller that decided on the old word, for example that the probes out
/// are hung, fails its compare-and-swap and decides again. An ABA would take 64 admissions
/// between one caller's load and its compare-and-swap. Every bit pattern unpacks to a word
/// the machine can act on: an unknown state reads as Closed, and counts above the
/// configured limits saturate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Word {
    pub state: State,
    /// How many times the breaker reopened from half-open since it last closed.
    pub step: u16,
    pub in_flight: u16,
    pub successes: u16,
    /// Probe admissions in this half-open period, modulo 64.
    pub seq: u8,
    pub generation: u64,
}

impl Word {
    pub(crate) const INITIAL: Word = Word {
        state: State::Closed,
        step: 0,
        in_flight: 0,
        successes: 0,
        seq: 0,
        generation: 0,
    };

    #[inline]
    pub(crate) const fn pack(self) -> u64 {
        (self.state as u64)
            | (((self.step as u64) & FIELD_MASK) << STEP_SHIFT)
            | (((self.in_flight as u64) & FIELD_MASK) << IN_FLIGHT_SHIFT)
            | (((self.successes as u64) & FIELD_MASK) << SUCCESSES_SHIFT)
            | (((self.seq & SEQ_MASK) as u64) << SEQ_SHIFT)
            | ((self.generation & GENERATION_MASK) << GENERATION_SHIFT)
    }

    #[inline]
    pub(crate) const fn unpack(w: u64) -> Word {
        let state = match State::from_u8((w & 0b111) as u8) {
            Some(s) => s,
            None => State::Closed, // never produced by pack(): a corrupt word
        };
        Word {
            state,
            step: ((w >> STEP_SHIFT) & FIELD_MASK) as u16,
            in_flight: ((w >> IN_FLIGHT_SHIFT) & FIELD_MASK) as u16,
            successes: ((w >> SUCCESSES_SHIFT) & FIELD_MASK) as u16,
            seq: ((w >> SEQ_SHIFT) as u8) & SEQ_MASK,
            generation: w >> GENERATION_SHIFT,
        }
    }

    /// The generation of a packed word, without unpacking the rest (hot paths).
    #[inline]
    pub(crate) const fn generation_of(w: u64) -> u64 {
        w >> GENERATION_SHIFT
    }

    /// The state of a packed word, without unpacking the rest (hot paths).
    #[inline]
    pub(crate) const fn state_of(w: u64) -> State {
        match State::from_u8((w & 0b111) as u8) {
            Some(s) => s,
            None => State::Closed,
        }
    }

    /// The word of a fresh period in `state`, one generation later.
    #[inline]
    const fn enter(self, state: State, step: u16, in_flight: u16) -> Word {
        Word {
            state,
            step,
            in_flight,
            successes: 0,
            seq: 0,
            generation: (self.generation + 1) & GENERATION_MASK,
        }
    }
}

/// What kind of call a permit admits, which decides what its outcome does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum PermitKind {
    /// Closed: the outcome enters the window and may trip the breaker.
    Normal = 0,
    /// Half-open probe: the outcome may close or reopen the breaker.
    Probe = 1,
    /// Metrics-only: the outcome enters the window and the metrics, never trips.
    Observe = 2,
    /// Disabled: the outcome is not recorded at all.
    Passive = 3,
}

/// Why an acquire was refused, before the retry-after is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    Open,
    HalfOpenFull,
    ForcedOpen,
}

/// An input to the state machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    /// A call asks to go through. `wait_elapsed`: in Open, the wait has passed; in a full
    /// HalfOpen, the probes have been out longer than the wait.
    Acquire { wait_elapsed: bool },
    /// An outcome with a permit of `generation`. `trip`: a closed-state rule fired.
    Record {
        generation: u64,
        outcome: Outcome,
        trip: bool,
    },
    /// Manual control to `State` (`Closed` is reset).
    Manual(State),
}

/// What the state machine says to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Let the call through; install `next` first if there is one.
    Permit {
        kind: PermitKind,
        next: Option<Word>,
    },
    /// Refuse the call.
    Refuse(Refusal),
    /// The outcome is taken; install `next` if there is one. `stale`: the permit is from an
    /// earlier generation and moves nothing.
    Record { next: Option<Word>, stale: bool },
    /// Manual control: install `next`.
    Manual { next: Word },
}

/// The limits the transition function needs from the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    pub half_open_max_calls: u16,
    pub success_threshold: u16,
    /// The step at which the open wait reaches its cap: reopening does not grow it further.
    pub max_step: u16,
}

/// The acquire decision for a packed word in a state whose acquire never changes the word
/// (Closed, MetricsOnly, Disabled): the permit's kind, read from the state bits alone. `None`
/// for the states that need [`next`]. A shortcut for the hot path that decides exactly as
/// `next` does (tested below for every word shape).
#[inline]
pub(crate) const fn acquire_without_change(w: u64) -> Option<PermitKind> {
    match Word::state_of(w) {
        State::Closed => Some(PermitKind::Normal),
        State::MetricsOnly => Some(PermitKind::Observe),
        State::Disabled => Some(PermitKind::Passive),
        State::Open | State::HalfOpen | State::ForcedOpen => None,
    }
}

/// The transition function: pure, total, and the only place that builds new state words.
/// Inlined: callers pass constant events, so most of the match folds away.
#[inline]
pub(crate) const fn next(w: Word, event: Event, limits: Limits) -> Decision {
    match event {
        Event::Acquire { wait_elapsed } => match w.state {
            State::Closed => Decision::Permit {
                kind: PermitKind::Normal,
                next: None,
            },
            State::MetricsOnly => Decision::Permit {
                kind: PermitKind::Observe,
                next: None,
            },
            State::Disabled => Decision::Permit {
                kind: PermitKind::Passive,
                next: None,
            },
            State::ForcedOpen => Decision::Refuse(Refusal::ForcedOpen),
            State::Open => {
                if wait_elapsed {
                    Decision::Permit {
                        kind: PermitKind::Probe,
                        next: Some(w.enter(State::HalfOpen, w.step, 1)),
                    }
                } else {
                    Decision::Refuse(Refusal::Open)
                }
            }
            State::HalfOpen => {
                if w.in_flight < limits.half_open_max_calls {
                    let mut n = w;
                    n.in_flight += 1;
                    n.seq = w.seq.wrapping_add(1) & SEQ_MASK;
                    Decision::Permit {
                        kind: PermitKind::Probe,
                        next: Some(n),
                    }
                } else if wait_elapsed {
                    // Every probe out was admitted longer than the wait ago: they are presumed
                    // hung. A new probing period, whose generation makes their outcomes
                    // stale, frees their slots; the successes of probes that did finish
                    // still count toward closing.
                    let mut n = w.enter(State::HalfOpen, w.step, 1);
                    n.successes = w.successes;
                    Decision::Permit {
                        kind: PermitKind::Probe,
                        next: Some(n),
                    }
                } else {
                    Decision::Refuse(Refusal::HalfOpenFull)
                }
            }
        },
        Event::Record {
            generation,
            outcome,
            trip,
        } => {
            if generation != w.generation {
                return Decision::Record {
                    next: None,
                    stale: true,
                };
            }
            match w.state {
                State::Closed => {
                    if trip {
                        Decision::Record {
                            next: Some(w.enter(State::Open, w.step, 0)),
                            stale: false,
                        }
                    } else {
                        Decision::Record {
                            next: None,
                            stale: false,
                        }
                    }
                }
                State::HalfOpen => {
                    let in_flight = w.in_flight.saturating_sub(1);
                    let next = match outcome {
                        Outcome::Ignored => Word { in_flight, ..w },
                        Outcome::Failure => {
                            // The wait grows until it reaches its cap (`max_step`), then stays.
                            let step = if w.step < limits.max_step {
                                w.step + 1
                            } else {
                                limits.max_step
                            };
                            w.enter(State::Open, step, 0)
                        }
                        Outcome::Success => {
                            if w.successes + 1 >= limits.success_threshold {
                                w.enter(State::Closed, 0, 0)
                            } else {
                                Word {
                                    in_flight,
                                    successes: w.successes + 1,
                                    ..w
                                }
                            }
                        }
                    };
                    Decision::Record {
                        next: Some(next),
                        stale: false,
                    }
                }
                State::Open | State::ForcedOpen | State::Disabled | State::MetricsOnly => {
                    Decision::Record {
                        next: None,
                        stale: false,
                    }
                }
            }
        }
        Event::Manual(to) => Decision::Manual {
            next: w.enter(to, 0, 0),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        half_open_max_calls: 2,
        success_threshold: 2,
        max_step: 4,
    };

    fn words() -> impl Iterator<Item = Word> {
        State::ALL.into_iter().flat_map(|state| {
            [
                (0u16, 0u16, 0u16),
                (0, 1, 0),
                (3, 2, 1),
                (4, 2, 1),
                (MAX_STEP, 2, 0),
            ]
            .into_iter()
            .map(move |(step, in_flight, successes)| Word {
                state,
                step,
                in_flight,
                successes,
                seq: (in_flight as u8 * 31) & SEQ_MASK,
                generation: 41,
            })
        })
    }

    fn events() -> impl Iterator<Item = Event> {
        let acquires = [false, true]
            .into_iter()
            .map(|wait_elapsed| Event::Acquire { wait_elapsed });
        let records = [40u64, 41].into_iter().flat_map(|generation| {
            [Outcome::Success, Outcome::Failure, Outcome::Ignored]
                .into_iter()
                .flat_map(move |outcome| {
                    [false, true].into_iter().map(move |trip| Event::Record {
                        generation,
                        outcome,
                        trip,
                    })
                })
        });
        acquires
            .chain(records)
            .chain(State::ALL.into_iter().map(Event::Manual))
    }

    #[test]
    fn pack_roundtrip() {
        for w in words() {
            assert_eq!(Word::unpack(w.pack()), w);
        }
        let max = Word {
            state: State::MetricsOnly,
            step: MAX_STEP,
            in_flight: MAX_PROBES,
            successes: MAX_PROBES,
            seq: SEQ_MASK,
            generation: GENERATION_MASK,
        };
        assert_eq!(Word::unpack(max.pack()), max);
        let wrapped = Word {
            generation: GENERATION_MASK,
            ..Word::INITIAL
        }
        .enter(State::Open, 0, 0);
        assert_eq!(wrapped.generation, 0);
    }

    /// The expected decision for every (state, event) pair, written as a table independent
    /// of `next`'s structure.
    fn expected(w: Word, e: Event) -> Decision {
        use Decision as D;
        let g = w.generation + 1;
        let fresh = |state, step, in_flight| Word {
            state,
            step,
            in_flight,
            successes: 0,
            seq: 0,
            generation: g,
        };
        match (w.state, e) {
            (State::Closed, Event::Acquire { .. }) => D::Permit {
                kind: PermitKind::Normal,
                next: None,
            },
            (State::MetricsOnly, Event::Acquire { .. }) => D::Permit {
                kind: PermitKind::Observe,
                next: None,
            },
            (State::Disabled, Event::Acquire { .. }) => D::Permit {
                kind: PermitKind::Passive,
                next: None,
            },
            (State::ForcedOpen, Event::Acquire { .. }) => D::Refuse(Refusal::ForcedOpen),
            (
                State::Open,
                Event::Acquire {
                    wait_elapsed: false,
                },
            ) => D::Refuse(Refusal::Open),
            (State::Open, Event::Acquire { wait_elapsed: true }) => D::Permit {
                kind: PermitKind::Probe,
                next: Some(fresh(State::HalfOpen, w.step, 1)),
            },
            (State::HalfOpen, Event::Acquire { wait_elapsed }) => {
                if w.in_flight < 2 {
                    D::Permit {
                        kind: PermitKind::Probe,
                        next: Some(Word {
                            in_flight: w.in_flight + 1,
                            seq: (w.seq + 1) % 64,
                            ..w
                        }),
                    }
                } else if wait_elapsed {
                    D::Permit {
                        kind: PermitKind::Probe,
                        next: Some(Word {
                            successes: w.successes,
                            ..fresh(State::HalfOpen, w.step, 1)
                        }),
                    }
                } else {
                    D::Refuse(Refusal::HalfOpenFull)
                }
            }
            (_, Event::Record { generation: 40, .. }) => D::Record {
                next: None,
                stale: true,
            },
            (State::Closed, Event::Record { trip: true, .. }) => D::Record {
                next: Some(fresh(State::Open, w.step, 0)),
                stale: false,
            },
            (
                State::HalfOpen,
                Event::Record {
                    outcome: Outcome::Failure,
                    ..
                },
            ) => D::Record {
                next: Some(fresh(State::Open, (w.step + 1).min(4), 0)),
                stale: false,
            },
            (
                State::HalfOpen,
                Event::Record {
                    outcome: Outcome::Ignored,
                    ..
                },
            ) => D::Record {
                next: Some(Word {
                    in_flight: w.in_flight.saturating_sub(1),
                    ..w
                }),
                stale: false,
            },
            (
                State::HalfOpen,
                Event::Record {
                    outcome: Outcome::Success,
                    ..
                },
            ) => {
                if w.successes + 1 >= 2 {
                    D::Record {
                        next: Some(fresh(State::Closed, 0, 0)),
                        stale: false,
                    }
                } else {
                    D::Record {
                        next: Some(Word {
                            in_flight: w.in_flight.saturating_sub(1),
                            successes: w.successes + 1,
                            ..w
                        }),
                        stale: false,
                    }
                }
            }
            (_, Event::Record { .. }) => D::Record {
                next: None,
                stale: false,
            },
            (_, Event::Manual(to)) => D::Manual {
                next: fresh(to, 0, 0),
            },
        }
    }

    #[test]
    fn every_state_event_pair() {
        let mut pairs = 0;
        for w in words() {
            for e in events() {
                assert_eq!(
                    next(w, e, LIMITS),
                    expected(w, e),
                    "state {w:?} event {e:?}"
                );
                pairs += 1;
            }
        }
        // 6 states x 5 word shapes x (2 acquires + 12 records + 6 manual)
        assert_eq!(pairs, 6 * 5 * 20);
    }

    #[test]
    fn state_changes_always_bump_generation() {
        for w in words() {
            for e in events() {
                let next = match next(w, e, LIMITS) {
                    Decision::Permit { next, .. } | Decision::Record { next, .. } => next,
                    Decision::Manual { next } => Some(next),
                    Decision::Refuse(_) => None,
                };
                if let Some(n) = next {
                    if n.state != w.state {
                        assert_eq!(n.generation, w.generation + 1, "{w:?} {e:?}");
                    }
                    assert!(
                        n.in_flight <= 2 || n.in_flight == w.in_flight,
                        "{w:?} {e:?} -> {n:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn any_bit_pattern_unpacks_to_a_word_that_repacks() {
        // Corrupt words (shared memory, a stray write) never panic: they unpack to a word
        // whose fields are in range, and the machine decides on it.
        let mut x: u64 = 0x243F_6A88_85A3_08D3;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let w = Word::unpack(x);
            assert!(w.step <= MAX_STEP && w.in_flight <= MAX_PROBES && w.successes <= MAX_PROBES);
            assert!(w.generation <= GENERATION_MASK && w.seq <= SEQ_MASK);
            assert_eq!(Word::unpack(w.pack()), w);
            for e in events() {
                let _ = next(w, e, LIMITS);
            }
        }
    }

    #[test]
    fn the_acquire_shortcut_decides_as_next_does() {
        let mut checked = 0;
        for w in words() {
            for wait_elapsed in [false, true] {
                let full = next(w, Event::Acquire { wait_elapsed }, LIMITS);
                match acquire_without_change(w.pack()) {
                    Some(kind) => {
                        assert_eq!(full, Decision::Permit { kind, next: None }, "{w:?}");
                        checked += 1;
                    }
                    None => assert!(
                        !matches!(full, Decision::Permit { next: None, .. })
                            || w.state == State::HalfOpen,
                        "{w:?}: {full:?}"
                    ),
                }
            }
        }
        assert_eq!(checked, 3 * 5 * 2);
    }

    #[test]
    fn every_probe_admission_changes_the_word() {
        // A probe hands its slot back and another takes it: the word differs from the one
        // before, so a compare-and-swap decided on the old word fails (no ABA).
        let w = Word {
            state: State::HalfOpen,
            in_flight: 1,
            ..Word::INITIAL
        };
        let back = match next(
            w,
            Event::Record {
                generation: 0,
                outcome: Outcome::Ignored,
                trip: false,
            },
            LIMITS,
        ) {
            Decision::Record { next: Some(n), .. } => n,
            d => panic!("{d:?}"),
        };
        let again = match next(
            back,
            Event::Acquire {
                wait_elapsed: false,
            },
            LIMITS,
        ) {
            Decision::Permit { next: Some(n), .. } => n,
            d => panic!("{d:?}"),
        };
        assert_eq!(again.in_flight, w.in_flight);
        assert_ne!(again.pack(), w.pack());
    }

    #[test]
    fn generations_compare_on_the_circle() {
        assert!(generation_after(1, 0));
        assert!(!generation_after(0, 0));
        assert!(!generation_after(0, 1));
        assert!(generation_after(0, GENERATION_MASK), "wraps");
        assert!(generation_after(5, GENERATION_MASK - 3));
    }

    #[test]
    fn state_names() {
        for s in State::ALL {
            assert_eq!(State::from_u8(s as u8), Some(s));
        }
        assert_eq!(State::from_u8(6), None);
        assert_eq!(State::HalfOpen.as_str(), "half_open");
    }
}
