//! Test-only crate: see `tests/` for scenarios, property tests, stress tests and loom models.
