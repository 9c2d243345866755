//! Gives libfastbreaker.so its SONAME: `libfastbreaker.so.0.MINOR` while the major version is
//! 0 (a minor release may break the ABI), `libfastbreaker.so.MAJOR` after. `make ffi-lib`
//! and `make install` create the matching symbolic links.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os != "linux" && os != "android" && !os.ends_with("bsd") {
        return;
    }
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_default();
    let minor = std::env::var("CARGO_PKG_VERSION_MINOR").unwrap_or_default();
    let soversion = if major == "0" {
        format!("0.{minor}")
    } else {
        major
    };
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libfastbreaker.so.{soversion}");
}
