//! A shadow copy of the read model in schema `rebuild`, filled by the same projection code, to
//! rebuild or verify the live tables from the event store without readers noticing.
//!
//! The shadow is written through a connection whose `search_path` is `rebuild`, so the
//! projection's unqualified SQL lands there; everything here names `public` explicitly.

use crate::Workflows;
use projection::{drain_buffered, ProjectionError};
use serde_json::Value;
use sqlx::{Connection, PgConnection, Postgres, Transaction};
use std::fmt;
use uuid::Uuid;

pub const SHADOW_SCHEMA: &str = "rebuild";

/// Every table the projection writes: the same apply code must find them all in the shadow.
const PROJECTION_TABLES: [&str; 6] = [
    "workflows",
    "workflow_steps",
    "workflow_comments",
    "workflow_attachments",
    "pending_events",
    "parked_aggregates",
];

/// The tables of the read model proper, which a switch replaces wholesale: `workflows` first,
/// since the others reference it.
const ROW_TABLES: [&str; 4] = [
    "workflows",
    "workflow_steps",
    "workflow_comments",
    "workflow_attachments",
];

/// Session advisory lock (two-key form, apart from the projection's one-key locks) held while a
/// shadow exists: two runs would drop each other's shadow.
const SHADOW_LOCK: (i32, i32) = (0x5249_4e47, 1);

#[derive(Debug, thiserror::Error)]
pub enum ShadowError {
    #[error("another rebuild or verify is running on this read database")]
    Busy,
    #[error("read database: {0}")]
    Database(#[from] sqlx::Error),
}

/// Which workflows a shadow covers: all, one tenant's, or one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    pub tenant_id: Option<String>,
    pub aggregate_id: Option<Uuid>,
}

/// Creates the shadow with empty copies of the projection's tables and points `conn` at it.
/// A leftover of an interrupted run is replaced.
///
/// The copies are unlogged: they are thrown away after the run, so writing WAL for them would
/// only slow the rebuild down. Durable commits are switched off for the same reason.
pub async fn create(conn: &mut PgConnection) -> Result<(), ShadowError> {
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1, $2)")
        .bind(SHADOW_LOCK.0)
        .bind(SHADOW_LOCK.1)
        .fetch_one(&mut *conn)
        .await?;
    if !locked {
        return Err(ShadowError::Busy);
    }
    let mut ddl =
        format!("DROP SCHEMA IF EXISTS {SHADOW_SCHEMA} CASCADE; CREATE SCHEMA {SHADOW_SCHEMA};");
    for table in PROJECTION_TABLES {
        ddl.push_str(&format!(
            "CREATE UNLOGGED TABLE {SHADOW_SCHEMA}.{table} (LIKE public.{table} INCLUDING ALL);"
        ));
    }
    ddl.push_str(&format!(
        "SET search_path TO {SHADOW_SCHEMA}; SET synchronous_commit TO off;"
    ));
    sqlx::raw_sql(&ddl).execute(&mut *conn).await?;
    Ok(())
}

/// Drops the shadow and releases the run lock.
pub async fn remove(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(&format!(
        "RESET search_path; RESET synchronous_commit; DROP SCHEMA IF EXISTS {SHADOW_SCHEMA} CASCADE;"
    ))
    .execute(&mut *conn)
    .await?;
    sqlx::query("SELECT pg_advisory_unlock($1, $2)")
        .bind(SHADOW_LOCK.0)
        .bind(SHADOW_LOCK.1)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Workflows in scope the shadow has to load more events for before it can stand in for the
/// live tables, each with the shadow's version (0: absent): those the live projector got
/// further with while the shadow was filled, and every parked one (its dead-lettered events are
/// in the event store, and only the store can settle it).
pub async fn behind(
    conn: &mut PgConnection,
    scope: &Scope,
) -> Result<Vec<(Uuid, i64)>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT l.id, COALESCE(s.version, 0)
         FROM public.workflows l LEFT JOIN {SHADOW_SCHEMA}.workflows s ON s.id = l.id
         WHERE l.version > COALESCE(s.version, 0)
           AND ($1::text IS NULL OR l.tenant_id = $1) AND ($2::uuid IS NULL OR l.id = $2)
         UNION
         SELECT p.aggregate_id, COALESCE(s.version, 0)
         FROM public.parked_aggregates p
              LEFT JOIN {SHADOW_SCHEMA}.workflows s ON s.id = p.aggregate_id
         WHERE ($1::text IS NULL OR p.tenant_id = $1 OR p.tenant_id IS NULL)
           AND ($2::uuid IS NULL OR p.aggregate_id = $2)"
    ))
    .bind(&scope.tenant_id)
    .bind(scope.aggregate_id)
    .fetch_all(&mut *conn)
    .await
}

