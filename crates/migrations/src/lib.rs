//! Each store crate (event-store, read-model) owns its migrations; a service either applies
//! them at start or, when a separate `migrate` step does (a Helm hook Job), only checks that
//! nothing is missing. That check, once for every store.
#![forbid(unsafe_code)]

use sqlx::migrate::Migrator;
use sqlx::PgPool;

/// Versions of `migrator`'s migrations that the database behind `pool` has not applied (all of
/// them when it was never migrated).
pub async fn pending(migrator: &Migrator, pool: &PgPool) -> Result<Vec<i64>, sqlx::Error> {
    let applied: Vec<i64> =
        match sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(pool)
            .await
        {
            Ok(applied) => applied,
            // undefined_table: sqlx has never migrated this database.
            Err(sqlx::Error::Database(error)) if error.code().as_deref() == Some("42P01") => {
                Vec::new()
            }
            Err(error) => return Err(error),
        };
    Ok(migrator
        .iter()
        .filter(|migration| migration.migration_type.is_up_migration())
        .map(|migration| migration.version)
        .filter(|version| !applied.contains(version))
        .collect())
}
