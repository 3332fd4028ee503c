//! Subscriptions: each committed change of the read model, pushed to whom it concerns. Changes
//! come from the replica's hub (`push`), which hands a subscription only the changes of its
//! topics; here each subscription keeps what its user may see (their tenant: every query's
//! rule, since any user of a tenant may read its workflows) and shapes the push.
//!
//! Ordering and delivery: a subscription registers with the hub before it reads anything, so
//! a change committed after that read is pushed, and one already in that read is recognised
//! by its version and not pushed again. Per workflow, pushes come in version order, each after
//! its read-model transaction committed (a client re-querying sees at least what it was
//! told). The read model keeps only a workflow's latest row: versions committed together are
//! one push, at the last of them; the workflow's `history` has every event.
//!
//! Memory per subscription (W6): async-graphql keeps, for as long as a subscription lives, its
//! whole execution (the parsed request, its validated operation, the futures around the
//! resolver, including the start-up read's): about 13 KiB each. So async-graphql runs only a
//! subscription's start ([`Subscriptions`]): each resolver does its start-up work, returns what
//! is to be pushed at once, and hands the stream of later items to the connection; each later
//! item is then rendered by an execution of its own of the same document, which ends with that
//! push. What a live subscription holds is its request's text and variables and its own stream.

use super::limits::Documents;
use super::query::Dashboard;
use super::types::{Priority, Workflow, WorkflowStatus};
use super::{canonical, data, GatewaySchema};
use crate::errors::graphql_error;
use crate::push::{Change, Hub, Subscription, Topic};
use crate::ws::{Closer, Slots, Viewer, MAX_SUBSCRIPTIONS};
use async_graphql::{
    Context, Data, Enum, Executor, InputObject, Name, Request, Response, Result, SimpleObject,
    Subscription, Variables, ID,
};
use futures::stream::{self, BoxStream, StreamExt as _};
use platform::auth::Identity;
use platform::errors::ErrorCode;
use proto::workflow::v1::{self as pb, approver};
use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// `dashboardUpdated` recomputes at most this often per subscription.
const DASHBOARD_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Default)]
pub(crate) struct WorkflowSubscription;

/// Why a task entered or left the subscriber's list.
#[derive(Enum, Copy, Clone, PartialEq, Eq, Debug)]
enum TaskEventKind {
    /// A step now waits for me: assigned to me, to a role I hold, or delegated to me.
    Assigned,
    /// A step that waited for me no longer does: decided (by anyone), cancelled, delegated on.
    Removed,
}

#[derive(SimpleObject)]
struct TaskEvent {
    kind: TaskEventKind,
    /// As the read model shows it after the change.
    workflow: Workflow,
}

/// Narrows `workflowEvents`; the fields combine with AND.
#[derive(InputObject, Default)]
struct WorkflowEventFilter {
    status: Option<WorkflowStatus>,
    priority: Option<Priority>,
    applicant_id: Option<String>,
}

