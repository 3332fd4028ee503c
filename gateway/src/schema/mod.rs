//! The GraphQL schema. Resolvers verify the caller, translate to the gRPC contract and back, and
//! hold no state: validation beyond what the wire types force belongs to the backends.

mod board;
mod limits;
mod loader;
mod mutation;
mod query;
mod subscription;
mod types;

use crate::backends::Backends;
use crate::caller::{Caller, Incoming};
use crate::errors::{code_request_errors, graphql_error};
use crate::push::Hub;
use async_graphql::{Context, MergedObject, Schema, ID};
use platform::auth::Jwt;
use std::future::Future;
use std::sync::Arc;
use tracing::Instrument as _;

type GatewaySchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

/// Every read: the workflow context's and the System Board's.
#[derive(MergedObject, Default)]
pub(crate) struct QueryRoot(query::WorkflowQuery, board::query::BoardQuery);

/// Every command: the workflow context's and the System Board's.
#[derive(MergedObject, Default)]
pub(crate) struct MutationRoot(mutation::WorkflowMutation, board::mutation::BoardMutation);

/// Every live update (GraphQL over WebSocket, `ws`).
type SubscriptionRoot = subscription::WorkflowSubscription;

fn roots() -> (QueryRoot, MutationRoot, SubscriptionRoot) {
    (
        QueryRoot::default(),
        MutationRoot::default(),
        SubscriptionRoot::default(),
    )
}

/// The schema and what runs around every execution of it: the shape limits on a parsed
/// document (remembered per document text), and the error codes of what async-graphql refuses
/// itself. Both run here rather than as async-graphql extensions: with any extension at all,
/// async-graphql resolves every field through its extension chain, which was the largest cost
/// of the gateway's own on a page of workflows.
#[derive(Clone)]
pub(crate) struct Api {
    schema: GatewaySchema,
    documents: Arc<limits::Documents>,
    hub: Hub,
}

pub(crate) fn build(backends: Backends, jwt: Jwt, introspection: bool) -> Api {
    let (query, mutation, subscription) = roots();
    let hub = Hub::default();
    let schema = Schema::build(query, mutation, subscription)
        .data(hub.clone())
        .data(backends)
        .data(jwt)
        .limit_depth(limits::MAX_DEPTH)
        .limit_complexity(limits::MAX_COMPLEXITY);
    let schema = if introspection {
        schema.finish()
    } else {
        schema.disable_introspection().finish()
    };
    Api {
        schema,
        documents: Arc::default(),
        hub,
    }
}

impl Api {
    /// What runs the subscriptions of a WebSocket connection.
    pub(crate) fn executor(&self) -> subscription::Subscriptions {
        subscription::Subscriptions::new(self.schema.clone(), self.documents.clone())
    }

    /// The subscriptions' changes, to be fed from query-svc (`Hub::follow`).
    pub(crate) fn hub(&self) -> &Hub {
        &self.hub
    }

    /// Runs one request for the caller `incoming` describes.
    pub(crate) async fn execute(
        &self,
        request: async_graphql::Request,
        incoming: Incoming,
        backends: &Backends,
        jwt: &Jwt,
    ) -> async_graphql::Response {
        let started = std::time::Instant::now();
        let mut request = prepare(request, incoming, backends, jwt);
        let (operation_type, mut response) = match self.documents.checked(&request.query) {
            Ok(document) => {
                let operation_type = operation_type(&document, request.operation_name.as_deref());
                request.set_parsed_query(document);
                (operation_type, self.schema.execute(request).await)
            }
            Err(error) => ("unknown", async_graphql::Response::from_errors(vec![error])),
        };
        code_request_errors(&mut response);
        record(operation_type, &response, started);
        response
    }
}

/// `query`, `mutation` or `subscription`: the operation the request runs. (A document that
/// does not parse, or names no operation it holds, is `unknown`.)
fn operation_type(
    document: &async_graphql::parser::types::ExecutableDocument,
    name: Option<&str>,
) -> &'static str {
    use async_graphql::parser::types::{DocumentOperations, OperationType};
    let operation = match (&document.operations, name) {
        (DocumentOperations::Single(operation), _) => Some(operation),
        (DocumentOperations::Multiple(operations), Some(name)) => operations.get(name),
        (DocumentOperations::Multiple(_), None) => None,
    };
    match operation.map(|operation| operation.node.ty) {
        Some(OperationType::Query) => "query",
        Some(OperationType::Mutation) => "mutation",
        Some(OperationType::Subscription) => "subscription",
        None => "unknown",
    }
}

