-- What the filtered and sorted lists, "my tasks", the text search and the dashboard need.

-- Trigram indexes for substring search in any script: pg_trgm hashes multibyte trigrams, so
-- 「出張」 is found inside 「出張申請：大阪」 as well as "trip" inside "Business Trip". Trusted
-- since PostgreSQL 13: the database owner may create it.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

ALTER TABLE workflows
    -- When the waiting step was assigned to whom it waits for now (a delegation is a new
    -- assignment): "my tasks" lists the newest first.
    ADD COLUMN current_assigned_at timestamptz NULL,
    -- The first submission, which a resubmission does not move (`submitted_at` does): the
    -- dashboard's time to a decision runs from it.
    ADD COLUMN first_submitted_at  timestamptz NULL;

-- Rows projected before these columns existed get the best the read model still knows. A
-- workflow submitted again after changes were requested gets its latest submission, and a step
-- handed on gets the row's last change, which is no earlier than the hand-over; `projector-svc
-- rebuild` recomputes both exactly from the events.
UPDATE workflows SET first_submitted_at = submitted_at WHERE submitted_at IS NOT NULL;
-- A step is assigned by the same command that submits the workflow (step 1) or approves the
-- step before it, so those times are exact.
UPDATE workflows w
SET current_assigned_at = COALESCE(
        (SELECT CASE WHEN w.current_step = 1 THEN w.submitted_at ELSE previous.decided_at END
         FROM workflow_steps s
              LEFT JOIN workflow_steps previous
                     ON previous.workflow_id = s.workflow_id AND previous.step_no = s.step_no - 1
         WHERE s.workflow_id = w.id AND s.step_no = w.current_step AND s.delegated_to IS NULL),
        w.updated_at)
WHERE w.current_step IS NOT NULL;

ALTER TABLE workflows
    ADD CONSTRAINT workflows_assigned_check
        CHECK ((current_step IS NULL) = (current_assigned_at IS NULL)),
    ADD CONSTRAINT workflows_first_submitted_check
        CHECK ((submitted_at IS NULL) = (first_submitted_at IS NULL)
               AND first_submitted_at <= submitted_at);

-- The order of the priority sort; an index on it serves that sort.
CREATE FUNCTION workflow_priority_rank(priority text) RETURNS integer
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN CASE priority WHEN 'LOW' THEN 1 WHEN 'MEDIUM' THEN 2 WHEN 'HIGH' THEN 3
                         WHEN 'URGENT' THEN 4 END;

-- One index per sort of the list, each ending in the id the keyset pagination breaks ties with
-- (a btree serves both directions). The due-date sort puts workflows without a due date after
-- every date, as if due on the last day there is.
CREATE INDEX workflows_tenant_updated_idx
    ON workflows (tenant_id, updated_at DESC, id DESC);
CREATE INDEX workflows_tenant_due_date_idx
    ON workflows (tenant_id, (COALESCE(due_date, DATE '9999-12-31')), id);
CREATE INDEX workflows_tenant_priority_idx
    ON workflows (tenant_id, workflow_priority_rank(priority), id);

-- The selective filters, newest first.
CREATE INDEX workflows_tenant_applicant_idx
    ON workflows (tenant_id, applicant_id, created_at DESC, id DESC);
CREATE INDEX workflows_tenant_definition_idx
    ON workflows (tenant_id, definition_id, created_at DESC, id DESC)
    WHERE definition_id IS NOT NULL;

-- The steps waiting for a user or for a role, newest assignment first: "my tasks" and the
-- assignee filter (a bitmap OR of the two).
CREATE INDEX workflows_waiting_user_idx
    ON workflows (tenant_id, current_approver_id, current_assigned_at DESC, id DESC)
    WHERE current_approver_id IS NOT NULL;
CREATE INDEX workflows_waiting_role_idx
    ON workflows (tenant_id, current_assignee_role, current_assigned_at DESC, id DESC)
    WHERE current_assignee_role IS NOT NULL;

-- The dashboard's overdue and completed-today counts, and the overdue filter.
CREATE INDEX workflows_overdue_idx
    ON workflows (tenant_id, current_due_at)
    WHERE status = 'IN_PROGRESS' AND current_due_at IS NOT NULL;
CREATE INDEX workflows_tenant_completed_idx
    ON workflows (tenant_id, completed_at)
    WHERE completed_at IS NOT NULL;

-- Text search. A trigram index serves `ILIKE '%text%'` from three characters on; shorter texts
-- have no trigram to look up, so the search scans the tenant's rows instead (see search.rs).
CREATE INDEX workflows_title_trgm_idx ON workflows USING gin (title gin_trgm_ops);
CREATE INDEX workflows_description_trgm_idx ON workflows USING gin (description gin_trgm_ops);
CREATE INDEX workflow_comments_body_trgm_idx ON workflow_comments USING gin (body gin_trgm_ops);
CREATE INDEX workflow_comments_tenant_idx ON workflow_comments (tenant_id, workflow_id);

-- The deadline watcher's scan across tenants (projector-svc `deadlines`): steps past their
-- deadline and not yet escalated, oldest first.
CREATE INDEX workflows_unescalated_due_idx
    ON workflows (current_due_at)
    WHERE status = 'IN_PROGRESS' AND current_escalated_at IS NULL;
