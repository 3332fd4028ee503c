//! W1-limit: the physical limit of an append on this machine. pgbench runs exactly the SQL of
//! one `EventStore::append` (bench/pgbench/*.sql: create, submit and approve appends, weighted
//! 1:1:1 like W1's sequences) at W1's concurrency against a fresh, migrated event-store
//! database on the same PostgreSQL server, with prepared statements as sqlx uses them.

use crate::cpu::{CpuUse, PerUnit, Targets};
use anyhow::{bail, Context};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

const SCRIPTS: [(&str, &str); 3] = [
    ("create.sql", include_str!("../pgbench/create.sql")),
    ("submit.sql", include_str!("../pgbench/submit.sql")),
    ("approve.sql", include_str!("../pgbench/approve.sql")),
];

#[derive(Debug, Clone, Serialize)]
pub struct LimitResult {
    pub concurrency: usize,
    pub transactions: u64,
    pub tps: f64,
    pub latency_avg_ms: Option<f64>,
    pub failed: u64,
    pub cpu: CpuUse,
    pub cpu_per_transaction: Option<PerUnit>,
}

/// `--pgbench`, else `pgbench` on PATH, else the newest /usr/lib/postgresql/*/bin/pgbench.
pub fn find_pgbench(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(path) = explicit {
        return Some(path.to_owned());
    }
    if let Some(path) = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("pgbench"))
        .find(|candidate| candidate.is_file())
    {
        return Some(path);
    }
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.path().join("bin/pgbench"))
        .filter(|path| path.is_file())
        .collect();
    candidates.sort_by_key(|path| {
        path.components()
            .nth(4)
            .and_then(|c| c.as_os_str().to_str()?.parse::<u32>().ok())
            .unwrap_or(0)
    });
    candidates.pop()
}

/// Writes the scripts to `dir` and returns their paths.
pub fn write_scripts(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    SCRIPTS
        .iter()
        .map(|(name, text)| {
            let path = dir.join(name);
            std::fs::write(&path, text)?;
            Ok(path)
        })
        .collect()
}

fn parse_number(output: &str, prefix: &str) -> Option<f64> {
    output
        .lines()
        .find_map(|line| line.trim().strip_prefix(prefix))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|value| value.parse().ok())
}

pub async fn run(
    pgbench: &Path,
    scripts: &[PathBuf],
    database_url: &str,
    concurrency: usize,
    duration: Duration,
    cpu: &Targets,
    cores: usize,
) -> anyhow::Result<LimitResult> {
    let mut command = tokio::process::Command::new(pgbench);
    command
        .arg("--no-vacuum")
        .arg("--protocol=prepared")
        .arg(format!("--client={concurrency}"))
        .arg(format!("--jobs={}", concurrency.min(cores.max(1))))
        .arg(format!("--time={}", duration.as_secs().max(1)));
    for script in scripts {
        command.arg(format!("--file={}@1", script.display()));
    }
    command.arg(database_url).kill_on_drop(true);
    let before = cpu.sample();
    let output = command
        .output()
        .await
        .with_context(|| format!("cannot run {}", pgbench.display()))?;
    let after = cpu.sample();
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "pgbench failed: {}\n{}",
            String::from_utf8_lossy(&output.stderr),
            stdout
        );
    }
    let tps = parse_number(&stdout, "tps =").context("pgbench printed no tps")?;
    let transactions =
        parse_number(&stdout, "number of transactions actually processed:").unwrap_or(0.0) as u64;
    let failed = parse_number(&stdout, "number of failed transactions:").unwrap_or(0.0) as u64;
    let cpu_use = CpuUse::between(cpu, &before, &after, cores);
    Ok(LimitResult {
        concurrency,
        transactions,
        tps: crate::stats::round1(tps),
        latency_avg_ms: parse_number(&stdout, "latency average ="),
        failed,
        cpu_per_transaction: cpu_use.per_unit_ms(transactions as f64),
        cpu: cpu_use,
    })
}
