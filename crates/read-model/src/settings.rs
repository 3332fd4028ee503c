//! The read database connection, shared by query-svc and projector-svc so both read the same
//! flags and environment variables.

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
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
    /// PostgreSQL cancels a statement of a pooled connection that runs longer than this
    /// (`statement_timeout`; 0: never). A caller gives up after a few seconds; without this, its
    /// abandoned query would keep a connection and the database busy until it finished.
    #[arg(
        long,
        env = "RINGIFLOW_DATABASE_STATEMENT_TIMEOUT_MS",
        default_value_t = 5_000
    )]
    pub database_statement_timeout_ms: u64,
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
        self.pool_options(self.database_max_connections)
            .connect_with(self.connect_options(&self.read_database_url)?)
            .await
    }

    /// A pool of at most `max_connections` that gives up waiting for one after the same time
    /// as the read database's pool; [`DatabaseSettings::connect_options`] says where it connects.
    pub fn pool_options(&self, max_connections: u32) -> PgPoolOptions {
        PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(ACQUIRE_TIMEOUT)
    }

    /// How to connect to the database at `url` (the read database, or another one the same
    /// service reads, such as query-svc's event store) with this service's statement timeout.
    pub fn connect_options(&self, url: &str) -> Result<PgConnectOptions, sqlx::Error> {
        let options: PgConnectOptions = url.parse()?;
        Ok(options.options([(
            "statement_timeout",
            self.database_statement_timeout_ms.to_string(),
        )]))
    }

    /// Connects and brings the schema up to date: whichever of query-svc, the projector or one
    /// of its commands runs first finds a ready database (sqlx's migration lock serialises them).
    /// Migrations run on a connection of their own without the statement timeout, since
    /// building an index over a large table may rightly take longer than any query.
    pub async fn connect_migrated(&self) -> Result<PgPool, ConnectError> {
        let migrations = PgPoolOptions::new()
            .max_connections(1)
            .connect(&self.read_database_url)
            .await
            .map_err(ConnectError::Connect)?;
        let migrated = crate::migrate(&migrations).await;
        migrations.close().await;
        migrated.map_err(ConnectError::Migrate)?;
        self.connect().await.map_err(ConnectError::Connect)
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Settings {
        #[command(flatten)]
        database: DatabaseSettings,
    }

    #[test]
    fn statements_time_out_after_five_seconds_unless_configured() {
        let defaults = Settings::try_parse_from(["test"]).unwrap().database;
        assert_eq!(defaults.database_statement_timeout_ms, 5_000);
        let options = defaults
            .connect_options("postgres://ringiflow@127.0.0.1:55432/ringiflow_events")
            .unwrap();
        assert_eq!(options.get_options(), Some("-c statement_timeout=5000"));
        let off = Settings::try_parse_from(["test", "--database-statement-timeout-ms", "0"])
            .unwrap()
            .database;
        assert_eq!(off.database_statement_timeout_ms, 0);
        assert!(off.connect_options("not a url").is_err());
    }
}
