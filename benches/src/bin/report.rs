//! Prints criterion's results of `benches/compare.rs` as a markdown table.
//!
//! ```text
//! cargo run -p fastbreaker-benches --release --bin report -- [--out PATH] [--criterion-dir DIR]
//! ```
//!
//! Reads `DIR/<group>/<bench>/new/estimates.json` for every benchmark of
//! `fastbreaker_benches::CATALOGUE` (DIR defaults to `$CARGO_TARGET_DIR/criterion`, else the
//! workspace's `target/criterion`), takes the median estimate, and prints the table, headed by
//! the machine (CPU model and logical CPUs from `/proc/cpuinfo`) and the date of the newest
//! result. With `--out`, also writes it to PATH. Exits with status 1 if a benchmark has no
//! result (the table is still printed, marking it "not measured").

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use fastbreaker_benches::{
    cpu_model, format_utc, parse_estimates, processor_count, render, Estimate, CATALOGUE,
};

struct Args {
    out: Option<PathBuf>,
    criterion_dir: PathBuf,
}

fn usage() -> String {
    "usage: report [--out PATH] [--criterion-dir DIR]".to_string()
}

fn parse_args() -> Result<Args, String> {
    let mut out = None;
    let mut criterion_dir = None;
    let mut args = std::env::args_os().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .map(PathBuf::from)
                .ok_or_else(|| format!("{name} needs a value\n{}", usage()))
        };
        match arg.to_str() {
            Some("--out") => out = Some(value("--out")?),
            Some("--criterion-dir") => criterion_dir = Some(value("--criterion-dir")?),
            Some("-h" | "--help") => return Err(usage()),
            _ => return Err(format!("unknown argument {arg:?}\n{}", usage())),
        }
    }
    let criterion_dir = criterion_dir.unwrap_or_else(|| {
        std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
                manifest.parent().unwrap_or(manifest).join("target")
            })
            .join("criterion")
    });
    Ok(Args { out, criterion_dir })
}

fn machine_line(newest: Option<SystemTime>) -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpu_model(&cpuinfo).unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let listed = processor_count(&cpuinfo);
    let usable = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cores = if listed == 0 || listed == usable {
        format!("{usable} logical CPUs")
    } else {
        format!("{listed} logical CPUs ({usable} usable by this process)")
    };
    let secs = |t: SystemTime| t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let measured = newest.map_or("unknown".to_string(), |t| format_utc(secs(t)));
    format!(
        "**Machine:** {cpu}, {cores}, {} · **measured:** {measured} (newest result) · \
         **report:** {}",
        std::env::consts::OS,
        format_utc(secs(SystemTime::now())),
    )
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let mut results: HashMap<String, Estimate> = HashMap::new();
    let mut newest: Option<SystemTime> = None;
    let mut missing = Vec::new();
    for spec in CATALOGUE {
        let path = args
            .criterion_dir
            .join(spec.group)
            .join(spec.name)
            .join("new/estimates.json");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                missing.push(format!("{}: {e}", path.display()));
                continue;
            }
        };
        match parse_estimates(&text) {
            Ok(e) => {
                results.insert(spec.id(), e);
            }
            Err(e) => {
                missing.push(format!("{}: {e}", path.display()));
                continue;
            }
        }
        if let Ok(modified) = std::fs::metadata(&path).and_then(|m| m.modified()) {
            newest = newest.max(Some(modified));
        }
    }
    let table = render(&machine_line(newest), CATALOGUE, &results);
    print!("{table}");
    if let Some(out) = &args.out {
        if let Err(e) = std::fs::write(out, &table) {
            eprintln!("cannot write {}: {e}", out.display());
            return ExitCode::from(2);
        }
        eprintln!("report written to {}", out.display());
    }
    if missing.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "{} benchmark(s) without a result (run `cargo bench -p fastbreaker-benches`):",
            missing.len()
        );
        for m in &missing {
            eprintln!("  {m}");
        }
        ExitCode::from(1)
    }
}
