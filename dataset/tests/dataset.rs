//! A dataset written from synthetic traces reads back with the rows, columns and
//! values the traces hold; appending skips what is there; an interrupted export
//! leaves nothing a reader would see.

use std::fs::File;
use std::path::Path;

use eprof_dataset::{Dataset, TABLES};
use eprof_format::synthetic::{self, Shape};
use eprof_format::{Depth, Energies, Summary, Trace};
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::{Field, Row};

fn trace(id: &str, tokens: u32, depth: Depth) -> Trace {
    let mut t = synthetic::trace(&Shape {
        prompt_tokens: 5,
        generated_tokens: tokens,
        layers: 3,
        depth,
        watts: 12.0,
    });
    t.meta.id = id.into();
    t
}

/// Every row of one table, over all its part files.
fn rows(dir: &Path, table: &str) -> Vec<Row> {
    let mut out = Vec::new();
    let mut parts: Vec<_> = std::fs::read_dir(dir.join(table))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    parts.sort();
    for p in parts {
        let r = SerializedFileReader::new(File::open(&p).unwrap()).unwrap();
        for row in r.get_row_iter(None).unwrap() {
            out.push(row.unwrap());
        }
    }
    out
}

fn field<'a>(row: &'a Row, name: &str) -> &'a Field {
    row.get_column_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, f)| f)
        .unwrap_or_else(|| panic!("no column {name}"))
}

fn f64_of(f: &Field) -> Option<f64> {
    match f {
        Field::Double(v) => Some(*v),
        Field::Null => None,
        other => panic!("not a double: {other:?}"),
    }
}

fn str_of(f: &Field) -> &str {
    match f {
        Field::Str(s) => s,
        other => panic!("not a string: {other:?}"),
    }
}

#[test]
fn tables_hold_what_the_traces_hold_and_appends_add_only_new_runs() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = trace("00000000000000aa", 20, Depth::Deep);
    // FLOPs as the model adapter records them: a `model/flops` value per span.
    let mut flops = eprof_format::MetricSeries::new("model", "flops");
    for i in 0..a.spans.len() {
        flops.push(a.spans.step[i], a.spans.site[i], 1000.0 + i as f32);
    }
    a.metrics.push(flops);
    let b = trace("00000000000000bb", 7, Depth::Off);
    let mut ds = Dataset::open(dir.path()).unwrap();
    let mut batch = ds.batch().unwrap();
    assert!(batch.add(&a).unwrap());
    assert!(batch.add(&b).unwrap());
    assert!(!batch.add(&a).unwrap(), "a run is added once per batch");
    let first = batch.commit().unwrap();
    assert_eq!(first.runs, ["00000000000000aa", "00000000000000bb"]);

    let runs = rows(dir.path(), "runs");
    assert_eq!(runs.len(), 2);
    for (row, t) in runs.iter().zip([&a, &b]) {
        assert_eq!(row.len(), TABLES[0].1.len());
        let en = Energies::compute(t);
        let s = Summary::compute(t, &en);
        assert_eq!(str_of(field(row, "run_id")), t.meta.id);
        assert_eq!(f64_of(field(row, "total_j")), s.total.map(|e| e.joules));
        assert_eq!(
            f64_of(field(row, "j_per_generated_token")),
            s.j_per_generated_token
        );
        assert_eq!(
            field(row, "generated_tokens"),
            &Field::Int(s.generated_tokens as i32)
        );
        assert_eq!(
            field(row, "seed"),
            &Field::ULong(t.meta.settings.seed),
            "seed is unsigned"
        );
        assert!(
            matches!(field(row, "created_at"), Field::TimestampMillis(ms) if *ms == t.meta.created_at_ms)
        );
    }

    // Tokens: every token of each run; per run, the energies sum to the summary's.
    let tokens = rows(dir.path(), "tokens");
    assert_eq!(tokens.len(), a.tokens.len() + b.tokens.len());
    for t in [&a, &b] {
        let en = Energies::compute(t);
        let s = Summary::compute(t, &en);
        let mine: Vec<&Row> = tokens
            .iter()
            .filter(|r| str_of(field(r, "run_id")) == t.meta.id)
            .collect();
        let sum: f64 = mine
            .iter()
            .filter_map(|r| f64_of(field(r, "energy_j")))
            .sum();
        let want: f64 = s
            .tokens
            .iter()
            .filter_map(|r| r.energy.map(|e| e.joules))
            .sum();
        assert!((sum - want).abs() <= 1e-9 * want.abs(), "{sum} vs {want}");
    }

    // Spans: sections and model spans; the phases' energies are the summary's.
    let spans = rows(dir.path(), "spans");
    assert_eq!(
        spans.len(),
        a.sections.len() + a.spans.len() + b.sections.len() + b.spans.len()
    );
    let en = Energies::compute(&a);
    let s = Summary::compute(&a, &en);
    for phase in &s.phases {
        let got: f64 = spans
            .iter()
            .filter(|r| {
                str_of(field(r, "run_id")) == a.meta.id
                    && str_of(field(r, "kind")) == "phase"
                    && str_of(field(r, "phase")) == phase.name
            })
            .filter_map(|r| f64_of(field(r, "energy_j")))
            .sum();
        let want = phase.joules().unwrap();
        assert!(
            (got - want).abs() <= 1e-9 * want,
            "{}: {got} vs {want}",
            phase.name
        );
    }
    let ops = spans
        .iter()
        .filter(|r| str_of(field(r, "kind")) == "operation")
        .count();
    assert!(ops > 0, "deep depth has operations");
    let with_flops: Vec<f64> = spans
        .iter()
        .filter(|r| str_of(field(r, "run_id")) == a.meta.id)
        .filter_map(|r| f64_of(field(r, "flops")))
        .collect();
    assert_eq!(
        with_flops.len(),
        a.spans.len(),
        "every model span of a has its FLOPs"
    );
    assert_eq!(with_flops[0], 1000.0);

    let metrics = rows(dir.path(), "metrics");
    let want: usize = [&a, &b]
        .iter()
        .flat_map(|t| &t.metrics)
        .map(|m| m.len())
        .sum();
    assert_eq!(metrics.len(), want);
    let power = rows(dir.path(), "power");
    let want: usize = [&a, &b]
        .iter()
        .flat_map(|t| &t.samples)
        .map(|s| s.values.iter().flatten().count())
        .sum();
    assert_eq!(power.len(), want);
    assert_eq!(
        first.rows,
        [
            2,
            tokens.len() as u64,
            spans.len() as u64,
            metrics.len() as u64,
            power.len() as u64
        ]
    );
    drop(ds);

    // Append: one new run and one already there. Old files are not touched.
    let before: Vec<_> = std::fs::read_dir(dir.path().join("tokens"))
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            (p.clone(), std::fs::read(p).unwrap())
        })
        .collect();
    let c = trace("00000000000000cc", 4, Depth::Module);
    let mut ds = Dataset::open(dir.path()).unwrap();
    assert_eq!(ds.len(), 2);
    let mut batch = ds.batch().unwrap();
    assert!(!batch.add(&a).unwrap(), "already in the dataset");
    assert!(batch.add(&c).unwrap());
    let second = batch.commit().unwrap();
    assert_eq!(second.runs, ["00000000000000cc"]);
    assert_eq!(rows(dir.path(), "runs").len(), 3);
    assert_eq!(
        rows(dir.path(), "tokens").len(),
        tokens.len() + c.tokens.len()
    );
    for (p, bytes) in before {
        assert_eq!(
            std::fs::read(&p).unwrap(),
            bytes,
            "{} rewritten",
            p.display()
        );
    }

    // Nothing new: nothing written.
    let mut batch = ds.batch().unwrap();
    assert!(!batch.add(&c).unwrap());
    assert_eq!(batch.commit().unwrap().runs.len(), 0);
    assert_eq!(
        std::fs::read_dir(dir.path().join("runs")).unwrap().count(),
        2
    );
}

