//! `ringiflow.systemboard.v1.SystemBoardQueryService`: the System Board's read side, answered
//! from its read models (`board-read-model`) and, for causal chains, from the event store's
//! envelopes. The tenant always comes from the verified token, never from the request; an id
//! that is malformed, unknown or another tenant's answers NOT_FOUND alike.

use board_read_model::{
    AlertView, QueryError, SystemDetail, TaskFilter, TaskView, VulnerabilityView, MAX_PAGE_SIZE,
};
use chrono::{DateTime, Utc};
use event_store::{ChainLink, EventStore};
use platform::auth::identity;
use platform::errors::{self, invalid_argument, ErrorCode};
use proto::board_convert::packages_to_proto;
use proto::limits::DEFAULT_PAGE_SIZE;
use proto::systemboard::v1 as pb;
use proto::systemboard::v1::system_board_query_service_server::SystemBoardQueryService;
use sqlx::PgPool;
use std::collections::HashMap;
use tonic::{Request, Response, Status};
use uuid::Uuid;

/// Most events one causal chain answer holds. A chain is one command and the platform's
/// reactions to it (a registration, its scan, the scan's review task: a handful), so this only
/// bounds what a pathological chain can cost; the oldest events are kept.
pub(crate) const MAX_CHAIN_EVENTS: i64 = 1_000;

pub(crate) struct BoardQueryService {
    pool: PgPool,
    events: EventStore,
}

impl BoardQueryService {
    pub(crate) fn new(pool: PgPool, events: EventStore) -> Self {
        Self { pool, events }
    }
}

#[tonic::async_trait]
impl SystemBoardQueryService for BoardQueryService {
    async fn get_system(
        &self,
        request: Request<pb::GetSystemRequest>,
    ) -> Result<Response<pb::System>, Status> {
        let caller = identity(&request)?;
        let id = id_or_not_found(&request.get_ref().system_id, "system")?;
        let detail = board_read_model::get_system(&self.pool, &caller.tenant_id, id)
            .await
            .map_err(query_error)?
            .ok_or_else(|| not_found("system"))?;
        Ok(Response::new(system(detail)))
    }

    async fn list_systems(
        &self,
        request: Request<pb::ListSystemsRequest>,
    ) -> Result<Response<pb::ListSystemsResponse>, Status> {
        let caller = identity(&request)?;
        let request = request.into_inner();
        let page_size = page_size(request.page_size)?;
        let page = board_read_model::list_systems(
            &self.pool,
            &caller.tenant_id,
            page_size,
            token(&request.page_token),
        )
        .await
        .map_err(query_error)?;
        Ok(Response::new(pb::ListSystemsResponse {
            systems: page.items.into_iter().map(system).collect(),
            next_page_token: page.next_page_token.unwrap_or_default(),
        }))
    }

    async fn list_system_vulnerabilities(
        &self,
        request: Request<pb::ListSystemVulnerabilitiesRequest>,
    ) -> Result<Response<pb::ListSystemVulnerabilitiesResponse>, Status> {
        let caller = identity(&request)?;
        let id = id_or_not_found(&request.get_ref().system_id, "system")?;
        let vulnerabilities =
            board_read_model::system_vulnerabilities(&self.pool, &caller.tenant_id, id)
                .await
                .map_err(query_error)?
                .ok_or_else(|| not_found("system"))?;
        Ok(Response::new(pb::ListSystemVulnerabilitiesResponse {
            vulnerabilities: vulnerabilities.into_iter().map(vulnerability).collect(),
        }))
    }

    async fn list_tasks(
        &self,
        request: Request<pb::ListTasksRequest>,
    ) -> Result<Response<pb::ListTasksResponse>, Status> {
        let caller = identity(&request)?;
        let request = request.into_inner();
        let page_size = page_size(request.page_size)?;
        let page_token = token(&request.page_token);
        let system_id = match request.system_id.as_str() {
            "" => None,
            raw => match Uuid::parse_str(raw) {
                Ok(id) => Some(id),
                // A filter matches or it does not: a malformed id matches nothing. No page
                // follows, so no token was ever issued for this request.
                Err(_) if page_token.is_some() => return Err(invalid_page_token()),
                Err(_) => {
                    return Ok(Response::new(pb::ListTasksResponse {
                        tasks: Vec::new(),
                        next_page_token: String::new(),
                    }))
                }
            },
        };
        let filter = TaskFilter {
            assignee: request.mine.then(|| caller.user_id.clone()),
            system_id,
            overdue_at: request.overdue_only.then(Utc::now),
        };
        let page = board_read_model::list_tasks(
            &self.pool,
            &caller.tenant_id,
            &filter,
            page_size,
            page_token,
        )
        .await
        .map_err(query_error)?;
        Ok(Response::new(pb::ListTasksResponse {
            tasks: page.items.into_iter().map(task).collect(),
            next_page_token: page.next_page_token.unwrap_or_default(),
        }))
    }

