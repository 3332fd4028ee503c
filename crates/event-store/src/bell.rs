//! The relay's wake-up, rung after an append commits rather than inside it.
//!
//! PostgreSQL serializes NOTIFY with one cluster-wide lock, held from the notifying
//! transaction's pre-commit until its commit is flushed: with the NOTIFY inside the append,
//! every append's fsync waited for the one before it and group commit could not merge them
//! (pgbench of the append statement, c = 32, fsync on: 1,680 tx/s with it, 2,810 without).
//! A NOTIFY alone writes nothing that must be flushed, so here it holds that lock only briefly,
//! and appends that commit while one is under way share the next. A wake-up lost to a crash
//! between the commit and the NOTIFY costs one poll interval of the relay, never an event: the
//! outbox row committed with the events.

use crate::OUTBOX_CHANNEL;
use sqlx::{PgConnection, PgPool};
use std::sync::OnceLock;
use tokio::sync::mpsc;

pub(crate) struct OutboxBell {
    pool: PgPool,
    /// Started by the first ring, so stores that never append (query-svc, the projector's
    /// rebuild) hold no task; it ends when the last clone of the store is dropped.
    ringer: OnceLock<mpsc::Sender<()>>,
}

impl OutboxBell {
    pub(crate) fn new(pool: PgPool) -> Self {
        Self {
            pool,
            ringer: OnceLock::new(),
        }
    }

    /// Makes sure a NOTIFY starts after this call. One slot: when it is taken, a NOTIFY that
    /// has not started yet will cover this append too.
    pub(crate) fn ring(&self) {
        let ringer = self.ringer.get_or_init(|| {
            let (ringer, rung) = mpsc::channel(1);
            tokio::spawn(notify_each(self.pool.clone(), rung));
            ringer
        });
        let _ = ringer.try_send(());
    }
}

/// On a connection of its own, taken out of the pool at the first ring (and again after a
/// failure): a wake-up must not queue behind the appends waiting for a pooled connection.
async fn notify_each(pool: PgPool, mut rung: mpsc::Receiver<()>) {
    let mut connection: Option<PgConnection> = None;
    while rung.recv().await.is_some() {
        let notified = match connection.as_mut() {
            Some(connection) => notify(connection).await,
            None => match pool.acquire().await {
                Ok(pooled) => notify(connection.insert(pooled.detach())).await,
                Err(error) => Err(error),
            },
        };
        if let Err(error) = notified {
            // The relay finds the rows at its next poll; the next ring connects again.
            tracing::debug!(%error, "could not wake the outbox relay");
            connection = None;
        }
    }
}

async fn notify(connection: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(OUTBOX_CHANNEL)
        .execute(connection)
        .await
        .map(drop)
}
