//! A shadow copy of one projection's read model in schema `rebuild`, filled by the same
//! pipeline, to rebuild or verify the live tables from the event store without readers
//! noticing. Generic over the [`Projection`]: its [`Projection::TABLES`] are what is copied,
//! compared and switched; the shared delivery state (`pending_events`, `parked_aggregates`) is
//! copied too, and only the projection's own aggregates' part of it is settled by a switch.
//!
//! The shadow is written through a connection whose `search_path` is `rebuild`, so the
//! projection's unqualified SQL lands there; everything here names `public` explicitly.

use crate::{drain_buffered, Projection, ProjectionError};
use serde_json::Value;
use sqlx::{Connection, PgConnection, Postgres, Transaction};
use std::fmt;
use std::marker::PhantomData;
use uuid::Uuid;

pub const SHADOW_SCHEMA: &str = "rebuild";

/// The pipeline's own tables, which every projection writes besides its [`Projection::TABLES`]:
/// the same apply code must find them in the shadow.
const DELIVERY_TABLES: [&str; 2] = ["pending_events", "parked_aggregates"];

/// Session advisory lock (two-key form, apart from the projection's one-key locks) held while a
/// shadow exists: two runs would drop each other's shadow, whichever projections they are of.
const SHADOW_LOCK: (i32, i32) = (0x5249_4e47, 1);

#[derive(Debug, thiserror::Error)]
pub enum ShadowError {
    #[error("another rebuild or verify is running on this read database")]
    Busy,
    #[error("read database: {0}")]
    Database(#[from] sqlx::Error),
    /// A table of the projection that verify cannot relate to an aggregate.
    #[error("table {table}: {problem}")]
    Table { table: String, problem: String },
    /// What the switch applied under its lock (buffered events on top of the rebuilt rows).
    #[error(transparent)]
    Projection(#[from] ProjectionError),
}

/// Which aggregates a shadow covers: all, one tenant's, or one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    pub tenant_id: Option<String>,
    pub aggregate_id: Option<Uuid>,
}

/// The projection's row table: one row per aggregate (see [`Projection::TABLES`]).
fn row_table<P: Projection>() -> &'static str {
    P::TABLES
        .first()
        .copied()
        .expect("a projection writes at least its row table")
}

/// Creates the shadow with empty copies of `P`'s tables and the delivery state, and points
/// `conn` at it. A leftover of an interrupted run is replaced.
///
/// The copies are unlogged: they are thrown away after the run, so writing WAL for them would
/// only slow the rebuild down. Durable commits are switched off for the same reason. They keep
/// only the unique indexes, which the projection's writes, the switch and verify go through:
/// the live tables' other indexes serve their readers' lists and searches, and maintaining
/// them took more than half the time of each shadow row's upsert.
pub async fn create<P: Projection>(conn: &mut PgConnection) -> Result<(), ShadowError> {
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
    let tables: Vec<&str> = P::TABLES.iter().chain(&DELIVERY_TABLES).copied().collect();
    for table in &tables {
        ddl.push_str(&format!(
            "CREATE UNLOGGED TABLE {SHADOW_SCHEMA}.{table} \
             (LIKE public.{table} INCLUDING ALL EXCLUDING INDEXES);"
        ));
    }
    let keys: Vec<(String, String)> = sqlx::query_as(
        "SELECT c.relname::text, pg_get_indexdef(i.indexrelid)
         FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
         WHERE c.relnamespace = 'public'::regnamespace AND c.relname = ANY($1)
           AND i.indisunique",
    )
    .bind(&tables)
    .fetch_all(&mut *conn)
    .await?;
    for (table, definition) in keys {
        // `CREATE UNIQUE INDEX <name> ON public.<table> USING …`: the same index on the copy.
        let live = format!(" ON public.{table} USING ");
        if !definition.contains(&live) {
            return Err(ShadowError::Table {
                table,
                problem: format!("cannot copy its unique index `{definition}`"),
            });
        }
        ddl.push_str(&definition.replacen(
            &live,
            &format!(" ON {SHADOW_SCHEMA}.{table} USING "),
            1,
        ));
        ddl.push(';');
    }
    sqlx::raw_sql(&ddl).execute(&mut *conn).await?;
    enter(conn).await
}

