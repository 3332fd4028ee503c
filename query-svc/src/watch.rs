//! `WatchWorkflowChanges`: the read model's committed changes as a stream. The projector NOTIFYs
//! after each read-model transaction commits, naming each workflow it changed and the version
//! reached (`projection::payloads`); one LISTEN connection, shared by every stream of the
//! process, reads those rows in one statement per notification and hands each change to every
//! open stream, which keeps its caller's tenant (or every tenant, for a `change-feed` caller).
//!
//! A change is sent only when the row read is at exactly the version its notification names: a
//! row already further on is sent by the notification of that later commit, which always
//! follows. So a stream sees each workflow's versions rising strictly up to the last committed,
//! never before its commit; versions committed faster than they are read arrive as one change.

use crate::convert;
use futures::stream::BoxStream;
use platform::auth::Identity;
use platform::errors::{self, ErrorCode};
use proto::workflow::v1 as pb;
use read_model::freshness::CHANNEL;
use sqlx::postgres::PgListener;
use sqlx::PgPool;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use workflow_domain::{Approver, Role};

/// Changes a stream may fall behind by before it is ended: at the projector's fastest (a few
/// thousand workflows a second) about a second of changes, far more than a gateway needs to
/// take one from the channel.
const BACKLOG: usize = 4_096;

/// What the listener hands to every open stream.
#[derive(Clone)]
enum Feed {
    Change(Arc<pb::WorkflowChange>),
    /// Notifications were lost (the listener reconnected, a notification named nothing, or the
    /// changed rows could not be read): every stream ends, so its client knows to catch up.
    Gap,
}

/// The process's change feed, shared by every `WatchWorkflowChanges` call.
#[derive(Clone)]
pub(crate) struct ChangeFeed {
    feed: broadcast::Sender<Feed>,
    shutdown: CancellationToken,
}

impl ChangeFeed {
    /// Starts listening on `pool`'s database until `shutdown`; every stream ends then too, so
    /// the server's graceful shutdown never waits on one.
    pub(crate) async fn listen(
        pool: PgPool,
        shutdown: CancellationToken,
    ) -> Result<Self, sqlx::Error> {
        let mut listener = PgListener::connect_with(&pool).await?;
        listener.listen(CHANNEL).await?;
        // Read after listening, so no change between the two goes unnoticed.
        let assignees = Assignees::read(&pool).await?;
        let (feed, _) = broadcast::channel(BACKLOG);
        tokio::spawn(follow(
            listener,
            pool,
            assignees,
            feed.clone(),
            shutdown.clone(),
        ));
        Ok(Self { feed, shutdown })
    }

    /// The changes `caller` may see from now on.
    pub(crate) fn watch(
        &self,
        caller: &Identity,
    ) -> BoxStream<'static, Result<pb::WorkflowChange, tonic::Status>> {
        let tenant = (!caller.roles.iter().any(|role| role == Role::CHANGE_FEED))
            .then(|| caller.tenant_id.clone());
        let receiver = self.feed.subscribe();
        let shutdown = self.shutdown.clone();
        Box::pin(futures::stream::unfold(Some(receiver), move |receiver| {
            let tenant = tenant.clone();
            let shutdown = shutdown.clone();
            async move {
                let mut receiver = receiver?;
                loop {
                    let received = tokio::select! {
                        _ = shutdown.cancelled() => return None,
                        received = receiver.recv() => received,
                    };
                    match received {
                        Ok(Feed::Change(change)) => {
                            if tenant.as_ref().is_none_or(|t| *t == change.tenant_id) {
                                return Some((Ok((*change).clone()), Some(receiver)));
                            }
                        }
                        Ok(Feed::Gap) => {
                            return Some((Err(missed("notifications were interrupted")), None))
                        }
                        Err(broadcast::error::RecvError::Lagged(_)) => {
                            return Some((Err(missed("the stream fell behind")), None))
                        }
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                }
            }
        }))
    }
}

fn missed(why: &str) -> tonic::Status {
    errors::status(
        ErrorCode::Unavailable,
        format!("{why}: changes may have been missed; catch up by version and watch again"),
        HashMap::new(),
    )
}

