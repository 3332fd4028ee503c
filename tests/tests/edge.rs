//! The edge under abuse: what one request may cost, rate limits, identities the gateway
//! refuses, errors that always carry a code and never internals, ids in any spelling, and reads
//! that stay bounded however much a workflow accumulates. Every check is on data; how fast the
//! others are served meanwhile is measured in the bench.

use serde_json::{json, Value};
use tests::{spawn_stack, GraphQlResponse, TestStack};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// `count` aliased copies of `field` as one operation.
fn aliased(operation: &str, count: usize, field: &str) -> String {
    let fields: String = (0..count).map(|i| format!(" a{i}: {field}")).collect();
    format!("{operation} {{{fields} }}")
}

/// The codes of every error of a response.
fn codes(response: &GraphQlResponse) -> Vec<&str> {
    response
        .errors
        .iter()
        .map(|error| error["extensions"]["code"].as_str().unwrap_or("<none>"))
        .collect()
}

/// Refused as a whole with INVALID_ARGUMENT: nothing ran.
fn assert_refused(name: &str, response: &GraphQlResponse) {
    let codes = codes(response);
    assert!(
        !codes.is_empty() && codes.iter().all(|code| *code == "INVALID_ARGUMENT"),
        "{name}: {codes:?} {:#?}",
        response.errors
    );
    assert!(response.data.is_null(), "{name}: {}", response.data);
}

/// A gateway of its own in front of the stack's backends, with extra flags.
struct Gateway {
    url: String,
    shutdown: CancellationToken,
}

impl Gateway {
    async fn start(stack: &TestStack, flags: &[(&str, &str)]) -> Self {
        let command_url = format!("http://127.0.0.1:{}", stack.command_port);
        let query_url = format!("http://127.0.0.1:{}", stack.query_port);
        let mut args = vec![
            ("listen-addr", "127.0.0.1:0"),
            ("command-url", command_url.as_str()),
            ("query-url", query_url.as_str()),
        ];
        args.extend_from_slice(flags);
        let settings: gateway::Settings = tests::settings("gateway", &args);
        let shutdown = CancellationToken::new();
        let app = gateway::Application::build(settings, shutdown.clone())
            .await
            .unwrap();
        let url = format!("http://127.0.0.1:{}/graphql", app.port());
        tokio::spawn(app.run_until_stopped());
        Self { url, shutdown }
    }

