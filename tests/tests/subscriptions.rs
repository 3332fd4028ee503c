//! GraphQL subscriptions over WebSocket against the four real services: what a subscriber is
//! pushed, in which order, and who is pushed nothing.

use serde_json::json;
use std::time::Duration;
use tests::ws::{Event, Protocol, Socket};
use tests::{spawn_stack, TestStack};

/// Bounds a wait for a push: a hang, not a latency assertion (the projector runs on the
/// test broker).
const PUSH: Duration = Duration::from_secs(30);

/// How long "nothing arrives" is watched for, after what should have arrived did.
const QUIET: Duration = Duration::from_secs(2);

const WORKFLOW_UPDATED: &str = "subscription($id: ID!, $after: Int) {
    workflowUpdated(id: $id, afterVersion: $after) { id version status currentStep } }";
const MY_TASK_EVENTS: &str =
    "subscription { myTaskEvents { kind workflow { id version status currentStep } } }";
const WORKFLOW_EVENTS: &str = "subscription { workflowEvents(filter: {}) { id version status } }";
const DASHBOARD_UPDATED: &str = "subscription { dashboardUpdated { pendingForMe } }";
/// The workflow's description eight times over: with the longest description there is (40 KB),
/// a push of 320 KB, so that a connection's kernel buffers hold only about ten pushes.
const BULKY_WORKFLOW_UPDATED: &str = "subscription($id: ID!, $after: Int) {
    workflowUpdated(id: $id, afterVersion: $after) {
        version d1: description d2: description d3: description d4: description
        d5: description d6: description d7: description d8: description } }";

async fn connected(stack: &TestStack, token: &str) -> Socket {
    let mut socket = Socket::connect(&stack.gateway_url, Protocol::TransportWs)
        .await
        .expect("the gateway upgrades");
    socket.init(token).await.expect("the token is accepted");
    socket
}

/// Returns once the subscriptions started on `socket` so far are registered: a dashboard
/// subscription started after them answers only once they have been polled.
async fn settled(socket: &mut Socket) {
    socket
        .subscribe("settle", DASHBOARD_UPDATED, json!({}))
        .await;
    socket.data_of("settle", PUSH).await;
}

/// Pushes of subscription `id` until one reaches `version`: their versions and statuses.
async fn pushes_until(socket: &mut Socket, id: &str, version: i64) -> Vec<(i64, String)> {
    let mut seen = Vec::new();
    while seen.last().is_none_or(|(v, _)| *v < version) {
        let data = socket.data_of(id, PUSH).await;
        let workflow = &data["workflowUpdated"];
        seen.push((
            workflow["version"].as_i64().unwrap(),
            workflow["status"].as_str().unwrap().to_owned(),
        ));
    }
    seen
}

fn strictly_increasing(versions: &[(i64, String)]) -> bool {
    versions.windows(2).all(|pair| pair[0].0 < pair[1].0)
}

/// A workflow of alice's routed through bob, once the read model shows it.
async fn projected_workflow(stack: &TestStack, alice: &str) -> String {
    let id = stack.create_workflow(alice, "subscribed", &["bob"]).await;
    stack.workflow_at_version(alice, &id, 1).await;
    id
}

#[tokio::test]
async fn a_subscriber_sees_create_submit_approve_in_order_each_after_its_commit() {
    let stack = spawn_stack().await;
    let alice = stack.token("acme", "alice");
    let bob = stack.token("acme", "bob");
    let id = projected_workflow(&stack, &alice).await;
    let mut socket = connected(&stack, &alice).await;
    socket
        .subscribe("w", WORKFLOW_UPDATED, json!({ "id": id, "after": 0 }))
        .await;
    let created = socket.data_of("w", PUSH).await;
    assert_eq!(created["workflowUpdated"]["version"], 1);
    assert_eq!(created["workflowUpdated"]["status"], "DRAFT");

    let submitted = stack.submit(&alice, &id).await.version("submitWorkflow");
    let mut seen = pushes_until(&mut socket, "w", submitted).await;
    assert_eq!(seen.last().unwrap(), &(submitted, "IN_PROGRESS".to_owned()));
    // A push comes after its commit: a re-query sees at least what was pushed.
    let read = stack.workflow(&alice, &id).await.ok();
    assert!(read["workflow"]["version"].as_i64() >= Some(submitted));

    let approved = stack.approve(&bob, &id, 1).await.version("approveStep");
    seen.extend(pushes_until(&mut socket, "w", approved).await);
    assert_eq!(seen.last().unwrap(), &(approved, "APPROVED".to_owned()));
    assert!(strictly_increasing(&seen), "in order, none twice: {seen:?}");
    assert_eq!(
        socket.next_of("w", QUIET).await,
        None,
        "nothing after the last change"
    );
}

