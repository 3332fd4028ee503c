//! The one fix RingiFlow applies to a Tansu broker's SQLite storage wherever it starts one: the
//! index its schema lacks. Without it every consumed record scans every stored header (each
//! event carries about fifteen), so fetches slow down as the log grows until they outlive the
//! client's request timeout. `scripts/lib.sh` does the same for the brokers the scripts start.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

pub const HEADER_INDEX: &str = "header_topition_offset_id";

fn sqlite(db: &Path, sql: &str) -> Result<String, String> {
    let output = Command::new("sqlite3")
        .args(["-cmd", ".timeout 10000"])
        .arg(db)
        .arg(sql)
        .output()
        .map_err(|e| format!("cannot run sqlite3 (scripts/test installs it): {e}"))?;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

fn count(db: &Path, kind: &str, name: &str) -> usize {
    sqlite(
        db,
        &format!("SELECT count(*) FROM sqlite_master WHERE type = '{kind}' AND name = '{name}'"),
    )
    .ok()
    .and_then(|n| n.parse().ok())
    .unwrap_or(0)
}

/// Waits (at most `wait`) for the broker to create its schema in `db`, then adds the header
/// index and checks that it is there.
pub fn index_headers(db: &Path, wait: Duration) -> Result<(), String> {
    let started = Instant::now();
    while count(db, "table", "header") == 0 {
        if started.elapsed() > wait {
            return Err(format!(
                "no broker schema in {} after {wait:?}",
                db.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    sqlite(
        db,
        &format!("CREATE INDEX IF NOT EXISTS {HEADER_INDEX} ON header (topition, offset_id)"),
    )?;
    match count(db, "index", HEADER_INDEX) {
        1 => Ok(()),
        _ => Err(format!("the header index is missing from {}", db.display())),
    }
}
