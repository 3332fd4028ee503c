//! The System Board's reads, answered by query-svc (`SystemBoardQueryService`). Every answer is
//! limited to the caller's tenant: another tenant's id answers NOT_FOUND exactly as an unknown
//! or a malformed one does.

use super::{page_info, ChainEvent, System, SystemConnection, Task, TaskConnection, Vulnerability};
use crate::schema::query::page_size;
use crate::schema::{call, canonical, limits};
use async_graphql::{Context, InputObject, Object, Result, ID};
use proto::systemboard::v1 as pb;

#[derive(Default)]
pub(crate) struct BoardQuery;

/// Narrows `tasks`; every field set narrows the list, none set lists every task of the tenant.
#[derive(InputObject, Default)]
struct TaskFilter {
    /// Only the tasks assigned to the caller (completed ones included, unless `overdueOnly`).
    #[graphql(default)]
    mine: bool,
    /// Only the tasks about this system (none for another tenant's or an unknown one).
    system_id: Option<ID>,
    /// Only the tasks not completed whose `dueAt` has passed.
    #[graphql(default)]
    overdue_only: bool,
}

#[Object]
impl BoardQuery {
    /// One system of the caller's tenant, decommissioned or not, with its open
    /// vulnerabilities and its security alerts.
    #[graphql(complexity = "limits::single(limits::GET, child_complexity)")]
    async fn system(&self, ctx: &Context<'_>, id: ID) -> Result<System> {
        let message = pb::GetSystemRequest {
            system_id: canonical(id),
        };
        let system = call(
            ctx,
            |backends| backends.board_query.clone(),
            message,
            |mut client, request| async move { client.get_system(request).await },
        )
        .await?;
        system.try_into()
    }

    /// The caller's tenant's systems, decommissioned ones included, by name, `first` (1..=100)
    /// at a time; the next page is `after` this one's `pageInfo.endCursor`.
    #[graphql(complexity = "limits::page(limits::LIST, first, child_complexity)")]
    async fn systems(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "limits::default_page()")] first: Option<i32>,
        after: Option<String>,
    ) -> Result<SystemConnection> {
        let message = pb::ListSystemsRequest {
            page_size: page_size(first)?,
            page_token: after.unwrap_or_default(),
        };
        let page = call(
            ctx,
            |backends| backends.board_query.clone(),
            message,
            |mut client, request| async move { client.list_systems(request).await },
        )
        .await?;
        Ok(SystemConnection {
            nodes: page
                .systems
                .into_iter()
                .map(System::try_from)
                .collect::<Result<_>>()?,
            page_info: page_info(page.next_page_token),
        })
    }

    /// The open vulnerabilities of a system of the caller's tenant (those its
    /// `openVulnerabilities` counts), most severe first.
    #[graphql(complexity = "limits::page(limits::LIST, limits::UNPAGED, child_complexity)")]
    async fn system_vulnerabilities(
        &self,
        ctx: &Context<'_>,
        system_id: ID,
    ) -> Result<Vec<Vulnerability>> {
        let message = pb::ListSystemVulnerabilitiesRequest {
            system_id: canonical(system_id),
        };
        let found = call(
            ctx,
            |backends| backends.board_query.clone(),
            message,
            |mut client, request| async move { client.list_system_vulnerabilities(request).await },
        )
        .await?;
        found
            .vulnerabilities
            .into_iter()
            .map(Vulnerability::try_from)
            .collect()
    }

    /// The caller's tenant's tasks, soonest due first, `first` (1..=100) at a time; the next
    /// page is `after` this one's `pageInfo.endCursor`.
    #[graphql(complexity = "limits::page(limits::LIST, first, child_complexity)")]
    async fn tasks(
        &self,
        ctx: &Context<'_>,
        filter: Option<TaskFilter>,
        #[graphql(default_with = "limits::default_page()")] first: Option<i32>,
        after: Option<String>,
    ) -> Result<TaskConnection> {
        let filter = filter.unwrap_or_default();
        let message = pb::ListTasksRequest {
            mine: filter.mine,
            system_id: filter.system_id.map(canonical).unwrap_or_default(),
            overdue_only: filter.overdue_only,
            page_size: page_size(first)?,
            page_token: after.unwrap_or_default(),
        };
        let page = call(
            ctx,
            |backends| backends.board_query.clone(),
            message,
            |mut client, request| async move { client.list_tasks(request).await },
        )
        .await?;
        Ok(TaskConnection {
            nodes: page
                .tasks
                .into_iter()
                .map(Task::try_from)
                .collect::<Result<_>>()?,
            page_info: page_info(page.next_page_token),
        })
    }

    /// Every event one request chain caused, oldest first: the command a person sent (the
    /// `x-correlation-id` of its HTTP request, which every response echoes) and the platform's
    /// reactions to it, e.g. SystemRegistered → VulnScanInitiated → TaskCreated. Read from the
    /// event store. NOT_FOUND when the caller's tenant has no event with this correlation id.
    #[graphql(complexity = "limits::page(limits::HISTORY, limits::UNPAGED, child_complexity)")]
    async fn causal_chain(&self, ctx: &Context<'_>, correlation_id: ID) -> Result<Vec<ChainEvent>> {
        let message = pb::GetCausalChainRequest {
            correlation_id: canonical(correlation_id),
        };
        let chain = call(
            ctx,
            |backends| backends.board_query.clone(),
            message,
            |mut client, request| async move { client.get_causal_chain(request).await },
        )
        .await?;
        chain.events.into_iter().map(ChainEvent::try_from).collect()
    }
}