#[tokio::test]
async fn an_approver_is_pushed_the_assignment_and_its_end_and_others_nothing() {
    let stack = spawn_stack().await;
    let alice = stack.token("acme", "alice");
    let bob = stack.token("acme", "bob");
    let carol = stack.token("acme", "carol");
    let mut bobs = connected(&stack, &bob).await;
    bobs.subscribe("tasks", MY_TASK_EVENTS, json!({})).await;
    settled(&mut bobs).await;
    let mut carols = connected(&stack, &carol).await;
    carols.subscribe("tasks", MY_TASK_EVENTS, json!({})).await;
    settled(&mut carols).await;

    let id = stack.create_workflow(&alice, "for bob", &["bob"]).await;
    let submitted = stack.submit(&alice, &id).await.version("submitWorkflow");
    let assigned = bobs.data_of("tasks", PUSH).await;
    assert_eq!(assigned["myTaskEvents"]["kind"], "ASSIGNED");
    assert_eq!(assigned["myTaskEvents"]["workflow"]["id"], id);
    assert_eq!(assigned["myTaskEvents"]["workflow"]["version"], submitted);
    assert_eq!(assigned["myTaskEvents"]["workflow"]["currentStep"], 1);

    let approved = stack.approve(&bob, &id, 1).await.version("approveStep");
    let removed = bobs.data_of("tasks", PUSH).await;
    assert_eq!(removed["myTaskEvents"]["kind"], "REMOVED");
    // The approval appends the step's decision and then the workflow's end. The task left
    // bob's list with the first, so the push shows that version when the projector committed
    // the two apart, and the end's when it committed them together.
    let version = removed["myTaskEvents"]["workflow"]["version"]
        .as_i64()
        .unwrap();
    assert!(
        (submitted + 1..=approved).contains(&version),
        "{version} not after {submitted} and at most {approved}"
    );
    assert_eq!(bobs.next_of("tasks", QUIET).await, None);
    assert_eq!(
        carols.next_of("tasks", Duration::ZERO).await,
        None,
        "none of it was carol's"
    );
}

#[tokio::test]
async fn another_tenants_subscriber_sees_nothing_and_cannot_watch_the_workflow() {
    let stack = spawn_stack().await;
    let alice = stack.token("acme", "alice");
    let mallory = stack.token("globex", "mallory");
    let id = projected_workflow(&stack, &alice).await;

    let mut outsider = connected(&stack, &mallory).await;
    outsider
        .subscribe("w", WORKFLOW_UPDATED, json!({ "id": id, "after": 0 }))
        .await;
    match outsider.next_of("w", PUSH).await {
        Some(Event::Next { payload, .. }) => {
            assert_eq!(payload["errors"][0]["extensions"]["code"], "NOT_FOUND");
        }
        other => panic!("expected NOT_FOUND, got {other:?}"),
    }
    outsider.subscribe("feed", WORKFLOW_EVENTS, json!({})).await;
    settled(&mut outsider).await;
    let mut insider = connected(&stack, &alice).await;
    insider.subscribe("feed", WORKFLOW_EVENTS, json!({})).await;
    settled(&mut insider).await;

    let submitted = stack.submit(&alice, &id).await.version("submitWorkflow");
    loop {
        let pushed = insider.data_of("feed", PUSH).await;
        assert_eq!(pushed["workflowEvents"]["id"], id);
        if pushed["workflowEvents"]["version"] == submitted {
            break;
        }
    }
    // Anything for globex would have been handed out together with acme's push.
    assert!(
        !matches!(
            outsider.next_of("feed", QUIET).await,
            Some(Event::Next { .. })
        ),
        "another tenant's change reached globex"
    );
}

