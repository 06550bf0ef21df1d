//! The SQLite run index: rows, filters, concurrent writers, rebuild from traces.

use std::path::{Path, PathBuf};

use eprof_format::synthetic::{self, Shape};
use eprof_format::{Trace, encode};
use eprof_index::{Index, RunFilter};

fn write_trace(dir: &Path, id: &str, tag: &str, model: &str) -> (Trace, PathBuf) {
    let mut t = synthetic::trace(&Shape::default());
    t.meta.id = id.into();
    t.meta.tags = vec![tag.into()];
    t.meta.model.name = model.into();
    t.meta.experiment = Some("exp-a".into());
    let p = dir.join(format!("{id}.eprof"));
    std::fs::write(&p, encode(&t)).unwrap();
    (t, p)
}

#[test]
fn insert_list_filter_find_remove_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    let traces = dir.path().join("traces");
    std::fs::create_dir_all(&traces).unwrap();
    let mut idx = Index::open(&dir.path().join("index.sqlite")).unwrap();
    for (i, tag) in ["a", "b", "a"].iter().enumerate() {
        let (t, p) = write_trace(
            &traces,
            &format!("run{i:013}"),
            tag,
            if i == 1 { "other" } else { "smol" },
        );
        idx.insert(&t, &p, false).unwrap();
    }
    assert_eq!(idx.count().unwrap(), 3);
    let one = idx.find("run0000000000001").unwrap();
    assert_eq!(one.stop_reason, Some(eprof_format::RunStop::MaxTokens));
    assert!(
        one.label_mix
            .as_deref()
            .is_some_and(|m| m.contains("measured")),
        "{:?}",
        one.label_mix
    );
    let tagged = idx
        .list(&RunFilter {
            tag: Some("a".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(tagged.len(), 2);
    assert!(tagged.iter().all(|r| r.tags == vec!["a".to_string()]));
    let other = idx
        .list(&RunFilter {
            model: Some("oth".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(other.len(), 1);
    let row = idx.find("run0000000000001").unwrap();
    assert_eq!(row.model, "other");
    assert!(row.total_j.unwrap() > 0.0);
    assert_eq!(row.energy_label.as_deref(), Some("measured"));
    assert!(
        idx.find("run")
            .unwrap_err()
            .to_string()
            .contains("several runs")
    );
    assert!(idx.find("nope").unwrap_err().to_string().contains("no run"));

    let before: Vec<_> = idx.list(&RunFilter::default()).unwrap();
    assert!(idx.remove("run0000000000002").unwrap());
    assert_eq!(idx.count().unwrap(), 2);
    let (n, failed) = idx.rebuild(&traces, "this-host").unwrap();
    assert_eq!((n, failed.len()), (3, 0));
    let after: Vec<_> = idx.list(&RunFilter::default()).unwrap();
    let strip = |v: &Vec<eprof_index::RunRow>| {
        let mut v: Vec<_> = v
            .iter()
            .map(|r| {
                (
                    r.id.clone(),
                    r.total_j,
                    r.tags.clone(),
                    r.trace_sha256.clone(),
                    r.prompt_tokens,
                )
            })
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    assert_eq!(strip(&after), strip(&before), "rebuild reproduces the rows");
    assert!(
        after.iter().all(|r| r.imported),
        "traces of another host are imported"
    );
}

#[test]
fn rebuild_reports_unreadable_traces() {
    let dir = tempfile::tempdir().unwrap();
    let traces = dir.path().join("traces");
    std::fs::create_dir_all(&traces).unwrap();
    write_trace(&traces, "good000000000001", "x", "m");
    std::fs::write(traces.join("bad.eprof"), b"not a trace").unwrap();
    let mut idx = Index::open(&dir.path().join("index.sqlite")).unwrap();
    let (n, failed) = idx.rebuild(&traces, "this-host").unwrap();
    assert_eq!(n, 1);
    assert_eq!(failed.len(), 1);
    assert!(failed[0].1.contains("not an eprof trace"), "{:?}", failed);
}

#[test]
fn concurrent_writers_lose_no_run() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("index.sqlite");
    Index::open(&db).unwrap();
    let handles: Vec<_> = (0..2)
        .map(|w| {
            let db = db.clone();
            let d = dir.path().to_path_buf();
            std::thread::spawn(move || {
                let mut idx = Index::open(&db).unwrap();
                for i in 0..25 {
                    let (t, p) = write_trace(&d, &format!("w{w}r{i:012}"), "c", "m");
                    idx.insert(&t, &p, false).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(Index::open(&db).unwrap().count().unwrap(), 50);
}

/// An index written before migrations 2 and 3 (no stop reason, no label mix, no
/// groups) opens, migrates in place, keeps its rows, and `rebuild` fills the new
/// columns (and indexes new runs, with groups, in the migrated table).
#[test]
fn a_version_1_index_migrates() {
    let dir = tempfile::tempdir().unwrap();
    let traces = dir.path().join("traces");
    std::fs::create_dir_all(&traces).unwrap();
    let db = dir.path().join("index.sqlite");
    let (t, p) = write_trace(&traces, "old0000000000001", "a", "smol");
    Index::open(&db).unwrap().insert(&t, &p, false).unwrap();
    // Make it what an older eprof left: schema version 1.
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch(
        "DROP INDEX runs_group;
         ALTER TABLE runs DROP COLUMN group_id;
         ALTER TABLE runs DROP COLUMN config;
         ALTER TABLE runs DROP COLUMN config_label;
         ALTER TABLE runs DROP COLUMN repeat;
         ALTER TABLE runs DROP COLUMN run_order;
         ALTER TABLE runs DROP COLUMN stop_reason;
         ALTER TABLE runs DROP COLUMN label_mix;
         PRAGMA user_version = 1;",
    )
    .unwrap();
    drop(conn);

    let mut idx = Index::open(&db).unwrap();
    let row = idx.find("old0000000000001").unwrap();
    assert_eq!(row.prompt, t.meta.prompt, "rows survive the migration");
    assert_eq!(
        (row.stop_reason.as_ref(), row.label_mix.as_deref()),
        (None, None)
    );
    idx.rebuild(&traces, "this-host").unwrap();
    let row = idx.find("old0000000000001").unwrap();
    assert_eq!(row.stop_reason, Some(eprof_format::RunStop::MaxTokens));
    assert!(row.label_mix.is_some());
    assert_eq!(row.group_id, None);
    let (mut t2, p2) = write_trace(&traces, "new0000000000002", "b", "smol");
    t2.group = Some(eprof_format::GroupRef {
        id: "g0123456789ab".into(),
        config: 0,
        config_label: "all".into(),
        repeat: 1,
        order: 1,
    });
    idx.insert(&t2, &p2, false).unwrap();
    let row = idx.find("new0000000000002").unwrap();
    assert_eq!(
        (row.group_id.as_deref(), row.repeat),
        (Some("g0123456789ab"), Some(1))
    );
    assert_eq!(
        idx.group_runs("g0123456789ab").unwrap(),
        ["new0000000000002"]
    );
}
