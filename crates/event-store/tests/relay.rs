//! The outbox as several relay replicas see it while writers race: one leader at a time, every
//! event handed out exactly once, each aggregate's events in version order, and nothing skipped
//! because a transaction committed late.

mod common;

use common::{append, created, insert_raw, metadata, readable, store};
use event_store::EventStore;
use sqlx::PgPool;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use uuid::Uuid;
use workflow_domain::WorkflowEvent;

const WRITERS: usize = 8;
const AGGREGATES_PER_WRITER: usize = 4;
const APPENDS_PER_AGGREGATE: usize = 6;
const RELAYS: usize = 2;

/// What the relays share: the "broker" they publish to and how far the run is.
#[derive(Default)]
struct Run {
    /// Relays that hold leadership right now.
    leaders: AtomicUsize,
    /// (aggregate, version) in the order published.
    published: Mutex<Vec<(Uuid, i64)>>,
    appends_done: AtomicBool,
    drained: AtomicBool,
}

/// A relay replica: leads when it can, publishes a few rounds, resigns so leadership keeps
/// changing hands, and returns how many terms it led.
async fn relay(pool: PgPool, run: Arc<Run>) -> usize {
    let mut terms = 0;
    while !run.drained.load(SeqCst) {
        let Some(mut outbox) = EventStore::new(pool.clone(), &[workflow_domain::REGISTRATION])
            .try_lead()
            .await
            .unwrap()
        else {
            tokio::time::sleep(Duration::from_millis(2)).await;
            continue;
        };
        assert_eq!(
            run.leaders.fetch_add(1, SeqCst),
            0,
            "two relays lead at once"
        );
        terms += 1;
        for _ in 0..3 {
            // Read the flag first: if every append had committed by then, an empty outbox
            // afterwards means everything is out.
            let appends_done = run.appends_done.load(SeqCst);
            let pending = readable(&mut outbox, 7).await;
            if pending.is_empty() && appends_done {
                run.drained.store(true, SeqCst);
                break;
            }
            run.published
                .lock()
                .unwrap()
                .extend(pending.iter().map(|e| (e.aggregate_id, e.version)));
            let positions: Vec<i64> = pending.iter().map(|e| e.position).collect();
            outbox.mark_published(&positions).await.unwrap();
        }
        run.leaders.fetch_sub(1, SeqCst);
        // Resigning: the advisory lock ends with the session.
        drop(outbox);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    terms
}

/// Appends 1–3 events at a time to its own aggregates, round-robin, and returns each
/// aggregate's final version.
async fn writer(store: event_store::EventStore) -> Vec<(Uuid, i64)> {
    let mut aggregates: Vec<(Uuid, i64)> = (0..AGGREGATES_PER_WRITER)
        .map(|_| (Uuid::new_v4(), 0))
        .collect();
    for round in 0..APPENDS_PER_AGGREGATE {
        for (i, (id, version)) in aggregates.iter_mut().enumerate() {
            let count = 1 + (round + i) % 3;
            let events: Vec<WorkflowEvent> = (0..count)
                .map(|k| {
                    if *version + k as i64 == 0 {
                        created()
                    } else {
                        WorkflowEvent::Submitted {}
                    }
                })
                .collect();
            *version = append(
                &store,
                *id,
                *version,
                &events,
                &metadata("acme", Uuid::new_v4()),
            )
            .await
            .unwrap()
            .version;
        }
    }
    aggregates
}

#[tokio::test]
async fn racing_writers_and_two_relays_publish_every_event_once_in_version_order() {
    let store = store().await;
    let run = Arc::new(Run::default());
    let relays: Vec<_> = (0..RELAYS)
        .map(|_| tokio::spawn(relay(store.pool().clone(), run.clone())))
        .collect();
    let writers: Vec<_> = (0..WRITERS)
        .map(|_| tokio::spawn(writer(store.clone())))
        .collect();
    let mut expected = HashMap::new();
    for writer in writers {
        expected.extend(writer.await.unwrap());
    }
    run.appends_done.store(true, SeqCst);
    let terms = tokio::time::timeout(
        Duration::from_secs(60),
        futures::future::try_join_all(relays),
    )
    .await
    .expect("the relays drain the outbox")
    .unwrap();
    assert!(
        terms.iter().all(|&t| t > 0),
        "every relay led at some point: {terms:?}"
    );

    let mut per_aggregate: HashMap<Uuid, Vec<i64>> = HashMap::new();
    for (id, version) in run.published.lock().unwrap().iter() {
        per_aggregate.entry(*id).or_default().push(*version);
    }
    assert_eq!(per_aggregate.len(), expected.len());
    for (id, last) in &expected {
        let versions = &per_aggregate[id];
        assert_eq!(
            *versions,
            (1..=*last).collect::<Vec<_>>(),
            "aggregate {id}: published out of order, twice or not"
        );
    }
    let unpublished: i64 =
        sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert_eq!(unpublished, 0);
}

#[tokio::test]
async fn a_row_committed_late_below_a_published_position_is_still_published() {
    let store = store().await;
    let (slow_id, fast_id) = (Uuid::new_v4(), Uuid::new_v4());
    let payload = serde_json::to_value(created()).unwrap()["data"].take();

    // A slow writer takes its position first but has not committed yet.
    let mut slow = store.pool().begin().await.unwrap();
    // The current shape, so the current schema version.
    let slow_position = insert_raw(&mut *slow, slow_id, 1, "WorkflowCreated", 2, payload).await;
    append(
        &store,
        fast_id,
        0,
        &[created()],
        &metadata("acme", Uuid::new_v4()),
    )
    .await
    .unwrap();

    let mut outbox = store.try_lead().await.unwrap().expect("leads");
    let first = readable(&mut outbox, 10).await;
    assert_eq!(
        first.iter().map(|e| e.aggregate_id).collect::<Vec<_>>(),
        [fast_id],
        "only committed rows"
    );
    assert!(
        first[0].position > slow_position,
        "the later append has the higher position"
    );
    outbox.mark_published(&[first[0].position]).await.unwrap();

    slow.commit().await.unwrap();
    let second = readable(&mut outbox, 10).await;
    assert_eq!(
        second
            .iter()
            .map(|e| (e.aggregate_id, e.position))
            .collect::<Vec<_>>(),
        [(slow_id, slow_position)]
    );
}

/// A TCP proxy to PostgreSQL that can stop forwarding while keeping every connection open: a
/// half-open connection, as after a network partition, that neither side sees closed.
struct Blackhole {
    address: std::net::SocketAddr,
    frozen: Arc<AtomicBool>,
}

impl Blackhole {
    async fn to(upstream: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let frozen = Arc::new(AtomicBool::new(false));
        let flag = frozen.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let server = tokio::net::TcpStream::connect(&upstream).await.unwrap();
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::spawn(Self::pipe(client_read, server_write, flag.clone()));
                tokio::spawn(Self::pipe(server_read, client_write, flag.clone()));
            }
        });
        Self { address, frozen }
    }

    /// Forwards until frozen; then swallows what arrives and holds both ends open for good.
    async fn pipe(
        mut from: tokio::net::tcp::OwnedReadHalf,
        mut to: tokio::net::tcp::OwnedWriteHalf,
        frozen: Arc<AtomicBool>,
    ) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut buffer = vec![0; 16 * 1024];
        loop {
            let read = match from.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(read) => read,
            };
            if frozen.load(SeqCst) {
                let _held = (from, to);
                return std::future::pending().await;
            }
            if to.write_all(&buffer[..read]).await.is_err() {
                return;
            }
        }
    }
}

