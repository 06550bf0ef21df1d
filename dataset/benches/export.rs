//! Parquet export speed and size on the synthetic 1,000-token x 30-layer trace at deep
//! depth (the viewer benchmark's trace), against its `.eprof`.
//!
//! `cargo bench -p eprof-dataset --bench export` prints a table; measured in this
//! process, side by side, never asserted.

use std::time::Instant;

use eprof_dataset::{Dataset, TABLES};
use eprof_format::synthetic::{self, Shape};
use eprof_format::{Depth, decode_complete, encode};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let trace = synthetic::trace(&Shape {
        prompt_tokens: 16,
        generated_tokens: 1000,
        layers: 30,
        depth: Depth::Deep,
        watts: 12.0,
    });
    let bytes = encode(&trace);
    let rounds = 5;
    let (mut export_s, mut total_s) = (Vec::new(), Vec::new());
    let mut last = None;
    for i in 0..rounds {
        let dir =
            std::env::temp_dir().join(format!("eprof-bench-export-{}-{i}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let t0 = Instant::now();
        let decoded = decode_complete(&bytes).expect("decodes");
        let t1 = Instant::now();
        let mut ds = Dataset::open(&dir).expect("dataset");
        let mut batch = ds.batch().expect("batch");
        batch.add(&decoded).expect("add");
        let added = batch.commit().expect("commit");
        let t2 = Instant::now();
        export_s.push((t2 - t1).as_secs_f64());
        total_s.push((t2 - t0).as_secs_f64());
        drop(ds);
        let _ = std::fs::remove_dir_all(&dir);
        last = Some(added);
    }
    let added = last.expect("rounds > 0");
    let rows: u64 = added.rows.iter().sum();
    let (export, total) = (median(export_s), median(total_s));
    let mb = bytes.len() as f64 / 1e6;
    println!("synthetic trace: 1000 tokens x 30 layers, deep depth; Parquet export (Snappy)");
    println!("| measure | value |");
    println!("|---|---|");
    println!("| `.eprof` size | {} bytes |", bytes.len());
    println!(
        "| Parquet dataset size | {} bytes ({:.2}x the `.eprof`) |",
        added.bytes,
        added.bytes as f64 / bytes.len() as f64
    );
    let per_table: Vec<String> = TABLES
        .iter()
        .zip(added.rows)
        .map(|((t, _), n)| format!("{t} {n}"))
        .collect();
    println!("| rows | {rows} ({}) |", per_table.join(", "));
    println!(
        "| export (attribution + Parquet, median of {rounds}) | {:.0} ms, {:.2} M rows/s, {:.0} MB/s of `.eprof` |",
        export * 1e3,
        rows as f64 / export / 1e6,
        mb / export
    );
    println!(
        "| decode + export (what `eprof export --format parquet` does per trace) | {:.0} ms, {:.2} M rows/s, {:.0} MB/s of `.eprof` |",
        total * 1e3,
        rows as f64 / total / 1e6,
        mb / total
    );
}