    async fn get_causal_chain(
        &self,
        request: Request<pb::GetCausalChainRequest>,
    ) -> Result<Response<pb::CausalChain>, Status> {
        let caller = identity(&request)?;
        let not_found = || not_found("causal chain");
        let correlation_id =
            Uuid::parse_str(&request.get_ref().correlation_id).map_err(|_| not_found())?;
        let links = self
            .events
            .chain(&caller.tenant_id, correlation_id, MAX_CHAIN_EVENTS)
            .await
            .map_err(|error| {
                if error.is_unavailable() {
                    errors::status(
                        ErrorCode::Unavailable,
                        "event store unavailable",
                        HashMap::new(),
                    )
                } else {
                    errors::internal(&error)
                }
            })?;
        if links.is_empty() {
            return Err(not_found());
        }
        Ok(Response::new(pb::CausalChain {
            events: links.into_iter().map(chain_event).collect(),
        }))
    }
}

/// A client-supplied id; anything but a UUID names nothing the tenant has.
fn id_or_not_found(raw: &str, what: &str) -> Result<Uuid, Status> {
    Uuid::parse_str(raw).map_err(|_| not_found(what))
}

fn not_found(what: &str) -> Status {
    errors::status(
        ErrorCode::NotFound,
        format!("{what} not found"),
        HashMap::new(),
    )
}

/// 0: the default; 1..=100 as asked; more is refused.
fn page_size(raw: u32) -> Result<u32, Status> {
    match raw {
        0 => Ok(DEFAULT_PAGE_SIZE),
        size if size <= MAX_PAGE_SIZE => Ok(size),
        _ => Err(invalid_argument(
            "page_size",
            &format!("must be between 1 and {MAX_PAGE_SIZE}"),
        )),
    }
}

/// Empty: the first page.
fn token(raw: &str) -> Option<&str> {
    Some(raw).filter(|raw| !raw.is_empty())
}

fn invalid_page_token() -> Status {
    invalid_argument(
        "page_token",
        "is not a next_page_token of this list with the same filters",
    )
}

fn query_error(error: QueryError) -> Status {
    match error {
        QueryError::InvalidPageToken => invalid_page_token(),
        QueryError::InvalidPageSize => invalid_argument(
            "page_size",
            &format!("must be between 1 and {MAX_PAGE_SIZE}"),
        ),
        error if error.is_transient() => {
            tracing::warn!(error = %error, "read database unavailable");
            errors::status(
                ErrorCode::Unavailable,
                "read database unavailable",
                HashMap::new(),
            )
        }
        error => errors::internal(&error),
    }
}

fn timestamp(at: DateTime<Utc>) -> prost_types::Timestamp {
    // chrono's sub-second part stays below 2e9 even for a leap second, so it fits an i32.
    prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: at.timestamp_subsec_nanos() as i32,
    }
}

fn system(detail: SystemDetail) -> pb::System {
    let SystemDetail {
        system,
        open_vulnerabilities,
        alerts,
    } = detail;
    pb::System {
        id: system.id.to_string(),
        version: system.version,
        name: system.name,
        owner: system.owner,
        environment: pb::Environment::from(system.environment) as i32,
        packages: packages_to_proto(&system.packages),
        decommissioned: system.decommissioned,
        open_vulnerabilities: Some(open_vulnerabilities.into()),
        security_alerts: alerts.into_iter().map(alert).collect(),
        registered_at: Some(timestamp(system.registered_at)),
        updated_at: Some(timestamp(system.updated_at)),
    }
}

fn alert(alert: AlertView) -> pb::SecurityAlert {
    pb::SecurityAlert {
        scan_id: alert.scan_id.to_string(),
        cve: alert.cve,
        cvss_tenths: u32::from(alert.cvss_tenths),
        severity: pb::Severity::from(alert.severity) as i32,
        package: alert.package,
        raised_at: Some(timestamp(alert.raised_at)),
    }
}

fn vulnerability(vulnerability: VulnerabilityView) -> pb::Vulnerability {
    pb::Vulnerability {
        scan_id: vulnerability.scan_id.to_string(),
        cve: vulnerability.cve,
        cvss_tenths: u32::from(vulnerability.cvss_tenths),
        severity: pb::Severity::from(vulnerability.severity) as i32,
        package: vulnerability.package,
        detected_at: Some(timestamp(vulnerability.detected_at)),
    }
}

fn task(task: TaskView) -> pb::Task {
    pb::Task {
        id: task.id.to_string(),
        version: task.version,
        kind: pb::TaskKind::from(task.kind) as i32,
        status: pb::TaskStatus::from(task.status) as i32,
        system_id: task.system_id.to_string(),
        scan_id: task.scan_id.to_string(),
        cve: task.cve.unwrap_or_default(),
        title: task.title,
        priority: pb::TaskPriority::from(task.priority) as i32,
        due_at: Some(timestamp(task.due_at)),
        assignee: task.assignee.unwrap_or_default(),
        created_at: Some(timestamp(task.created_at)),
        completed_at: task.completed_at.map(timestamp),
    }
}

fn chain_event(link: ChainLink) -> pb::ChainEvent {
    pb::ChainEvent {
        event_id: link.event_id.to_string(),
        event_type: link.event_type,
        aggregate_type: link.aggregate_type,
        aggregate_id: link.aggregate_id.to_string(),
        version: link.version,
        occurred_at: Some(timestamp(link.occurred_at)),
        correlation_id: link.correlation_id.to_string(),
        causation_id: link.causation_id.to_string(),
        user_id: link.user_id,
    }
}
