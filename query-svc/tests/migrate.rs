//! `query-svc migrate`, run as a deployment's migration step would: a process with only the
//! read database URL, against an empty database. And a service that skips migrating at start
//! refuses a database that was not migrated.

use clap::Parser;
use query_svc::{Application, Settings};
use tokio_util::sync::CancellationToken;

fn migrate(url: &str) -> std::process::Output {
    test_support::migrate_step(
        env!("CARGO_BIN_EXE_query-svc"),
        "RINGIFLOW_READ_DATABASE_URL",
        url,
    )
}

fn settings(url: &str, migrate_on_start: bool) -> Settings {
    Settings::parse_from([
        "query-svc",
        "--listen-addr",
        "127.0.0.1:0",
        "--read-database-url",
        url,
        "--migrate-on-start",
        &migrate_on_start.to_string(),
        // Not the built-in development secret, which deployments refuse.
        "--jwt-secret",
        "migrate-test-secret-0123456789abcdef0123",
    ])
}

#[tokio::test]
async fn migrate_applies_every_migration_to_an_empty_database_and_is_idempotent() {
    let (url, pool) = test_support::fresh_database("query_migrate").await;
    let all = read_model::MIGRATOR.iter().count();
    assert_eq!(
        read_model::pending_migrations(&pool).await.unwrap().len(),
        all
    );

    for run in 1..=2 {
        let output = migrate(&url);
        assert!(
            output.status.success(),
            "run {run}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    assert_eq!(
        read_model::pending_migrations(&pool).await.unwrap(),
        Vec::<i64>::new()
    );
    let workflows: i64 = sqlx::query_scalar("SELECT count(*) FROM workflows")
        .fetch_one(&pool)
        .await
        .expect("the read model's tables exist");
    assert_eq!(workflows, 0);
}

#[tokio::test]
async fn without_migrating_at_start_the_service_refuses_an_unmigrated_database() {
    let (url, pool) = test_support::fresh_database("query_unmigrated").await;

    let refused = Application::build(settings(&url, false), CancellationToken::new()).await;
    let message = format!(
        "{:#}",
        refused
            .err()
            .expect("an unmigrated read database is refused")
    );
    assert!(message.contains("migrate"), "{message}");
    assert_eq!(
        read_model::pending_migrations(&pool).await.unwrap().len(),
        read_model::MIGRATOR.iter().count(),
        "refusing left the schema alone"
    );

    assert!(migrate(&url).status.success());
    Application::build(settings(&url, false), CancellationToken::new())
        .await
        .expect("a migrated read database is accepted");
}