    async fn post(&self, token: &str, query: &str) -> reqwest::Response {
        reqwest::Client::new()
            .post(&self.url)
            .bearer_auth(token)
            .json(&json!({ "query": query }))
            .send()
            .await
            .unwrap()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

#[tokio::test]
async fn abusive_requests_are_refused_while_another_tenant_is_served() {
    let stack = spawn_stack().await;
    let alice = stack.token("acme", "alice");
    let mallory = stack.token("globex", "mallory");
    let id = stack
        .create_workflow(&alice, "出張申請：福岡", &["bob"])
        .await;
    stack.workflow_at_version(&alice, &id, 1).await;

    let victim = Uuid::new_v4();
    let submit = format!(r#"submitWorkflow(input: {{ workflowId: "{victim}" }}) {{ version }}"#);
    let depth_25 = format!(
        "{{ __schema {{ types {{ fields {{ type {{ {} name {} }} }} }} }} }}",
        "ofType { ".repeat(20),
        "} ".repeat(20)
    );
    let abusive = [
        ("300 dashboards", aliased("", 300, "dashboard { overdue }")),
        (
            "100 reads at a minimum version",
            aliased(
                "",
                100,
                &format!(r#"workflow(id: "{victim}", minVersion: 9) {{ id }}"#),
            ),
        ),
        (
            "60 histories",
            aliased(
                "",
                60,
                &format!(r#"workflowHistory(id: "{victim}") {{ version }}"#),
            ),
        ),
        (
            "100 short searches",
            aliased("", 100, r#"searchWorkflows(text: "a") { totalCount }"#),
        ),
        ("40 mutations", aliased("mutation", 40, &submit)),
        ("25 levels deep", depth_25),
    ];

    let attack = async {
        for (name, query) in &abusive {
            let response = stack.graphql(Some(&mallory), query, json!({})).await;
            assert_refused(name, &response);
        }
    };
    let everyday = async {
        for _ in 0..5 {
            let data = stack
                .graphql(
                    Some(&alice),
                    "query($id: ID!) { workflow(id: $id) { title }
                       workflows { totalCount } dashboard { byStatus { status count } } }",
                    json!({ "id": id }),
                )
                .await
                .ok();
            assert_eq!(data["workflow"]["title"], "出張申請：福岡");
            assert_eq!(data["workflows"]["totalCount"], 1);
        }
    };
    tokio::join!(attack, everyday);

    // 40 mutations as a batch of operations: one operation per request.
    let batch: Vec<Value> = (0..40)
        .map(|_| json!({ "query": format!("mutation {{ {submit} }}") }))
        .collect();
    let response = reqwest::Client::new()
        .post(format!("{}/graphql", stack.gateway_url))
        .bearer_auth(&mallory)
        .json(&batch)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "INVALID_ARGUMENT");
    // Nothing of the attack reached the store.
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE tenant_id = 'globex'")
        .fetch_one(&stack.event_store)
        .await
        .unwrap();
    assert_eq!(events, 0);
}

#[tokio::test]
async fn lookups_batch_at_query_svcs_maximum_and_find_ids_in_any_spelling() {
    let stack = spawn_stack().await;
    let alice = stack.token("acme", "alice");
    let mut ids = Vec::new();
    for title in ["一", "二", "三"] {
        ids.push(stack.create_workflow(&alice, title, &["bob"]).await);
    }
    for id in &ids {
        stack.workflow_at_version(&alice, id, 1).await;
    }
    let spellings = [
        ids[0].to_uppercase(),
        format!("{{{}}}", ids[1]),
        ids[2].replace('-', ""),
    ];

    let lookups: String = spellings
        .iter()
        .enumerate()
        .map(|(i, id)| format!(r#" a{i}: workflow(id: "{id}") {{ id title }}"#))
        .collect();
    let data = stack
        .graphql(Some(&alice), &format!("{{{lookups} }}"), json!({}))
        .await
        .ok();
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(data[format!("a{i}")]["id"], id.as_str(), "canonical id");
    }

    // 101 distinct lookups: two calls to query-svc, every missing one NOT_FOUND, nothing else.
    let missing: String = (3..101)
        .map(|i| format!(r#" a{i}: workflow(id: "{}") {{ id }}"#, Uuid::new_v4()))
        .collect();
    let response = stack
        .graphql(Some(&alice), &format!("{{{lookups}{missing} }}"), json!({}))
        .await;
    assert_eq!(codes(&response), vec!["NOT_FOUND"; 98]);
    let failed: Vec<&str> = response
        .errors
        .iter()
        .map(|error| error["path"][0].as_str().unwrap())
        .collect();
    assert!(!failed
        .iter()
        .any(|alias| ["a0", "a1", "a2"].contains(alias)));

    // Every other id argument too.
    let upper = ids[0].to_uppercase();
    let data = stack
        .graphql(
            Some(&alice),
            "query($id: ID!) { workflow(id: $id, minVersion: 1) { id stale }
                               workflowHistory(id: $id) { version } }",
            json!({ "id": upper }),
        )
        .await
        .ok();
    assert_eq!(data["workflow"]["id"], ids[0].as_str());
    assert_eq!(data["workflowHistory"][0]["version"], 1);
    let submitted = stack.submit(&alice, &format!("{{{upper}}}")).await.ok();
    assert_eq!(submitted["submitWorkflow"]["workflowId"], ids[0].as_str());
}

#[tokio::test]
async fn history_is_read_a_page_at_a_time() {
    let stack = spawn_stack().await;
    let alice = stack.token("acme", "alice");
    let id = stack.create_workflow(&alice, "稟議", &["bob"]).await;
    for n in 1..=5 {
        stack.comment(&alice, &id, &format!("メモ {n}")).await.ok();
    }
    let history = "query($id: ID!, $first: Int!, $after: Int!) {
        workflowHistory(id: $id, first: $first, afterVersion: $after) { version eventType } }";
    let page = |first: i64, after: i64| {
        let stack = &stack;
        let alice = &alice;
        let id = &id;
        async move {
            stack
                .graphql(
                    Some(alice),
                    history,
                    json!({ "id": id, "first": first, "after": after }),
                )
                .await
        }
    };
    let versions = |response: GraphQlResponse| -> Vec<i64> {
        response.ok()["workflowHistory"]
            .as_array()
            .unwrap()
            .iter()
            .map(|entry| entry["version"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(versions(page(2, 0).await), [1, 2]);
    assert_eq!(versions(page(2, 2).await), [3, 4]);
    assert_eq!(versions(page(100, 4).await), [5, 6]);
    assert_eq!(versions(page(2, 6).await), Vec::<i64>::new());
    for (first, field) in [(0, "first"), (101, "page_size")] {
        let response = page(first, 0).await;
        assert_eq!(response.error_code(), "INVALID_ARGUMENT");
        assert_eq!(response.errors[0]["extensions"]["field"], field);
    }
}

#[tokio::test]
async fn a_workflow_with_more_comments_than_a_detail_holds_stays_readable() {
    let stack = spawn_stack().await;
    let alice = stack.token("acme", "alice");
    let id = stack.create_workflow(&alice, "長い議論", &["bob"]).await;
    let mut version = 1;
    for n in 1..=101 {
        version = stack
            .comment(&alice, &id, &format!("comment {n}"))
            .await
            .version("addComment");
    }
    let detail = stack
        .graphql(
            Some(&alice),
            "query($id: ID!, $v: Int!) { workflow(id: $id, minVersion: $v) {
                 stale commentCount comments { body } } }",
            json!({ "id": id, "v": version }),
        )
        .await
        .ok();
    let workflow = &detail["workflow"];
    assert_eq!(workflow["stale"], false);
    assert_eq!(workflow["commentCount"], 101);
    let bodies: Vec<&str> = workflow["comments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|comment| comment["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies.len(), 100);
    assert_eq!((bodies[0], bodies[99]), ("comment 2", "comment 101"));
}

/// Forged cursors with such times are refused the same way, naming `after`; see query-svc's
/// tests, which forge them.
#[tokio::test]
async fn out_of_range_times_are_invalid_arguments_naming_the_field() {
    let stack = spawn_stack().await;
    let alice = stack.token("acme", "alice");
    let list = "query($filter: WorkflowFilter, $after: String) {
        workflows(filter: $filter, after: $after) { totalCount } }";
    for (variables, field) in [
        (
            json!({ "filter": { "createdAfter": "-5000-01-01T00:00:00Z" } }),
            "created_after",
        ),
        (
            json!({ "filter": { "createdBefore": "+10000-01-01T00:00:00Z" } }),
            "created_before",
        ),
    ] {
        let response = stack.graphql(Some(&alice), list, variables.clone()).await;
        assert_eq!(response.error_code(), "INVALID_ARGUMENT", "{variables}");
        assert_eq!(response.errors[0]["extensions"]["field"], field);
    }
    // Input async-graphql cannot coerce is refused with a code as well.
    for (query, variables) in [
        (
            "mutation($input: CreateWorkflowInput!) { createWorkflow(input: $input) { version } }",
            json!({ "input": { "title": "t", "dueDate": "2026-02-30" } }),
        ),
        (list, json!({ "filter": { "createdAfter": "yesterday" } })),
        (list, json!({ "after": 5 })),
        ("{ workflows { edges { cursr } } }", json!({})),
        ("{ workflows(", json!({})),
    ] {
        let response = stack.graphql(Some(&alice), query, variables).await;
        assert_refused(query, &response);
    }
}

#[tokio::test]
async fn the_gateway_refuses_tokens_of_the_system_role() {
    let stack = spawn_stack().await;
    let alice = stack.token("acme", "alice");
    let id = stack.create_workflow(&alice, "監査", &["bob"]).await;
    for roles in [&["system"][..], &["admin", "system"]] {
        let system = stack.token_with_roles("acme", "deadline-watcher", roles);
        let escalate = stack
            .command(
                &system,
                "escalateStep",
                json!({ "workflowId": id, "step": 1 }),
            )
            .await;
        assert_eq!(escalate.error_code(), "PERMISSION_DENIED", "{roles:?}");
        let read = stack
            .graphql(Some(&system), "{ workflows { totalCount } }", json!({}))
            .await;
        assert_eq!(read.error_code(), "PERMISSION_DENIED", "{roles:?}");
    }
}

#[tokio::test]
async fn a_user_over_the_rate_limit_gets_429_while_others_are_served() {
    let stack = spawn_stack().await;
    // One request per second after a burst of three, so the fourth of ten requests sent one
    // after the other is refused unless they took more than a second each.
    let gateway = Gateway::start(
        &stack,
        &[("rate-limit-per-second", "1"), ("rate-limit-burst", "3")],
    )
    .await;
    let alice = stack.token("acme", "alice");
    let query = "{ dashboard { overdue } }";
    let mut statuses = Vec::new();
    let mut refusal = None;
    for _ in 0..10 {
        let response = gateway.post(&alice, query).await;
        statuses.push(response.status());
        if response.status() == reqwest::StatusCode::TOO_MANY_REQUESTS && refusal.is_none() {
            let retry_after = response.headers()["retry-after"]
                .to_str()
                .unwrap()
                .to_owned();
            let body: Value = response.json().await.unwrap();
            refusal = Some((retry_after, body));
        }
    }
    assert!(
        statuses[..3].iter().all(|status| status.is_success()),
        "{statuses:?}"
    );
    let (retry_after, body) = refusal.expect("a request past the burst is refused");
    assert_eq!(retry_after, "1");
    assert_eq!(
        body["errors"][0]["extensions"]["code"],
        "RESOURCE_EXHAUSTED"
    );

    for other in [stack.token("acme", "bob"), stack.token("globex", "alice")] {
        let response = gateway.post(&other, query).await;
        assert!(response.status().is_success());
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["data"]["dashboard"]["overdue"], 0);
    }
}

#[tokio::test]
async fn introspection_can_be_switched_off() {
    let stack = spawn_stack().await;
    let alice = stack.token("acme", "alice");
    let introspect = "{ __schema { types { name } } }";
    let open = stack
        .graphql(Some(&alice), introspect, json!({}))
        .await
        .ok();
    assert!(!open["__schema"]["types"].as_array().unwrap().is_empty());

    let closed = Gateway::start(&stack, &[("graphql-introspection", "false")]).await;
    let body: Value = closed.post(&alice, introspect).await.json().await.unwrap();
    assert_eq!(body, json!({ "data": { "__schema": null } }));
    let body: Value = closed
        .post(&alice, "{ workflows { totalCount } }")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["data"]["workflows"]["totalCount"], 0);
}
