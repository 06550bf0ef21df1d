//! Build and maintenance helpers: `cargo xtask <command>`.
//!
//! - `bench`: run the format benchmark and the overhead benchmark on the real model,
//!   one after the other, so both tables are printed from one machine state.
//!
//! The viewer's build (wasm-bindgen as a library, inlining into one HTML file) will
//! live here too.

use std::process::{Command, ExitCode};

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn run(mut c: Command) -> bool {
    eprintln!("xtask: {c:?}");
    c.status().is_ok_and(|s| s.success())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("bench") => {
            let mut format = cargo();
            format.args(["bench", "-p", "eprof-format", "--bench", "codec"]);
            let mut overhead = cargo();
            overhead.args(["bench", "-p", "eprof-models", "--bench", "overhead"]);
            if run(format) && run(overhead) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        _ => {
            eprintln!(
                "usage: cargo xtask bench    (format size/speed, then instrumentation overhead)"
            );
            ExitCode::from(2)
        }
    }
}