/// The switch from the live tables to the shadow: one transaction that holds the live tables
/// in SHARE ROW EXCLUSIVE mode — the live projector's writes wait, readers do not — while the
/// shadow catches up and its rows replace the live ones. Readers see the old rows until commit
/// and the new ones after it, never an empty table.
pub struct Switch<'c> {
    tx: Transaction<'c, Postgres>,
}

/// What a switch changed in the live tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Switched {
    pub workflows: u64,
    pub steps: u64,
    pub comments: u64,
    pub attachments: u64,
    pub unparked: u64,
    /// Buffered events the rebuilt rows already contain.
    pub pending_cleared: u64,
    /// Workflows whose buffered events could be applied on top of the rebuilt rows.
    pub pending_drained: u64,
}

impl<'c> Switch<'c> {
    /// Locks the live tables. `conn` must have created the shadow.
    pub async fn begin(conn: &'c mut PgConnection) -> Result<Self, sqlx::Error> {
        let mut tx = conn.begin().await?;
        // Same table order as the projection's own lock, so the two never deadlock. The
        // shadow's connection commits asynchronously; the switch is live data and does not.
        sqlx::raw_sql(
            "LOCK TABLE public.workflows, public.workflow_steps, public.workflow_comments,
                        public.workflow_attachments, public.pending_events,
                        public.parked_aggregates
             IN SHARE ROW EXCLUSIVE MODE;
             SET LOCAL synchronous_commit TO on;",
        )
        .execute(&mut *tx)
        .await?;
        Ok(Self { tx })
    }

    /// The locked transaction, still writing to the shadow: the catch-up events go through it.
    pub fn shadow(&mut self) -> &mut PgConnection {
        &mut self.tx
    }

    /// Replaces the live rows with the shadow's and commits. Only for a shadow that applied
    /// every event of the store: then every parked workflow is settled (everything ever
    /// dead-lettered came from the store), and buffered events are either already contained in
    /// the rebuilt rows or next in line on top of them.
    pub async fn commit(mut self) -> Result<Switched, ProjectionError> {
        let tx = &mut self.tx;
        for table in ROW_TABLES.iter().rev() {
            sqlx::query(&format!("DELETE FROM public.{table}"))
                .execute(&mut **tx)
                .await?;
        }
        // LIKE copied the columns in order, so the shadow's rows fit as they are.
        let mut copied = [0; ROW_TABLES.len()];
        for (table, copied) in ROW_TABLES.iter().zip(&mut copied) {
            *copied = sqlx::query(&format!(
                "INSERT INTO public.{table} SELECT * FROM {SHADOW_SCHEMA}.{table}"
            ))
            .execute(&mut **tx)
            .await?
            .rows_affected();
        }
        let [workflows, steps, comments, attachments] = copied;
        let unparked = sqlx::query("DELETE FROM public.parked_aggregates")
            .execute(&mut **tx)
            .await?
            .rows_affected();
        let pending_cleared = sqlx::query(
            "DELETE FROM public.pending_events p USING public.workflows w
             WHERE p.aggregate_id = w.id AND p.version <= w.version",
        )
        .execute(&mut **tx)
        .await?
        .rows_affected();
        let next_in_line: Vec<Uuid> = sqlx::query_scalar(
            "SELECT w.id FROM public.workflows w
             WHERE EXISTS (SELECT 1 FROM public.pending_events p
                           WHERE p.aggregate_id = w.id AND p.version = w.version + 1)",
        )
        .fetch_all(&mut **tx)
        .await?;
        // The projection's SQL is unqualified; until commit it has to mean the live tables.
        sqlx::query("SET LOCAL search_path TO public")
            .execute(&mut **tx)
            .await?;
        drain_buffered::<Workflows>(tx, &next_in_line).await?;
        self.tx.commit().await?;
        Ok(Switched {
            workflows,
            steps,
            comments,
            attachments,
            unparked,
            pending_cleared,
            pending_drained: next_in_line.len() as u64,
        })
    }
}

