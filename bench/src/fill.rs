//! Writes histories straight into an event-store database, with the row layout
//! `EventStore::append` produces (payload = the domain event's `data`, the current schema
//! version, metadata as JSON) but without outbox rows or command ids: what W5 and the rebuild
//! measurement need is a store that already holds the events, fast.

use crate::client::TENANT;
use chrono::Utc;
use sqlx::PgPool;
use uuid::Uuid;
use workflow_domain::{Aggregate, EventMetadata, Workflow, WorkflowEvent};

/// Rows per INSERT.
const BATCH: usize = 2_000;

/// The schema version an append records for `event_type`.
fn schema_version(event_type: &str) -> i32 {
    es_kernel::upcast::current_version(workflow_domain::UPCASTERS, event_type)
}

/// One stored event: `(aggregate id, version, event)`.
pub type Row<'a> = (Uuid, i64, &'a WorkflowEvent);

pub async fn insert(pool: &PgPool, rows: &[Row<'_>]) -> anyhow::Result<()> {
    let metadata = serde_json::to_value(EventMetadata {
        tenant_id: TENANT.to_owned(),
        user_id: "applicant".to_owned(),
        correlation_id: Uuid::now_v7(),
        causation_id: Uuid::now_v7(),
        traceparent: None,
    })?;
    for batch in rows.chunks(BATCH) {
        let ids: Vec<Uuid> = batch.iter().map(|_| Uuid::now_v7()).collect();
        let aggregates: Vec<Uuid> = batch.iter().map(|(aggregate, _, _)| *aggregate).collect();
        let versions: Vec<i64> = batch.iter().map(|(_, version, _)| *version).collect();
        let types: Vec<String> = batch
            .iter()
            .map(|(_, _, e)| e.event_type().to_owned())
            .collect();
        let schemas: Vec<i32> = types.iter().map(|t| schema_version(t)).collect();
        let payloads = batch
            .iter()
            .map(|(_, _, event)| {
                let mut value = serde_json::to_value(event)?;
                Ok(value
                    .get_mut("data")
                    .map(serde_json::Value::take)
                    .unwrap_or_default())
            })
            .collect::<anyhow::Result<Vec<serde_json::Value>>>()?;
        sqlx::query(
            "INSERT INTO events (event_id, tenant_id, aggregate_type, aggregate_id, version,
                                 event_type, schema_version, payload, metadata, occurred_at)
             SELECT e.event_id, $2, $3, e.aggregate_id, e.version, e.event_type, e.schema_version,
                    e.payload, $8, $9
             FROM UNNEST($1::uuid[], $4::uuid[], $5::bigint[], $6::text[], $7::jsonb[], $10::int[])
                  AS e(event_id, aggregate_id, version, event_type, payload, schema_version)
             ORDER BY e.aggregate_id, e.version",
        )
        .bind(&ids)
        .bind(TENANT)
        .bind(Workflow::TYPE)
        .bind(&aggregates)
        .bind(&versions)
        .bind(&types)
        .bind(&payloads)
        .bind(&metadata)
        .bind(Utc::now())
        .bind(&schemas)
        .execute(pool)
        .await?;
    }
    sqlx::query("ANALYZE events").execute(pool).await?;
    Ok(())
}
