//! The gRPC face of the System Board's commands: the same parsing, handler and error mapping as
//! the workflow commands, for the `system`, `vulnerability_scan` and `task` aggregates.

use crate::handler::CommandHandler;
use crate::service::{handle, invalid, new_aggregate_id};
use pb::system_board_command_service_server::SystemBoardCommandService;
use proto::board_convert;
use proto::systemboard::v1 as pb;
use system_board::{
    Aggregate, CveId, Cvss, DecommissionReason, PackageName, ScanCommand, ScanId, System,
    SystemCommand, SystemId, SystemName, Task, TaskCommand, TaskId, TaskNote, UserId,
    ValidationError, VulnerabilityScan,
};
use tonic::{Request, Response, Status};
use uuid::Uuid;

/// Namespace of system ids derived from a RegisterSystem's command id, so a retried
/// registration without a client-chosen id lands on the same system.
const REGISTERED_SYSTEM_IDS: Uuid = Uuid::from_u128(0x5b2e_7d41_9c0a_4f36_8e17_5242_5359_5301);

pub struct BoardCommandService {
    handler: CommandHandler,
}

impl BoardCommandService {
    pub fn new(handler: CommandHandler) -> Self {
        Self { handler }
    }

    /// Runs `command` on the aggregate `aggregate_id` of type `A` for the caller: the one path
    /// of every board command.
    async fn run<A: Aggregate>(
        &self,
        request: &Request<impl Sized>,
        command_id: &str,
        aggregate_id: Uuid,
        expected_version: Option<i64>,
        command: A::Command,
    ) -> Result<Response<pb::BoardCommandResult>, Status> {
        let record = handle::<A>(
            &self.handler,
            request,
            command_id,
            aggregate_id,
            expected_version,
            command,
        )
        .await?;
        Ok(Response::new(pb::BoardCommandResult {
            aggregate_id: record.aggregate_id.to_string(),
            version: record.version,
        }))
    }
}

fn system_id(raw: &str) -> Result<Uuid, Status> {
    SystemId::parse("system_id", raw)
        .map(|id| id.as_uuid())
        .map_err(invalid)
}

fn scan_id(raw: &str) -> Result<Uuid, Status> {
    ScanId::parse("scan_id", raw)
        .map(|id| id.as_uuid())
        .map_err(invalid)
}

fn task_id(raw: &str) -> Result<Uuid, Status> {
    TaskId::parse("task_id", raw)
        .map(|id| id.as_uuid())
        .map_err(invalid)
}

/// Parses a command out of a request body; errors name the request's field.
fn parse<C>(command: impl FnOnce() -> Result<C, ValidationError>) -> Result<C, Status> {
    command().map_err(invalid)
}

#[tonic::async_trait]
impl SystemBoardCommandService for BoardCommandService {
    async fn register_system(
        &self,
        request: Request<pb::RegisterSystemRequest>,
    ) -> Result<Response<pb::BoardCommandResult>, Status> {
        let body = request.get_ref();
        let command = parse(|| {
            Ok(SystemCommand::Register {
                name: SystemName::parse("name", &body.name)?,
                owner: UserId::parse("owner", &body.owner)?,
                environment: board_convert::environment("environment", body.environment)?,
                packages: board_convert::packages("packages", &body.packages)?,
            })
        })?;
        let id = new_aggregate_id(
            &request,
            &REGISTERED_SYSTEM_IDS,
            "system_id",
            &body.system_id,
            &body.command_id,
        )?;
        // A new system has no version to expect; `decide` refuses an existing one.
        self.run::<System>(&request, &body.command_id, id, None, command)
            .await
    }

    async fn update_packages(
        &self,
        request: Request<pb::UpdatePackagesRequest>,
    ) -> Result<Response<pb::BoardCommandResult>, Status> {
        let body = request.get_ref();
        let id = system_id(&body.system_id)?;
        let command = parse(|| {
            Ok(SystemCommand::UpdatePackages {
                packages: board_convert::packages("packages", &body.packages)?,
            })
        })?;
        self.run::<System>(
            &request,
            &body.command_id,
            id,
            body.expected_version,
            command,
        )
        .await
    }

    async fn decommission_system(
        &self,
        request: Request<pb::DecommissionSystemRequest>,
    ) -> Result<Response<pb::BoardCommandResult>, Status> {
        let body = request.get_ref();
        let id = system_id(&body.system_id)?;
        let command = parse(|| {
            Ok(SystemCommand::Decommission {
                reason: DecommissionReason::parse("reason", &body.reason)?,
            })
        })?;
        self.run::<System>(
            &request,
            &body.command_id,
            id,
            body.expected_version,
            command,
        )
        .await
    }

    async fn record_finding(
        &self,
        request: Request<pb::RecordFindingRequest>,
    ) -> Result<Response<pb::BoardCommandResult>, Status> {
        let body = request.get_ref();
        let id = scan_id(&body.scan_id)?;
        let command = parse(|| {
            Ok(ScanCommand::RecordFinding {
                cve: CveId::parse("cve", &body.cve)?,
                cvss: Cvss::from_tenths("cvss_tenths", body.cvss_tenths)?,
                package: PackageName::parse("package", &body.package)?,
            })
        })?;
        self.run::<VulnerabilityScan>(
            &request,
            &body.command_id,
            id,
            body.expected_version,
            command,
        )
        .await
    }

    async fn complete_scan(
        &self,
        request: Request<pb::CompleteScanRequest>,
    ) -> Result<Response<pb::BoardCommandResult>, Status> {
        let body = request.get_ref();
        let id = scan_id(&body.scan_id)?;
        self.run::<VulnerabilityScan>(
            &request,
            &body.command_id,
            id,
            body.expected_version,
            ScanCommand::Complete,
        )
        .await
    }

    async fn assign_task(
        &self,
        request: Request<pb::AssignTaskRequest>,
    ) -> Result<Response<pb::BoardCommandResult>, Status> {
        let body = request.get_ref();
        let id = task_id(&body.task_id)?;
        let command = parse(|| {
            Ok(TaskCommand::Assign {
                assignee: UserId::parse("assignee", &body.assignee)?,
            })
        })?;
        self.run::<Task>(
            &request,
            &body.command_id,
            id,
            body.expected_version,
            command,
        )
        .await
    }

    async fn complete_task(
        &self,
        request: Request<pb::CompleteTaskRequest>,
    ) -> Result<Response<pb::BoardCommandResult>, Status> {
        let body = request.get_ref();
        let id = task_id(&body.task_id)?;
        let command = parse(|| {
            Ok(TaskCommand::Complete {
                note: TaskNote::parse_optional("note", Some(&body.note))?,
            })
        })?;
        self.run::<Task>(
            &request,
            &body.command_id,
            id,
            body.expected_version,
            command,
        )
        .await
    }
}
