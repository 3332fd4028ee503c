//! The event store against a real PostgreSQL.

mod common;

use common::{append, append_new, created, metadata, readable, store};
use event_store::{AppendError, Prior, Snapshot};
use std::sync::Arc;
use uuid::Uuid;
use workflow_domain::{replay, Aggregate, Approver, StepNo, UserId, Workflow, WorkflowEvent};

#[tokio::test]
async fn appended_events_load_back_in_version_order_for_their_tenant_only() {
    let store = store().await;
    let id = Uuid::new_v4();
    let events = [created(), WorkflowEvent::Submitted {}];
    let record = append(&store, id, 0, &events, &metadata("acme", Uuid::new_v4()))
        .await
        .unwrap();
    assert_eq!(record.version, 2);

    let loaded = store
        .history::<workflow_domain::Workflow>("acme", id, 0)
        .await
        .unwrap();
    assert_eq!(loaded.iter().map(|e| e.version).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(
        loaded.iter().map(|e| e.event.clone()).collect::<Vec<_>>(),
        events
    );
    assert_eq!(
        loaded.iter().map(|e| e.event_id).collect::<Vec<_>>(),
        record.event_ids
    );
    assert!(store
        .history::<workflow_domain::Workflow>("other-tenant", id, 0)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn sixteen_concurrent_appends_at_one_version_have_exactly_one_winner() {
    let store = Arc::new(store().await);
    let id = Uuid::new_v4();
    append(
        &store,
        id,
        0,
        &[created()],
        &metadata("acme", Uuid::new_v4()),
    )
    .await
    .unwrap();

    let attempts = (0..16).map(|_| {
        let store = store.clone();
        tokio::spawn(async move {
            append(
                &store,
                id,
                1,
                &[WorkflowEvent::Submitted {}],
                &metadata("acme", Uuid::new_v4()),
            )
            .await
        })
    });
    let results: Vec<_> = futures::future::join_all(attempts)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let winners = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(winners, 1, "exactly one append may win: {results:?}");
    for result in &results {
        if let Err(error) = result {
            assert!(
                matches!(
                    error,
                    AppendError::Conflict {
                        expected: 1,
                        current_version: 2
                    }
                ),
                "losers see a conflict at the current version, got {error:?}"
            );
        }
    }
    let versions: Vec<i64> = store
        .history::<workflow_domain::Workflow>("acme", id, 0)
        .await
        .unwrap()
        .iter()
        .map(|e| e.version)
        .collect();
    assert_eq!(versions, [1, 2], "no duplicate and no missing version");
}

#[tokio::test]
async fn a_conflict_on_another_tenants_aggregate_reveals_none_of_its_history() {
    let store = store().await;
    let id = Uuid::new_v4();
    let events = [created(), WorkflowEvent::Submitted {}];
    append(&store, id, 0, &events, &metadata("acme", Uuid::new_v4()))
        .await
        .unwrap();
    // The other tenant sees no such workflow, decides to create it, and is told only that the
    // id is not available: no conflict, no version, nothing of the aggregate.
    let foreign = append(
        &store,
        id,
        0,
        &[created()],
        &metadata("globex", Uuid::new_v4()),
    )
    .await;
    assert!(
        matches!(foreign, Err(AppendError::IdUnavailable)),
        "{foreign:?}"
    );
    assert_eq!(
        store
            .history::<workflow_domain::Workflow>("acme", id, 0)
            .await
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test]
async fn a_reused_command_id_appends_nothing_and_returns_the_first_result() {
    let store = store().await;
    let id = Uuid::new_v4();
    let command_id = Uuid::new_v4();
    let first = append(&store, id, 0, &[created()], &metadata("acme", command_id))
        .await
        .unwrap();
    assert_eq!(
        store.find_command("acme", command_id).await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(
        store
            .find_command("other-tenant", command_id)
            .await
            .unwrap(),
        None
    );

    // A retry that raced past the lookup and decided again on the new state.
    let retry = append(
        &store,
        id,
        1,
        &[WorkflowEvent::Submitted {}],
        &metadata("acme", command_id),
    )
    .await;
    match retry {
        Err(AppendError::DuplicateCommand(record)) => assert_eq!(record, first),
        other => panic!("expected DuplicateCommand, got {other:?}"),
    }
    assert_eq!(
        store
            .history::<workflow_domain::Workflow>("acme", id, 0)
            .await
            .unwrap()
            .len(),
        1,
        "the retry appended nothing"
    );
}

#[tokio::test]
async fn the_outbox_hands_out_each_event_until_published_and_elects_one_relay() {
    let store = store().await;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    append(
        &store,
        a,
        0,
        &[created()],
        &metadata("acme", Uuid::new_v4()),
    )
    .await
    .unwrap();
    append(
        &store,
        b,
        0,
        &[created()],
        &metadata("acme", Uuid::new_v4()),
    )
    .await
    .unwrap();
    append(
        &store,
        a,
        1,
        &[WorkflowEvent::Submitted {}],
        &metadata("acme", Uuid::new_v4()),
    )
    .await
    .unwrap();

    let mut leader = store.try_lead().await.unwrap().expect("first relay leads");
    assert!(
        store.try_lead().await.unwrap().is_none(),
        "a second relay must wait"
    );

    let pending = readable(&mut leader, 10).await;
    let order: Vec<(Uuid, i64)> = pending
        .iter()
        .map(|e| (e.aggregate_id, e.version))
        .collect();
    assert_eq!(order, [(a, 1), (b, 1), (a, 2)]);
    // Rows the relay already handed to the broker are not read again while it waits on them.
    let after_in_flight: Vec<i64> = leader
        .pending(10, &[pending[0].position, pending[1].position])
        .await
        .unwrap()
        .into_iter()
        .map(|row| row.expect("readable").position)
        .collect();
    assert_eq!(after_in_flight, [pending[2].position]);
    leader
        .mark_published(&[pending[0].position, pending[1].position])
        .await
        .unwrap();
    let rest = readable(&mut leader, 10).await;
    assert_eq!(
        rest.iter()
            .map(|e| (e.aggregate_id, e.version))
            .collect::<Vec<_>>(),
        [(a, 2)]
    );

    drop(leader);
    // The lock dies with the leader's session.
    let mut taken_over = None;
    for _ in 0..50 {
        taken_over = store.try_lead().await.unwrap();
        if taken_over.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        taken_over.is_some(),
        "another relay takes over once the leader is gone"
    );
}

#[tokio::test]
async fn recorded_events_cannot_be_changed() {
    let store = store().await;
    let id = Uuid::new_v4();
    append(
        &store,
        id,
        0,
        &[created()],
        &metadata("acme", Uuid::new_v4()),
    )
    .await
    .unwrap();
    for statement in [
        "UPDATE events SET event_type = 'X'",
        "DELETE FROM events",
        "TRUNCATE events CASCADE",
    ] {
        let result = sqlx::query(statement).execute(store.pool()).await;
        assert!(result.is_err(), "{statement} must be refused");
    }
    assert_eq!(
        store
            .history::<workflow_domain::Workflow>("acme", id, 0)
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn load_after_a_version_returns_only_the_later_events() {
    let store = store().await;
    let id = Uuid::new_v4();
    let events = [created(), WorkflowEvent::Submitted {}];
    append(&store, id, 0, &events, &metadata("acme", Uuid::new_v4()))
        .await
        .unwrap();
    let later = store
        .history::<workflow_domain::Workflow>("acme", id, 1)
        .await
        .unwrap();
    assert_eq!(
        later
            .iter()
            .map(|e| (e.version, e.event.clone()))
            .collect::<Vec<_>>(),
        [(2, events[1].clone())]
    );
    assert!(store
        .history::<workflow_domain::Workflow>("acme", id, 2)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .history::<workflow_domain::Workflow>("other-tenant", id, 0)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn the_newest_snapshot_in_the_current_schema_is_loaded_for_its_own_tenant_only() {
    let store = store().await;
    let id = Uuid::new_v4();
    let bob = UserId::parse("a", "bob").unwrap();
    let events = [
        created(),
        WorkflowEvent::Submitted {},
        WorkflowEvent::StepAssigned {
            step: StepNo::FIRST,
            assignee: Approver::User(bob),
            due_at: None,
        },
    ];
    append(&store, id, 0, &events, &metadata("acme", Uuid::new_v4()))
        .await
        .unwrap();
    assert_eq!(
        store.load_snapshot::<Workflow>("acme", id).await.unwrap(),
        None,
        "none taken yet"
    );

    let after = |version: usize| Snapshot {
        version: version as i64,
        state: replay::<Workflow>(&events[..version])
            .unwrap()
            .expect("created"),
    };
    store.save_snapshot(id, &after(1)).await.unwrap();
    store.save_snapshot(id, &after(2)).await.unwrap();
    store
        .save_snapshot(id, &after(2))
        .await
        .expect("saving the same snapshot again is harmless");
    assert_eq!(
        store.load_snapshot::<Workflow>("acme", id).await.unwrap(),
        Some(after(2))
    );
    assert_eq!(
        store
            .load_snapshot::<Workflow>("other-tenant", id)
            .await
            .unwrap(),
        None
    );

    // Written by a build with another state shape: ignored in favour of an older usable one.
    sqlx::query("INSERT INTO snapshots (aggregate_id, version, state, state_schema) VALUES ($1, 3, '{}', 0)")
        .bind(id)
        .execute(store.pool())
        .await
        .unwrap();
    assert_eq!(
        store.load_snapshot::<Workflow>("acme", id).await.unwrap(),
        Some(after(2))
    );

    // Unreadable in the current schema: ignored, so the caller folds the events instead.
    sqlx::query("UPDATE snapshots SET state_schema = $2 WHERE aggregate_id = $1 AND version = 3")
        .bind(id)
        .bind(workflow_domain::Workflow::STATE_SCHEMA)
        .execute(store.pool())
        .await
        .unwrap();
    assert_eq!(
        store.load_snapshot::<Workflow>("acme", id).await.unwrap(),
        None
    );

    // A snapshot is of a recorded event: there is no version 4 to snapshot.
    assert!(store
        .save_snapshot(
            id,
            &Snapshot {
                version: 4,
                ..after(3)
            }
        )
        .await
        .is_err());
}

#[tokio::test]
async fn prior_reads_a_handled_command_or_the_snapshot_and_the_events_after_it() {
    let store = store().await;
    let id = Uuid::new_v4();
    let events = [created(), WorkflowEvent::Submitted {}];
    let command_id = Uuid::new_v4();
    let first = append(&store, id, 0, &events, &metadata("acme", command_id))
        .await
        .unwrap();
    let current = |prior: Prior<Workflow>| match prior {
        Prior::Current { snapshot, history } => (
            snapshot.map(|snapshot| snapshot.version),
            history.iter().map(|e| e.version).collect::<Vec<_>>(),
        ),
        Prior::Handled(record) => panic!("not a handled command: {record:?}"),
    };

    // The command id of the append: its record, and no load.
    match store
        .prior::<Workflow>("acme", command_id, id, true)
        .await
        .unwrap()
    {
        Prior::Handled(record) => assert_eq!(record, first),
        other => panic!("{other:?}"),
    }
    // Another tenant neither sees that command nor the aggregate.
    let foreign = store
        .prior::<Workflow>("globex", command_id, id, true)
        .await;
    assert_eq!(current(foreign.unwrap()), (None, vec![]));

    // A new command, no snapshot yet: every event.
    let new = Uuid::new_v4();
    let prior = store
        .prior::<Workflow>("acme", new, id, true)
        .await
        .unwrap();
    assert_eq!(current(prior), (None, vec![1, 2]));

    // With a snapshot at 1: it and the event after it; with snapshots off: every event.
    let snapshot = Snapshot {
        version: 1,
        state: replay::<Workflow>(&events[..1]).unwrap().expect("created"),
    };
    store.save_snapshot(id, &snapshot).await.unwrap();
    match store
        .prior::<Workflow>("acme", new, id, true)
        .await
        .unwrap()
    {
        Prior::Current {
            snapshot: Some(found),
            history,
        } => {
            assert_eq!(found, snapshot);
            assert_eq!(history.iter().map(|e| e.version).collect::<Vec<_>>(), [2]);
            assert_eq!(history[0].event, events[1]);
        }
        other => panic!("{other:?}"),
    }
    let prior = store
        .prior::<Workflow>("acme", new, id, false)
        .await
        .unwrap();
    assert_eq!(current(prior), (None, vec![1, 2]));

    // A snapshot this build cannot read: the whole history instead.
    sqlx::query("UPDATE snapshots SET state = '{}' WHERE aggregate_id = $1")
        .bind(id)
        .execute(store.pool())
        .await
        .unwrap();
    let prior = store
        .prior::<Workflow>("acme", new, id, true)
        .await
        .unwrap();
    assert_eq!(current(prior), (None, vec![1, 2]));

    // An aggregate that does not exist: nothing.
    let prior = store
        .prior::<Workflow>("acme", new, Uuid::new_v4(), true)
        .await
        .unwrap();
    assert_eq!(current(prior), (None, vec![]));
}

#[tokio::test]
async fn published_rows_past_retention_are_deleted_in_batches_and_unpublished_rows_never() {
    let store = store().await;
    for _ in 0..6 {
        append_new(&store).await;
    }
    let mut outbox = store.try_lead().await.unwrap().expect("leads");
    let positions: Vec<i64> = readable(&mut outbox, 10)
        .await
        .iter()
        .map(|e| e.position)
        .collect();
    // Four published, three of them long ago; two never published.
    outbox.mark_published(&positions[..4]).await.unwrap();
    sqlx::query(
        "UPDATE outbox SET published_at = now() - interval '8 days' WHERE position = ANY($1)",
    )
    .bind(&positions[..3])
    .execute(store.pool())
    .await
    .unwrap();

    let cutoff = chrono::Utc::now() - chrono::TimeDelta::days(7);
    assert_eq!(outbox.delete_published_before(cutoff, 2).await.unwrap(), 2);
    assert_eq!(outbox.delete_published_before(cutoff, 2).await.unwrap(), 1);
    assert_eq!(outbox.delete_published_before(cutoff, 2).await.unwrap(), 0);

    let left: Vec<i64> = sqlx::query_scalar("SELECT position FROM outbox ORDER BY position")
        .fetch_all(store.pool())
        .await
        .unwrap();
    assert_eq!(
        left,
        positions[3..],
        "the recent and the unpublished rows stay"
    );
    assert_eq!(readable(&mut outbox, 10).await.len(), 2);
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(events, 6, "the events themselves are never deleted");
}

#[tokio::test]
async fn every_append_is_followed_by_a_wake_up_of_the_relay() {
    let store = Arc::new(store().await);
    let mut relay = sqlx::postgres::PgListener::connect_with(store.pool())
        .await
        .unwrap();
    relay.listen(event_store::OUTBOX_CHANNEL).await.unwrap();
    for _ in 0..3 {
        append_new(&store).await;
        woken(&mut relay).await;
    }

    // A burst may share wake-ups, but the last commit is still followed by one.
    let burst = (0..32).map(|_| {
        let store = store.clone();
        tokio::spawn(async move { append_new(&store).await })
    });
    futures::future::join_all(burst).await;
    woken(&mut relay).await;
}

/// Waits for the relay's next wake-up. Without one the relay would still find the rows, a poll
/// interval later: only the notification is under test, so the wait has a generous bound.
async fn woken(relay: &mut sqlx::postgres::PgListener) {
    tokio::time::timeout(std::time::Duration::from_secs(10), relay.recv())
        .await
        .expect("a wake-up follows the append")
        .unwrap();
}
