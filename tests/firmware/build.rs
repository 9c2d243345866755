//! Picks the memory layout of the board that runs this target, and the linker scripts.
//!
//! The layouts live in memory/, not in the package root: a `memory.x` there would win over
//! the one written here to OUT_DIR. The `-T` arguments are given here rather than as
//! rustflags in .cargo/config.toml, so that a RUSTFLAGS in the environment (which replaces
//! config rustflags) cannot drop them.

use std::{env, fs, path::PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let target = env::var("TARGET").unwrap();
    let board = match target.as_str() {
        "thumbv6m-none-eabi" => "microbit",
        "thumbv7m-none-eabi" => "lm3s6965evb",
        "thumbv7em-none-eabihf" => "mps2-an386",
        "riscv32imc-unknown-none-elf" => "riscv-virt",
        _ => {
            println!("cargo:rustc-env=FIRMWARE_BOARD=host");
            return; // e.g. a host `cargo check`: nothing to link
        }
    };
    println!("cargo:rustc-env=FIRMWARE_BOARD={board}");

    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    let layout = format!("memory/{board}.x");
    fs::copy(&layout, out.join("memory.x")).unwrap();
    println!("cargo:rerun-if-changed={layout}");
    println!("cargo:rustc-link-search={}", out.display());

    // cortex-m-rt's link.x INCLUDEs memory.x; riscv-rt's expects it as a script of its own.
    if target.starts_with("riscv") {
        println!("cargo:rustc-link-arg-bins=-Tmemory.x");
    }
    println!("cargo:rustc-link-arg-bins=-Tlink.x");
}
