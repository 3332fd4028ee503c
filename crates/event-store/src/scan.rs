//! Whole-store reads for re-projection and verification: every event of the aggregate types a
//! projection asks for, in (aggregate, version) order, through the same upcasting read path as
//! every other reader. Other types' events are never read, so a store shared by many kinds of
//! aggregate (definitions, later contexts, types this build does not know) rebuilds fine.

use crate::{recorded_event, EventStore, StoreError, SELECT_EVENTS};
use es_kernel::RecordedEvent;
use serde::de::DeserializeOwned;
use sqlx::QueryBuilder;
use uuid::Uuid;

/// One stored event as a scan sees it: where it is, and the event or why it cannot be read. A
/// scan reports an unreadable event instead of stopping, so a rebuild can say which ones.
#[derive(Debug)]
pub struct ScannedEvent<E> {
    pub aggregate_id: Uuid,
    pub version: i64,
    pub event_id: Uuid,
    pub event: Result<RecordedEvent<E>, StoreError>,
}

impl EventStore {
    /// Up to `limit` events of `aggregate_types` after `after` in (aggregate, version) order,
    /// limited to a tenant and/or an aggregate when given. Keyset pagination on
    /// `UNIQUE (aggregate_id, version)`: every batch costs the same however far into the store
    /// it is.
    pub async fn scan<E: DeserializeOwned>(
        &self,
        aggregate_types: &[&str],
        tenant_id: Option<&str>,
        aggregate_id: Option<Uuid>,
        after: (Uuid, i64),
        limit: i64,
    ) -> Result<Vec<ScannedEvent<E>>, StoreError> {
        let mut query =
            QueryBuilder::new(format!("{SELECT_EVENTS} WHERE (aggregate_id, version) > ("));
        query
            .push_bind(after.0)
            .push(", ")
            .push_bind(after.1)
            .push(") AND aggregate_type = ANY(")
            .push_bind(aggregate_types)
            .push(")");
        if let Some(tenant) = tenant_id {
            query.push(" AND tenant_id = ").push_bind(tenant);
        }
        if let Some(aggregate) = aggregate_id {
            query.push(" AND aggregate_id = ").push_bind(aggregate);
        }
        query
            .push(" ORDER BY aggregate_id, version LIMIT ")
            .push_bind(limit);
        let rows = query.build().fetch_all(self.pool()).await?;
        Ok(rows.iter().map(|row| self.scanned(row)).collect())
    }

    /// The events of `aggregate_types` of each given aggregate after the given version, in
    /// (aggregate, version) order.
    pub async fn after_versions<E: DeserializeOwned>(
        &self,
        aggregate_types: &[&str],
        known: &[(Uuid, i64)],
    ) -> Result<Vec<ScannedEvent<E>>, StoreError> {
        let (ids, versions): (Vec<Uuid>, Vec<i64>) = known.iter().copied().unzip();
        let rows = sqlx::query(&format!(
            "{SELECT_EVENTS} WHERE (aggregate_id, version) IN (
                 SELECT e.aggregate_id, e.version FROM events e
                 JOIN UNNEST($1::uuid[], $2::bigint[]) AS known (aggregate_id, version)
                   ON e.aggregate_id = known.aggregate_id AND e.version > known.version)
               AND aggregate_type = ANY($3)
             ORDER BY aggregate_id, version"
        ))
        .bind(ids)
        .bind(versions)
        .bind(aggregate_types)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(|row| self.scanned(row)).collect())
    }

    fn scanned<E: DeserializeOwned>(&self, row: &sqlx::postgres::PgRow) -> ScannedEvent<E> {
        use sqlx::Row;
        ScannedEvent {
            aggregate_id: row.get("aggregate_id"),
            version: row.get("version"),
            event_id: row.get("event_id"),
            event: recorded_event(row, &self.upcasters),
        }
    }
}
