//! `projector-svc migrate`, as the Helm chart's migration hook Job runs it: a process with only
//! the read database URL, against an empty database.

use clap::Parser;
use projector_svc::{Application, Settings};
use tokio_util::sync::CancellationToken;

fn migrate(url: &str) -> std::process::Output {
    test_support::migrate_step(
        env!("CARGO_BIN_EXE_projector-svc"),
        "RINGIFLOW_READ_DATABASE_URL",
        url,
    )
}

#[tokio::test]
async fn migrate_applies_every_migration_to_an_empty_database_and_is_idempotent() {
    let (url, pool) = test_support::fresh_database("projector_migrate").await;
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
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(stdout.contains("schema up to date"), "run {run}: {stdout}");
    }

    assert_eq!(
        read_model::pending_migrations(&pool).await.unwrap(),
        Vec::<i64>::new()
    );
}

#[tokio::test]
async fn without_migrating_at_start_the_projector_refuses_an_unmigrated_database() {
    let (url, pool) = test_support::fresh_database("projector_unmigrated").await;
    // The schema is checked before Kafka is touched, so no broker is needed to see the refusal.
    let settings = Settings::parse_from([
        "projector-svc",
        "--read-database-url",
        &url,
        "--migrate-on-start",
        "false",
        "--health-addr",
        "127.0.0.1:0",
        "--kafka-brokers",
        "127.0.0.1:1",
    ]);
    let refused = Application::build(settings, CancellationToken::new()).await;
    let message = format!(
        "{:#}",
        refused
            .err()
            .expect("an unmigrated read database is refused")
    );
    assert!(message.contains("RINGIFLOW_MIGRATE_ON_START"), "{message}");
    assert_eq!(
        read_model::pending_migrations(&pool).await.unwrap().len(),
        read_model::MIGRATOR.iter().count(),
        "refusing left the schema alone"
    );
}
