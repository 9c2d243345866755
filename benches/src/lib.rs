//! Benchmarks of fastbreaker against governor, failsafe and recloser (filled by the
//! benchmark issue).
