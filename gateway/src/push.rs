//! The push path's fan-out. Each gateway replica holds ONE upstream stream of every tenant's
//! committed changes (query-svc's `WatchWorkflowChanges`, as the `change-feed` role) and hands
//! each change, in memory, only to the subscribers it may concern: those of its workflow, of
//! its tenant's feeds, and of the users and roles its step was assigned to before and after.
//! Whether a subscriber may see it, and what to push, each subscription decides
//! (`schema::subscription`).
//!
//! Every subscriber has a bounded buffer. One that overflows is too slow to keep up: its
//! connection is closed ([`TOO_SLOW`]) rather than letting it hold up anyone else or grow
//! without bound. When the upstream stream breaks, changes may be lost, so every subscriber's
//! connection is closed ([`INTERRUPTED`]); clients resubscribe (`afterVersion` replays what they
//! missed) once the hub has reconnected, with backoff.

use crate::ws::{Close, Closer, Slot};
use platform::auth::{Identity, Jwt};
use platform::backoff::Backoff;
use proto::workflow::v1::workflow_query_service_client::WorkflowQueryServiceClient;
use proto::workflow::v1::{approver, Approver, WatchWorkflowChangesRequest, WorkflowChange};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint};
use workflow_domain::Role;

/// Changes a subscriber may have waiting before it counts as too slow. Pushes are small and a
/// healthy client reads them within milliseconds; this absorbs a burst (a tenant-wide feed
/// during a bulk approval) without holding much memory per subscriber.
pub(crate) const SUBSCRIBER_BUFFER: usize = 64;

/// A subscriber whose buffer overflowed (policy violation, with the reason).
pub(crate) const TOO_SLOW: Close = Close {
    code: 1008,
    reason:
        "too slow: more than 64 changes waited for this connection; resubscribe with afterVersion",
};

/// The upstream stream broke (1012, service restart): changes may have been missed.
pub(crate) const INTERRUPTED: Close = Close {
    code: 1012,
    reason: "live updates were interrupted; resubscribe with afterVersion",
};

/// How long the hub's own credential lives: it is checked once, when the stream opens.
const TOKEN_TTL: chrono::Duration = chrono::Duration::minutes(5);

/// One change, shared by every subscriber it is handed to.
pub(crate) type Change = Arc<WorkflowChange>;

/// What a subscriber listens to; a change reaches the subscribers of each topic it touches.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Topic {
    Workflow(String),
    /// Every change of a tenant's workflows.
    Tenant(String),
    /// Changes of workflows whose step waits or waited for this user of the tenant.
    User(String, String),
    /// … or for this role of the tenant.
    Role(String, String),
}

impl Topic {
    /// The topic of an assignee of a tenant's step.
    fn of(tenant: &str, approver: &Approver) -> Option<Topic> {
        match approver.approver.as_ref()? {
            approver::Approver::UserId(user) => Some(Topic::User(tenant.into(), user.clone())),
            approver::Approver::Role(role) => Some(Topic::Role(tenant.into(), role.clone())),
        }
    }

