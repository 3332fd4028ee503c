//! Read-your-writes. A client that just wrote version n of a workflow (every command result
//! carries it) can ask to read at least version n. The projector NOTIFYs [`CHANNEL`] in every
//! transaction that changes rows, naming each changed workflow with its new version
//! (`projection::payloads`); one LISTEN connection per process hands each version to the readers waiting
//! on that workflow, so a reader re-reads only once its own workflow reached its version —
//! never by polling, and not on every other workflow's commit either (under load that was
//! several reads per waiting reader per commit) — and gives up after a bounded wait with the
//! answer marked stale.
//!
//! A notification without the list (a projector of an older build) or a reconnect of the
//! listener (notifications were lost meanwhile) wakes every waiting reader to read again.

use sqlx::postgres::PgListener;
use sqlx::PgPool;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use uuid::Uuid;

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

/// The commit notifications of one process, for its waiting readers.
#[derive(Clone)]
pub struct Freshness {
    signals: Arc<Signals>,
}

struct Signals {
    /// Bumped when every waiting reader must read again.
    everyone: watch::Sender<u64>,
    /// The highest version notified for each workflow some reader waits on.
    waiting: Mutex<HashMap<Uuid, watch::Sender<i64>>>,
}

impl Signals {
    fn announce(&self, payload: &str) {
        match projection::notification(payload) {
            Some(changed) => {
                let waiting = self.waiting.lock().unwrap();
                for (id, version) in changed {
                    if let Some(reached) = waiting.get(&id) {
                        reached.send_if_modified(|current| {
                            let newer = version > *current;
                            if newer {
                                *current = version;
                            }
                            newer
                        });
                    }
                }
            }
            None => self.wake_everyone(),
        }
    }

    fn wake_everyone(&self) {
        self.everyone
            .send_modify(|count| *count = count.wrapping_add(1));
    }

    fn watch(&self, id: Uuid) -> watch::Receiver<i64> {
        self.waiting
            .lock()
            .unwrap()
            .entry(id)
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    /// Forgets `id` once its last reader stopped waiting.
    fn unwatch(&self, id: Uuid, reached: watch::Receiver<i64>) {
        let mut waiting = self.waiting.lock().unwrap();
        drop(reached);
        if waiting
            .get(&id)
            .is_some_and(|sender| sender.receiver_count() == 0)
        {
            waiting.remove(&id);
        }
    }
}

impl Freshness {
    /// Starts the process's listener on `pool`'s database. It runs until every `Freshness`
    /// clone is dropped, reconnecting after errors; a reconnect wakes every reader, since
    /// notifications sent while it was away are lost.
    pub async fn listen(pool: &PgPool) -> Result<Self, sqlx::Error> {
        let mut listener = PgListener::connect_with(pool).await?;
        listener.listen(CHANNEL).await?;
        let signals = Arc::new(Signals {
            everyone: watch::channel(0).0,
            waiting: Mutex::default(),
        });
        let weak = Arc::downgrade(&signals);
        tokio::spawn(async move {
            loop {
                // `try_recv`, not `recv`: `recv` reconnects silently, so nobody would know that
                // the notifications sent meanwhile were lost.
                let received = listener.try_recv().await;
                let Some(signals) = weak.upgrade() else { break };
                match received {
                    Ok(Some(notification)) => signals.announce(notification.payload()),
                    // The connection was lost; the next `try_recv` reconnects.
                    Ok(None) => {
                        tracing::warn!("read-model notifications interrupted; reconnecting");
                        signals.wake_everyone();
                    }
                    Err(error) => {
                        tracing::warn!(error = %error, "read-model notifications failed; reconnecting");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        signals.wake_everyone();
                    }
                }
            }
        });
        Ok(Self { signals })
    }

    /// Reads workflow `id` with `read` until `version_of` the result reaches `min_version`,
    /// re-reading once a commit announces that version (or everyone must look), for at most
    /// `wait` (capped at [`MAX_WAIT`]). A result of `None` (not projected yet) counts as
    /// version 0.
    pub async fn at_least<T, E, F, Fut>(
        &self,
        id: Uuid,
        min_version: i64,
        wait: Duration,
        read: F,
        version_of: impl Fn(&T) -> i64,
    ) -> Result<AtLeast<Option<T>>, E>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Option<T>, E>>,
    {
        let mut reached = self.signals.watch(id);
        let result = self
            .wait_for(&mut reached, min_version, wait, read, version_of)
            .await;
        self.signals.unwatch(id, reached);
        result
    }

    async fn wait_for<T, E, F, Fut>(
        &self,
        reached: &mut watch::Receiver<i64>,
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
        let mut everyone = self.signals.everyone.subscribe();
        loop {
            // Marked seen before reading, so a commit between the read and the wait still wakes
            // it, and only a new announcement wakes it again: a reader that cannot see the
            // version however often it is announced (another tenant's workflow) reads once per
            // announcement, never in a loop.
            everyone.borrow_and_update();
            reached.borrow_and_update();
            let value = read().await?;
            if value.as_ref().map_or(0, &version_of) >= min_version {
                return Ok(AtLeast {
                    value,
                    stale: false,
                });
            }
            let announced = async {
                while reached.changed().await.is_ok() {
                    if *reached.borrow_and_update() >= min_version {
                        return true;
                    }
                }
                false
            };
            let woken = tokio::time::timeout_at(deadline, async {
                tokio::select! {
                    announced = announced => announced,
                    changed = everyone.changed() => changed.is_ok(),
                }
            })
            .await;
            if !matches!(woken, Ok(true)) {
                return Ok(AtLeast { value, stale: true });
            }
        }
    }
}