/// Points `conn` at the shadow that [`create`] made, as it does its own connection: further
/// connections can then fill it side by side, each with aggregates of its own.
pub async fn enter(conn: &mut PgConnection) -> Result<(), ShadowError> {
    sqlx::raw_sql(&format!(
        "SET search_path TO {SHADOW_SCHEMA}; SET synchronous_commit TO off;"
    ))
    .execute(&mut *conn)
    .await?;
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

/// Aggregates in scope the shadow has to load more events for before it can stand in for the
/// live tables, each with the shadow's version (0: absent): those the live projector got
/// further with while the shadow was filled, and every parked one (its dead-lettered events are
/// in the event store, and only the store can settle it). Parked aggregates of other
/// projections are listed too; the store has no events of `P`'s aggregate types for them.
pub async fn behind<P: Projection>(
    conn: &mut PgConnection,
    scope: &Scope,
) -> Result<Vec<(Uuid, i64)>, sqlx::Error> {
    let rows = row_table::<P>();
    sqlx::query_as(&format!(
        "SELECT l.id, COALESCE(s.version, 0)
         FROM public.{rows} l LEFT JOIN {SHADOW_SCHEMA}.{rows} s ON s.id = l.id
         WHERE l.version > COALESCE(s.version, 0)
           AND ($1::text IS NULL OR l.tenant_id = $1) AND ($2::uuid IS NULL OR l.id = $2)
         UNION
         SELECT p.aggregate_id, COALESCE(s.version, 0)
         FROM public.parked_aggregates p
              LEFT JOIN {SHADOW_SCHEMA}.{rows} s ON s.id = p.aggregate_id
         WHERE ($1::text IS NULL OR p.tenant_id = $1 OR p.tenant_id IS NULL)
           AND ($2::uuid IS NULL OR p.aggregate_id = $2)"
    ))
    .bind(&scope.tenant_id)
    .bind(scope.aggregate_id)
    .fetch_all(&mut *conn)
    .await
}

/// The switch from `P`'s live tables to the shadow: one transaction that holds them and the
/// delivery state in SHARE ROW EXCLUSIVE mode — the live projectors' writes wait, readers do
/// not — while the shadow catches up and its rows replace the live ones. Readers see the old
/// rows until commit and the new ones after it, never an empty table.
pub struct Switch<'c, P: Projection> {
    tx: Transaction<'c, Postgres>,
    projection: PhantomData<P>,
}

