//! Trace size and codec speed on a synthetic 1,000-token x 30-layer x 12-component
//! trace at module depth (spans plus four activation metrics per component).
//!
//! `cargo bench -p eprof-format --bench codec` prints a table; the numbers are
//! measured in this process, side by side, never asserted.

use std::time::Instant;

use eprof_format::synthetic::{self, Shape};
use eprof_format::{Depth, Energies, Summary, decode_complete, encode, export};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let shape = Shape {
        prompt_tokens: 16,
        generated_tokens: 1000,
        layers: 30,
        depth: Depth::Module,
        watts: 12.0,
    };
    let trace = synthetic::trace(&shape);
    let records = 1000 * 30 * 12;
    let rounds = 7;

    let mut enc_s = Vec::new();
    let mut dec_s = Vec::new();
    let mut bytes = Vec::new();
    for _ in 0..rounds {
        let t = Instant::now();
        bytes = encode(&trace);
        enc_s.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        let back = decode_complete(&bytes).expect("decodes");
        dec_s.push(t.elapsed().as_secs_f64());
        assert_eq!(back.spans.len(), trace.spans.len());
    }
    let en = Energies::compute(&trace);
    let json = export::to_json(&trace, &en, &Summary::compute(&trace, &en));
    let (enc, dec) = (median(enc_s), median(dec_s));
    let mb = bytes.len() as f64 / 1e6;

    println!("synthetic trace: 1000 tokens x 30 layers x 12 components, module depth");
    println!(
        "  spans {}, metric values {}",
        trace.spans.len(),
        trace.metrics.iter().map(|m| m.len()).sum::<usize>()
    );
    println!("| measure | value |");
    println!("|---|---|");
    println!("| .eprof size | {} bytes |", bytes.len());
    println!(
        "| bytes per token-layer-component record (span + 4 metrics) | {:.2} |",
        bytes.len() as f64 / records as f64
    );
    println!("| JSON export size | {} bytes |", json.len());
    println!(
        "| .eprof / JSON | 1/{:.1} |",
        json.len() as f64 / bytes.len() as f64
    );
    println!(
        "| encode (median of {rounds}) | {:.1} ms, {:.0} MB/s |",
        enc * 1e3,
        mb / enc
    );
    println!(
        "| decode (median of {rounds}) | {:.1} ms, {:.0} MB/s |",
        dec * 1e3,
        mb / dec
    );
}