#[tokio::test]
async fn a_leader_cut_off_by_a_half_open_connection_loses_leadership_within_seconds() {
    let (url, pool) = test_support::fresh_database("relay_partition").await;
    event_store::MIGRATOR.run(&pool).await.unwrap();
    // The same database, reached through the proxy: host:port is what sits between @ and /.
    let authority = url
        .split_once('@')
        .and_then(|(_, rest)| rest.split_once('/'))
        .map(|(authority, _)| authority.to_owned())
        .expect("a test URL names user@host:port/database");
    let blackhole = Blackhole::to(authority.clone()).await;
    let proxied_url = url.replace(&authority, &blackhole.address.to_string());
    let proxied = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&proxied_url)
        .await
        .unwrap();

    let mut cut_off = EventStore::new(proxied.clone(), &[workflow_domain::REGISTRATION])
        .try_lead()
        .await
        .unwrap()
        .expect("the first relay leads");
    assert!(cut_off.pending(10, &[]).await.unwrap().is_empty());
    assert!(
        EventStore::new(pool.clone(), &[workflow_domain::REGISTRATION])
            .try_lead()
            .await
            .unwrap()
            .is_none(),
        "a second relay waits while the first leads"
    );

    blackhole.frozen.store(true, SeqCst);
    // The leader's own calls give up instead of waiting on the dead connection forever...
    assert!(matches!(
        cut_off.pending(10, &[]).await,
        Err(event_store::StoreError::TimedOut)
    ));
    // ...and the server ends its idle session, releasing the lock, so a standby takes over.
    let standby = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            if let Some(leader) = EventStore::new(pool.clone(), &[workflow_domain::REGISTRATION])
                .try_lead()
                .await
                .unwrap()
            {
                return leader;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("a standby relay leads once the cut-off leader's session ends");
    drop(standby);
}