/// `ringiflow_graphql_requests_total{operation_type,code}` (code: the first error's, or OK)
/// and `ringiflow_graphql_request_duration_seconds{operation_type}`.
fn record(
    operation_type: &'static str,
    response: &async_graphql::Response,
    started: std::time::Instant,
) {
    let code = response
        .errors
        .first()
        .and_then(|error| error.extensions.as_ref()?.get("code"))
        .and_then(|code| match code {
            async_graphql::Value::String(code) => platform::errors::ErrorCode::parse(code),
            _ => None,
        })
        .map_or(
            if response.errors.is_empty() {
                "OK"
            } else {
                "UNKNOWN"
            },
            |code| code.as_str(),
        );
    metrics::counter!(
        "ringiflow_graphql_requests_total",
        "operation_type" => operation_type,
        "code" => code,
    )
    .increment(1);
    metrics::histogram!(
        "ringiflow_graphql_request_duration_seconds",
        "operation_type" => operation_type,
    )
    .record(started.elapsed().as_secs_f64());
}

/// Attaches what the resolvers of one request need: what it says about its caller, and a
/// workflow loader of its own (a batch is only ever for one caller).
fn prepare(
    request: async_graphql::Request,
    incoming: Incoming,
    backends: &Backends,
    jwt: &Jwt,
) -> async_graphql::Request {
    let loader =
        loader::WorkflowLoader::for_request(backends.clone(), jwt.clone(), incoming.clone());
    request.data(incoming).data(loader)
}

/// The verified caller and the clients to call on its behalf.
fn authorized<'a>(ctx: &Context<'a>) -> async_graphql::Result<(Caller, &'a Backends)> {
    let caller = data::<Incoming>(ctx)?
        .authenticate(data::<Jwt>(ctx)?)
        .map_err(graphql_error)?;
    Ok((caller, data::<Backends>(ctx)?))
}

/// One call to a backend on behalf of the verified caller, through the client `pick` chooses:
/// the path the gateway's calls take, so each carries the caller's token and the request's
/// correlation id, runs under its channel's timeouts (`backends`) and fails through the one
/// error mapping.
async fn call<C, R, F, Fut, Out>(
    ctx: &Context<'_>,
    pick: fn(&Backends) -> C,
    message: R,
    call: F,
) -> async_graphql::Result<Out>
where
    F: FnOnce(C, tonic::Request<R>) -> Fut,
    Fut: Future<Output = Result<tonic::Response<Out>, tonic::Status>>,
{
    let (caller, backends) = authorized(ctx)?;
    // A span per backend call, named by the field that makes it; its context travels in the
    // request's `traceparent`, so the backend's server span is its child.
    let span = tracing::info_span!("resolver", field = %ctx.field().name());
    let request = span.in_scope(|| caller.request(message));
    let response = call(pick(backends), request)
        .instrument(span)
        .await
        .map_err(graphql_error)?;
    Ok(response.into_inner())
}

/// What [`build`] or [`prepare`] attached; missing, it is a wiring bug, reported as INTERNAL
/// (async-graphql's own error would name a Rust type and carry no code).
fn data<'a, T: std::any::Any + Send + Sync>(ctx: &Context<'a>) -> async_graphql::Result<&'a T> {
    ctx.data::<T>().map_err(|error| {
        graphql_error(platform::errors::internal(&format_args!(
            "request data missing: {}",
            error.message
        )))
    })
}

/// A UUID in its canonical form (lower-case, hyphenated), which is how query-svc answers and
/// what lookups within the gateway compare: `{6F9619FF-…}` finds the same workflow as
/// `6f9619ff-…`. Anything else is passed on unchanged for the backend to refuse by its name.
fn canonical(id: ID) -> String {
    uuid::Uuid::parse_str(&id).map_or(id.0, |uuid| uuid.to_string())
}

