//! Whole-store scans for rebuild and verify.

mod common;

use common::{append, created, insert_raw, metadata, store};
use event_store::Append;
use uuid::Uuid;
use workflow_domain::{Aggregate, Definition, DefinitionEvent, Workflow, WorkflowEvent};

const WORKFLOWS: &[&str] = &[Workflow::TYPE];

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
        let batch = store
            .scan::<WorkflowEvent>(WORKFLOWS, None, None, after, 4)
            .await
            .unwrap();
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
        .scan::<WorkflowEvent>(WORKFLOWS, Some("acme"), None, (Uuid::nil(), 0), 100)
        .await
        .unwrap();
    assert_eq!(acme.len(), 4, "a tenant scope sees only that tenant");
    let one = store
        .scan::<WorkflowEvent>(WORKFLOWS, None, Some(ids[2].1), (Uuid::nil(), 0), 100)
        .await
        .unwrap();
    assert_eq!(one.iter().map(|e| e.version).collect::<Vec<_>>(), [1, 2]);

    let later = store
        .after_versions::<WorkflowEvent>(WORKFLOWS, &[(ids[0].1, 1), (ids[1].1, 2)])
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
    let scanned = store
        .scan::<WorkflowEvent>(WORKFLOWS, None, None, (Uuid::nil(), 0), 10)
        .await
        .unwrap();
    assert_eq!(scanned.len(), 1);
    assert!(
        scanned[0].event.is_err(),
        "an unknown schema version is reported, not parsed"
    );
}

#[tokio::test]
async fn a_scan_reads_only_the_aggregate_types_it_is_asked_for() {
    let store = store().await;
    let workflow = Uuid::new_v4();
    append(
        &store,
        workflow,
        0,
        &[created()],
        &metadata("acme", Uuid::new_v4()),
    )
    .await
    .unwrap();
    // A definition, and an aggregate of a type this build has never heard of: neither decodes
    // as a workflow event, and neither may stop a workflow scan.
    let definition = Uuid::new_v4();
    store
        .append(Append {
            aggregate_type: Definition::TYPE,
            aggregate_id: definition,
            expected_version: 0,
            events: &[serde_json::json!({"type": "DefinitionCreated", "data": {"name": "x"}})],
            metadata: &metadata("acme", Uuid::new_v4()),
            command_id: Uuid::now_v7(),
            command_type: "Test",
            occurred_at: chrono::Utc::now(),
        })
        .await
        .unwrap();
    let future = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO events (event_id, tenant_id, aggregate_type, aggregate_id, version, event_type,
                             schema_version, payload, metadata, occurred_at)
         VALUES ($1, 'acme', 'invoice', $2, 1, 'InvoiceRaised', 1, '{}', '{}', now())",
    )
    .bind(Uuid::now_v7())
    .bind(future)
    .execute(store.pool())
    .await
    .unwrap();

    let scanned = store
        .scan::<WorkflowEvent>(WORKFLOWS, None, None, (Uuid::nil(), 0), 100)
        .await
        .unwrap();
    assert_eq!(
        scanned
            .iter()
            .map(|e| (e.aggregate_id, e.event.is_ok()))
            .collect::<Vec<_>>(),
        [(workflow, true)]
    );
    let behind = store
        .after_versions::<WorkflowEvent>(WORKFLOWS, &[(workflow, 0), (definition, 0), (future, 0)])
        .await
        .unwrap();
    assert_eq!(
        behind.iter().map(|e| e.aggregate_id).collect::<Vec<_>>(),
        [workflow]
    );
    let definitions = store
        .scan::<DefinitionEvent>(&[Definition::TYPE], None, None, (Uuid::nil(), 0), 100)
        .await
        .unwrap();
    assert_eq!(
        definitions
            .iter()
            .map(|e| e.aggregate_id)
            .collect::<Vec<_>>(),
        [definition]
    );
}
