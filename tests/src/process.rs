//! Services and brokers as real OS processes, for tests that kill them (`SIGKILL`, no goodbye)
//! and start them again.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A binary of this workspace, built next to the test executable (`scripts/test` builds them).
pub fn workspace_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let path = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir")
        .join(name);
    assert!(
        path.exists(),
        "{} is not built; run `cargo build --workspace --bins` first",
        path.display()
    );
    path
}

/// The Tansu broker binary `scripts/test` installs.
pub fn tansu_binary() -> PathBuf {
    std::env::var_os("RINGIFLOW_TANSU_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| "/root".into());
            home.join(".cache/ringiflow/tools/bin/tansu")
        })
}

/// A free TCP port on loopback (bound once and released; good enough for tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub async fn wait_for_port(port: u16, what: &str) {
    crate::eventually(&format!("{what} listening on {port}"), || async move {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()
            .map(|_| ())
    })
    .await;
}

/// A process that can be killed and started again with the same command line.
pub struct Service {
    name: String,
    program: PathBuf,
    args: Vec<String>,
    env: HashMap<String, String>,
    dir: Option<PathBuf>,
    child: Option<Child>,
}

impl Service {
    pub fn new(name: &str, program: PathBuf, args: &[&str], env: &[(&str, &str)]) -> Self {
        Self {
            name: name.to_owned(),
            program,
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            dir: None,
            child: None,
        }
    }

    pub fn in_dir(mut self, dir: PathBuf) -> Self {
        self.dir = Some(dir);
        self
    }

    pub fn start(&mut self) {
        assert!(self.child.is_none(), "{} is already running", self.name);
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            // Every service of the suite signs and verifies with the public development secret.
            .env("RINGIFLOW_ALLOW_DEV_JWT_SECRET", "true")
            .envs(&self.env)
            .stdin(Stdio::null());
        if std::env::var_os("TEST_LOG").is_none() {
            command.stdout(Stdio::null()).stderr(Stdio::null());
        }
        if let Some(dir) = &self.dir {
            command.current_dir(dir);
        }
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.name));
        self.child = Some(child);
    }

    /// SIGKILL: the process gets no chance to flush, commit or say goodbye.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A Tansu broker of the test's own, on its own port and storage, so the test may stop it.
pub struct Broker {
    pub port: u16,
    pub process: Service,
    _storage: TempDir,
}

impl Broker {
    pub async fn start() -> Self {
        let port = free_port();
        let storage = TempDir::new("broker");
        let url = format!("tcp://127.0.0.1:{port}");
        let mut process = Service::new(
            "tansu",
            tansu_binary(),
            &[
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
                "--storage-engine",
                "sqlite://tansu.db",
            ],
            &[],
        )
        .in_dir(storage.0.clone());
        process.start();
        wait_for_port(port, "broker").await;
        test_support::tansu::index_headers(&storage.0.join("tansu.db"), Duration::from_secs(30))
            .expect("the broker's header index");
        Self {
            port,
            process,
            _storage: storage,
        }
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn stop(&mut self) {
        self.process.kill();
    }

    pub async fn restart(&mut self) {
        self.process.start();
        wait_for_port(self.port, "broker").await;
        // The port opens before storage is ready on a slow machine; a moment more is harmless.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "ringiflow-{prefix}-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