#[Subscription]
impl WorkflowSubscription {
    /// The workflow after each committed change. With `afterVersion`, first the workflow as it
    /// is now if it changed after that version (what a client that reconnects missed, as one
    /// push: see `history` for each event), then every later change; without it, only later
    /// changes. NOT_FOUND if the caller's tenant has no such workflow.
    async fn workflow_updated(
        &self,
        ctx: &Context<'_>,
        id: ID,
        after_version: Option<i64>,
    ) -> Result<BoxStream<'static, Result<Workflow>>> {
        if let Some(pushed) = rendering(ctx) {
            return Ok(pushed);
        }
        let id = canonical(id);
        let (viewer, subscription) = subscribe(ctx, "workflowUpdated", |_| {
            vec![Topic::Workflow(id.clone())]
        })?;
        let request = pb::GetWorkflowRequest {
            workflow_id: id.clone(),
            min_version: None,
        };
        let now = super::call(
            ctx,
            |b| b.query.clone(),
            request,
            |mut client, r| async move { client.get_workflow(r).await },
        )
        .await?;
        let mut last = after_version.unwrap_or(now.version);
        let replay = (now.version > last).then_some(now);
        if let Some(now) = &replay {
            last = now.version;
        }
        let live = changes(subscription).filter_map(move |change| {
            let pushed = change
                .workflow
                .as_ref()
                .filter(|w| change.tenant_id == viewer.tenant_id && w.version > last)
                .cloned();
            if let Some(workflow) = &pushed {
                last = workflow.version;
            }
            std::future::ready(pushed)
        });
        hand_over(
            ctx,
            "workflowUpdated",
            stream::iter(replay).map(Workflow::try_from),
            live.map(Workflow::try_from),
        )
    }

    /// My tasks as they come and go: a step assigned to me (directly, through one of my roles
    /// unless I applied, or by delegation: the rule of `myTasks`), and a task of mine that left
    /// my list. Only changes from now on.
    async fn my_task_events(
        &self,
        ctx: &Context<'_>,
    ) -> Result<BoxStream<'static, Result<TaskEvent>>> {
        if let Some(pushed) = rendering(ctx) {
            return Ok(pushed);
        }
        let (viewer, subscription) = subscribe(ctx, "myTaskEvents", |viewer| {
            std::iter::once(Topic::User(
                viewer.tenant_id.clone(),
                viewer.user_id.clone(),
            ))
            .chain(
                viewer
                    .roles
                    .iter()
                    .map(|role| Topic::Role(viewer.tenant_id.clone(), role.clone())),
            )
            .collect()
        })?;
        let events = changes(subscription).filter_map(move |change| {
            std::future::ready(task_event(&viewer, &change).map(|kind| (kind, change)))
        });
        hand_over(
            ctx,
            "myTaskEvents",
            stream::empty(),
            events.map(|(kind, change)| {
                Ok(TaskEvent {
                    kind,
                    workflow: workflow_of(&change)?,
                })
            }),
        )
    }

    /// Every committed change of my tenant's workflows that passes `filter` (a status change is
    /// one), e.g. to keep a list view current. Only changes from now on.
    async fn workflow_events(
        &self,
        ctx: &Context<'_>,
        #[graphql(default)] filter: WorkflowEventFilter,
    ) -> Result<BoxStream<'static, Result<Workflow>>> {
        if let Some(pushed) = rendering(ctx) {
            return Ok(pushed);
        }
        let (viewer, subscription) = subscribe(ctx, "workflowEvents", |viewer| {
            vec![Topic::Tenant(viewer.tenant_id.clone())]
        })?;
        let wanted = move |workflow: &pb::Workflow| {
            filter
                .status
                .is_none_or(|s| workflow.status == pb::WorkflowStatus::from(s) as i32)
                && filter
                    .priority
                    .is_none_or(|p| workflow.priority == pb::Priority::from(p) as i32)
                && filter.applicant_id.as_ref().is_none_or(|id| {
                    workflow
                        .applicant
                        .as_ref()
                        .is_some_and(|a| a.user_id == *id)
                })
        };
        let events = changes(subscription).filter_map(move |change| {
            let visible = change.tenant_id == viewer.tenant_id
                && change.workflow.as_ref().is_some_and(&wanted);
            std::future::ready(visible.then_some(change))
        });
        hand_over(
            ctx,
            "workflowEvents",
            stream::empty(),
            events.map(|change| workflow_of(&change)),
        )
    }

    /// My tenant's dashboard (as `dashboard` answers it, "today" in `timeZone`): now, then
    /// again after changes, at most once a second.
    async fn dashboard_updated(
        &self,
        ctx: &Context<'_>,
        time_zone: Option<String>,
    ) -> Result<BoxStream<'static, Result<Dashboard>>> {
        if let Some(pushed) = rendering(ctx) {
            return Ok(pushed);
        }
        let (_, subscription) = subscribe(ctx, "dashboardUpdated", |viewer| {
            vec![Topic::Tenant(viewer.tenant_id.clone())]
        })?;
        // Each recomputation is a query on the subscriber's behalf, so it needs the request's
        // context; the stream owns what that takes.
        let query = DashboardQuery::from(ctx)?;
        let first = query.run(time_zone.clone()).await?;
        let later = stream::unfold(
            (subscription, tokio::time::Instant::now()),
            move |(mut subscription, pushed_at)| {
                let query = query.clone();
                let time_zone = time_zone.clone();
                async move {
                    subscription.changes.recv().await?;
                    tokio::time::sleep_until(pushed_at + DASHBOARD_INTERVAL).await;
                    // Whatever else arrived meanwhile is in the figures about to be read.
                    while subscription.changes.try_recv().is_ok() {}
                    let dashboard = query.run(time_zone).await;
                    Some((dashboard, (subscription, tokio::time::Instant::now())))
                }
            },
        );
        hand_over(ctx, "dashboardUpdated", stream::iter([Ok(first)]), later)
    }
}

