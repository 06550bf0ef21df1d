//! Unfinished traces the index lacks (a run whose process was killed before it could
//! close and index it) are adopted by `eprof ls` once nothing has written them for a
//! while; a trace being written right now is left to its recording, and a finished
//! one outside the index (`--no-index`, `rm --keep-files`) stays out.

use std::process::Command;
use std::time::{Duration, SystemTime};

use eprof_format::synthetic::{self, Shape};
use eprof_tests::eprof_bin;

fn ls(home: &std::path::Path) -> serde_json::Value {
    let o = Command::new(eprof_bin())
        .args(["ls", "--json"])
        .env("EPROF_HOME", home)
        .env("HOME", home)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn ls_adopts_a_killed_runs_trace_and_leaves_fresh_and_finished_ones() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let traces = home.join("traces");
    std::fs::create_dir_all(&traces).unwrap();
    // A killed run: no end marker, its chunks so far.
    let mut t = synthetic::trace(&Shape::default());
    t.end = None;
    let old_id = t.meta.id.clone();
    let old = traces.join(format!("{old_id}.eprof"));
    std::fs::write(&old, eprof_format::encode(&t)).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(60))
        .unwrap();
    // A trace written just now (a recording in progress).
    let mut fresh = synthetic::trace(&Shape::default());
    fresh.meta.id = "00000000000000ff".into();
    std::fs::write(
        traces.join("00000000000000ff.eprof"),
        eprof_format::encode(&fresh),
    )
    .unwrap();

    // A finished run kept out of the index on purpose.
    let mut kept = synthetic::trace(&Shape::default());
    kept.meta.id = "00000000000000ee".into();
    let kept_path = traces.join("00000000000000ee.eprof");
    std::fs::write(&kept_path, eprof_format::encode(&kept)).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&kept_path)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(60))
        .unwrap();

    let rows = ls(home);
    let ids: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    assert_eq!(ids, [old_id.as_str()], "{rows}");
    // Adopted once: the next `ls` finds it in the index.
    assert_eq!(ls(home).as_array().unwrap().len(), 1);
}
