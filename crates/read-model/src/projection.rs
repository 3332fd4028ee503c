//! The workflow read model as a [`Projection`]: the pipeline (`projection` crate) applies
//! workflow events exactly once and in version order; this says how a workflow's row is read,
//! how an event changes it (`fold`), and how changed rows are written — set-based, each changed
//! row once, so a batch costs a fixed number of statements whatever its length.

use crate::fold::{self, Appended, Folded};
use crate::queries;
use crate::views::{AttachmentView, CommentView, StepView, WorkflowView};
use projection::Projection;
use sqlx::PgConnection;
use sqlx::PgPool;
use std::collections::HashMap;
use uuid::Uuid;
use workflow_domain::{Aggregate, Approver, RecordedEvent, Workflow, WorkflowEvent};

/// The workflow read model: `workflows` and `workflow_steps` rows, comments and attachments.
pub struct Workflows;

impl Projection for Workflows {
    type Event = WorkflowEvent;
    type Row = WorkflowView;
    type Added = Appended;

    const AGGREGATE_TYPES: &'static [&'static str] = &[Workflow::TYPE];
    const TABLES: &'static [&'static str] = &[
        "workflows",
        "workflow_steps",
        "workflow_comments",
        "workflow_attachments",
    ];
    const KEYS: &'static [(&'static str, &'static str)] = &[(
        "workflow_steps",
        "t.workflow_id::text || ' step ' || t.step_no",
    )];
    const CHANNEL: &'static str = crate::freshness::CHANNEL;

    fn id(row: &WorkflowView) -> Uuid {
        row.id
    }

    fn version(row: &WorkflowView) -> i64 {
        row.version
    }

    fn event_type(event: &WorkflowEvent) -> &'static str {
        event.event_type()
    }

    async fn load(conn: &mut PgConnection, ids: &[Uuid]) -> Result<Vec<WorkflowView>, sqlx::Error> {
        queries::workflows_by_id(conn, ids).await
    }

    fn fold(
        row: Option<WorkflowView>,
        event: &RecordedEvent<WorkflowEvent>,
    ) -> Result<(WorkflowView, Option<Appended>), &'static str> {
        let Folded { view, appended } = fold::evolve(row, event)?;
        Ok((view, appended))
    }

    /// Each changed workflow row once, each changed step once, and the new discussion entries
    /// (after the rows they reference).
    async fn write(
        conn: &mut PgConnection,
        loaded: &HashMap<Uuid, WorkflowView>,
        rows: &HashMap<Uuid, WorkflowView>,
        changed: &[Uuid],
        added: &[(Uuid, Appended)],
    ) -> Result<(), sqlx::Error> {
        let changed: Vec<&WorkflowView> = changed.iter().map(|id| &rows[id]).collect();
        if !changed.is_empty() {
            upsert_workflows(&mut *conn, &changed).await?;
            let steps: Vec<(&WorkflowView, &StepView)> = changed
                .iter()
                .flat_map(|view| {
                    let before = loaded.get(&view.id);
                    view.steps
                        .iter()
                        .filter(move |step| {
                            before.is_none_or(|before| !before.steps.contains(step))
                        })
                        .map(move |step| (*view, step))
                })
                .collect();
            upsert_steps(&mut *conn, &steps).await?;
        }
        // Discussion entries carry the tenant of their workflow, which every row has.
        let tenant = |id: &Uuid| rows[id].tenant_id.as_str();
        let comments: Vec<(Uuid, &str, &CommentView)> = added
            .iter()
            .filter_map(|(id, added)| match added {
                Appended::Comment(comment) => Some((*id, tenant(id), comment)),
                Appended::Attachment(_) => None,
            })
            .collect();
        let attachments: Vec<(Uuid, &str, &AttachmentView)> = added
            .iter()
            .filter_map(|(id, added)| match added {
                Appended::Attachment(attachment) => Some((*id, tenant(id), attachment)),
                Appended::Comment(_) => None,
            })
            .collect();
        insert_comments(&mut *conn, &comments).await?;
        insert_attachments(&mut *conn, &attachments).await?;
        Ok(())
    }
}

/// One array per column, for UNNEST: `rows` mapped through `value`.
fn column<'r, R, T>(rows: &'r [R], value: impl Fn(&'r R) -> T) -> Vec<T> {
    rows.iter().map(value).collect()
}

/// The user and the role column of an approver: exactly one is set.
fn approver_columns(approver: &Approver) -> (Option<&str>, Option<&str>) {
    match approver {
        Approver::User(user) => (Some(user.as_str()), None),
        Approver::Role(role) => (None, Some(role.as_str())),
    }
}

