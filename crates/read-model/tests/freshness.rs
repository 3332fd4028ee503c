//! Read-your-writes against a real PostgreSQL: a reader waiting for a version is woken by the
//! projection's commit, and one asking for a version that never comes is answered as stale.

use read_model::freshness::Freshness;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;
use test_support::events::{created, recorded as event};
use uuid::Uuid;
use workflow_domain::WorkflowEvent;

async fn version(pool: &sqlx::PgPool, id: Uuid) -> Result<Option<i64>, sqlx::Error> {
    read_model::stored_version(pool, id).await
}

#[tokio::test]
async fn a_waiting_reader_sees_the_version_once_it_is_applied_and_otherwise_is_told_it_is_stale() {
    let (_, pool) = test_support::fresh_database("freshness").await;
    read_model::migrate(&pool).await.unwrap();
    let freshness = Freshness::listen(&pool).await.unwrap();
    let id = Uuid::new_v4();
    projection::apply::<read_model::Workflows>(&pool, &event(id, 1, created()))
        .await
        .unwrap();

    // Already there: answered at once, not stale.
    let now = freshness
        .at_least(id, 1, Duration::from_secs(5), || version(&pool, id), |v| *v)
        .await
        .unwrap();
    assert_eq!((now.value, now.stale), (Some(1), false));

    // Applied while the reader waits: the commit's notification wakes it.
    let writer = {
        let pool = pool.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            projection::apply::<read_model::Workflows>(
                &pool,
                &event(id, 2, WorkflowEvent::Submitted {}),
            )
            .await
            .unwrap();
        })
    };
    let waited = freshness
        .at_least(id, 2, Duration::from_secs(5), || version(&pool, id), |v| *v)
        .await
        .unwrap();
    writer.await.unwrap();
    assert_eq!((waited.value, waited.stale), (Some(2), false));

    // Never applied: the best answer there is, marked stale.
    let stale = freshness
        .at_least(
            id,
            9,
            Duration::from_millis(300),
            || version(&pool, id),
            |v| *v,
        )
        .await
        .unwrap();
    assert_eq!((stale.value, stale.stale), (Some(2), true));

    // A workflow not projected yet counts as version 0.
    let missing_id = Uuid::new_v4();
    let missing = freshness
        .at_least(
            missing_id,
            1,
            Duration::from_millis(100),
            || version(&pool, missing_id),
            |v| *v,
        )
        .await
        .unwrap();
    assert_eq!((missing.value, missing.stale), (None, true));
}

/// A fresh read model with workflows `ids` created, and the process's listener on it.
async fn read_model_with(name: &str, ids: &[Uuid]) -> (sqlx::PgPool, Freshness) {
    let (_, pool) = test_support::fresh_database(name).await;
    read_model::migrate(&pool).await.unwrap();
    let freshness = Freshness::listen(&pool).await.unwrap();
    for id in ids {
        projection::apply::<read_model::Workflows>(&pool, &event(*id, 1, created()))
            .await
            .unwrap();
    }
    (pool, freshness)
}

/// Submits each workflow of `ids` (its version 2), in order, 200 ms apart.
fn submit_later(pool: &sqlx::PgPool, ids: Vec<Uuid>) -> tokio::task::JoinHandle<()> {
    let pool = pool.clone();
    tokio::spawn(async move {
        for id in ids {
            tokio::time::sleep(Duration::from_millis(200)).await;
            projection::apply::<read_model::Workflows>(
                &pool,
                &event(id, 2, WorkflowEvent::Submitted {}),
            )
            .await
            .unwrap();
        }
    })
}

#[tokio::test]
async fn a_waiting_reader_reads_again_only_when_its_own_workflow_changes() {
    let (mine, other) = (Uuid::new_v4(), Uuid::new_v4());
    let (pool, freshness) = read_model_with("freshness_keyed", &[mine, other]).await;
    // Another workflow's commit first: it must not make the reader read again.
    let writer = submit_later(&pool, vec![other, mine]);
    let reads = AtomicUsize::new(0);
    let waited = freshness
        .at_least(
            mine,
            2,
            Duration::from_secs(5),
            || {
                reads.fetch_add(1, SeqCst);
                version(&pool, mine)
            },
            |v| *v,
        )
        .await
        .unwrap();
    writer.await.unwrap();
    assert_eq!((waited.value, waited.stale), (Some(2), false));
    assert_eq!(
        reads.load(SeqCst),
        2,
        "one read before waiting, one after its own workflow's commit"
    );
}

#[tokio::test]
async fn a_reader_that_cannot_see_the_announced_version_reads_once_per_announcement() {
    let id = Uuid::new_v4();
    let (pool, freshness) = read_model_with("freshness_foreign", &[id]).await;
    let writer = submit_later(&pool, vec![id]);
    let reads = AtomicUsize::new(0);
    // Another tenant's reader of the same id: its reads never find the workflow.
    let waited = freshness
        .at_least(
            id,
            2,
            Duration::from_millis(600),
            || {
                reads.fetch_add(1, SeqCst);
                async { Ok::<Option<i64>, sqlx::Error>(None) }
            },
            |v| *v,
        )
        .await
        .unwrap();
    writer.await.unwrap();
    assert_eq!((waited.value, waited.stale), (None, true));
    assert_eq!(
        reads.load(SeqCst),
        2,
        "one read before waiting, one after the announcement, none in a loop"
    );
}

#[tokio::test]
async fn a_lost_listener_connection_wakes_every_waiting_reader() {
    let id = Uuid::new_v4();
    let (pool, freshness) = read_model_with("freshness_lost", &[id]).await;
    // Version 2 lands while the listener is away: its notification is lost. Written without
    // one, then the listener's connection is cut, which is what the reader must be told about.
    let writer = {
        let pool = pool.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            sqlx::query("UPDATE workflows SET version = 2 WHERE id = $1")
                .bind(id)
                .execute(&pool)
                .await
                .unwrap();
            let terminated: Vec<bool> = sqlx::query_scalar(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                 WHERE datname = current_database() AND query LIKE 'LISTEN%'",
            )
            .fetch_all(&pool)
            .await
            .unwrap();
            assert_eq!(terminated, [true], "one listener");
        })
    };
    let waited = freshness
        .at_least(id, 2, Duration::from_secs(5), || version(&pool, id), |v| *v)
        .await
        .unwrap();
    writer.await.unwrap();
    assert_eq!(
        (waited.value, waited.stale),
        (Some(2), false),
        "woken by the lost connection, not answered stale when the wait ran out"
    );
}