#[tokio::test]
async fn a_reconnect_with_after_version_replays_what_was_missed_exactly_once() {
    let stack = spawn_stack().await;
    let alice = stack.token("acme", "alice");
    let bob = stack.token("acme", "bob");
    let id = projected_workflow(&stack, &alice).await;
    let mut first = connected(&stack, &alice).await;
    first
        .subscribe("w", WORKFLOW_UPDATED, json!({ "id": id, "after": 0 }))
        .await;
    let seen = first.data_of("w", PUSH).await["workflowUpdated"]["version"]
        .as_i64()
        .unwrap();
    first.close().await;

    // Missed while away.
    let submitted = stack.submit(&alice, &id).await.version("submitWorkflow");
    stack.workflow_at_version(&alice, &id, submitted).await;

    let mut again = connected(&stack, &alice).await;
    again
        .subscribe("w", WORKFLOW_UPDATED, json!({ "id": id, "after": seen }))
        .await;
    let replayed = again.data_of("w", PUSH).await;
    assert_eq!(replayed["workflowUpdated"]["version"], submitted);
    assert_eq!(replayed["workflowUpdated"]["status"], "IN_PROGRESS");

    let approved = stack.approve(&bob, &id, 1).await.version("approveStep");
    let live = pushes_until(&mut again, "w", approved).await;
    assert!(
        live.iter().all(|(version, _)| *version > submitted),
        "the replayed version came again: {live:?}"
    );
    assert!(strictly_increasing(&live));
    assert_eq!(again.next_of("w", QUIET).await, None);
}

#[tokio::test]
async fn bad_and_expired_tokens_are_refused_with_4401_and_a_connection_ends_with_its_token() {
    let stack = spawn_stack().await;
    for protocol in [Protocol::TransportWs, Protocol::Legacy] {
        let mut socket = Socket::connect(&stack.gateway_url, protocol).await.unwrap();
        match socket.init("not-a-jwt").await {
            Err(Event::Closed { code, .. }) => assert_eq!(code, 4401, "{protocol:?}"),
            Err(Event::Error(_)) => match socket.next().await {
                Event::Closed { code, .. } => assert_eq!(code, 4401, "{protocol:?}"),
                other => panic!("{protocol:?}: expected a close, got {other:?}"),
            },
            other => panic!("{protocol:?}: expected a refusal, got {other:?}"),
        }
    }

    let identity = |user: &str| platform::auth::Identity {
        tenant_id: "acme".into(),
        user_id: user.into(),
        display_name: user.into(),
        roles: vec![],
    };
    let expired = stack
        .jwt
        .issue(&identity("alice"), chrono::Duration::minutes(-5))
        .unwrap();
    let mut socket = Socket::connect(&stack.gateway_url, Protocol::TransportWs)
        .await
        .unwrap();
    match socket.init(&expired).await {
        Err(Event::Closed { code, reason }) => {
            assert_eq!(code, 4401);
            assert!(reason.contains("expired"), "{reason}");
        }
        other => panic!("expected 4401, got {other:?}"),
    }

    let system = stack.token_with_roles("acme", "watcher", &["system"]);
    let mut socket = Socket::connect(&stack.gateway_url, Protocol::TransportWs)
        .await
        .unwrap();
    assert!(matches!(
        socket.init(&system).await,
        Err(Event::Closed { code: 4403, .. })
    ));

    let short = stack
        .jwt
        .issue(&identity("alice"), chrono::Duration::seconds(2))
        .unwrap();
    let mut socket = connected(&stack, &short).await;
    match socket.next_within(Duration::from_secs(10)).await {
        Some(Event::Closed { code, reason }) => {
            assert_eq!(code, 4401);
            assert!(reason.contains("expired"), "{reason}");
        }
        other => panic!("expected the connection to end with its token, got {other:?}"),
    }
}

#[tokio::test]
async fn the_legacy_protocol_gets_the_same_pushes() {
    let stack = spawn_stack().await;
    let alice = stack.token("acme", "alice");
    let id = projected_workflow(&stack, &alice).await;
    let mut socket = Socket::connect(&stack.gateway_url, Protocol::Legacy)
        .await
        .unwrap();
    socket.init(&alice).await.unwrap();
    socket
        .subscribe("w", WORKFLOW_UPDATED, json!({ "id": id, "after": 0 }))
        .await;
    assert_eq!(
        socket.data_of("w", PUSH).await["workflowUpdated"]["version"],
        1
    );
    let submitted = stack.submit(&alice, &id).await.version("submitWorkflow");
    let seen = pushes_until(&mut socket, "w", submitted).await;
    assert_eq!(seen.last().unwrap().0, submitted);
}

