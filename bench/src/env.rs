//! What the numbers were measured on: the machine, the versions and the database settings.

use serde::Serialize;
use sqlx::PgPool;
use std::path::Path;
use std::process::Command;

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub cpu_model: String,
    pub memory_gib: f64,
    /// 1/5/15-minute load averages when the run started: other work on a shared machine.
    pub load_average_at_start: String,
    pub kernel: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Versions {
    pub postgres: String,
    pub rustc: String,
    pub git_commit: String,
    /// Tracked files differ from the commit.
    pub git_dirty: bool,
    pub build_profile: &'static str,
    pub pgbench: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PostgresSettings {
    pub fsync: String,
    pub synchronous_commit: String,
    pub shared_buffers: String,
    pub max_connections: String,
    pub wal_level: String,
}

pub fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find_map(|line| {
            line.strip_prefix("model name")
                .and_then(|rest| rest.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_kib: f64 = meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .unwrap_or(0.0);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load_average_at_start = load
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_owned();
    Machine {
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        cpu_model,
        memory_gib: crate::stats::round1(memory_kib / 1024.0 / 1024.0),
        load_average_at_start,
        kernel,
    }
}

fn command_output(program: &str, args: &[&str], dir: &Path) -> Option<String> {
    let output = Command::new(program)
        .args(args)
        .current_dir(dir)
        // Never take git's optional index lock: reading must not change the repository.
        .env("GIT_OPTIONAL_LOCKS", "0")
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

pub async fn versions(pool: &PgPool, workspace: &Path, pgbench: Option<&Path>) -> Versions {
    let postgres = sqlx::query_scalar::<_, String>("SELECT version()")
        .fetch_one(pool)
        .await
        .unwrap_or_else(|e| format!("unknown ({e})"));
    let git_commit = command_output("git", &["rev-parse", "HEAD"], workspace)
        .unwrap_or_else(|| "unknown".to_owned());
    let git_dirty = command_output(
        "git",
        &["status", "--porcelain", "--untracked-files=no"],
        workspace,
    )
    .is_some_and(|out| !out.is_empty());
    let pgbench =
        pgbench.and_then(|path| command_output(&path.to_string_lossy(), &["--version"], workspace));
    Versions {
        postgres,
        rustc: env!("BENCH_RUSTC_VERSION").to_owned(),
        git_commit,
        git_dirty,
        build_profile: if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        pgbench,
    }
}

pub async fn postgres_settings(pool: &PgPool) -> PostgresSettings {
    let setting = |name: &'static str| async move {
        sqlx::query_scalar::<_, String>("SELECT current_setting($1)")
            .bind(name)
            .fetch_one(pool)
            .await
            .unwrap_or_else(|_| "?".to_owned())
    };
    PostgresSettings {
        fsync: setting("fsync").await,
        synchronous_commit: setting("synchronous_commit").await,
        shared_buffers: setting("shared_buffers").await,
        max_connections: setting("max_connections").await,
        wal_level: setting("wal_level").await,
    }
}
