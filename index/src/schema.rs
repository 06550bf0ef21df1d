//! The index's schema: its migrations, and opening a database with them applied.

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;

/// Schema migrations; `user_version` is the number applied.
pub(crate) const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    created_at_ms INTEGER NOT NULL,
    prompt TEXT NOT NULL,
    generated_text TEXT,
    model TEXT NOT NULL,
    architecture TEXT NOT NULL,
    dtype TEXT NOT NULL,
    model_hash TEXT NOT NULL,
    depth TEXT NOT NULL,
    device TEXT NOT NULL,
    hostname TEXT NOT NULL,
    cpu TEXT NOT NULL,
    os TEXT NOT NULL,
    source TEXT NOT NULL,
    source_kind TEXT NOT NULL,
    resolution_ns INTEGER NOT NULL,
    duration_ns INTEGER NOT NULL,
    ttft_ns INTEGER,
    prompt_tokens INTEGER NOT NULL,
    generated_tokens INTEGER NOT NULL,
    total_j REAL,
    dynamic_j REAL,
    avg_power_w REAL,
    decode_j_per_token REAL,
    j_per_generated_token REAL,
    decode_tokens_per_s REAL,
    energy_label TEXT,
    experiment TEXT,
    complete INTEGER NOT NULL,
    imported INTEGER NOT NULL,
    trace_path TEXT NOT NULL,
    trace_sha256 TEXT NOT NULL,
    indexed_at_ms INTEGER NOT NULL
);
CREATE INDEX runs_created ON runs(created_at_ms);
CREATE INDEX runs_model ON runs(model);
CREATE INDEX runs_experiment ON runs(experiment);
CREATE TABLE run_tags (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    tag TEXT NOT NULL,
    PRIMARY KEY (run_id, tag)
);
CREATE TABLE sections (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    phase TEXT NOT NULL,
    name TEXT NOT NULL,
    count INTEGER NOT NULL,
    duration_ns INTEGER NOT NULL,
    energy_j REAL,
    label TEXT
);
CREATE INDEX sections_run ON sections(run_id);
CREATE TABLE tokens (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    step INTEGER NOT NULL,
    position INTEGER NOT NULL,
    token_id INTEGER NOT NULL,
    text TEXT NOT NULL,
    phase TEXT NOT NULL,
    duration_ns INTEGER NOT NULL,
    energy_j REAL,
    label TEXT
);
CREATE INDEX tokens_run ON tokens(run_id);
"#,
    r#"
ALTER TABLE runs ADD COLUMN stop_reason TEXT;
ALTER TABLE runs ADD COLUMN label_mix TEXT;
"#,
    r#"
ALTER TABLE runs ADD COLUMN group_id TEXT;
ALTER TABLE runs ADD COLUMN config INTEGER;
ALTER TABLE runs ADD COLUMN config_label TEXT;
ALTER TABLE runs ADD COLUMN repeat INTEGER;
ALTER TABLE runs ADD COLUMN run_order INTEGER;
CREATE INDEX runs_group ON runs(group_id);
"#,
];

/// Open and migrate. Returns the schema version found (newer ones are left alone).
pub(crate) fn setup(path: &Path) -> rusqlite::Result<(Connection, i64)> {
    let mut conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(30))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version as usize <= MIGRATIONS.len() {
        for (i, m) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            tx.execute_batch(m)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        }
        tx.commit()?;
    } else {
        tx.rollback()?;
    }
    Ok((conn, version))
}

/// Retry `f` while SQLite answers busy or locked. The busy timeout covers most waits,
/// but not all: two processes creating one index meet SQLITE_BUSY while one switches
/// the file to WAL, and that error comes back at once (seen in CI).
pub(crate) fn retry_busy<T>(mut f: impl FnMut() -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    const TRIES: u32 = 400;
    let mut n = 0;
    loop {
        match f() {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if n + 1 < TRIES
                    && matches!(
                        e.code,
                        rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                    ) =>
            {
                n += 1;
                std::thread::sleep(Duration::from_millis(25));
            }
            r => return r,
        }
    }
}
