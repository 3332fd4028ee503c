//! The gRPC face of the command side: parse the wire request into domain types, run the
//! handler, map the outcome to a status.

use crate::handler::{CommandContext, CommandHandler, HandleError};
use chrono::NaiveDate;
use event_store::CommandRecord;
use pb::definition_command_service_server::DefinitionCommandService;
use pb::workflow_command_service_server::WorkflowCommandService;
use platform::auth::{identity, Identity};
use platform::errors::{self, ErrorCode};
use proto::workflow::v1 as pb;
use std::collections::HashMap;
use tonic::{Request, Response, Status};
use uuid::Uuid;
use workflow_domain::{
    Actor, Aggregate, Comment, CommentBody, Definition, DefinitionCommand, DefinitionId,
    DefinitionName, DefinitionRef, Description, DisplayName, DomainError, DraftChanges, Reason,
    Role, Route, StepNo, TenantId, Title, UserId, ValidationError, Workflow, WorkflowCommand,
    WorkflowId,
};

/// Namespaces of ids derived from a create command's id (see [`new_aggregate_id`]).
const CREATED_WORKFLOW_IDS: Uuid = Uuid::from_u128(0x8f1e_5c1a_2b7d_4e55_9a0c_5249_4e47_4931);
const CREATED_DEFINITION_IDS: Uuid = Uuid::from_u128(0x3c0d_9e2f_71a4_4b8e_8d15_5249_4e47_4432);

pub struct CommandService {
    handler: CommandHandler,
    /// URI schemes an attachment's `storage_uri` may use (lower case).
    storage_schemes: Vec<String>,
}

impl CommandService {
    pub fn new(handler: CommandHandler, storage_schemes: Vec<String>) -> Self {
        Self {
            handler,
            storage_schemes,
        }
    }

    async fn run(
        &self,
        request: &Request<impl Sized>,
        command_id: &str,
        workflow_id: WorkflowId,
        expected_version: Option<i64>,
        command: WorkflowCommand,
    ) -> Result<Response<pb::CommandResult>, Status> {
        let record = handle::<Workflow>(
            &self.handler,
            request,
            command_id,
            workflow_id.as_uuid(),
            expected_version,
            command,
        )
        .await?;
        Ok(Response::new(pb::CommandResult {
            workflow_id: record.aggregate_id.to_string(),
            version: record.version,
            event_ids: record.event_ids.iter().map(Uuid::to_string).collect(),
        }))
    }
}

/// Runs one command of an aggregate of type `A` for the verified caller, and logs it.
pub(crate) async fn handle<A: Aggregate>(
    handler: &CommandHandler,
    request: &Request<impl Sized>,
    command_id: &str,
    aggregate_id: Uuid,
    expected_version: Option<i64>,
    command: A::Command,
) -> Result<CommandRecord, Status> {
    let context = context(request, command_id)?;
    let record = handler
        .handle::<A>(&context, aggregate_id, expected_version, command)
        .await
        .map_err(to_status)?;
    tracing::info!(
        aggregate_type = A::TYPE,
        aggregate_id = %record.aggregate_id,
        version = record.version,
        command_id = %context.command_id,
        correlation_id = %context.correlation_id,
        "command handled"
    );
    Ok(record)
}

/// An id for a new aggregate: the client's, or one derived from the tenant and command id in
/// `namespace`, so a retried create without a client-chosen id lands on the same aggregate.
pub(crate) fn new_aggregate_id<T>(
    request: &Request<T>,
    namespace: &Uuid,
    field: &str,
    client_id: &str,
    command_id: &str,
) -> Result<Uuid, Status> {
    if !client_id.is_empty() {
        return Uuid::parse_str(client_id).map_err(|_| unusable_id(field));
    }
    let tenant = identity(request)?.tenant_id;
    let command_id = parse_command_id(command_id)?;
    Ok(Uuid::new_v5(
        namespace,
        format!("{tenant}/{command_id}").as_bytes(),
    ))
}

/// The one answer to a client-chosen id that cannot be used, malformed or another tenant's
/// alike, so that the answer tells nothing about other tenants.
fn unusable_id(field: &str) -> Status {
    errors::invalid_argument(field, "must be a UUID no other aggregate uses")
}

/// What every command request except creation carries besides its command.
trait WorkflowRequest {
    fn command_id(&self) -> &str;
    fn workflow_id(&self) -> &str;
    fn expected_version(&self) -> Option<i64>;
}

macro_rules! workflow_requests {
    ($($request:ty),* $(,)?) => {$(
        impl WorkflowRequest for $request {
            fn command_id(&self) -> &str {
                &self.command_id
            }
            fn workflow_id(&self) -> &str {
                &self.workflow_id
            }
            fn expected_version(&self) -> Option<i64> {
                self.expected_version
            }
        }
    )*};
}

