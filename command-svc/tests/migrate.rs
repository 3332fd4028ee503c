//! `command-svc migrate`, run as the deployment's migration step runs it: a process with only
//! the event store URL, against an empty database. And a service that skips migrating at start
//! refuses a database that was not migrated.

use clap::Parser;
use command_svc::{Application, Settings};
use event_store::EventStore;
use tokio_util::sync::CancellationToken;

fn migrate(url: &str) -> std::process::Output {
    test_support::migrate_step(
        env!("CARGO_BIN_EXE_command-svc"),
        "RINGIFLOW_EVENT_STORE_URL",
        url,
    )
}

fn settings(url: &str, migrate_on_start: bool) -> Settings {
    Settings::parse_from([
        "command-svc",
        "--listen-addr",
        "127.0.0.1:0",
        "--event-store-url",
        url,
        "--relay-enabled",
        "false",
        "--migrate-on-start",
        &migrate_on_start.to_string(),
        // Not the built-in development secret, which deployments refuse.
        "--jwt-secret",
        "migrate-test-secret-0123456789abcdef0123",
    ])
}

#[tokio::test]
async fn migrate_applies_every_migration_to_an_empty_database_and_is_idempotent() {
    let (url, pool) = test_support::fresh_database("command_migrate").await;
    let store = EventStore::new(pool.clone(), &[workflow_domain::REGISTRATION]);
    assert_eq!(
        store.pending_migrations().await.unwrap().len(),
        event_store::MIGRATOR.iter().count(),
        "a fresh database has every migration pending"
    );

    for run in 1..=2 {
        let output = migrate(&url);
        assert!(
            output.status.success(),
            "run {run}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    assert_eq!(store.pending_migrations().await.unwrap(), Vec::<i64>::new());
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_name IN ('events', 'outbox')",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(tables, 2, "the event store's tables exist");
}

#[tokio::test]
async fn without_migrating_at_start_the_service_refuses_an_unmigrated_database() {
    let (url, pool) = test_support::fresh_database("command_unmigrated").await;

    let refused = Application::build(settings(&url, false), CancellationToken::new()).await;
    let message = format!(
        "{:#}",
        refused.err().expect("an unmigrated event store is refused")
    );
    assert!(message.contains("command-svc migrate"), "{message}");
    // Refusing left the schema alone.
    let store = EventStore::new(pool, &[workflow_domain::REGISTRATION]);
    assert_eq!(
        store.pending_migrations().await.unwrap().len(),
        event_store::MIGRATOR.iter().count()
    );

    assert!(migrate(&url).status.success());
    Application::build(settings(&url, false), CancellationToken::new())
        .await
        .expect("a migrated event store is accepted");
}