/// Which step each workflow waits on and for whom, as the last change sent left it: what tells
/// a change which assignee's task it ended.
struct Assignees(HashMap<Uuid, (u32, Approver)>);

impl Assignees {
    async fn read(pool: &PgPool) -> Result<Self, sqlx::Error> {
        match read_model::current_assignees(pool).await {
            Ok(current) => Ok(Self(
                current
                    .into_iter()
                    .map(|(id, step, approver)| (id, (step, approver)))
                    .collect(),
            )),
            Err(read_model::QueryError::Database(error)) => Err(error),
            Err(error) => Err(sqlx::Error::Protocol(error.to_string())),
        }
    }

    /// Records `now` as the workflow's step and assignee and returns the ones before.
    fn replace(&mut self, id: Uuid, now: Option<(u32, &Approver)>) -> Option<(u32, Approver)> {
        match now {
            Some((step, now)) => self.0.insert(id, (step, now.clone())),
            None => self.0.remove(&id),
        }
    }
}

async fn follow(
    mut listener: PgListener,
    pool: PgPool,
    mut assignees: Assignees,
    feed: broadcast::Sender<Feed>,
    shutdown: CancellationToken,
) {
    loop {
        // `try_recv`, not `recv`: `recv` reconnects silently, and the changes committed while
        // the connection was down would be lost without anyone knowing.
        let received = tokio::select! {
            _ = shutdown.cancelled() => return,
            received = listener.try_recv() => received,
        };
        let gap = match received {
            Ok(Some(notification)) => match projection::notification(notification.payload()) {
                Some(changed) => match read_model::changed_workflows(&pool, &ids(&changed)).await {
                    Ok(rows) => {
                        publish(&feed, &mut assignees, &changed, rows);
                        false
                    }
                    Err(error) => {
                        tracing::warn!(%error, "cannot read changed workflows");
                        true
                    }
                },
                None => true,
            },
            // The connection was lost; the next `try_recv` reconnects.
            Ok(None) => {
                tracing::warn!("read-model notifications interrupted; reconnecting");
                reread(&pool, &mut assignees).await;
                true
            }
            Err(error) => {
                tracing::warn!(%error, "read-model notifications failed; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
                reread(&pool, &mut assignees).await;
                true
            }
        };
        if gap {
            // No receivers is not an error: nobody watches.
            let _ = feed.send(Feed::Gap);
        }
    }
}

/// After a gap: what the lost changes did to assignments is only in the rows now.
async fn reread(pool: &PgPool, assignees: &mut Assignees) {
    match Assignees::read(pool).await {
        Ok(current) => *assignees = current,
        Err(error) => tracing::warn!(%error, "cannot re-read current assignees"),
    }
}

fn ids(changed: &[(Uuid, i64)]) -> Vec<Uuid> {
    changed.iter().map(|(id, _)| *id).collect()
}

/// Sends the change of each row read at the version its notification names.
fn publish(
    feed: &broadcast::Sender<Feed>,
    assignees: &mut Assignees,
    changed: &[(Uuid, i64)],
    rows: Vec<read_model::WorkflowDetail>,
) {
    let mut rows: HashMap<Uuid, read_model::WorkflowDetail> =
        rows.into_iter().map(|row| (row.workflow.id, row)).collect();
    for (id, version) in changed {
        let Some(row) = rows
            .remove(id)
            .filter(|row| row.workflow.version == *version)
        else {
            continue;
        };
        let now = row.workflow.current.as_ref().map(|c| (c.step, &c.assignee));
        let previous = assignees.replace(*id, now);
        let change = pb::WorkflowChange {
            tenant_id: row.workflow.tenant_id.clone(),
            previous_step: previous.as_ref().map_or(0, |(step, _)| *step),
            previous_assignee: previous.as_ref().map(|(_, a)| pb::Approver::from(a)),
            workflow: Some(convert::workflow_detail(row)),
        };
        let _ = feed.send(Feed::Change(Arc::new(change)));
    }
}