workflow_requests!(
    pb::SubmitWorkflowRequest,
    pb::ApproveStepRequest,
    pb::RejectStepRequest,
    pb::UpdateDraftRequest,
    pb::RequestChangesRequest,
    pb::DelegateStepRequest,
    pb::CancelWorkflowRequest,
    pb::AddCommentRequest,
    pb::AttachDocumentRequest,
    pb::EscalateStepRequest,
);

impl CommandService {
    /// The current version of a definition of the caller's tenant, as a new workflow pins it.
    async fn pin<T>(
        &self,
        request: &Request<T>,
        id: DefinitionId,
    ) -> Result<(DefinitionRef, Route), Status> {
        let tenant = identity(request)?.tenant_id;
        let (_, definition) = self
            .handler
            .load::<Definition>(&tenant, id.as_uuid())
            .await
            .map_err(to_status)?;
        definition
            .ok_or(DomainError::NotFound {
                aggregate: Definition::TYPE,
            })
            .and_then(|definition| definition.pin(id))
            .map_err(|error| to_status(HandleError::Rejected(Box::new(error))))
    }

    /// Parses the command out of a request on an existing workflow and runs it.
    async fn execute<R: WorkflowRequest>(
        &self,
        request: Request<R>,
        command: impl FnOnce(&R) -> Result<WorkflowCommand, ValidationError>,
    ) -> Result<Response<pb::CommandResult>, Status> {
        let body = request.get_ref();
        let workflow_id = WorkflowId::parse("workflow_id", body.workflow_id()).map_err(invalid)?;
        let command = command(body).map_err(invalid)?;
        self.run(
            &request,
            body.command_id(),
            workflow_id,
            body.expected_version(),
            command,
        )
        .await
    }
}

#[tonic::async_trait]
impl WorkflowCommandService for CommandService {
    async fn create_workflow(
        &self,
        request: Request<pb::CreateWorkflowRequest>,
    ) -> Result<Response<pb::CommandResult>, Status> {
        let body = request.get_ref();
        let (route, definition) = if body.definition_id.is_empty() {
            let route = proto::convert::route("route", &body.route).map_err(invalid)?;
            (route, None)
        } else {
            if !body.route.is_empty() {
                return Err(errors::invalid_argument(
                    "route",
                    "give either a route or a definition_id, not both",
                ));
            }
            let id = DefinitionId::parse("definition_id", &body.definition_id).map_err(invalid)?;
            let (ref_, route) = self.pin(&request, id).await?;
            (route, Some(ref_))
        };
        let command = WorkflowCommand::Create {
            title: Title::parse("title", &body.title).map_err(invalid)?,
            description: Description::parse("description", &body.description).map_err(invalid)?,
            priority: proto::convert::priority(body.priority).map_err(invalid)?,
            route,
            definition,
            due_date: due_date("due_date", &body.due_date).map_err(invalid)?,
        };
        let workflow_id = WorkflowId::new(new_aggregate_id(
            &request,
            &CREATED_WORKFLOW_IDS,
            "workflow_id",
            &body.workflow_id,
            &body.command_id,
        )?);
        // A new workflow has no version to expect; `decide` refuses an existing one.
        self.run(&request, &body.command_id, workflow_id, None, command)
            .await
    }

    async fn submit_workflow(
        &self,
        request: Request<pb::SubmitWorkflowRequest>,
    ) -> Result<Response<pb::CommandResult>, Status> {
        self.execute(request, |_| Ok(WorkflowCommand::Submit)).await
    }

    async fn approve_step(
        &self,
        request: Request<pb::ApproveStepRequest>,
    ) -> Result<Response<pb::CommandResult>, Status> {
        self.execute(request, |body| {
            Ok(WorkflowCommand::ApproveStep {
                step: StepNo::parse("step", body.step)?,
                comment: Comment::parse("comment", &body.comment)?,
            })
        })
        .await
    }

    async fn reject_step(
        &self,
        request: Request<pb::RejectStepRequest>,
    ) -> Result<Response<pb::CommandResult>, Status> {
        self.execute(request, |body| {
            Ok(WorkflowCommand::RejectStep {
                step: StepNo::parse("step", body.step)?,
                reason: Reason::parse("reason", &body.reason)?,
            })
        })
        .await
    }

    async fn update_draft(
        &self,
        request: Request<pb::UpdateDraftRequest>,
    ) -> Result<Response<pb::CommandResult>, Status> {
        self.execute(request, |body| {
            Ok(WorkflowCommand::UpdateDraft(DraftChanges {
                title: body
                    .title
                    .as_deref()
                    .map(|raw| Title::parse("title", raw))
                    .transpose()?,
                description: body
                    .description
                    .as_deref()
                    .map(|raw| Description::parse("description", raw))
                    .transpose()?,
                priority: match pb::Priority::try_from(body.priority) {
                    Ok(pb::Priority::Unspecified) => None,
                    _ => Some(proto::convert::priority(body.priority)?),
                },
                due_date: body
                    .due_date
                    .as_deref()
                    .map(|raw| due_date("due_date", raw))
                    .transpose()?,
            }))
        })
        .await
    }