/// Inserts or replaces whole workflow rows, all in one statement.
async fn upsert_workflows(
    conn: &mut PgConnection,
    rows: &[&WorkflowView],
) -> Result<(), sqlx::Error> {
    fn assignee(view: &WorkflowView) -> (Option<&str>, Option<&str>) {
        view.current
            .as_ref()
            .map_or((None, None), |c| approver_columns(&c.assignee))
    }
    sqlx::query(
        "INSERT INTO workflows (id, tenant_id, title, description, priority, status, applicant_id,
             applicant_name, definition_id, definition_version, definition_name, due_date,
             current_step, current_approver_id, current_assignee_role, current_due_at,
             current_escalated_at, step_count, comment_count, attachment_count, created_at,
             updated_at, submitted_at, completed_at, last_event_id, version,
             current_assigned_at, first_submitted_at)
         SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[],
             $6::text[], $7::text[], $8::text[], $9::uuid[], $10::integer[], $11::text[],
             $12::date[], $13::integer[], $14::text[], $15::text[], $16::timestamptz[],
             $17::timestamptz[], $18::integer[], $19::integer[], $20::integer[],
             $21::timestamptz[], $22::timestamptz[], $23::timestamptz[], $24::timestamptz[],
             $25::uuid[], $26::bigint[], $27::timestamptz[], $28::timestamptz[])
         ON CONFLICT (id) DO UPDATE SET
             title = EXCLUDED.title, description = EXCLUDED.description,
             priority = EXCLUDED.priority, status = EXCLUDED.status,
             applicant_id = EXCLUDED.applicant_id, applicant_name = EXCLUDED.applicant_name,
             definition_id = EXCLUDED.definition_id,
             definition_version = EXCLUDED.definition_version,
             definition_name = EXCLUDED.definition_name, due_date = EXCLUDED.due_date,
             current_step = EXCLUDED.current_step,
             current_approver_id = EXCLUDED.current_approver_id,
             current_assignee_role = EXCLUDED.current_assignee_role,
             current_due_at = EXCLUDED.current_due_at,
             current_escalated_at = EXCLUDED.current_escalated_at,
             step_count = EXCLUDED.step_count, comment_count = EXCLUDED.comment_count,
             attachment_count = EXCLUDED.attachment_count, updated_at = EXCLUDED.updated_at,
             submitted_at = EXCLUDED.submitted_at, completed_at = EXCLUDED.completed_at,
             last_event_id = EXCLUDED.last_event_id, version = EXCLUDED.version,
             current_assigned_at = EXCLUDED.current_assigned_at,
             first_submitted_at = EXCLUDED.first_submitted_at",
    )
    .bind(column(rows, |r| r.id))
    .bind(column(rows, |r| r.tenant_id.as_str()))
    .bind(column(rows, |r| r.title.as_str()))
    .bind(column(rows, |r| r.description.as_str()))
    .bind(column(rows, |r| r.priority.as_str()))
    .bind(column(rows, |r| r.status.as_str()))
    .bind(column(rows, |r| r.applicant_id.as_str()))
    .bind(column(rows, |r| r.applicant_name.as_str()))
    .bind(column(rows, |r| {
        r.definition.as_ref().map(|d| d.id.as_uuid())
    }))
    .bind(column(rows, |r| {
        r.definition.as_ref().map(|d| d.version as i32)
    }))
    .bind(column(rows, |r| {
        r.definition.as_ref().map(|d| d.name.as_str())
    }))
    .bind(column(rows, |r| r.due_date))
    .bind(column(rows, |r| r.current.as_ref().map(|c| c.step as i32)))
    .bind(column(rows, |r| assignee(r).0))
    .bind(column(rows, |r| assignee(r).1))
    .bind(column(rows, |r| r.current.as_ref().and_then(|c| c.due_at)))
    .bind(column(rows, |r| {
        r.current.as_ref().and_then(|c| c.escalated_at)
    }))
    .bind(column(rows, |r| r.step_count as i32))
    .bind(column(rows, |r| r.comment_count as i32))
    .bind(column(rows, |r| r.attachment_count as i32))
    .bind(column(rows, |r| r.created_at))
    .bind(column(rows, |r| r.updated_at))
    .bind(column(rows, |r| r.submitted_at))
    .bind(column(rows, |r| r.completed_at))
    .bind(column(rows, |r| r.last_event_id))
    .bind(column(rows, |r| r.version))
    .bind(column(rows, |r| r.current.as_ref().map(|c| c.assigned_at)))
    .bind(column(rows, |r| r.first_submitted_at))
    .execute(conn)
    .await?;
    Ok(())
}

