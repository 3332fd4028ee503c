//! Throwaway PostgreSQL databases for tests: each test gets a uniquely named database on the
//! server at `RINGIFLOW_TEST_DATABASE_URL`, so tests run in parallel without sharing state.
#![forbid(unsafe_code)]

pub mod tansu;

use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection, PgPool};

/// Runs `<program> migrate` as a deployment's migration step does (the Helm hook Job, the
/// compose migrate service): a process that knows nothing but `url_variable=url`, none of the
/// caller's other RINGIFLOW_* settings.
pub fn migrate_step(program: &str, url_variable: &str, url: &str) -> std::process::Output {
    let mut command = std::process::Command::new(program);
    for (name, _) in std::env::vars() {
        if name.starts_with("RINGIFLOW_") {
            command.env_remove(name);
        }
    }
    command
        .arg("migrate")
        .env(url_variable, url)
        .output()
        .unwrap_or_else(|e| panic!("run {program} migrate: {e}"))
}

/// The maintenance database URL of the test server (`scripts/test` starts it).
pub fn server_url() -> String {
    std::env::var("RINGIFLOW_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://ringiflow@127.0.0.1:55433/postgres".to_owned())
}

/// `url` with its database name replaced by `database`.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let root = base.rsplit_once('/').map_or(base, |(root, _)| root);
    match query {
        Some(query) => format!("{root}/{database}?{query}"),
        None => format!("{root}/{database}"),
    }
}

/// Creates a new empty database named `<prefix>_<random>` and returns its URL and a pool.
pub async fn fresh_database(prefix: &str) -> (String, PgPool) {
    let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
    let server = server_url();
    let mut admin = PgConnection::connect(&server).await.unwrap_or_else(|e| {
        panic!("cannot reach test PostgreSQL at {server} (run scripts/test): {e}")
    });
    sqlx::query(&format!(r#"CREATE DATABASE "{name}""#))
        .execute(&mut admin)
        .await
        .expect("create test database");
    let url = with_database(&server, &name);
    let pool = PgPoolOptions::new()
        .max_connections(40)
        .connect(&url)
        .await
        .expect("connect to the new test database");
    (url, pool)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_name_is_replaced_and_options_kept() {
        assert_eq!(
            with_database("postgres://u@h:1/postgres", "x"),
            "postgres://u@h:1/x"
        );
        assert_eq!(
            with_database("postgres://u@h:1/postgres?sslmode=disable", "x"),
            "postgres://u@h:1/x?sslmode=disable"
        );
    }
}

/// Events as the store records them, for tests that feed projections or stores directly.
pub mod events {
    use chrono::{DateTime, Utc};
    use uuid::Uuid;
    use workflow_domain::{
        Description, DisplayName, EventMetadata, Priority, RecordedEvent, Route, Title, UserId,
        WorkflowEvent,
    };

    /// Alice's draft 「出張申請」, routed to bob.
    pub fn created() -> WorkflowEvent {
        WorkflowEvent::Created {
            title: Title::parse("title", "出張申請").unwrap(),
            description: Description::parse("description", "").unwrap(),
            priority: Priority::Medium,
            applicant_id: UserId::parse("user", "alice").unwrap(),
            applicant_name: DisplayName::parse("name", "アリス").unwrap(),
            route: Route::of_users("route", ["bob"]).unwrap(),
            definition: None,
            due_date: None,
        }
    }

    /// `event` as version `version` of workflow `id` of tenant `acme`, by alice, one second
    /// after the previous version.
    pub fn recorded(id: Uuid, version: i64, event: WorkflowEvent) -> RecordedEvent<WorkflowEvent> {
        RecordedEvent {
            event_id: Uuid::new_v4(),
            position: version,
            aggregate_type: "workflow".into(),
            aggregate_id: id,
            version,
            occurred_at: DateTime::<Utc>::from_timestamp(1_778_400_000 + version, 0).unwrap(),
            metadata: EventMetadata {
                tenant_id: "acme".into(),
                user_id: "alice".into(),
                correlation_id: Uuid::new_v4(),
                causation_id: Uuid::new_v4(),
                traceparent: None,
            },
            event,
        }
    }
}