#[tokio::test]
async fn a_hundred_subscribers_of_one_workflow_all_receive_every_change() {
    let stack = spawn_stack().await;
    let alice = stack.token("acme", "alice");
    let bob = stack.token("acme", "bob");
    let id = projected_workflow(&stack, &alice).await;
    let mut sockets = Vec::new();
    for _ in 0..100 {
        let mut socket = connected(&stack, &alice).await;
        socket
            .subscribe("w", WORKFLOW_UPDATED, json!({ "id": id, "after": 0 }))
            .await;
        assert_eq!(
            socket.data_of("w", PUSH).await["workflowUpdated"]["version"],
            1
        );
        sockets.push(socket);
    }
    let submitted = stack.submit(&alice, &id).await.version("submitWorkflow");
    let approved = stack.approve(&bob, &id, 1).await.version("approveStep");

    let received = futures::future::join_all(
        sockets
            .iter_mut()
            .map(|socket| pushes_until(socket, "w", approved)),
    )
    .await;
    let first = &received[0];
    assert!(first.iter().any(|(version, _)| *version >= submitted));
    assert!(strictly_increasing(first));
    for (i, pushes) in received.iter().enumerate() {
        assert_eq!(pushes, first, "subscriber {i} was pushed something else");
    }
}

#[tokio::test]
async fn when_live_updates_are_interrupted_subscribers_are_closed_and_resume_with_after_version() {
    let stack = spawn_stack().await;
    let alice = stack.token("acme", "alice");
    let id = projected_workflow(&stack, &alice).await;
    let mut socket = connected(&stack, &alice).await;
    socket
        .subscribe("w", WORKFLOW_UPDATED, json!({ "id": id, "after": 0 }))
        .await;
    let seen = socket.data_of("w", PUSH).await["workflowUpdated"]["version"]
        .as_i64()
        .unwrap();

    // query-svc's listener loses its connection: changes may go unannounced.
    let terminated: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND query LIKE 'LISTEN%'",
    )
    .fetch_all(&stack.read_db)
    .await
    .unwrap();
    assert!(!terminated.is_empty(), "query-svc listens");
    match socket.next_of("w", PUSH).await {
        Some(Event::Closed { code, reason }) => {
            assert_eq!(code, 1012);
            assert!(reason.contains("afterVersion"), "{reason}");
        }
        other => panic!("expected the connection to be closed, got {other:?}"),
    }

    let submitted = stack.submit(&alice, &id).await.version("submitWorkflow");
    stack.workflow_at_version(&alice, &id, submitted).await;
    // The gateway follows query-svc again after its backoff; until then it refuses.
    let replayed = tests::eventually("a resubscription after the interruption", || async {
        let mut socket = connected(&stack, &alice).await;
        socket
            .subscribe("w", WORKFLOW_UPDATED, json!({ "id": id, "after": seen }))
            .await;
        match socket.next_of("w", PUSH).await {
            Some(Event::Next { payload, .. }) if payload.get("errors").is_none() => {
                Some(payload["data"]["workflowUpdated"]["version"].clone())
            }
            Some(Event::Next { payload, .. }) => {
                assert_eq!(payload["errors"][0]["extensions"]["code"], "UNAVAILABLE");
                None
            }
            other => panic!("expected a push or UNAVAILABLE, got {other:?}"),
        }
    })
    .await;
    assert_eq!(replayed, submitted, "what was missed is replayed");
}

#[tokio::test]
async fn a_connection_holds_at_most_32_subscriptions() {
    let stack = spawn_stack().await;
    let alice = stack.token("acme", "alice");
    let mut socket = connected(&stack, &alice).await;
    for i in 0..33 {
        socket
            .subscribe(&format!("s{i}"), WORKFLOW_EVENTS, json!({}))
            .await;
    }
    // Which one is refused depends on the order the server starts them in; exactly one is.
    match socket.next_within(PUSH).await {
        Some(Event::Next { payload, .. }) => {
            assert_eq!(
                payload["errors"][0]["extensions"]["code"],
                "RESOURCE_EXHAUSTED"
            );
        }
        other => panic!("expected the 33rd subscription refused, got {other:?}"),
    }
    assert!(
        !matches!(socket.next_within(QUIET).await, Some(Event::Next { .. })),
        "only one was refused"
    );
}