/// Inserts or replaces steps, all in one statement.
async fn upsert_steps(
    conn: &mut PgConnection,
    steps: &[(&WorkflowView, &StepView)],
) -> Result<(), sqlx::Error> {
    if steps.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO workflow_steps (workflow_id, step_no, tenant_id, approver_id, approver_role,
             sla_hours, status, due_at, escalated_at, delegated_by, delegated_to, decided_by,
             decided_at, comment)
         SELECT * FROM UNNEST($1::uuid[], $2::integer[], $3::text[], $4::text[], $5::text[],
             $6::integer[], $7::text[], $8::timestamptz[], $9::timestamptz[], $10::text[],
             $11::text[], $12::text[], $13::timestamptz[], $14::text[])
         ON CONFLICT (workflow_id, step_no) DO UPDATE SET
             approver_id = EXCLUDED.approver_id, approver_role = EXCLUDED.approver_role,
             sla_hours = EXCLUDED.sla_hours, status = EXCLUDED.status,
             due_at = EXCLUDED.due_at, escalated_at = EXCLUDED.escalated_at,
             delegated_by = EXCLUDED.delegated_by, delegated_to = EXCLUDED.delegated_to,
             decided_by = EXCLUDED.decided_by, decided_at = EXCLUDED.decided_at,
             comment = EXCLUDED.comment",
    )
    .bind(column(steps, |(w, _)| w.id))
    .bind(column(steps, |(_, s)| s.number as i32))
    .bind(column(steps, |(w, _)| w.tenant_id.as_str()))
    .bind(column(steps, |(_, s)| approver_columns(&s.approver).0))
    .bind(column(steps, |(_, s)| approver_columns(&s.approver).1))
    .bind(column(steps, |(_, s)| {
        s.sla_hours.map(|hours| hours as i32)
    }))
    .bind(column(steps, |(_, s)| s.status.as_str()))
    .bind(column(steps, |(_, s)| s.due_at))
    .bind(column(steps, |(_, s)| s.escalated_at))
    .bind(column(steps, |(_, s)| s.delegated_by.as_deref()))
    .bind(column(steps, |(_, s)| s.delegated_to.as_deref()))
    .bind(column(steps, |(_, s)| s.decided_by.as_deref()))
    .bind(column(steps, |(_, s)| s.decided_at))
    .bind(column(steps, |(_, s)| s.comment.as_deref()))
    .execute(conn)
    .await?;
    Ok(())
}

/// Inserts new comments, all in one statement. Each is the effect of one event applied once
/// (the version check sees to that), so there is nothing to replace.
async fn insert_comments(
    conn: &mut PgConnection,
    comments: &[(Uuid, &str, &CommentView)],
) -> Result<(), sqlx::Error> {
    if comments.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO workflow_comments (event_id, workflow_id, version, tenant_id, author_id,
             author_name, body, created_at)
         SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::bigint[], $4::text[], $5::text[],
             $6::text[], $7::text[], $8::timestamptz[])",
    )
    .bind(column(comments, |(_, _, c)| c.id))
    .bind(column(comments, |(workflow, _, _)| *workflow))
    .bind(column(comments, |(_, _, c)| c.version))
    .bind(column(comments, |(_, tenant, _)| *tenant))
    .bind(column(comments, |(_, _, c)| c.author_id.as_str()))
    .bind(column(comments, |(_, _, c)| c.author_name.as_str()))
    .bind(column(comments, |(_, _, c)| c.body.as_str()))
    .bind(column(comments, |(_, _, c)| c.created_at))
    .execute(conn)
    .await?;
    Ok(())
}

/// Inserts new attachments, all in one statement; like [`insert_comments`].
async fn insert_attachments(
    conn: &mut PgConnection,
    attachments: &[(Uuid, &str, &AttachmentView)],
) -> Result<(), sqlx::Error> {
    if attachments.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO workflow_attachments (event_id, workflow_id, version, tenant_id, file_name,
             media_type, size_bytes, sha256, storage_uri, attached_by, attached_at)
         SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::bigint[], $4::text[], $5::text[],
             $6::text[], $7::bigint[], $8::text[], $9::text[], $10::text[], $11::timestamptz[])",
    )
    .bind(column(attachments, |(_, _, a)| a.id))
    .bind(column(attachments, |(workflow, _, _)| *workflow))
    .bind(column(attachments, |(_, _, a)| a.version))
    .bind(column(attachments, |(_, tenant, _)| *tenant))
    .bind(column(attachments, |(_, _, a)| a.document.file_name()))
    .bind(column(attachments, |(_, _, a)| a.document.media_type()))
    // At most 1 GiB by the domain's rules, far inside a bigint.
    .bind(column(attachments, |(_, _, a)| {
        a.document.size_bytes() as i64
    }))
    .bind(column(attachments, |(_, _, a)| a.document.sha256()))
    .bind(column(attachments, |(_, _, a)| a.document.storage_uri()))
    .bind(column(attachments, |(_, _, a)| a.attached_by.as_str()))
    .bind(column(attachments, |(_, _, a)| a.attached_at))
    .execute(conn)
    .await?;
    Ok(())
}

/// The version the read model holds for a workflow of any tenant (`None`: not created yet).
pub async fn stored_version(pool: &PgPool, aggregate_id: Uuid) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT version FROM workflows WHERE id = $1")
        .bind(aggregate_id)
        .fetch_optional(pool)
        .await
}