/// The caller's identity and a subscription to the topics `topics` names for them, in one of
/// the connection's slots.
fn subscribe(
    ctx: &Context<'_>,
    field: &'static str,
    topics: impl FnOnce(&Identity) -> Vec<Topic>,
) -> Result<(Identity, Subscription)> {
    let Viewer(viewer) = data::<Viewer>(ctx)?;
    let slot = data::<Slots>(ctx)?.take().ok_or_else(|| {
        graphql_error(platform::errors::status(
            ErrorCode::ResourceExhausted,
            format!("at most {MAX_SUBSCRIPTIONS} subscriptions per connection"),
            HashMap::new(),
        ))
    })?;
    let subscription = data::<Hub>(ctx)?
        .subscribe(topics(viewer), data::<Closer>(ctx)?.clone())
        .map_err(|_| {
            graphql_error(platform::errors::status(
                ErrorCode::Unavailable,
                "live updates are unavailable right now; retry later",
                HashMap::new(),
            ))
        })?;
    tracing::debug!(field, "subscribed");
    Ok((viewer.clone(), subscription.holding(slot)))
}

/// The changes the hub hands a subscription, until it is dropped.
fn changes(subscription: Subscription) -> impl futures::Stream<Item = Change> + Send {
    stream::unfold(subscription, |mut subscription| async move {
        let change = subscription.changes.recv().await?;
        Some((change, subscription))
    })
}

/// Ends a subscription's start (in the resolver of root field `field`): hands `later`, the
/// stream of what is pushed from now on, to the connection's [`Subscriptions`], which renders
/// each of its items in an execution of its own, and returns `now`, what this execution pushes
/// at once. Both with the subscription gauge and push counter of the metric catalogue.
fn hand_over<T: Send + 'static>(
    ctx: &Context<'_>,
    field: &'static str,
    now: impl futures::Stream<Item = Result<T>> + Send + 'static,
    later: impl futures::Stream<Item = Result<T>> + Send + 'static,
) -> Result<BoxStream<'static, Result<T>>> {
    struct Active(&'static str);
    impl Drop for Active {
        fn drop(&mut self) {
            metrics::gauge!("ringiflow_subscriptions_active", "field" => self.0).decrement(1);
        }
    }
    let pushed = move || {
        metrics::counter!("ringiflow_subscription_pushes_total", "field" => field).increment(1)
    };
    let handover = data::<Handover>(ctx)?;
    metrics::gauge!("ringiflow_subscriptions_active", "field" => field).increment(1);
    let active = Active(field);
    let key = ctx.item.node.response_key().node.clone();
    let later = later.map(move |item| {
        let _still_active = &active;
        pushed();
        Pushed {
            field: key.clone(),
            item: Box::new(item),
        }
    });
    handover.0.lock().unwrap().push(later.boxed());
    Ok(now.inspect(move |_| pushed()).boxed())
}

/// In a push's rendering ([`Push`] in the request's data): the item pushed to this root field
/// (none if the push is another root field's). `None` when the subscription is starting.
fn rendering<T: Send + 'static>(ctx: &Context<'_>) -> Option<BoxStream<'static, Result<T>>> {
    let push = ctx.data_opt::<Push>()?;
    let item = (push.field == ctx.item.node.response_key().node)
        .then(|| push.item.lock().unwrap().take())
        .flatten()
        .map(|item| match item.downcast::<Result<T>>() {
            Ok(item) => *item,
            Err(_) => Err(graphql_error(platform::errors::internal(
                &"a push of another type than its field's",
            ))),
        });
    Some(stream::iter(item).boxed())
}

