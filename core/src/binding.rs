//! Hooks for the language bindings (C, Python) and the workspace's tests. Not part of the
//! documented API: their use from Rust can break the guarantees the types give (a permit
//! rebuilt from parts can be recorded again, a slot released without being taken), so they
//! are hidden from the docs and may change in any release. The bindings keep those
//! guarantees themselves (a used-permit flag, a held-slot count).

use crate::adaptive::AdaptivePermit;
use crate::breaker::{CircuitBreaker, Permit, PermitKind};
use crate::bulkhead::Bulkhead;

/// The parts of a permit: generation, kind, start time.
#[inline]
pub const fn permit_into_parts(permit: Permit) -> (u64, PermitKind, u64) {
    permit.into_parts()
}

/// Rebuilds a permit from [`permit_into_parts`]. A forged permit can only misreport an
/// outcome; it cannot break the breaker's invariants beyond that.
#[inline]
pub const fn permit_from_parts(generation: u64, kind: PermitKind, started_at: u64) -> Permit {
    Permit::from_parts(generation, kind, started_at)
}

/// Takes a bulkhead slot without a guard; give it back with [`bulkhead_release`].
#[inline]
pub fn bulkhead_try_acquire(bulkhead: &Bulkhead) -> bool {
    bulkhead.try_acquire_raw()
}

/// Gives back a slot taken with [`bulkhead_try_acquire`]; `false` if none was out.
#[inline]
pub fn bulkhead_release(bulkhead: &Bulkhead) -> bool {
    bulkhead.release()
}

/// An adaptive limiter's permit for a call admitted at `started_at`, for bindings that
/// hold permits across a language boundary (they keep none). Recording one more permit than
/// were admitted never makes the in-flight count negative: it is counted in
/// `unmatched_records`.
#[inline]
pub const fn adaptive_permit(started_at: u64) -> AdaptivePermit {
    AdaptivePermit::from_parts(started_at)
}

/// The window a breaker records into (tests compare it with a model).
pub fn window<W: crate::Window>(breaker: &CircuitBreaker<W>) -> &W {
    breaker.window()
}