/// One way the live read model differs from the shadow built from the events.
#[derive(Debug, Clone, PartialEq)]
pub struct Difference {
    pub table: &'static str,
    /// The row's key: the workflow id, `<workflow id> step <n>`, or the id of the event that
    /// added a comment or attachment.
    pub key: String,
    pub kind: DifferenceKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum DifferenceKind {
    /// The events give a row the read model lacks.
    MissingFromReadModel,
    /// The read model has a row no event gives.
    NotInEvents,
    Column {
        column: String,
        read_model: Value,
        events: Value,
    },
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: ", self.table, self.key)?;
        match &self.kind {
            DifferenceKind::MissingFromReadModel => f.write_str("missing from the read model"),
            DifferenceKind::NotInEvents => f.write_str("in the read model but not in the events"),
            DifferenceKind::Column {
                column,
                read_model,
                events,
            } => write!(
                f,
                "{column} is {read_model} in the read model, {events} in the events"
            ),
        }
    }
}

/// One differing row, and one differing column of it if it is on both sides.
#[derive(sqlx::FromRow)]
struct DiffRow {
    key: String,
    live: Option<Value>,
    shadow: Option<Value>,
    column_name: Option<String>,
}

/// A live table and how to compare it with its shadow.
struct Compared {
    table: &'static str,
    key: &'static str,
    aggregate_column: &'static str,
}

const COMPARED: [Compared; 4] = [
    Compared {
        table: "workflows",
        key: "t.id::text",
        aggregate_column: "id",
    },
    Compared {
        table: "workflow_steps",
        key: "t.workflow_id::text || ' step ' || t.step_no",
        aggregate_column: "workflow_id",
    },
    Compared {
        table: "workflow_comments",
        key: "t.event_id::text",
        aggregate_column: "workflow_id",
    },
    Compared {
        table: "workflow_attachments",
        key: "t.event_id::text",
        aggregate_column: "workflow_id",
    },
];

/// Every difference between the live tables and the shadow within `scope`: rows missing on
/// either side, and every column of rows on both sides (all of them come from events).
pub async fn diff(conn: &mut PgConnection, scope: &Scope) -> Result<Vec<Difference>, sqlx::Error> {
    let mut differences = Vec::new();
    for compared in &COMPARED {
        let Compared {
            table,
            key,
            aggregate_column,
        } = compared;
        // Rows as JSON objects, so one statement compares every column of any table.
        let rows = |schema: &str| {
            format!(
                "SELECT {key} AS key, to_jsonb(t) AS row FROM {schema}.{table} t
                 WHERE ($1::text IS NULL OR t.tenant_id = $1)
                   AND ($2::uuid IS NULL OR t.{aggregate_column} = $2)"
            )
        };
        let found: Vec<DiffRow> = sqlx::query_as(&format!(
            "WITH l AS ({live}), s AS ({shadow})
                 SELECT COALESCE(l.key, s.key) AS key, l.row AS live, s.row AS shadow,
                        c.name AS column_name
                 FROM l FULL JOIN s ON l.key = s.key
                 LEFT JOIN LATERAL (
                     SELECT name FROM jsonb_object_keys(l.row || s.row) AS name
                     WHERE l.row -> name IS DISTINCT FROM s.row -> name
                 ) c ON l.row IS NOT NULL AND s.row IS NOT NULL
                 WHERE l.row IS DISTINCT FROM s.row
                 ORDER BY 1, 4",
            live = rows("public"),
            shadow = rows(SHADOW_SCHEMA),
        ))
        .bind(&scope.tenant_id)
        .bind(scope.aggregate_id)
        .fetch_all(&mut *conn)
        .await?;
        differences.extend(found.into_iter().map(|row| {
            let DiffRow {
                key,
                live,
                shadow,
                column_name,
            } = row;
            let kind = match (live, shadow) {
                (None, _) => DifferenceKind::MissingFromReadModel,
                (_, None) => DifferenceKind::NotInEvents,
                // Rows that differ differ in at least one of their columns, so there is a name.
                (Some(mut live), Some(mut shadow)) => {
                    let column = column_name.unwrap_or_default();
                    DifferenceKind::Column {
                        read_model: live[&column].take(),
                        events: shadow[&column].take(),
                        column,
                    }
                }
            };
            Difference { table, key, kind }
        }));
    }
    Ok(differences)
}