#[tokio::test]
async fn the_dashboard_is_pushed_after_changes_at_most_once_a_second() {
    let stack = spawn_stack().await;
    let alice = stack.token("acme", "alice");
    let bob = stack.token("acme", "bob");
    let mut socket = connected(&stack, &bob).await;
    socket.subscribe("d", DASHBOARD_UPDATED, json!({})).await;
    let first = socket.data_of("d", PUSH).await;
    assert_eq!(first["dashboardUpdated"]["pendingForMe"], 0);
    let mut pushed_at = vec![std::time::Instant::now()];

    for title in ["one", "two", "three"] {
        let id = stack.create_workflow(&alice, title, &["bob"]).await;
        stack.submit(&alice, &id).await.ok();
    }
    loop {
        let pushed = socket.data_of("d", PUSH).await;
        pushed_at.push(std::time::Instant::now());
        if pushed["dashboardUpdated"]["pendingForMe"] == 3 {
            break;
        }
    }
    for pair in pushed_at.windows(2) {
        // The throttle waits a full second after the previous push; the slack is the timer's.
        assert!(
            pair[1] - pair[0] >= Duration::from_millis(950),
            "pushed {:?} apart",
            pair[1] - pair[0]
        );
    }
}

#[tokio::test]
async fn a_subscriber_too_slow_to_read_is_closed_with_1008_while_another_is_pushed_every_change() {
    // More than a connection's kernel buffers hold (about ten bulky pushes; a few dozen where
    // the kernel allows a larger send buffer) plus the gateway's own for it (64 waiting changes
    // and a few frames on their way to the socket).
    const CHANGES: usize = 160;
    let stack = spawn_stack().await;
    let alice = stack.token("acme", "alice");
    let id = projected_workflow(&stack, &alice).await;
    // 10,000 characters, the most a description may have, of four bytes each.
    let description = "🙂".repeat(10_000);
    let described = stack
        .command(
            &alice,
            "updateDraft",
            json!({ "workflowId": id, "description": description }),
        )
        .await
        .version("updateDraft");
    stack.workflow_at_version(&alice, &id, described).await;
    // A small receive buffer: once this client stops reading, what the gateway sends it piles
    // up in the gateway, as for a slow client across a network.
    let mut slow =
        Socket::connect_with_receive_buffer(&stack.gateway_url, Protocol::TransportWs, 4096)
            .await
            .expect("the gateway upgrades");
    slow.init(&alice).await.expect("the token is accepted");
    slow.subscribe("w", BULKY_WORKFLOW_UPDATED, json!({ "id": id, "after": 0 }))
        .await;
    let now = slow.data_of("w", PUSH).await;
    assert_eq!(now["workflowUpdated"]["version"], described);
    assert_eq!(now["workflowUpdated"]["d8"], description);
    // The same changes, pushed small: bulky pushes would only slow the test down.
    let mut other = connected(&stack, &alice).await;
    other
        .subscribe("w", WORKFLOW_UPDATED, json!({ "id": id, "after": 0 }))
        .await;
    assert_eq!(
        other.data_of("w", PUSH).await["workflowUpdated"]["version"],
        described
    );

    // The slow client reads nothing meanwhile. Each change is made once the other subscriber
    // was pushed the one before, so none of them can arrive merged with the next.
    let mut made = Vec::new();
    for n in 0..CHANGES {
        let version = stack
            .comment(&alice, &id, &format!("comment {n}"))
            .await
            .version("addComment");
        assert_eq!(
            other.data_of("w", PUSH).await["workflowUpdated"]["version"],
            version,
            "the other subscriber is pushed change {n} as it is made"
        );
        made.push(version);
    }

    let mut received = Vec::new();
    let (code, reason) = loop {
        match slow.next_of("w", PUSH).await {
            Some(Event::Next { payload, .. }) if payload.get("errors").is_none() => {
                received.push(
                    payload["data"]["workflowUpdated"]["version"]
                        .as_i64()
                        .unwrap(),
                );
            }
            Some(Event::Closed { code, reason }) => break (code, reason),
            unexpected => panic!(
                "expected the slow subscriber's pushes to end in a close, got {unexpected:?} \
                 after {} pushes of {CHANGES} changes",
                received.len()
            ),
        }
    };
    assert_eq!(code, 1008, "{reason}");
    assert!(reason.starts_with("too slow"), "{reason}");
    assert!(
        received.len() < made.len(),
        "closed only after being pushed all {} changes",
        made.len()
    );
    assert_eq!(
        received,
        made[..received.len()],
        "until it fell behind, the slow subscriber was pushed each change in order"
    );
}
