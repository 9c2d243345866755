//! Atomic shim: loom's model-checked atomics under `cfg(loom)`, portable-atomic otherwise.
//!
//! Every primitive of the crate takes its atomics from here, so that the loom models in
//! `tests/` check exactly the code that ships.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU32, AtomicU64};
#[cfg(not(loom))]
pub(crate) use portable_atomic::{AtomicU32, AtomicU64};

#[cfg(not(loom))]
pub(crate) use core::sync::atomic::fence;
pub(crate) use core::sync::atomic::Ordering;
#[cfg(loom)]
pub(crate) use loom::sync::atomic::fence;

/// Declares a function that is `const` in normal builds and plain under loom, whose atomics
/// cannot be built in a const context.
macro_rules! maybe_const_fn {
    ($(#[$attr:meta])* $vis:vis fn $name:ident $($rest:tt)*) => {
        #[cfg(not(loom))]
        $(#[$attr])* $vis const fn $name $($rest)*
        #[cfg(loom)]
        $(#[$attr])* $vis fn $name $($rest)*
    };
}
pub(crate) use maybe_const_fn;

maybe_const_fn! {
    /// An array of zeroed 32-bit atomics.
    pub(crate) fn zeroed_u32s<const N: usize>() -> [AtomicU32; N] {
        #[cfg(not(loom))]
        { [const { AtomicU32::new(0) }; N] }
        #[cfg(loom)]
        { core::array::from_fn(|_| AtomicU32::new(0)) }
    }
}

maybe_const_fn! {
    /// An array of zeroed 64-bit atomics.
    pub(crate) fn zeroed_u64s<const N: usize>() -> [AtomicU64; N] {
        #[cfg(not(loom))]
        { [const { AtomicU64::new(0) }; N] }
        #[cfg(loom)]
        { core::array::from_fn(|_| AtomicU64::new(0)) }
    }
}
