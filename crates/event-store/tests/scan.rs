//! Whole-store scans for rebuild and verify.

mod common;

use common::{append, created, insert_raw, metadata, store};
use uuid::Uuid;
use workflow_domain::WorkflowEvent;

#[tokio::test]
async fn a_scan_pages_through_every_event_in_aggregate_order_within_its_scope() {
    let store = store().await;
    let mut ids = Vec::new();
    for tenant in ["acme", "acme", "globex"] {
        let id = Uuid::new_v4();
        append(
            &store,
            id,
            0,
            &[created(), WorkflowEvent::Submitted {}],
            &metadata(tenant, Uuid::new_v4()),
        )
        .await
        .unwrap();
        ids.push((tenant, id));
    }

    let mut seen = Vec::new();
    let mut after = (Uuid::nil(), 0);
    loop {
        let batch = store.scan(None, None, after, 4).await.unwrap();
        let Some(last) = batch.last() else { break };
        after = (last.aggregate_id, last.version);
        seen.extend(
            batch
                .into_iter()
                .map(|e| (e.aggregate_id, e.version, e.event.is_ok())),
        );
    }
    let mut expected: Vec<_> = ids
        .iter()
        .flat_map(|(_, id)| [(*id, 1, true), (*id, 2, true)])
        .collect();
    expected.sort();
    assert_eq!(
        seen, expected,
        "every event once, in (aggregate, version) order"
    );

    let acme = store
        .scan(Some("acme"), None, (Uuid::nil(), 0), 100)
        .await
        .unwrap();
    assert_eq!(acme.len(), 4, "a tenant scope sees only that tenant");
    let one = store
        .scan(None, Some(ids[2].1), (Uuid::nil(), 0), 100)
        .await
        .unwrap();
    assert_eq!(one.iter().map(|e| e.version).collect::<Vec<_>>(), [1, 2]);

    let later = store
        .after_versions(&[(ids[0].1, 1), (ids[1].1, 2)])
        .await
        .unwrap();
    assert_eq!(
        later
            .iter()
            .map(|e| (e.aggregate_id, e.version))
            .collect::<Vec<_>>(),
        [(ids[0].1, 2)]
    );
}

#[tokio::test]
async fn a_scan_reports_an_unreadable_event_instead_of_stopping() {
    let store = store().await;
    let id = Uuid::new_v4();
    insert_raw(
        store.pool(),
        id,
        1,
        "WorkflowCreated",
        99,
        serde_json::json!({}),
    )
    .await;
    let scanned = store.scan(None, None, (Uuid::nil(), 0), 10).await.unwrap();
    assert_eq!(scanned.len(), 1);
    assert!(
        scanned[0].event.is_err(),
        "an unknown schema version is reported, not parsed"
    );
}