    async fn request_changes(
        &self,
        request: Request<pb::RequestChangesRequest>,
    ) -> Result<Response<pb::CommandResult>, Status> {
        self.execute(request, |body| {
            Ok(WorkflowCommand::RequestChanges {
                step: StepNo::parse("step", body.step)?,
                reason: Reason::parse("reason", &body.reason)?,
            })
        })
        .await
    }

    async fn delegate_step(
        &self,
        request: Request<pb::DelegateStepRequest>,
    ) -> Result<Response<pb::CommandResult>, Status> {
        self.execute(request, |body| {
            Ok(WorkflowCommand::DelegateStep {
                step: StepNo::parse("step", body.step)?,
                to_user: UserId::parse("to_user_id", &body.to_user_id)?,
                comment: Comment::parse("comment", &body.comment)?,
            })
        })
        .await
    }

    async fn cancel_workflow(
        &self,
        request: Request<pb::CancelWorkflowRequest>,
    ) -> Result<Response<pb::CommandResult>, Status> {
        self.execute(request, |body| {
            Ok(WorkflowCommand::Cancel {
                reason: (!body.reason.trim().is_empty())
                    .then(|| Reason::parse("reason", &body.reason))
                    .transpose()?,
            })
        })
        .await
    }

    async fn add_comment(
        &self,
        request: Request<pb::AddCommentRequest>,
    ) -> Result<Response<pb::CommandResult>, Status> {
        self.execute(request, |body| {
            Ok(WorkflowCommand::AddComment {
                body: CommentBody::parse("body", &body.body)?,
            })
        })
        .await
    }

    async fn attach_document(
        &self,
        request: Request<pb::AttachDocumentRequest>,
    ) -> Result<Response<pb::CommandResult>, Status> {
        self.execute(request, |body| {
            let attachment = proto::convert::attachment("attachment", body.attachment.as_ref())?;
            // Clients follow the URI to download the document: only the storage the deployment
            // uses, never `javascript:`, `file:` or an internal `http:` address.
            if !self
                .storage_schemes
                .iter()
                .any(|scheme| scheme == attachment.storage_scheme())
            {
                return Err(ValidationError::new(
                    "attachment.storage_uri",
                    format!("scheme must be one of: {}", self.storage_schemes.join(", ")),
                ));
            }
            Ok(WorkflowCommand::AttachDocument { attachment })
        })
        .await
    }

    async fn escalate_step(
        &self,
        request: Request<pb::EscalateStepRequest>,
    ) -> Result<Response<pb::CommandResult>, Status> {
        self.execute(request, |body| {
            Ok(WorkflowCommand::EscalateStep {
                step: StepNo::parse("step", body.step)?,
            })
        })
        .await
    }
}

/// The gRPC face of workflow definitions; the same handler, another aggregate.
pub struct DefinitionService {
    handler: CommandHandler,
}

impl DefinitionService {
    pub fn new(handler: CommandHandler) -> Self {
        Self { handler }
    }

    async fn run<T>(
        &self,
        request: &Request<T>,
        command_id: &str,
        definition_id: Uuid,
        expected_version: Option<i64>,
        command: DefinitionCommand,
    ) -> Result<Response<pb::DefinitionCommandResult>, Status> {
        let record = handle::<Definition>(
            &self.handler,
            request,
            command_id,
            definition_id,
            expected_version,
            command,
        )
        .await?;
        Ok(Response::new(pb::DefinitionCommandResult {
            definition_id: record.aggregate_id.to_string(),
            version: record.version,
            event_ids: record.event_ids.iter().map(Uuid::to_string).collect(),
        }))
    }
}

fn definition_id(raw: &str) -> Result<Uuid, Status> {
    DefinitionId::parse("definition_id", raw)
        .map(|id| id.as_uuid())
        .map_err(invalid)
}

#[tonic::async_trait]
impl DefinitionCommandService for DefinitionService {
    async fn create_definition(
        &self,
        request: Request<pb::CreateDefinitionRequest>,
    ) -> Result<Response<pb::DefinitionCommandResult>, Status> {
        let body = request.get_ref();
        let command = DefinitionCommand::Create {
            name: DefinitionName::parse("name", &body.name).map_err(invalid)?,
            route: proto::convert::route("route", &body.route).map_err(invalid)?,
        };
        let id = new_aggregate_id(
            &request,
            &CREATED_DEFINITION_IDS,
            "definition_id",
            &body.definition_id,
            &body.command_id,
        )?;
        self.run(&request, &body.command_id, id, None, command)
            .await
    }