/// One item of a subscription's later stream, for its root field answering to `field` (its
/// alias or name).
struct Pushed {
    field: Name,
    /// The `Result<T>` of the field's stream of `T`.
    item: Box<dyn Any + Send>,
}

/// Request data of a push's rendering: the [`Pushed`] item, which the field's resolver takes.
struct Push {
    field: Name,
    item: Mutex<Option<Box<dyn Any + Send>>>,
}

/// Request data of a subscription's start: where its resolvers leave their later streams.
#[derive(Clone, Default)]
struct Handover(Arc<Mutex<Vec<BoxStream<'static, Pushed>>>>);

impl Handover {
    /// The later streams left here, as one.
    fn take(&self) -> BoxStream<'static, Pushed> {
        let later = std::mem::take(&mut *self.0.lock().unwrap());
        // A subscription has one root field but for the odd alias: no merge is kept for one.
        match <[_; 1]>::try_from(later) {
            Ok([one]) => one,
            Err(several) => stream::select_all(several).boxed(),
        }
    }
}

/// Runs the subscriptions of a WebSocket connection: async-graphql executes a subscription's
/// start, then each of its later pushes apart (see the module's docs), each through the shape
/// limits and the remembered parse of the HTTP path.
#[derive(Clone)]
pub(crate) struct Subscriptions {
    schema: GatewaySchema,
    documents: Arc<Documents>,
}

/// What a live subscription keeps of its request, to render each push with.
struct Operation {
    query: String,
    operation_name: Option<String>,
    /// As JSON: a map of variables holds a whole B-tree node, about 1 KiB even for the one `id`
    /// of a `workflowUpdated`, which is a tenth of a subscriber's memory (W6).
    variables: String,
}

impl Operation {
    fn variables(&self) -> Variables {
        serde_json::from_str(&self.variables).expect("variables the gateway wrote itself")
    }
}

impl Subscriptions {
    pub(super) fn new(schema: GatewaySchema, documents: Arc<Documents>) -> Self {
        Self { schema, documents }
    }

    /// One execution of `operation` with `variables`, and `data` as its request's data.
    fn run(
        &self,
        operation: &Operation,
        variables: Variables,
        data: impl Any + Send + Sync,
        session: Arc<Data>,
    ) -> BoxStream<'static, Response> {
        let document = match self.documents.checked(&operation.query) {
            Ok(document) => document,
            Err(error) => return stream::iter([Response::from_errors(vec![error])]).boxed(),
        };
        let mut request = Request::new(operation.query.clone())
            .variables(variables)
            .data(data);
        request.operation_name = operation.operation_name.clone();
        request.set_parsed_query(document);
        self.schema
            .execute_stream_with_session_data(request, session)
    }
}

impl Executor for Subscriptions {
    /// Not used over WebSocket, where every operation runs as a stream.
    async fn execute(&self, request: Request) -> Response {
        self.schema.execute(request).await
    }

    fn execute_stream(
        &self,
        request: Request,
        session: Option<Arc<Data>>,
    ) -> BoxStream<'static, Response> {
        let session = session.unwrap_or_default();
        let operation = Arc::new(Operation {
            query: request.query,
            operation_name: request.operation_name,
            variables: serde_json::to_string(&request.variables)
                .expect("variables read from JSON are JSON"),
        });
        let handover = Handover::default();
        let start = self.run(
            &operation,
            request.variables,
            handover.clone(),
            session.clone(),
        );
        let this = self.clone();
        // Once the start has ended (and with it everything async-graphql held for it).
        let later = stream::once(async move { handover.take() })
            .flatten()
            .flat_map(move |pushed| {
                let push = Push {
                    field: pushed.field,
                    item: Mutex::new(Some(pushed.item)),
                };
                this.run(&operation, operation.variables(), push, session.clone())
            });
        start.chain(later).boxed()
    }
}

fn workflow_of(change: &pb::WorkflowChange) -> Result<Workflow> {
    change
        .workflow
        .clone()
        .ok_or_else(|| super::types::broken_contract("a change without its workflow"))?
        .try_into()
}

