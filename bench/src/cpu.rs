//! Where the CPU goes during a measurement: this process (the in-process services *and* the load
//! generator), the PostgreSQL server under test (postmaster, live backends and the backends that
//! exited meanwhile, via the postmaster's reaped-children counters), the broker, and pgbench
//! (a child of this process). Read from /proc; on a machine without it everything reads 0.

use serde::Serialize;
use std::time::Instant;

#[derive(Debug, Clone, Copy, Default)]
struct Ticks {
    /// utime + stime of the process itself.
    own: u64,
    /// cutime + cstime: children it has waited for.
    children: u64,
}

fn read_stat(pid: &str) -> Option<(String, u64, Ticks)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // comm is in parentheses and may contain spaces; everything after the last ')' splits.
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat[open + 1..close].to_owned();
    let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
    // fields[0] is field 3 (state): ppid is field 4, utime..cstime are fields 14..17.
    let field = |n: usize| {
        fields
            .get(n - 3)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let ticks = Ticks {
        own: field(14) + field(15),
        children: field(16) + field(17),
    };
    Some((comm, field(4), ticks))
}

fn all_pids() -> Vec<String> {
    std::fs::read_dir("/proc")
        .map(|dir| {
            dir.filter_map(|entry| entry.ok())
                .filter_map(|entry| entry.file_name().into_string().ok())
                .filter(|name| name.bytes().all(|b| b.is_ascii_digit()))
                .collect()
        })
        .unwrap_or_default()
}

/// Which processes to account.
#[derive(Debug, Clone)]
pub struct Targets {
    /// The postmaster of the PostgreSQL under test (when it runs on this machine).
    pub postmaster: Option<u32>,
    /// The broker process (when it runs on this machine).
    pub broker: Option<u32>,
    pub clock_ticks: f64,
}

impl Targets {
    /// `backend_pid` is `pg_backend_pid()` of a connection to the server under test; its parent
    /// is the postmaster. The broker is the `tansu` (or `java`, for Apache Kafka) process whose
    /// command line names `broker_port`.
    pub fn discover(backend_pid: Option<i32>, broker_port: Option<u16>) -> Self {
        let postmaster = backend_pid
            .and_then(|pid| read_stat(&pid.to_string()))
            .map(|(_, ppid, _)| ppid as u32)
            .filter(|ppid| *ppid > 1);
        let broker = broker_port.and_then(|port| {
            all_pids().into_iter().find_map(|pid| {
                let (comm, _, _) = read_stat(&pid)?;
                if comm != "tansu" && comm != "java" {
                    return None;
                }
                let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
                let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
                cmdline
                    .contains(&format!(":{port}"))
                    .then(|| pid.parse().ok())
                    .flatten()
            })
        });
        let clock_ticks = std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0);
        Self {
            postmaster,
            broker,
            clock_ticks,
        }
    }

    /// The same, accounting `broker` (a private broker's pid) as the broker.
    pub fn with_broker(&self, broker: Option<u32>) -> Self {
        Self {
            broker: broker.or(self.broker),
            ..self.clone()
        }
    }

    pub fn sample(&self) -> Sample {
        let own = read_stat("self").map(|(_, _, t)| t).unwrap_or_default();
        let postgres = self.postmaster.map_or(0, |postmaster| {
            let master = read_stat(&postmaster.to_string())
                .map(|(_, _, t)| t)
                .unwrap_or_default();
            let live_children: u64 = all_pids()
                .iter()
                .filter_map(|pid| read_stat(pid))
                .filter(|(_, ppid, _)| *ppid == u64::from(postmaster))
                .map(|(_, _, t)| t.own)
                .sum();
            master.own + master.children + live_children
        });
        let broker = self
            .broker
            .and_then(|pid| read_stat(&pid.to_string()))
            .map_or(0, |(_, _, t)| t.own);
        Sample {
            at: Instant::now(),
            this_process: own.own,
            children: own.children,
            postgres,
            broker,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Sample {
    at: Instant,
    this_process: u64,
    children: u64,
    postgres: u64,
    broker: u64,
}

/// CPU seconds spent between two samples, and the share of the machine that is.
#[derive(Debug, Clone, Copy, Serialize, Default)]
pub struct CpuUse {
    pub wall_s: f64,
    /// This process: the services under test plus the load generator.
    pub bench_process_s: f64,
    /// PostgreSQL server (all its processes).
    pub postgres_s: f64,
    pub broker_s: f64,
    /// Child processes of the bench (pgbench).
    pub pgbench_s: f64,
    /// Sum of the above divided by (wall time × cores): 1.0 means every core was busy with us.
    pub machine_share: f64,
}

impl CpuUse {
    pub fn between(targets: &Targets, before: &Sample, after: &Sample, cores: usize) -> Self {
        let secs = |ticks: u64| ticks as f64 / targets.clock_ticks;
        Self::of(
            after.at.duration_since(before.at).as_secs_f64(),
            secs(after.this_process.saturating_sub(before.this_process)),
            secs(after.postgres.saturating_sub(before.postgres)),
            secs(after.broker.saturating_sub(before.broker)),
            secs(after.children.saturating_sub(before.children)),
            cores,
        )
    }

    /// The CPU of two intervals together (`cores` as in [`Self::between`]).
    pub fn plus(&self, other: &CpuUse, cores: usize) -> Self {
        Self::of(
            self.wall_s + other.wall_s,
            self.bench_process_s + other.bench_process_s,
            self.postgres_s + other.postgres_s,
            self.broker_s + other.broker_s,
            self.pgbench_s + other.pgbench_s,
            cores,
        )
    }

    fn of(
        wall_s: f64,
        bench_process_s: f64,
        postgres_s: f64,
        broker_s: f64,
        pgbench_s: f64,
        cores: usize,
    ) -> Self {
        let total = bench_process_s + pgbench_s + postgres_s + broker_s;
        let round = crate::stats::round3;
        Self {
            wall_s: round(wall_s),
            bench_process_s: round(bench_process_s),
            postgres_s: round(postgres_s),
            broker_s: round(broker_s),
            pgbench_s: round(pgbench_s),
            machine_share: if wall_s > 0.0 {
                round(total / (wall_s * cores.max(1) as f64))
            } else {
                0.0
            },
        }
    }

    /// CPU milliseconds per unit of work (command, transaction, event), by component.
    pub fn per_unit_ms(&self, units: f64) -> Option<PerUnit> {
        (units > 0.0).then(|| {
            let ms = |s: f64| crate::stats::round3(s * 1000.0 / units);
            PerUnit {
                bench_process_ms: ms(self.bench_process_s),
                postgres_ms: ms(self.postgres_s),
                broker_ms: ms(self.broker_s),
                pgbench_ms: ms(self.pgbench_s),
            }
        })
    }
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct PerUnit {
    pub bench_process_ms: f64,
    pub postgres_ms: f64,
    pub broker_ms: f64,
    pub pgbench_ms: f64,
}