    async fn publish_definition_version(
        &self,
        request: Request<pb::PublishDefinitionVersionRequest>,
    ) -> Result<Response<pb::DefinitionCommandResult>, Status> {
        let body = request.get_ref();
        let command = DefinitionCommand::PublishVersion {
            route: proto::convert::route("route", &body.route).map_err(invalid)?,
            name: body
                .name
                .as_deref()
                .map(|name| DefinitionName::parse("name", name))
                .transpose()
                .map_err(invalid)?,
        };
        let id = definition_id(&body.definition_id)?;
        self.run(
            &request,
            &body.command_id,
            id,
            body.expected_version,
            command,
        )
        .await
    }

    async fn archive_definition(
        &self,
        request: Request<pb::ArchiveDefinitionRequest>,
    ) -> Result<Response<pb::DefinitionCommandResult>, Status> {
        let body = request.get_ref();
        let id = definition_id(&body.definition_id)?;
        self.run(
            &request,
            &body.command_id,
            id,
            body.expected_version,
            DefinitionCommand::Archive,
        )
        .await
    }
}

/// A `YYYY-MM-DD` date; the empty string is no date.
fn due_date(field: &str, raw: &str) -> Result<Option<NaiveDate>, ValidationError> {
    if raw.is_empty() {
        return Ok(None);
    }
    workflow_domain::parse_date(field, raw).map(Some)
}

pub(crate) fn invalid(error: ValidationError) -> Status {
    errors::invalid_argument(&error.field, &error.message)
}

fn parse_command_id(raw: &str) -> Result<Uuid, Status> {
    Uuid::parse_str(raw).map_err(|_| errors::invalid_argument("command_id", "must be a UUID"))
}

/// The actor comes from the verified token; correlation and trace context from the caller's
/// metadata when it carries them, so one id follows the whole request chain. The trace context
/// stored with the events is this call's server span when spans are exported (so the relay's
/// span is its child), else the caller's `traceparent` as it came. The platform's
/// own reactions (the `system` role) also name what caused their command (`x-causation-id`,
/// e.g. the event after which a deadline passed); anyone else's command is its own cause.
fn context<T>(request: &Request<T>, command_id: &str) -> Result<CommandContext, Status> {
    let command_id = parse_command_id(command_id)?;
    let actor = actor(identity(request)?)?;
    let header = |name: &str| {
        request
            .metadata()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|raw| Uuid::parse_str(raw).ok())
    };
    let causation_id = header("x-causation-id")
        .filter(|_| actor.is_system())
        .unwrap_or(command_id);
    Ok(CommandContext {
        correlation_id: header("x-correlation-id").unwrap_or_else(Uuid::new_v4),
        actor,
        command_id,
        causation_id,
        traceparent: platform::telemetry::traceparent(&tracing::Span::current()).or_else(|| {
            request
                .metadata()
                .get("traceparent")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        }),
    })
}

/// A token whose claims do not make a valid actor is an authentication problem, not bad input.
fn actor(identity: Identity) -> Result<Actor, Status> {
    let unauthenticated = |e: ValidationError| {
        errors::status(
            ErrorCode::Unauthenticated,
            format!("token claim {e}"),
            HashMap::new(),
        )
    };
    Ok(Actor {
        tenant_id: TenantId::parse("tenant_id", &identity.tenant_id).map_err(unauthenticated)?,
        user_id: UserId::parse("sub", &identity.user_id).map_err(unauthenticated)?,
        display_name: DisplayName::parse("name", &identity.display_name)
            .map_err(unauthenticated)?,
        roles: identity
            .roles
            .iter()
            .map(|role| Role::parse("roles", role))
            .collect::<Result<_, _>>()
            .map_err(unauthenticated)?,
    })
}

fn to_status(error: HandleError) -> Status {
    match error {
        HandleError::Rejected(error) => match error.field() {
            // Every invalid argument names its field, so clients can point at it.
            Some(field) => errors::invalid_argument(field, &error.to_string()),
            None => errors::status(error.code(), error.to_string(), HashMap::new()),
        },
        HandleError::Conflict {
            current_version, ..
        } => errors::conflict(error.to_string(), current_version),
        HandleError::CommandIdReused => errors::invalid_argument("command_id", &error.to_string()),
        // Named as the create requests name the id: `workflow_id`, `definition_id`,
        // `system_id`.
        HandleError::IdUnavailable { aggregate } => unusable_id(&format!("{aggregate}_id")),
        HandleError::Store(store) if store.is_unavailable() => {
            tracing::warn!(error = %store, "event store unavailable");
            errors::status(
                ErrorCode::Unavailable,
                "event store unavailable",
                HashMap::new(),
            )
        }
        HandleError::Store(_) | HandleError::Corrupt(_) => errors::internal(&error),
    }
}
