//! Prints the native build's determinism samples, one line per seed: `seed hex-bytes`.
//!
//! `cargo run -p wasm-client --example determinism -- FIRST COUNT`; `web/test/determinism.test.mjs`
//! compares the wasm build's samples with these.

use std::fmt::Write;

fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<u64>().expect("FIRST and COUNT are numbers"));
    let first = args.next().unwrap_or(0);
    let count = args.next().unwrap_or(200);
    for seed in first..first + count {
        let mut line = format!("{seed} ");
        for byte in wasm_client::determinism::sample(seed) {
            write!(line, "{byte:02x}").expect("writing to a String");
        }
        println!("{line}");
    }
}