    /// Every topic `change` touches.
    fn touched_by(change: &WorkflowChange) -> Vec<Topic> {
        let tenant = &change.tenant_id;
        let workflow = change.workflow.as_ref();
        [
            workflow.map(|w| Topic::Workflow(w.id.clone())),
            Some(Topic::Tenant(tenant.clone())),
            workflow
                .and_then(|w| w.current_assignee.as_ref())
                .and_then(|a| Topic::of(tenant, a)),
            change
                .previous_assignee
                .as_ref()
                .and_then(|a| Topic::of(tenant, a)),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

struct Subscriber {
    changes: mpsc::Sender<Change>,
    closer: Closer,
    topics: Vec<Topic>,
}

#[derive(Default)]
struct Registry {
    /// Whether the upstream stream is open: only then can a subscription be sure to miss
    /// nothing from its start.
    live: bool,
    next_id: u64,
    subscribers: HashMap<u64, Subscriber>,
    by_topic: HashMap<Topic, Vec<u64>>,
}

impl Registry {
    fn remove(&mut self, id: u64) -> Option<Subscriber> {
        let subscriber = self.subscribers.remove(&id)?;
        for topic in &subscriber.topics {
            if let Some(ids) = self.by_topic.get_mut(topic) {
                ids.retain(|other| *other != id);
                if ids.is_empty() {
                    self.by_topic.remove(topic);
                }
            }
        }
        Some(subscriber)
    }
}

/// The replica's subscribers, fed by its upstream stream.
#[derive(Clone, Default)]
pub(crate) struct Hub {
    registry: Arc<Mutex<Registry>>,
}

/// The upstream stream is not open, so a subscription now could miss changes.
#[derive(Debug)]
pub(crate) struct NotLive;

/// A subscriber's changes; dropping it unsubscribes.
pub(crate) struct Subscription {
    pub(crate) changes: mpsc::Receiver<Change>,
    id: u64,
    hub: Hub,
    /// The connection's slot it holds, given back with it.
    slot: Option<Slot>,
}

impl Subscription {
    pub(crate) fn holding(mut self, slot: Slot) -> Self {
        self.slot = Some(slot);
        self
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.registry.lock().unwrap().remove(self.id);
    }
}

impl Hub {
    /// Registers a subscriber of `topics`, whose connection `closer` closes if it falls behind.
    pub(crate) fn subscribe(
        &self,
        topics: Vec<Topic>,
        closer: Closer,
    ) -> Result<Subscription, NotLive> {
        let (sender, changes) = mpsc::channel(SUBSCRIBER_BUFFER);
        let mut registry = self.registry.lock().unwrap();
        if !registry.live {
            return Err(NotLive);
        }
        let id = registry.next_id;
        registry.next_id += 1;
        for topic in &topics {
            registry.by_topic.entry(topic.clone()).or_default().push(id);
        }
        registry.subscribers.insert(
            id,
            Subscriber {
                changes: sender,
                closer,
                topics,
            },
        );
        Ok(Subscription {
            changes,
            id,
            hub: self.clone(),
            slot: None,
        })
    }

    /// Hands `change` to each subscriber of a topic it touches, once.
    pub(crate) fn dispatch(&self, change: Change) {
        let topics = Topic::touched_by(&change);
        let mut registry = self.registry.lock().unwrap();
        let mut targets: Vec<u64> = topics
            .iter()
            .filter_map(|topic| registry.by_topic.get(topic))
            .flatten()
            .copied()
            .collect();
        targets.sort_unstable();
        targets.dedup();
        for id in targets {
            let Some(subscriber) = registry.subscribers.get(&id) else {
                continue;
            };
            match subscriber.changes.try_send(change.clone()) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    subscriber.closer.close(TOO_SLOW);
                    registry.remove(id);
                    metrics::counter!("ringiflow_subscription_dropped_total", "reason" => "too_slow")
                        .increment(1);
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    registry.remove(id);
                }
            }
        }
    }

    pub(crate) fn set_live(&self) {
        self.registry.lock().unwrap().live = true;
    }

    /// The upstream broke: every subscriber may have missed changes.
    fn interrupted(&self) {
        let mut registry = self.registry.lock().unwrap();
        registry.live = false;
        let dropped = registry.subscribers.len();
        for (_, subscriber) in registry.subscribers.drain() {
            subscriber.closer.close(INTERRUPTED);
        }
        registry.by_topic.clear();
        metrics::counter!("ringiflow_subscription_dropped_total", "reason" => "interrupted")
            .increment(dropped as u64);
    }

    /// Follows query-svc's change stream at `query_url` until `shutdown`, reconnecting with
    /// backoff. Its own channel: the stream lives as long as the replica, so none of the unary
    /// calls' timeouts may apply to it; HTTP/2 keep-alives notice a dead peer instead.
    pub(crate) fn follow(
        &self,
        query_url: &str,
        jwt: Jwt,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let channel = Endpoint::from_shared(query_url.to_owned())?
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5))
            .keep_alive_while_idle(true)
            .connect_lazy();
        if !jwt.can_issue() {
            tracing::warn!("no RINGIFLOW_JWT_SECRET to sign the change feed's credential with: subscriptions are unavailable");
            return Ok(());
        }
        tokio::spawn(self.clone().run(channel, jwt, shutdown));
        Ok(())
    }

    async fn run(self, channel: Channel, jwt: Jwt, shutdown: CancellationToken) {
        let identity = Identity {
            tenant_id: "ringiflow".into(),
            user_id: "gateway".into(),
            display_name: "gateway".into(),
            roles: vec![Role::CHANGE_FEED.into()],
        };
        let mut client = WorkflowQueryServiceClient::new(channel);
        let mut backoff = Backoff::default();
        while !shutdown.is_cancelled() {
            let mut request = tonic::Request::new(WatchWorkflowChangesRequest {});
            let token = jwt
                .issue(&identity, TOKEN_TTL)
                .expect("the change feed's lifetime is within every policy");
            request.metadata_mut().insert(
                "authorization",
                format!("Bearer {token}")
                    .parse()
                    .expect("a JWT is visible ascii"),
            );
            match client.watch_workflow_changes(request).await {
                Ok(response) => {
                    // query-svc subscribed before answering: from here on nothing is missed.
                    self.set_live();
                    backoff.reset();
                    tracing::info!("following the change feed");
                    let mut stream = response.into_inner();
                    loop {
                        let received = tokio::select! {
                            _ = shutdown.cancelled() => break,
                            received = stream.message() => received,
                        };
                        match received {
                            Ok(Some(change)) => self.dispatch(Arc::new(change)),
                            Ok(None) => break,
                            Err(status) => {
                                tracing::warn!(%status, "change feed interrupted");
                                break;
                            }
                        }
                    }
                    self.interrupted();
                }
                Err(status) => tracing::warn!(%status, "cannot open the change feed; retrying"),
            }
            backoff.wait(&shutdown).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::workflow::v1::Workflow;

    fn change(id: &str, version: i64, now: &str, before: Option<&str>) -> Change {
        let user = |u: &str| Approver {
            approver: Some(approver::Approver::UserId(u.into())),
        };
        Arc::new(WorkflowChange {
            tenant_id: "acme".into(),
            workflow: Some(Workflow {
                id: id.into(),
                version,
                current_assignee: Some(user(now)),
                ..Workflow::default()
            }),
            previous_step: u32::from(before.is_some()),
            previous_assignee: before.map(user),
        })
    }

    fn live_hub() -> Hub {
        let hub = Hub::default();
        hub.set_live();
        hub
    }

    #[test]
    fn a_change_reaches_each_subscriber_of_its_topics_once() {
        let hub = live_hub();
        let both = vec![
            Topic::Workflow("w1".into()),
            Topic::User("acme".into(), "bob".into()),
        ];
        let mut watcher = hub.subscribe(both, Closer::default()).unwrap();
        let mut carol = hub
            .subscribe(
                vec![Topic::User("acme".into(), "carol".into())],
                Closer::default(),
            )
            .unwrap();
        let mut elsewhere = hub
            .subscribe(vec![Topic::Tenant("globex".into())], Closer::default())
            .unwrap();
        hub.dispatch(change("w1", 2, "carol", Some("bob")));
        assert_eq!(
            watcher
                .changes
                .try_recv()
                .unwrap()
                .workflow
                .as_ref()
                .unwrap()
                .version,
            2
        );
        assert!(
            watcher.changes.try_recv().is_err(),
            "touched twice, delivered once"
        );
        assert!(
            carol.changes.try_recv().is_ok(),
            "the new assignee hears of it"
        );
        assert!(
            elsewhere.changes.try_recv().is_err(),
            "another tenant hears nothing"
        );
    }

    #[test]
    fn a_subscriber_that_falls_behind_is_closed_without_holding_up_others() {
        let hub = live_hub();
        let slow_closer = Closer::default();
        let slow = hub
            .subscribe(vec![Topic::Tenant("acme".into())], slow_closer.clone())
            .unwrap();
        let mut fast = hub
            .subscribe(vec![Topic::Tenant("acme".into())], Closer::default())
            .unwrap();
        for version in 1..=(SUBSCRIBER_BUFFER as i64 + 1) {
            hub.dispatch(change("w1", version, "bob", None));
            assert!(fast.changes.try_recv().is_ok());
        }
        assert_eq!(slow_closer.reason(), Some(TOO_SLOW));
        assert!(hub.registry.lock().unwrap().subscribers.len() == 1);
        drop(slow);
    }

    #[test]
    fn an_interruption_closes_everyone_and_refuses_subscriptions_until_live_again() {
        let hub = live_hub();
        let closer = Closer::default();
        let _subscription = hub
            .subscribe(vec![Topic::Tenant("acme".into())], closer.clone())
            .unwrap();
        hub.interrupted();
        assert_eq!(closer.reason(), Some(INTERRUPTED));
        assert!(hub
            .subscribe(vec![Topic::Tenant("acme".into())], Closer::default())
            .is_err());
        hub.set_live();
        assert!(hub
            .subscribe(vec![Topic::Tenant("acme".into())], Closer::default())
            .is_ok());
    }

    #[test]
    fn dropping_a_subscription_unsubscribes() {
        let hub = live_hub();
        let subscription = hub
            .subscribe(vec![Topic::Workflow("w1".into())], Closer::default())
            .unwrap();
        drop(subscription);
        let registry = hub.registry.lock().unwrap();
        assert!(registry.subscribers.is_empty() && registry.by_topic.is_empty());
    }
}
