//! The GraphQL schema. Resolvers verify the caller, translate to the gRPC contract and back, and
//! hold no state: validation beyond what the wire types force belongs to the backends.

mod loader;
mod mutation;
mod query;
mod types;

use crate::backends::Backends;
use crate::caller::{Caller, Incoming};
use crate::errors::graphql_error;
use async_graphql::{Context, EmptySubscription, Schema};
use platform::auth::Jwt;

pub(crate) type GatewaySchema = Schema<query::QueryRoot, mutation::MutationRoot, EmptySubscription>;

/// Every request must be [`prepare`]d.
pub(crate) fn build(backends: Backends, jwt: Jwt) -> GatewaySchema {
    Schema::build(query::QueryRoot, mutation::MutationRoot, EmptySubscription)
        .data(backends)
        .data(jwt)
        .finish()
}

/// Attaches what the resolvers of one request need: what it says about its caller, and a
/// workflow loader of its own (a batch is only ever for one caller).
pub(crate) fn prepare(
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
    let caller = ctx
        .data::<Incoming>()?
        .authenticate(ctx.data::<Jwt>()?)
        .map_err(graphql_error)?;
    Ok((caller, ctx.data::<Backends>()?))
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

    /// Backends that refuse connections: reaching one would surface as UNAVAILABLE.
    fn schema() -> GatewaySchema {
        build(
            Backends::connect_lazy("http://127.0.0.1:1", "http://127.0.0.1:1").unwrap(),
            jwt(),
        )
    }

    async fn execute(authorization: Option<String>, query: &str) -> serde_json::Value {
        let mut headers = http::HeaderMap::new();
        if let Some(authorization) = authorization {
            headers.insert(http::header::AUTHORIZATION, authorization.parse().unwrap());
        }
        let backends = Backends::connect_lazy("http://127.0.0.1:1", "http://127.0.0.1:1").unwrap();
        let request = prepare(
            async_graphql::Request::new(query),
            Incoming::from_headers(&headers),
            &backends,
            &jwt(),
        );
        serde_json::to_value(schema().execute(request).await).unwrap()
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
        ] {
            let response = execute(Some(bearer()), query).await;
            assert_eq!(codes(&response), ["UNAVAILABLE"], "{query}");
        }
    }

    #[test]
    fn the_sdl_has_the_documented_shape() {
        let sdl = Schema::build(query::QueryRoot, mutation::MutationRoot, EmptySubscription)
            .finish()
            .sdl();
        for expected in [
            "workflow(id: ID!, minVersion: Int): Workflow!",
            "myTasks(first: Int = 20, after: String): WorkflowConnection!",
            "searchWorkflows(text: String!, first: Int = 20, after: String): WorkflowSearchConnection!",
            "dashboard(timeZone: String): Dashboard!",
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
        ] {
            assert!(sdl.contains(expected), "missing {expected:?} in\n{sdl}");
        }
    }
}
