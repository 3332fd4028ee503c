//! The System Board end to end over GraphQL: gateway → command-svc → event store → relay →
//! broker → command-svc's reactions (scan, review task, remediation task, alert) and projector →
//! read DB → query-svc → gateway, all real.

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{json, Value};
use tests::{eventually, spawn_stack, GraphQlResponse, TestStack};
use uuid::Uuid;

/// The header the gateway honours, forwards to command-svc and echoes.
const CORRELATION_ID: &str = "x-correlation-id";

/// A GraphQL request with `x-correlation-id: correlation_id`; answers the response and the
/// correlation id the gateway echoed.
async fn graphql_in(
    stack: &TestStack,
    token: &str,
    correlation_id: Uuid,
    query: &str,
    variables: Value,
) -> (GraphQlResponse, String) {
    let response = reqwest::Client::new()
        .post(format!("{}/graphql", stack.gateway_url))
        .bearer_auth(token)
        .header(CORRELATION_ID, correlation_id.to_string())
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .expect("gateway answers HTTP");
    let echoed = response
        .headers()
        .get(CORRELATION_ID)
        .expect("the gateway echoes the correlation id")
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = response.json().await.expect("gateway answers JSON");
    let response = GraphQlResponse {
        data: body.get("data").cloned().unwrap_or(Value::Null),
        errors: body
            .get("errors")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
    };
    (response, echoed)
}

const TASKS: &str = "query($filter: TaskFilter) { tasks(filter: $filter, first: 100) {
    nodes { id version kind status systemId scanId cve title priority dueAt assignee createdAt
            completedAt }
    pageInfo { hasNextPage endCursor } } }";

async fn tasks(stack: &TestStack, token: &str, filter: Value) -> Vec<Value> {
    let data = stack
        .graphql(Some(token), TASKS, json!({ "filter": filter }))
        .await
        .ok();
    assert_eq!(data["tasks"]["pageInfo"]["hasNextPage"], false);
    data["tasks"]["nodes"].as_array().expect("nodes").clone()
}

const CHAIN: &str = "query($id: ID!) { causalChain(correlationId: $id) {
    eventId eventType aggregateType aggregateId version occurredAt correlationId causationId
    userId } }";

/// The causal chain of `correlation_id` once it holds at least `length` events.
async fn chain(stack: &TestStack, token: &str, correlation_id: Uuid, length: usize) -> Vec<Value> {
    eventually(&format!("a chain of {length} events"), || async {
        let response = stack
            .graphql(Some(token), CHAIN, json!({ "id": correlation_id }))
            .await;
        let events = found(response)?["causalChain"].as_array()?.clone();
        (events.len() >= length).then_some(events)
    })
    .await
}

const SYSTEM: &str = "query($id: ID!) { system(id: $id) {
    id version name owner environment packages { name version } decommissioned
    openVulnerabilities { critical high medium low }
    securityAlerts { scanId cve cvss severity package raisedAt }
    registeredAt updatedAt } }";

/// The data of a read, or `None` while the read side does not have what it asks about yet
/// (NOT_FOUND); any other error fails the test.
fn found(response: GraphQlResponse) -> Option<Value> {
    if response.errors.is_empty() {
        return Some(response.data);
    }
    assert_eq!(response.error_code(), "NOT_FOUND", "{:#?}", response.errors);
    None
}

fn time(value: &Value) -> DateTime<Utc> {
    value
        .as_str()
        .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
        .unwrap_or_else(|| panic!("not an RFC 3339 time: {value}"))
        .with_timezone(&Utc)
}

