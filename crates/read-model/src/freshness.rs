//! Read-your-writes. A client that just wrote version n of a workflow (every command result
//! carries it) can ask to read at least version n. The projector NOTIFYs [`CHANNEL`] in every
//! transaction that changes rows; one LISTEN connection per process turns that into a counter
//! every waiting reader watches, so a reader re-reads only when something was applied — never
//! by polling in a loop — and gives up after a bounded wait with the answer marked stale.

use sqlx::postgres::PgListener;
use sqlx::PgPool;
use std::future::Future;
use std::time::Duration;
use tokio::sync::watch;

/// What the projection notifies on commit.
pub const CHANNEL: &str = "ringiflow_read_model_applied";

/// The longest a reader may wait for a version before it is answered with what there is. Well
/// inside the gateway's 2.5 s call timeout and the 3 s edge timeout (SPEC §6), so a stale
/// answer reaches the client instead of a timeout.
pub const MAX_WAIT: Duration = Duration::from_secs(2);

/// What a read at a minimum version found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AtLeast<T> {
    pub value: T,
    /// The wait ran out before the read model reached the version asked for.
    pub stale: bool,
}

/// The shared "something was applied" signal of one process.
#[derive(Clone)]
pub struct Freshness {
    applied: watch::Receiver<u64>,
}

impl Freshness {
    /// Starts the process's listener on `pool`'s database. It runs until every `Freshness`
    /// clone is dropped, reconnecting after errors; a reconnect wakes every reader, since
    /// notifications sent while it was away are lost.
    pub async fn listen(pool: &PgPool) -> Result<Self, sqlx::Error> {
        let mut listener = PgListener::connect_with(pool).await?;
        listener.listen(CHANNEL).await?;
        let (applied, receiver) = watch::channel(0u64);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = applied.closed() => break,
                    received = listener.recv() => {
                        if let Err(error) = received {
                            tracing::warn!(error = %error, "read-model notifications interrupted; reconnecting");
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                        applied.send_modify(|count| *count = count.wrapping_add(1));
                    }
                }
            }
        });
        Ok(Self { applied: receiver })
    }

    /// Reads with `read` until `version_of` the result reaches `min_version`, re-reading after
    /// each applied transaction, for at most `wait` (capped at [`MAX_WAIT`]). A result of
    /// `None` (not projected yet) counts as version 0.
    pub async fn at_least<T, E, F, Fut>(
        &self,
        min_version: i64,
        wait: Duration,
        mut read: F,
        version_of: impl Fn(&T) -> i64,
    ) -> Result<AtLeast<Option<T>>, E>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Option<T>, E>>,
    {
        let deadline = tokio::time::Instant::now() + wait.min(MAX_WAIT);
        let mut applied = self.applied.clone();
        loop {
            // Marked seen before reading, so a commit between the read and the wait still
            // wakes the wait.
            applied.borrow_and_update();
            let value = read().await?;
            if value.as_ref().map_or(0, &version_of) >= min_version {
                return Ok(AtLeast {
                    value,
                    stale: false,
                });
            }
            let woken = tokio::time::timeout_at(deadline, applied.changed()).await;
            if !matches!(woken, Ok(Ok(()))) {
                return Ok(AtLeast { value, stale: true });
            }
        }
    }
}
