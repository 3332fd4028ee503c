//! A private broker per workload segment: the Tansu binary the local stack uses (installed by
//! `scripts/dev up`), with the same SQLite storage engine, on a free port, in a fresh
//! directory. Every segment starts from an empty broker, and a broker failure under load (see
//! BENCHMARKS.md) can neither spoil the next segment nor take down the local stack's broker.

use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct OwnBroker {
    child: Child,
    dir: PathBuf,
    pub addr: String,
}

/// `RINGIFLOW_TANSU_BIN`, else `$RINGIFLOW_CACHE/tools/bin/tansu`, else
/// `~/.cache/ringiflow/tools/bin/tansu` (where `scripts/dev up` installs it).
pub fn tansu_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("RINGIFLOW_TANSU_BIN") {
        return Some(PathBuf::from(path));
    }
    let cache = std::env::var_os("RINGIFLOW_CACHE")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache/ringiflow"))
        })?;
    let path = cache.join("tools/bin/tansu");
    path.is_file().then_some(path)
}

impl OwnBroker {
    pub async fn start(binary: &Path, dir: PathBuf) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let url = format!("tcp://127.0.0.1:{port}");
        let log = std::fs::File::create(dir.join("tansu.log"))?;
        let child = Command::new(binary)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            // Relative, so it lands in `dir` (Tansu resolves it against its working directory).
            .args(["--storage-engine", "sqlite://tansu.db"])
            .current_dir(&dir)
            .env(
                "RUST_LOG",
                std::env::var("RINGIFLOW_TANSU_LOG").unwrap_or_else(|_| "warn".to_owned()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let mut broker = Self {
            child,
            dir,
            addr: format!("127.0.0.1:{port}"),
        };
        let started = Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            if let Some(status) = broker.child.try_wait()? {
                bail!(
                    "the broker exited at start ({status}); see {}",
                    broker.dir.join("tansu.log").display()
                );
            }
            if started.elapsed() > Duration::from_secs(30) {
                broker.stop(false, true);
                bail!("the broker did not listen on {} within 30 s", broker.addr);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let db = broker.dir.join("tansu.db");
        tokio::task::spawn_blocking(move || {
            test_support::tansu::index_headers(&db, Duration::from_secs(30))
        })
        .await?
        .map_err(anyhow::Error::msg)?;
        Ok(broker)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The first panic the broker logged, if any.
    pub fn panic(&self) -> Option<String> {
        let log = std::fs::read_to_string(self.dir.join("tansu.log")).ok()?;
        let mut from_panic = log.lines().skip_while(|line| !line.contains("panicked at"));
        let location = from_panic.next()?.trim();
        let message = from_panic.next().unwrap_or_default().trim();
        Some(format!("{location} {message}"))
    }

    /// Kills the broker. Its directory stays with `keep`; with `keep_log` only its log does.
    pub fn stop(&mut self, keep: bool, keep_log: bool) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if keep {
            eprintln!("    broker files kept in {}", self.dir.display());
        } else if keep_log {
            for entry in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
                if entry.file_name() != "tansu.log" {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
            eprintln!(
                "    broker log kept: {}",
                self.dir.join("tansu.log").display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