/// Whether `change` brings `me` a task or takes one away. A task is a step waiting for me;
/// the same step still waiting for me (a comment, an escalation) is neither.
fn task_event(me: &Identity, change: &pb::WorkflowChange) -> Option<TaskEventKind> {
    let workflow = change.workflow.as_ref()?;
    if change.tenant_id != me.tenant_id {
        return None;
    }
    let applicant = workflow
        .applicant
        .as_ref()
        .map_or("", |a| a.user_id.as_str());
    let now = workflow
        .current_assignee
        .as_ref()
        .is_some_and(|a| waits_for(a, applicant, me));
    let before = change
        .previous_assignee
        .as_ref()
        .is_some_and(|a| waits_for(a, applicant, me));
    let same_task = change.previous_assignee.is_some()
        && change.previous_assignee == workflow.current_assignee
        && change.previous_step == workflow.current_step;
    match (before, now) {
        (false, true) => Some(TaskEventKind::Assigned),
        (true, true) if !same_task => Some(TaskEventKind::Assigned),
        (true, false) => Some(TaskEventKind::Removed),
        _ => None,
    }
}

/// The rule `myTasks` lists by (query-svc's `ListMyTasks`): a step waits for me when it is
/// assigned to me (a delegation assigns it to the delegate), or to a role I hold unless I
/// applied for the workflow, which the domain never lets an applicant decide through a role.
fn waits_for(assignee: &pb::Approver, applicant: &str, me: &Identity) -> bool {
    match &assignee.approver {
        Some(approver::Approver::UserId(user)) => *user == me.user_id,
        Some(approver::Approver::Role(role)) => me.roles.contains(role) && applicant != me.user_id,
        None => false,
    }
}

/// What recomputing a subscriber's dashboard needs, owned by the subscription's stream.
#[derive(Clone)]
struct DashboardQuery {
    backends: crate::backends::Backends,
    jwt: platform::auth::Jwt,
    incoming: crate::caller::Incoming,
}

impl DashboardQuery {
    fn from(ctx: &Context<'_>) -> Result<Self> {
        Ok(Self {
            backends: data::<crate::backends::Backends>(ctx)?.clone(),
            jwt: data::<platform::auth::Jwt>(ctx)?.clone(),
            incoming: data::<crate::caller::Incoming>(ctx)?.clone(),
        })
    }