#[test]
fn one_writer_at_a_time_and_interrupted_exports_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut ds = Dataset::open(dir.path()).unwrap();
    let err = Dataset::open(dir.path()).unwrap_err().to_string();
    assert!(err.contains("another export"), "{err}");

    // A batch dropped before commit (an error, Ctrl-C unwinding) leaves no file.
    let mut batch = ds.batch().unwrap();
    batch
        .add(&trace("00000000000000aa", 3, Depth::Module))
        .unwrap();
    drop(batch);
    for (table, _) in TABLES {
        assert_eq!(
            std::fs::read_dir(dir.path().join(table)).unwrap().count(),
            0,
            "{table}"
        );
    }
    drop(ds);

    // A crash between renames: tokens of a batch whose runs file never arrived, and a
    // temporary file. Both go on the next open, and the run is exported again.
    std::fs::write(
        dir.path()
            .join("tokens/part-0000000000001-00000001.parquet"),
        b"x",
    )
    .unwrap();
    std::fs::write(
        dir.path()
            .join("spans/.part-0000000000001-00000001.parquet.tmp"),
        b"x",
    )
    .unwrap();
    let mut ds = Dataset::open(dir.path()).unwrap();
    assert_eq!(ds.removed.len(), 2, "{:?}", ds.removed);
    let mut batch = ds.batch().unwrap();
    assert!(
        batch
            .add(&trace("00000000000000aa", 3, Depth::Module))
            .unwrap()
    );
    batch.commit().unwrap();
    assert_eq!(rows(dir.path(), "runs").len(), 1);
}

/// The documented columns (docs/dataset.md) are the written ones, in order, with
/// their types and nullability.
#[test]
fn docs_list_every_column() {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/dataset.md"))
            .unwrap();
    for (table, cols) in TABLES {
        let head = format!("### `{table}`");
        let at = doc
            .find(&head)
            .unwrap_or_else(|| panic!("docs/dataset.md has no section {head}"));
        let section = &doc[at + head.len()..];
        let section = &section[..section.find("\n### ").unwrap_or(section.len())];
        let documented: Vec<(String, String, bool)> = section
            .lines()
            .filter(|l| l.starts_with("| `"))
            .map(|l| {
                let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                (
                    cells[1].trim_matches('`').to_string(),
                    cells[2].to_string(),
                    cells[3] == "yes",
                )
            })
            .collect();
        let written: Vec<(String, String, bool)> = cols
            .iter()
            .map(|c| (c.name.to_string(), c.ty.sql().to_string(), c.nullable))
            .collect();
        assert_eq!(documented, written, "table {table}");
    }
}