/// GraphQL has no unsigned integer; a negative value is refused here because the wire type
/// (`uint32`) cannot carry it to the backend that would otherwise validate it.
fn non_negative(field: &str, value: i32) -> async_graphql::Result<u32> {
    u32::try_from(value).map_err(|_| {
        graphql_error(platform::errors::invalid_argument(
            field,
            "must not be negative",
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use platform::auth::Identity;

    fn jwt() -> Jwt {
        Jwt::local_development()
    }

    fn backends() -> Backends {
        Backends::unreachable()
    }

    async fn execute(authorization: Option<String>, query: &str) -> serde_json::Value {
        execute_on(&build(backends(), jwt(), true), authorization, query).await
    }

    async fn execute_on(
        api: &Api,
        authorization: Option<String>,
        query: &str,
    ) -> serde_json::Value {
        let mut headers = http::HeaderMap::new();
        if let Some(authorization) = authorization {
            headers.insert(http::header::AUTHORIZATION, authorization.parse().unwrap());
        }
        let response = api
            .execute(
                async_graphql::Request::new(query),
                Incoming::from_headers(&headers),
                &backends(),
                &jwt(),
            )
            .await;
        serde_json::to_value(response).unwrap()
    }

    fn bearer() -> String {
        let identity = Identity {
            tenant_id: "acme".into(),
            user_id: "alice".into(),
            display_name: "Alice".into(),
            roles: vec![],
        };
        format!(
            "Bearer {}",
            jwt().issue(&identity, chrono::Duration::hours(1)).unwrap()
        )
    }

    fn codes(response: &serde_json::Value) -> Vec<&str> {
        let errors = response["errors"].as_array().expect("errors");
        errors
            .iter()
            .map(|error| error["extensions"]["code"].as_str().unwrap())
            .collect()
    }

    #[tokio::test]
    async fn operations_without_a_valid_token_are_refused_before_any_backend_call() {
        let operations = [
            r#"{ workflow(id: "x") { id } }"#,
            "{ workflows { edges { cursor } } }",
            r#"mutation { submitWorkflow(input: { workflowId: "x" }) { version } }"#,
            r#"{ system(id: "x") { id } }"#,
            "{ tasks { nodes { id } } }",
            r#"{ causalChain(correlationId: "x") { eventId } }"#,
            r#"mutation { recordFinding(input: { scanId: "x", cve: "CVE-2021-44228", cvss: 9.8,
                 package: "log4j-core" }) { version } }"#,
        ];
        for operation in operations {
            for authorization in [None, Some("Bearer forged".to_owned())] {
                let response = execute(authorization, operation).await;
                assert_eq!(codes(&response), ["UNAUTHENTICATED"], "{operation}");
            }
        }
    }

    #[tokio::test]
    async fn negative_numbers_are_invalid_arguments_without_a_backend_call() {
        let approve =
            r#"mutation { approveStep(input: { workflowId: "x", step: -1 }) { version } }"#;
        let response = execute(Some(bearer()), approve).await;
        assert_eq!(codes(&response), ["INVALID_ARGUMENT"]);
        assert_eq!(response["errors"][0]["extensions"]["field"], "step");
        let list = "{ workflows(first: -5) { edges { cursor } } }";
        assert_eq!(
            codes(&execute(Some(bearer()), list).await),
            ["INVALID_ARGUMENT"]
        );
    }

    #[tokio::test]
    async fn unreachable_backends_surface_as_unavailable() {
        for query in [
            r#"{ workflow(id: "6f9619ff-8b86-d011-b42d-00cf4fc964ff") { id } }"#,
            r#"{ workflow(id: "6f9619ff-8b86-d011-b42d-00cf4fc964ff", minVersion: 3) { id } }"#,
            r#"{ system(id: "6f9619ff-8b86-d011-b42d-00cf4fc964ff") { id } }"#,
            "{ systems { nodes { id } pageInfo { hasNextPage endCursor } } }",
            r#"{ tasks(filter: { mine: true, overdueOnly: true }) { nodes { id } } }"#,
            r#"mutation { registerSystem(input: { name: "n", owner: "o", environment: TEST,
                 packages: [{ name: "log4j-core", version: "2.14.1" }] }) { aggregateId } }"#,
        ] {
            let response = execute(Some(bearer()), query).await;
            assert_eq!(codes(&response), ["UNAVAILABLE"], "{query}");
        }
    }

    const ID: &str = "6f9619ff-8b86-d011-b42d-00cf4fc964ff";

    /// Every field of a workflow.
    const FULL_WORKFLOW: &str = "id title description priority status
        applicant { userId displayName } currentStep currentApproverId
        currentAssignee { userId role } currentDueAt currentEscalatedAt
        steps { number approverId approver { userId role } status slaHours dueAt escalatedAt
                decidedBy decidedAt comment delegatedBy delegatedTo }
        definition { id version name } dueDate createdAt updatedAt submittedAt completedAt
        commentCount attachmentCount comments { id author { userId displayName } body createdAt }
        attachments { id fileName mediaType sizeBytes sha256 storageUri attachedBy attachedAt }
        version stale";

    /// `count` root fields `field`, aliased, as a query (or as `operation`).
    fn aliased(operation: &str, count: usize, field: &str) -> String {
        let fields: String = (0..count).map(|i| format!(" a{i}: {field}")).collect();
        format!("{operation} {{{fields} }}")
    }

    /// `__schema { types { fields { type { ofType { … name } } } } }`, `depth` fields deep.
    fn introspection_of_depth(depth: usize) -> String {
        let of_types = depth - 5;
        format!(
            "{{ __schema {{ types {{ fields {{ type {{ {} name {} }} }} }} }} }}",
            "ofType { ".repeat(of_types),
            "} ".repeat(of_types)
        )
    }

    /// Refused as a whole, before any backend was asked.
    fn refused(response: &serde_json::Value) -> bool {
        let codes = codes(response);
        !codes.is_empty()
            && codes.iter().all(|code| *code == "INVALID_ARGUMENT")
            && response["data"].is_null()
    }

    /// Admitted: it got as far as the backends, which are unreachable here.
    fn reached_the_backends(response: &serde_json::Value) -> bool {
        let codes = codes(response);
        !codes.is_empty() && codes.iter().all(|code| *code == "UNAVAILABLE")
    }

    #[tokio::test]
    async fn the_abusive_requests_of_the_issue_are_refused_before_any_backend_call() {
        let submit = format!(r#"submitWorkflow(input: {{ workflowId: "{ID}" }}) {{ version }}"#);
        let cases = [
            ("300 dashboards", aliased("", 300, "dashboard { overdue }")),
            (
                "100 reads at a minimum version",
                aliased(
                    "",
                    100,
                    &format!(r#"workflow(id: "{ID}", minVersion: 3) {{ id }}"#),
                ),
            ),
            (
                "60 histories",
                aliased(
                    "",
                    60,
                    &format!(r#"workflowHistory(id: "{ID}") {{ version }}"#),
                ),
            ),
            (
                "100 short searches",
                aliased("", 100, r#"searchWorkflows(text: "a") { totalCount }"#),
            ),
            ("40 mutations", aliased("mutation", 40, &submit)),
            ("25 levels deep", introspection_of_depth(25)),
        ];
        for (name, query) in cases {
            let response = execute(Some(bearer()), &query).await;
            assert!(refused(&response), "{name}: {response}");
        }
    }

    #[tokio::test]
    async fn board_input_the_wire_cannot_carry_is_refused_without_a_backend_call() {
        let cases = [
            (
                r#"mutation { recordFinding(input: { scanId: "x", cve: "CVE-2021-44228",
                     cvss: 9.85, package: "log4j-core" }) { version } }"#,
                "cvss",
            ),
            (
                r#"mutation { recordFinding(input: { scanId: "x", cve: "CVE-2021-44228",
                     cvss: -1, package: "log4j-core" }) { version } }"#,
                "cvss",
            ),
            ("{ systems(first: -1) { nodes { id } } }", "first"),
            ("{ tasks(first: -1) { nodes { id } } }", "first"),
        ];
        for (query, field) in cases {
            let response = execute(Some(bearer()), query).await;
            assert_eq!(codes(&response), ["INVALID_ARGUMENT"], "{query}");
            assert_eq!(
                response["errors"][0]["extensions"]["field"], field,
                "{query}"
            );
        }
    }

    #[tokio::test]
    async fn each_costly_field_is_priced_by_what_it_costs_the_backends() {
        let wait = format!(r#"workflow(id: "{ID}", minVersion: 3) {{ id }}"#);
        let history = format!(r#"workflowHistory(id: "{ID}") {{ version }}"#);
        let search = r#"searchWorkflows(text: "a", first: 5) { totalCount }"#;
        let submit = format!(r#"submitWorkflow(input: {{ workflowId: "{ID}" }}) {{ version }}"#);
        let complete_scan = format!(r#"completeScan(input: {{ scanId: "{ID}" }}) {{ version }}"#);
        let system = format!(r#"system(id: "{ID}") {{ id }}"#);
        let chain = format!(r#"causalChain(correlationId: "{ID}") {{ eventId }}"#);
        let vulnerabilities = format!(r#"systemVulnerabilities(systemId: "{ID}") {{ cve cvss }}"#);
        let cases = [
            ("reads at a minimum version", "", wait.as_str(), 9),
            ("histories", "", &history, 3),
            ("searches", "", search, 9),
            ("dashboards", "", "dashboard { overdue }", 9),
            ("mutations", "mutation", &submit, 19),
            ("board mutations", "mutation", &complete_scan, 19),
            ("system lookups", "", &system, 99),
            ("causal chains", "", &chain, 3),
            ("vulnerability lists", "", &vulnerabilities, 33),
            ("task pages", "", "tasks(first: 100) { nodes { id } }", 33),
        ];
        for (name, operation, field, most) in cases {
            let admitted = execute(Some(bearer()), &aliased(operation, most, field)).await;
            assert!(reached_the_backends(&admitted), "{most} {name}: {admitted}");
            let one_more = execute(Some(bearer()), &aliased(operation, most + 1, field)).await;
            assert!(refused(&one_more), "{} {name}: {one_more}", most + 1);
        }
    }

    #[tokio::test]
    async fn large_legitimate_reads_are_admitted() {
        let queries = [
            format!(
                "{{ workflows(first: 100) {{ totalCount pageInfo {{ hasNextPage endCursor }}
                     edges {{ cursor node {{ {FULL_WORKFLOW} }} }} }} }}"
            ),
            // 101 lookups, batched at query-svc's maximum.
            aliased(
                "",
                101,
                &format!(
                    r#"workflow(id: "{ID}") {{ id title status version applicant {{ userId }}
                         steps {{ number status approver {{ userId role }} }} }}"#
                ),
            ),
            format!(
                r#"mutation {{ createWorkflow(input: {{ title: "t", route: [] }}) {{
                     workflow {{ {FULL_WORKFLOW} }} }} }}"#
            ),
        ];
        for query in queries {
            let response = execute(Some(bearer()), &query).await;
            assert!(reached_the_backends(&response), "{response}");
        }
    }

    /// The introspection query of GraphiQL and code generators, with `ofType` nine deep.
    fn introspection_query() -> String {
        let type_ref = format!(
            "kind name {} kind name {}",
            "ofType { kind name ".repeat(8),
            "} ".repeat(8)
        );
        format!(
            "query IntrospectionQuery {{ __schema {{
                queryType {{ name }} mutationType {{ name }} subscriptionType {{ name }}
                types {{ ...FullType }}
                directives {{ name description locations args {{ ...InputValue }} }} }} }}
             fragment FullType on __Type {{ kind name description
                fields(includeDeprecated: true) {{ name description args {{ ...InputValue }}
                    type {{ ...TypeRef }} isDeprecated deprecationReason }}
                inputFields {{ ...InputValue }} interfaces {{ ...TypeRef }}
                enumValues(includeDeprecated: true) {{ name description isDeprecated
                    deprecationReason }}
                possibleTypes {{ ...TypeRef }} }}
             fragment InputValue on __InputValue {{ name description type {{ ...TypeRef }}
                defaultValue }}
             fragment TypeRef on __Type {{ ofType {{ {type_ref} }} kind name }}"
        )
    }

    #[tokio::test]
    async fn introspection_is_answered_unless_switched_off() {
        let response = execute(None, &introspection_query()).await;
        assert!(response.get("errors").is_none(), "{response}");
        assert_eq!(
            response["data"]["__schema"]["queryType"]["name"],
            "QueryRoot"
        );

        // Switched off, async-graphql answers the introspection fields with null.
        let closed = build(backends(), jwt(), false);
        let response = execute_on(&closed, None, &introspection_query()).await;
        assert_eq!(
            response,
            serde_json::json!({ "data": { "__schema": null } })
        );
        let one_type = r#"{ __type(name: "Workflow") { fields { name } } }"#;
        let response = execute_on(&closed, None, one_type).await;
        assert_eq!(response, serde_json::json!({ "data": { "__type": null } }));
        let typename = execute_on(&closed, None, "{ __typename }").await;
        assert_eq!(typename["data"]["__typename"], "QueryRoot");
    }

    #[tokio::test]
    async fn every_error_of_the_request_itself_is_an_invalid_argument() {
        let malformed = [
            r#"mutation { createWorkflow(input: { title: "t", dueDate: "2026-13-45" }) { version } }"#,
            r#"mutation { createWorkflow(input: { title: "t", dueDate: "-5000-01-01x" }) { version } }"#,
            "{ workflows { edges { nope } } }",
            r#"{ workflows(first: "ten") { totalCount } }"#,
            "{ workflows( { }",
            "subscription { workflows }",
        ];
        for query in malformed {
            let response = execute(Some(bearer()), query).await;
            assert!(refused(&response), "{query}: {response}");
        }
        let request = async_graphql::Request::new(
            "query($first: Int) { workflows(first: $first) { totalCount } }",
        )
        .variables(async_graphql::Variables::from_json(
            serde_json::json!({ "first": "ten" }),
        ));
        let response = build(backends(), jwt(), true)
            .execute(
                request,
                Incoming::from_headers(&http::HeaderMap::new()),
                &backends(),
                &jwt(),
            )
            .await;
        let response = serde_json::to_value(response).unwrap();
        assert!(refused(&response), "{response}");
    }

    #[test]
    fn uuids_are_canonical_whatever_their_spelling() {
        for spelling in [
            ID.to_owned(),
            ID.to_uppercase(),
            format!("{{{}}}", ID.to_uppercase()),
            ID.replace('-', ""),
            format!("urn:uuid:{ID}"),
        ] {
            assert_eq!(
                canonical(async_graphql::ID(spelling.clone())),
                ID,
                "{spelling}"
            );
        }
        assert_eq!(
            canonical(async_graphql::ID("not-a-uuid".into())),
            "not-a-uuid"
        );
    }

    #[test]
    fn the_sdl_has_the_documented_shape() {
        let (query, mutation, subscription) = roots();
        let sdl = Schema::build(query, mutation, subscription).finish().sdl();
        for expected in [
            "workflow(id: ID!, minVersion: Int): Workflow!",
            "myTasks(first: Int = 20, after: String): WorkflowConnection!",
            "searchWorkflows(text: String!, first: Int = 20, after: String): WorkflowSearchConnection!",
            "dashboard(timeZone: String): Dashboard!",
            "workflowHistory(id: ID!, first: Int! = 100, afterVersion: Int! = 0): [HistoryEntry!]!",
            "totalCount: Int!",
            "stale: Boolean!",
            "createDefinition(input: CreateDefinitionInput!): DefinitionCommandPayload!",
            "requestChanges(input: RequestChangesInput!): WorkflowCommandPayload!",
            "delegateStep(input: DelegateStepInput!): WorkflowCommandPayload!",
            "createWorkflow(input: CreateWorkflowInput!): WorkflowCommandPayload!",
            "submitWorkflow(input: SubmitWorkflowInput!): WorkflowCommandPayload!",
            "approveStep(input: ApproveStepInput!): WorkflowCommandPayload!",
            "rejectStep(input: RejectStepInput!): WorkflowCommandPayload!",
            "priority: Priority! = MEDIUM",
            "description: String! = \"\"",
            "currentApproverId: String",
            "eventIds: [ID!]!",
            "IN_PROGRESS",
            "endCursor: String",
            "system(id: ID!): System!",
            "systems(first: Int = 20, after: String): SystemConnection!",
            "tasks(filter: TaskFilter, first: Int = 20, after: String): TaskConnection!",
            "systemVulnerabilities(systemId: ID!): [Vulnerability!]!",
            "causalChain(correlationId: ID!): [ChainEvent!]!",
            "registerSystem(input: RegisterSystemInput!): BoardCommandResult!",
            "updatePackages(input: UpdatePackagesInput!): BoardCommandResult!",
            "decommissionSystem(input: DecommissionSystemInput!): BoardCommandResult!",
            "recordFinding(input: RecordFindingInput!): BoardCommandResult!",
            "completeScan(input: CompleteScanInput!): BoardCommandResult!",
            "assignTask(input: AssignTaskInput!): BoardCommandResult!",
            "completeTask(input: CompleteTaskInput!): BoardCommandResult!",
            "openVulnerabilities: VulnerabilityCounts!",
            "securityAlerts: [SecurityAlert!]!",
            "cvss: Float!",
            "causationId: ID!",
            "SCAN_REVIEW",
            "PRODUCTION",
            "CRITICAL",
        ] {
            assert!(sdl.contains(expected), "missing {expected:?} in\n{sdl}");
        }
    }
}