    async fn run(&self, time_zone: Option<String>) -> Result<Dashboard> {
        let caller = self
            .incoming
            .authenticate(&self.jwt)
            .map_err(graphql_error)?;
        super::query::dashboard_with(&caller, &self.backends, time_zone).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me(roles: &[&str]) -> Identity {
        Identity {
            tenant_id: "acme".into(),
            user_id: "bob".into(),
            display_name: "Bob".into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
        }
    }

    fn user(id: &str) -> pb::Approver {
        pb::Approver {
            approver: Some(approver::Approver::UserId(id.into())),
        }
    }

    fn role(name: &str) -> pb::Approver {
        pb::Approver {
            approver: Some(approver::Approver::Role(name.into())),
        }
    }

    fn change(
        applicant: &str,
        (step, now): (u32, Option<pb::Approver>),
        (previous_step, before): (u32, Option<pb::Approver>),
    ) -> pb::WorkflowChange {
        pb::WorkflowChange {
            tenant_id: "acme".into(),
            workflow: Some(pb::Workflow {
                applicant: Some(pb::Person {
                    user_id: applicant.into(),
                    display_name: applicant.into(),
                }),
                current_step: step,
                current_assignee: now,
                ..pb::Workflow::default()
            }),
            previous_assignee: before,
            previous_step,
        }
    }

    /// A change of acme's workflow `w1` to `version`, `status`.
    fn changed(version: i64, status: pb::WorkflowStatus) -> Change {
        let now = prost_types::Timestamp {
            seconds: 1_764_288_000,
            nanos: 0,
        };
        Arc::new(pb::WorkflowChange {
            tenant_id: "acme".into(),
            workflow: Some(pb::Workflow {
                id: "w1".into(),
                version,
                status: status as i32,
                priority: pb::Priority::Medium as i32,
                applicant: Some(pb::Person::default()),
                created_at: Some(now),
                updated_at: Some(now),
                ..pb::Workflow::default()
            }),
            ..pb::WorkflowChange::default()
        })
    }

    /// How long a push that must come may take (generous: a loaded machine), and how long one
    /// that must not come is waited for.
    const PUSHED: Duration = Duration::from_secs(5);
    const NOTHING: Duration = Duration::from_millis(200);

    /// The next push's data, if one comes within `wait`.
    async fn next_push(
        pushes: &mut BoxStream<'static, Response>,
        wait: Duration,
    ) -> Option<serde_json::Value> {
        let next = tokio::time::timeout(wait, pushes.next()).await;
        next.ok()
            .flatten()
            .map(|response| response.data.into_json().unwrap())
    }

    #[tokio::test]
    async fn each_root_field_is_pushed_its_own_items_once_its_start_has_ended() {
        let api = super::super::build(
            crate::backends::Backends::unreachable(),
            platform::auth::Jwt::local_development(),
            false,
        );
        api.hub().set_live();
        let mut session = Data::default();
        session.insert(Closer::default());
        session.insert(Slots::default());
        session.insert(Viewer(me(&[])));
        // The filter as a variable: each push is rendered with the subscription's variables.
        let request = Request::new(
            "subscription($only: WorkflowEventFilter) { all: workflowEvents { version }
                approved: workflowEvents(filter: $only) { status } }",
        )
        .variables(Variables::from_json(
            serde_json::json!({ "only": { "status": "APPROVED" } }),
        ));
        let mut pushes = api
            .executor()
            .execute_stream(request, Some(Arc::new(session)));
        assert_eq!(
            next_push(&mut pushes, NOTHING).await,
            None,
            "the start (which subscribes both) pushes nothing"
        );

        api.hub()
            .dispatch(changed(2, pb::WorkflowStatus::InProgress));
        let pushed = next_push(&mut pushes, PUSHED).await;
        assert_eq!(pushed, Some(serde_json::json!({ "all": { "version": 2 } })));
        api.hub().dispatch(changed(3, pb::WorkflowStatus::Approved));
        let mut both = [
            next_push(&mut pushes, PUSHED).await,
            next_push(&mut pushes, PUSHED).await,
        ];
        both.sort_by_key(|push| push.as_ref().map(ToString::to_string));
        assert_eq!(
            both,
            [
                Some(serde_json::json!({ "all": { "version": 3 } })),
                Some(serde_json::json!({ "approved": { "status": "APPROVED" } })),
            ]
        );
        assert_eq!(next_push(&mut pushes, NOTHING).await, None);
    }

    #[test]
    fn tasks_arrive_by_user_role_or_delegation_and_leave_when_decided_or_passed_on() {
        let bob = me(&["manager"]);
        let assigned = Some(TaskEventKind::Assigned);
        let removed = Some(TaskEventKind::Removed);
        // Assigned to me, to my role, delegated to me.
        assert_eq!(
            task_event(&bob, &change("alice", (1, Some(user("bob"))), (0, None))),
            assigned
        );
        assert_eq!(
            task_event(
                &bob,
                &change(
                    "alice",
                    (2, Some(role("manager"))),
                    (1, Some(user("carol")))
                )
            ),
            assigned
        );
        // My role, but my own workflow: never mine to decide.
        assert_eq!(
            task_event(&bob, &change("bob", (1, Some(role("manager"))), (0, None))),
            None
        );
        // Decided by someone else holding the role, or passed on by delegation.
        assert_eq!(
            task_event(
                &bob,
                &change("alice", (2, Some(user("dave"))), (1, Some(role("manager"))))
            ),
            removed
        );
        assert_eq!(
            task_event(&bob, &change("alice", (0, None), (1, Some(user("bob"))))),
            removed
        );
        // The same step still waiting for me: nothing new.
        assert_eq!(
            task_event(
                &bob,
                &change("alice", (1, Some(user("bob"))), (1, Some(user("bob"))))
            ),
            None
        );
        // The next step is mine too: a new task.
        assert_eq!(
            task_event(
                &bob,
                &change("alice", (2, Some(user("bob"))), (1, Some(user("bob"))))
            ),
            assigned
        );
        // Another tenant's change never concerns me.
        let mut elsewhere = change("alice", (1, Some(user("bob"))), (0, None));
        elsewhere.tenant_id = "globex".into();
        assert_eq!(task_event(&bob, &elsewhere), None);
    }
}
