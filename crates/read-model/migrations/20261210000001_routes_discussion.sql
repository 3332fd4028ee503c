-- The second version of the workflow domain: steps decided by a user or a role, with SLAs,
-- deadlines and escalation; sending back, delegating and cancelling; definitions and due dates;
-- and a discussion of comments and attached documents.

ALTER TABLE workflows DROP CONSTRAINT workflows_status_check;
ALTER TABLE workflows
    ADD CONSTRAINT workflows_status_check CHECK (status IN
        ('DRAFT', 'IN_PROGRESS', 'CHANGES_REQUESTED', 'APPROVED', 'REJECTED', 'CANCELLED')),
    -- The definition version the route was pinned from; all three NULL for an ad-hoc route.
    ADD COLUMN definition_id         uuid        NULL,
    ADD COLUMN definition_version    integer     NULL CHECK (definition_version >= 1),
    ADD COLUMN definition_name       text        NULL,
    ADD COLUMN due_date              date        NULL,
    -- The step waiting for a decision (`current_step`) waits for a user (`current_approver_id`)
    -- or for anyone holding a role (`current_assignee_role`), until `current_due_at` if its
    -- step has an SLA.
    ADD COLUMN current_assignee_role text        NULL,
    ADD COLUMN current_due_at        timestamptz NULL,
    ADD COLUMN current_escalated_at  timestamptz NULL,
    -- Kept on the row so a list shows them without reading the discussion tables.
    ADD COLUMN comment_count         integer     NOT NULL DEFAULT 0 CHECK (comment_count >= 0),
    ADD COLUMN attachment_count      integer     NOT NULL DEFAULT 0 CHECK (attachment_count >= 0),
    ADD CONSTRAINT workflows_definition_check CHECK (
        (definition_id IS NULL) = (definition_version IS NULL)
        AND (definition_id IS NULL) = (definition_name IS NULL)),
    ADD CONSTRAINT workflows_current_check CHECK (
        CASE WHEN current_step IS NULL
             THEN current_approver_id IS NULL AND current_assignee_role IS NULL
                  AND current_due_at IS NULL AND current_escalated_at IS NULL
             ELSE (current_approver_id IS NULL) <> (current_assignee_role IS NULL)
        END);

-- A step's approver is who the route names: a user or a role. A delegation leaves it as it is
-- and records who handed the step on (`delegated_by`) and to whom (`delegated_to`), so a route
-- restarted after changes were requested can show every step's own approver again.
ALTER TABLE workflow_steps DROP CONSTRAINT workflow_steps_status_check;
ALTER TABLE workflow_steps
    ALTER COLUMN approver_id DROP NOT NULL,
    ADD CONSTRAINT workflow_steps_status_check CHECK (status IN
        ('WAITING', 'PENDING', 'APPROVED', 'REJECTED', 'CHANGES_REQUESTED')),
    ADD COLUMN approver_role text        NULL,
    ADD COLUMN sla_hours     integer     NULL CHECK (sla_hours >= 1),
    -- Of the step's current (or last) assignment.
    ADD COLUMN due_at        timestamptz NULL,
    ADD COLUMN escalated_at  timestamptz NULL,
    ADD COLUMN delegated_by  text        NULL,
    ADD COLUMN delegated_to  text        NULL,
    ADD CONSTRAINT workflow_steps_approver_check CHECK ((approver_id IS NULL) <> (approver_role IS NULL)),
    ADD CONSTRAINT workflow_steps_delegation_check CHECK ((delegated_by IS NULL) = (delegated_to IS NULL));

-- The discussion, append-only: one row per event, keyed by the event's id. `version` is the
-- workflow version the event recorded: the discussion's order, which times alone cannot give
-- (two events may carry the same time).
CREATE TABLE workflow_comments (
    event_id    uuid        PRIMARY KEY,
    workflow_id uuid        NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    version     bigint      NOT NULL CHECK (version >= 1),
    tenant_id   text        NOT NULL,
    author_id   text        NOT NULL,
    author_name text        NOT NULL,
    body        text        NOT NULL,
    created_at  timestamptz NOT NULL
);
CREATE INDEX workflow_comments_workflow_idx ON workflow_comments (workflow_id, version);

-- Metadata only: the documents themselves are in object storage at `storage_uri`.
CREATE TABLE workflow_attachments (
    event_id    uuid        PRIMARY KEY,
    workflow_id uuid        NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    version     bigint      NOT NULL CHECK (version >= 1),
    tenant_id   text        NOT NULL,
    file_name   text        NOT NULL,
    media_type  text        NOT NULL,
    size_bytes  bigint      NOT NULL CHECK (size_bytes >= 1),
    sha256      text        NOT NULL,
    storage_uri text        NOT NULL,
    attached_by text        NOT NULL,
    attached_at timestamptz NOT NULL
);
CREATE INDEX workflow_attachments_workflow_idx ON workflow_attachments (workflow_id, version);

-- Buffered events are read with the current domain types, so the ones buffered in the first
-- shape of the two changed events are lifted to the second, as the event store's upcasters do:
-- a route of user ids becomes a route of step specs ...
UPDATE pending_events
SET event = jsonb_set(event, '{event,data,route}', (
        SELECT jsonb_agg(CASE jsonb_typeof(step)
                             WHEN 'string' THEN jsonb_build_object('approver', jsonb_build_object('user', step))
                             ELSE step
                         END ORDER BY position)
        FROM jsonb_array_elements(event #> '{event,data,route}') WITH ORDINALITY AS s (step, position)))
WHERE event #>> '{event,type}' = 'WorkflowCreated'
  AND jsonb_typeof(event #> '{event,data,route}') = 'array'
  AND jsonb_array_length(event #> '{event,data,route}') > 0;

-- ... and an assignment to `approver_id` becomes one to an `assignee` user.
UPDATE pending_events
SET event = jsonb_set(event #- '{event,data,approver_id}', '{event,data,assignee}',
                      jsonb_build_object('user', event #> '{event,data,approver_id}'))
WHERE event #>> '{event,type}' = 'WorkflowStepAssigned'
  AND event #> '{event,data}' ? 'approver_id';
