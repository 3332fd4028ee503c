//! The read database connection, shared by query-svc and projector-svc so both read the same
//! flags and environment variables.

use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use std::time::Duration;

/// How long a caller waits for a pooled connection before giving up. Well below the 10 s
/// internal request timeout, so an exhausted pool surfaces as UNAVAILABLE, not as a deadline.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, clap::Args)]
pub struct DatabaseSettings {
    /// Apply the read database's migrations at start. Off where a separate step runs the
    /// `migrate` subcommand first (the Helm chart's hook Job); the service then only checks
    /// that it did.
    #[arg(long, env = "RINGIFLOW_MIGRATE_ON_START", default_value_t = true, action = clap::ArgAction::Set)]
    pub migrate_on_start: bool,
    /// PostgreSQL URL of the read database (not the event store).
    #[arg(
        long,
        env = "RINGIFLOW_READ_DATABASE_URL",
        default_value = "postgres://ringiflow@127.0.0.1:55432/ringiflow_read",
        hide_env_values = true
    )]
    pub read_database_url: String,
    /// Upper bound of pooled connections to the read database.
    #[arg(long, env = "RINGIFLOW_DATABASE_MAX_CONNECTIONS", default_value_t = 16)]
    pub database_max_connections: u32,
}

/// Start-up of a service: what `migrate_on_start` decides.
impl DatabaseSettings {
    /// Connects to a database whose schema is up to date: migrates it first
    /// ([`Self::connect_migrated`]) with `migrate_on_start`, or else refuses it while it lacks
    /// one of this build's migrations (the `migrate` step has not run).
    pub async fn connect_ready(&self) -> Result<PgPool, ConnectError> {
        if self.migrate_on_start {
            return self.connect_migrated().await;
        }
        let pool = self.connect().await.map_err(ConnectError::Connect)?;
        let pending = crate::pending_migrations(&pool)
            .await
            .map_err(ConnectError::Connect)?;
        if !pending.is_empty() {
            pool.close().await;
            return Err(ConnectError::NotMigrated(pending));
        }
        Ok(pool)
    }
}

impl DatabaseSettings {
    /// Connects eagerly, so a wrong URL fails at startup rather than on the first request.
    pub async fn connect(&self) -> Result<PgPool, sqlx::Error> {
        PgPoolOptions::new()
            .max_connections(self.database_max_connections)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect(&self.read_database_url)
            .await
    }

    /// Connects and brings the schema up to date: whichever of query-svc, the projector or one
    /// of its commands runs first finds a ready database (sqlx's migration lock serialises them).
    pub async fn connect_migrated(&self) -> Result<PgPool, ConnectError> {
        let pool = self.connect().await.map_err(ConnectError::Connect)?;
        crate::migrate(&pool).await.map_err(ConnectError::Migrate)?;
        Ok(pool)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot connect to the read database: {0}")]
    Connect(sqlx::Error),
    #[error("cannot migrate the read database: {0}")]
    Migrate(sqlx::migrate::MigrateError),
    #[error("the read database lacks migrations {0:?} and RINGIFLOW_MIGRATE_ON_START is false: run the `migrate` subcommand first")]
    NotMigrated(Vec<i64>),
}