#[tokio::test]
async fn a_registered_system_is_scanned_a_critical_finding_raises_an_alert_and_a_task_and_the_chain_links_every_step(
) {
    let stack = spawn_stack().await;
    // Tenants of this run alone: the broker outlives it.
    let run = Uuid::new_v4().simple().to_string();
    let (tenant, other_tenant) = (format!("acme-{run}"), format!("globex-{run}"));
    let olga = stack.token(&tenant, "olga");
    let sam = stack.token_with_roles(&tenant, "sam", &["security"]);
    let intruder = stack.token_with_roles(&other_tenant, "mallory", &["security", "admin"]);

    // Registration, in a correlation id of the client's choosing.
    let registration = Uuid::new_v4();
    let command_id = Uuid::new_v4();
    let (registered, echoed) = graphql_in(
        &stack,
        &olga,
        registration,
        "mutation($input: RegisterSystemInput!) {
           registerSystem(input: $input) { aggregateId version } }",
        json!({ "input": {
            "commandId": command_id,
            "name": "Payroll API",
            "owner": "olga",
            "environment": "PRODUCTION",
            "packages": [
                { "name": "openssl", "version": "3.0.2" },
                { "name": "log4j-core", "version": "2.14.1" },
            ],
        } }),
    )
    .await;
    assert_eq!(echoed, registration.to_string());
    let registered = registered.ok();
    assert_eq!(registered["registerSystem"]["version"], 1);
    let system_id = registered["registerSystem"]["aggregateId"]
        .as_str()
        .expect("system id")
        .to_owned();

    // The platform scans the packages and asks for a review of the scan, in the registration's
    // correlation id: a chain of events, each caused by the one before it.
    let events = chain(&stack, &olga, registration, 3).await;
    let types: Vec<&str> = events
        .iter()
        .map(|event| event["eventType"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        ["SystemRegistered", "VulnScanInitiated", "TaskCreated"]
    );
    assert_eq!(events[0]["aggregateType"], "system");
    assert_eq!(events[0]["aggregateId"], system_id.as_str());
    assert_eq!(events[1]["aggregateType"], "vulnerability_scan");
    assert_eq!(events[2]["aggregateType"], "task");
    let scan_id = events[1]["aggregateId"].as_str().unwrap().to_owned();
    let review_id = events[2]["aggregateId"].as_str().unwrap().to_owned();
    assert_eq!(events[0]["causationId"], command_id.to_string());
    assert_eq!(events[0]["userId"], "olga");
    for pair in events.windows(2) {
        assert_eq!(pair[1]["causationId"], pair[0]["eventId"], "{pair:#?}");
    }
    for event in &events {
        assert_eq!(event["correlationId"], registration.to_string());
        assert_eq!(event["version"], 1);
    }

    // Findings are for security staff, in tenths exactly.
    let record = "mutation($input: RecordFindingInput!) {
        recordFinding(input: $input) { aggregateId version } }";
    let finding = |cvss: f64| {
        json!({ "input": {
            "scanId": scan_id, "cve": "CVE-2021-44228", "cvss": cvss, "package": "log4j-core",
        } })
    };
    let refused = stack.graphql(Some(&olga), record, finding(9.8)).await;
    assert_eq!(refused.error_code(), "PERMISSION_DENIED");
    let rounded = stack.graphql(Some(&sam), record, finding(9.85)).await;
    assert_eq!(rounded.error_code(), "INVALID_ARGUMENT");
    assert_eq!(rounded.errors[0]["extensions"]["field"], "cvss");

    let detection = Uuid::new_v4();
    let (recorded, _) = graphql_in(&stack, &sam, detection, record, finding(9.8)).await;
    let recorded = recorded.ok();
    assert_eq!(recorded["recordFinding"]["aggregateId"], scan_id.as_str());
    assert_eq!(recorded["recordFinding"]["version"], 2);

    // The finding's own chain: the task and the alert both react to the detection.
    let events = chain(&stack, &sam, detection, 3).await;
    assert_eq!(events.len(), 3, "{events:#?}");
    assert_eq!(events[0]["eventType"], "VulnerabilityDetected");
    let mut reactions: Vec<&str> = events[1..]
        .iter()
        .map(|event| event["eventType"].as_str().unwrap())
        .collect();
    reactions.sort_unstable();
    assert_eq!(reactions, ["SystemSecurityAlertRaised", "TaskCreated"]);
    for event in &events[1..] {
        assert_eq!(event["causationId"], events[0]["eventId"]);
    }

    // The review task on the read side.
    let review = eventually("a scan review task for the system", || async {
        tasks(&stack, &olga, json!({ "systemId": system_id }))
            .await
            .into_iter()
            .find(|task| task["kind"] == "SCAN_REVIEW")
    })
    .await;
    assert_eq!(review["id"], review_id.as_str());
    assert_eq!(review["scanId"], scan_id.as_str());
    assert_eq!(review["status"], "OPEN");
    assert_eq!(review["systemId"], system_id.as_str());
    assert_eq!(review["cve"], Value::Null);
    assert_eq!(review["assignee"], Value::Null);

    // A critical finding: a HIGH remediation task due three days after it …
    let remediation = eventually("a remediation task for the finding", || async {
        tasks(&stack, &olga, json!({ "systemId": system_id }))
            .await
            .into_iter()
            .find(|task| task["kind"] == "REMEDIATION")
    })
    .await;
    assert_eq!(remediation["priority"], "HIGH");
    assert_eq!(remediation["status"], "OPEN");
    assert_eq!(remediation["cve"], "CVE-2021-44228");
    assert_eq!(remediation["scanId"], scan_id.as_str());
    // The scans' read model follows a topic of its own, so it may come a little later.
    let vulnerabilities = eventually("the finding among the system's vulnerabilities", || async {
        let data = stack
            .graphql(
                Some(&olga),
                "query($id: ID!) { systemVulnerabilities(systemId: $id) {
                   scanId cve cvss severity package detectedAt } }",
                json!({ "id": system_id }),
            )
            .await;
        let listed = found(data)?["systemVulnerabilities"].as_array()?.clone();
        (!listed.is_empty()).then_some(listed)
    })
    .await;
    assert_eq!(vulnerabilities.len(), 1, "{vulnerabilities:#?}");
    let vulnerability = &vulnerabilities[0];
    assert_eq!(
        (
            &vulnerability["scanId"],
            &vulnerability["cve"],
            &vulnerability["cvss"],
            &vulnerability["severity"],
            &vulnerability["package"],
        ),
        (
            &json!(scan_id),
            &json!("CVE-2021-44228"),
            &json!(9.8),
            &json!("CRITICAL"),
            &json!("log4j-core"),
        )
    );
    let due_after_finding = time(&remediation["dueAt"]) - time(&vulnerability["detectedAt"]);
    assert!(
        (due_after_finding - TimeDelta::days(3)).abs() < TimeDelta::milliseconds(1),
        "due {due_after_finding} after the finding"
    );

    // … and a security alert on the system.
    let system = eventually("the security alert on the system", || async {
        let data = stack
            .graphql(Some(&olga), SYSTEM, json!({ "id": system_id }))
            .await;
        let system = found(data)?["system"].clone();
        let alerted = !system["securityAlerts"].as_array()?.is_empty();
        (alerted && system["openVulnerabilities"]["critical"] == 1).then_some(system)
    })
    .await;
    assert_eq!(system["name"], "Payroll API");
    assert_eq!(system["environment"], "PRODUCTION");
    assert_eq!(
        system["packages"],
        json!([
            { "name": "log4j-core", "version": "2.14.1" },
            { "name": "openssl", "version": "3.0.2" },
        ])
    );
    assert_eq!(
        system["openVulnerabilities"],
        json!({ "critical": 1, "high": 0, "medium": 0, "low": 0 })
    );
    let alert = &system["securityAlerts"][0];
    assert_eq!(alert["scanId"], scan_id.as_str());
    assert_eq!(alert["cve"], "CVE-2021-44228");
    assert_eq!(alert["cvss"], 9.8);
    assert_eq!(alert["severity"], "CRITICAL");

    // The remediation task is handed to olga, who completes it.
    let assigned = stack
        .graphql(
            Some(&sam),
            "mutation($id: ID!) { assignTask(input: { taskId: $id, assignee: \"olga\" }) {
               aggregateId version } }",
            json!({ "id": remediation["id"] }),
        )
        .await
        .ok();
    assert_eq!(assigned["assignTask"]["version"], 2);
    let completed = stack
        .graphql(
            Some(&olga),
            "mutation($id: ID!) { completeTask(input: { taskId: $id, expectedVersion: 2,
               note: \"upgraded to 2.17.1\" }) { aggregateId version } }",
            json!({ "id": remediation["id"] }),
        )
        .await
        .ok();
    assert_eq!(completed["completeTask"]["version"], 3);
    let mine = eventually("olga's completed task", || async {
        let mine = tasks(&stack, &olga, json!({ "mine": true })).await;
        (mine.first()?["status"] == "COMPLETED").then_some(mine)
    })
    .await;
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0]["id"], remediation["id"]);
    assert_eq!(mine[0]["assignee"], "olga");

    let listed = stack
        .graphql(
            Some(&olga),
            "{ systems(first: 10) { nodes { id } pageInfo { hasNextPage endCursor } } }",
            json!({}),
        )
        .await
        .ok();
    assert_eq!(
        listed["systems"],
        json!({ "nodes": [{ "id": system_id }],
                "pageInfo": { "hasNextPage": false, "endCursor": null } })
    );

    // Another tenant sees nothing of it, whatever it asks.
    let system = stack
        .graphql(Some(&intruder), SYSTEM, json!({ "id": system_id }))
        .await;
    assert_eq!(system.error_code(), "NOT_FOUND");
    for filter in [json!({}), json!({ "systemId": system_id })] {
        assert_eq!(tasks(&stack, &intruder, filter).await, Vec::<Value>::new());
    }
    let vulnerabilities = stack
        .graphql(
            Some(&intruder),
            "query($id: ID!) { systemVulnerabilities(systemId: $id) { cve } }",
            json!({ "id": system_id }),
        )
        .await;
    assert_eq!(vulnerabilities.error_code(), "NOT_FOUND");
    let foreign_chain = stack
        .graphql(Some(&intruder), CHAIN, json!({ "id": registration }))
        .await;
    assert_eq!(foreign_chain.error_code(), "NOT_FOUND");
    let listed = stack
        .graphql(Some(&intruder), "{ systems { nodes { id } } }", json!({}))
        .await
        .ok();
    assert_eq!(listed["systems"]["nodes"], json!([]));
    let finding = stack
        .graphql(
            Some(&intruder),
            record,
            json!({ "input": {
                "scanId": scan_id, "cve": "CVE-2021-45046", "cvss": 9.0, "package": "log4j-core",
            } }),
        )
        .await;
    assert_eq!(finding.error_code(), "NOT_FOUND");
}