/// What a switch changed in the live tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Switched {
    /// Rows written, per table of [`Projection::TABLES`] in their order: inserted, or replaced
    /// because they differed from the shadow's.
    pub rows: Vec<(&'static str, u64)>,
    /// Rows deleted because the shadow has no such row, per table, in the same order.
    pub removed: Vec<(&'static str, u64)>,
    /// Aggregates of the projection no longer parked.
    pub unparked: u64,
    /// Buffered events the rebuilt rows already contain.
    pub pending_cleared: u64,
    /// Aggregates whose buffered events could be applied on top of the rebuilt rows.
    pub pending_drained: u64,
}

impl Switched {
    /// Rows written into `table` (0 for a table the projection does not write).
    pub fn rows_of(&self, table: &str) -> u64 {
        count_of(&self.rows, table)
    }

    /// Rows deleted from `table`.
    pub fn removed_from(&self, table: &str) -> u64 {
        count_of(&self.removed, table)
    }
}

fn count_of(counts: &[(&'static str, u64)], table: &str) -> u64 {
    counts
        .iter()
        .find(|(name, _)| *name == table)
        .map_or(0, |(_, rows)| *rows)
}

/// `12 <table>, 30 <table>, …`: one count per table.
struct Counts<'a>(&'a [(&'static str, u64)]);

impl fmt::Display for Counts<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (table, rows)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{rows} {table}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Switched {
    /// `wrote 12 <table>, …; removed 0 <table>, …`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "wrote {}; removed {}",
            Counts(&self.rows),
            Counts(&self.removed)
        )
    }
}

impl<'c, P: Projection> Switch<'c, P> {
    /// Locks the live tables. `conn` must have created the shadow of `P`.
    pub async fn begin(conn: &'c mut PgConnection) -> Result<Self, sqlx::Error> {
        let mut tx = conn.begin().await?;
        // Same table order as the projection's own lock, so the two never deadlock. The
        // shadow's connection commits asynchronously; the switch is live data and does not.
        let tables: Vec<String> = P::TABLES
            .iter()
            .chain(&DELIVERY_TABLES)
            .map(|table| format!("public.{table}"))
            .collect();
        sqlx::raw_sql(&format!(
            "LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE; SET LOCAL synchronous_commit TO on;",
            tables.join(", ")
        ))
        .execute(&mut *tx)
        .await?;
        Ok(Self {
            tx,
            projection: PhantomData,
        })
    }

    /// The locked transaction, still writing to the shadow: the catch-up events go through it.
    pub fn shadow(&mut self) -> &mut PgConnection {
        &mut self.tx
    }

    /// Makes the live rows the shadow's and commits. Only for a shadow that applied every event
    /// of `P`'s aggregate types in the store: then every parked aggregate of `P` is settled
    /// (everything ever dead-lettered came from the store), and its buffered events are either
    /// already contained in the rebuilt rows or next in line on top of them. The delivery state
    /// of other projections' aggregates is left alone.
    ///
    /// Only what differs is written: rows the shadow lacks are deleted, its other rows are
    /// inserted or replaced where they differ, and equal rows are left as they are. Repairing a
    /// read model that is mostly right writes little (and holds the lock briefly), where
    /// replacing every row wrote each one and each of its index entries again.
    pub async fn commit(mut self) -> Result<Switched, ShadowError> {
        let row_table = row_table::<P>();
        let tx = &mut self.tx;
        let mut shapes = Vec::with_capacity(P::TABLES.len());
        for table in P::TABLES {
            shapes.push((*table, shape(tx, table, row_table).await?));
        }
        // Referencing rows go first, as a row table's delete would take them along anyway.
        let mut removed = Vec::with_capacity(shapes.len());
        for (table, shape) in shapes.iter().rev() {
            let key = |alias: &str| {
                let columns: Vec<String> = shape
                    .primary_key
                    .iter()
                    .map(|column| format!("{alias}.{column}"))
                    .collect();
                format!("({})", columns.join(", "))
            };
            let deleted = sqlx::query(&format!(
                "DELETE FROM public.{table} l
                 WHERE NOT EXISTS (SELECT FROM {SHADOW_SCHEMA}.{table} s WHERE {} = {})",
                key("s"),
                key("l")
            ))
            .execute(&mut **tx)
            .await?
            .rows_affected();
            removed.push((*table, deleted));
        }
        removed.reverse();
        // LIKE copied the columns in order, so the shadow's rows fit as they are.
        let mut rows = Vec::with_capacity(shapes.len());
        for (table, shape) in &shapes {
            let replace = if shape.other_columns.is_empty() {
                "DO NOTHING".to_owned()
            } else {
                let excluded: Vec<String> = shape
                    .other_columns
                    .iter()
                    .map(|column| format!("EXCLUDED.{column}"))
                    .collect();
                format!(
                    "DO UPDATE SET ({}) = ROW({}) WHERE l IS DISTINCT FROM EXCLUDED",
                    shape.other_columns.join(", "),
                    excluded.join(", ")
                )
            };
            let written = sqlx::query(&format!(
                "INSERT INTO public.{table} AS l SELECT * FROM {SHADOW_SCHEMA}.{table}
                 ON CONFLICT ({}) {replace}",
                shape.primary_key.join(", ")
            ))
            .execute(&mut **tx)
            .await?
            .rows_affected();
            rows.push((*table, written));
        }
        // The rebuilt rows are every aggregate of the projection's types in the store.
        let unparked = sqlx::query(&format!(
            "DELETE FROM public.parked_aggregates p USING public.{row_table} r
             WHERE p.aggregate_id = r.id"
        ))
        .execute(&mut **tx)
        .await?
        .rows_affected();
        let pending_cleared = sqlx::query(&format!(
            "DELETE FROM public.pending_events p USING public.{row_table} r
             WHERE p.aggregate_id = r.id AND p.version <= r.version"
        ))
        .execute(&mut **tx)
        .await?
        .rows_affected();
        let next_in_line: Vec<Uuid> = sqlx::query_scalar(&format!(
            "SELECT r.id FROM public.{row_table} r
             WHERE EXISTS (SELECT 1 FROM public.pending_events p
                           WHERE p.aggregate_id = r.id AND p.version = r.version + 1)"
        ))
        .fetch_all(&mut **tx)
        .await?;
        // The projection's SQL is unqualified; until commit it has to mean the live tables.
        sqlx::query("SET LOCAL search_path TO public")
            .execute(&mut **tx)
            .await?;
        drain_buffered::<P>(tx, &next_in_line).await?;
        self.tx.commit().await?;
        Ok(Switched {
            rows,
            removed,
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
    /// The row's key: [`Projection::KEYS`]' expression for its table, or else the values of its
    /// primary key, space-separated.
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

/// What the catalog says about one live table of a projection: how to name its rows, which
/// column holds the aggregate, whether it carries the tenant.
#[derive(sqlx::FromRow)]
struct Shape {
    primary_key: Vec<String>,
    /// The columns outside the primary key, in table order.
    other_columns: Vec<String>,
    /// The column of the row table's id: `id` in the row table itself, the column of the
    /// foreign key to the row table in the others.
    aggregate_column: Option<String>,
    has_tenant: bool,
}

async fn shape(
    conn: &mut PgConnection,
    table: &str,
    row_table: &str,
) -> Result<Shape, ShadowError> {
    let shape: Shape = sqlx::query_as(
        "SELECT
             ARRAY(SELECT a.attname::text
                   FROM pg_index i
                   JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
                   WHERE i.indrelid = t.oid AND i.indisprimary
                   ORDER BY array_position(i.indkey::int2[], a.attnum)) AS primary_key,
             ARRAY(SELECT a.attname::text
                   FROM pg_attribute a
                   WHERE a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped
                     AND a.attgenerated = ''
                     AND NOT EXISTS (SELECT 1 FROM pg_index i
                                     WHERE i.indrelid = t.oid AND i.indisprimary
                                       AND a.attnum = ANY(i.indkey))
                   ORDER BY a.attnum) AS other_columns,
             CASE WHEN t.oid = r.oid THEN 'id' ELSE
                 (SELECT a.attname::text
                  FROM pg_constraint c
                  JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
                  WHERE c.contype = 'f' AND c.conrelid = t.oid AND c.confrelid = r.oid
                    AND cardinality(c.conkey) = 1
                  ORDER BY c.conname LIMIT 1)
             END AS aggregate_column,
             EXISTS (SELECT 1 FROM pg_attribute a
                     WHERE a.attrelid = t.oid AND a.attname = 'tenant_id'
                       AND a.attnum > 0 AND NOT a.attisdropped) AS has_tenant
         FROM (SELECT to_regclass('public.' || $1)::oid AS oid) t,
              (SELECT to_regclass('public.' || $2)::oid AS oid) r",
    )
    .bind(table)
    .bind(row_table)
    .fetch_one(&mut *conn)
    .await?;
    let problem = |problem: &str| ShadowError::Table {
        table: table.to_owned(),
        problem: problem.to_owned(),
    };
    if shape.primary_key.is_empty() {
        return Err(problem("has no primary key"));
    }
    if shape.aggregate_column.is_none() {
        return Err(problem(&format!("has no foreign key to {row_table}")));
    }
    Ok(shape)
}

/// Every difference between `P`'s live tables and the shadow within `scope`: rows missing on
/// either side, and every column of rows on both sides (all of them come from events).
///
/// Rows are compared whole, as JSON objects, keyed by the table's primary key. A table is
/// scoped by its `tenant_id` column and by the column holding the aggregate's id (`id` in the
/// row table, the foreign key to it elsewhere, both read from the catalog); a table without a
/// `tenant_id` is scoped to the tenant through the row its foreign key references.
pub async fn diff<P: Projection>(
    conn: &mut PgConnection,
    scope: &Scope,
) -> Result<Vec<Difference>, ShadowError> {
    let row_table = row_table::<P>();
    let mut differences = Vec::new();
    for &table in P::TABLES {
        let shape = shape(conn, table, row_table).await?;
        let aggregate_column = shape.aggregate_column.unwrap_or_default();
        let primary_key: Vec<String> = shape
            .primary_key
            .iter()
            .map(|column| format!("t.{column}"))
            .collect();
        let primary_key = primary_key.join(", ");
        let key = match P::KEYS.iter().find(|(keyed, _)| *keyed == table) {
            Some((_, key)) => (*key).to_owned(),
            None => format!("concat_ws(' ', {primary_key})"),
        };
        // Rows as JSON objects, so one statement compares every column of any table.
        let rows = |schema: &str| {
            let tenant = if shape.has_tenant {
                "t.tenant_id = $1".to_owned()
            } else {
                format!(
                    "t.{aggregate_column} IN (SELECT id FROM {schema}.{row_table} WHERE tenant_id = $1)"
                )
            };
            format!(
                "SELECT jsonb_build_array({primary_key}) AS pk, {key} AS key, to_jsonb(t) AS row
                 FROM {schema}.{table} t
                 WHERE ($1::text IS NULL OR {tenant})
                   AND ($2::uuid IS NULL OR t.{aggregate_column} = $2)"
            )
        };
        let found: Vec<DiffRow> = sqlx::query_as(&format!(
            "WITH l AS ({live}), s AS ({shadow})
                 SELECT COALESCE(l.key, s.key) AS key, l.row AS live, s.row AS shadow,
                        c.name AS column_name
                 FROM l FULL JOIN s ON l.pk = s.pk
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
