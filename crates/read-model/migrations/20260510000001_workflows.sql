-- The denormalised workflow read model. Every row carries the tenant of the event that wrote it,
-- and every query filters by it.
CREATE TABLE workflows (
    id                  uuid        PRIMARY KEY,
    tenant_id           text        NOT NULL,
    title               text        NOT NULL,
    description         text        NOT NULL,
    priority            text        NOT NULL CHECK (priority IN ('LOW', 'MEDIUM', 'HIGH', 'URGENT')),
    status              text        NOT NULL CHECK (status IN ('DRAFT', 'IN_PROGRESS', 'APPROVED', 'REJECTED')),
    applicant_id        text        NOT NULL,
    applicant_name      text        NOT NULL,
    current_step        integer     NULL,
    current_approver_id text        NULL,
    step_count          integer     NOT NULL CHECK (step_count >= 1),
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL,
    submitted_at        timestamptz NULL,
    completed_at        timestamptz NULL,
    -- The last event applied and its aggregate version: the projector applies an event only if
    -- it is exactly version + 1, which makes redelivery harmless and gaps visible.
    last_event_id       uuid        NOT NULL,
    version             bigint      NOT NULL CHECK (version >= 1)
);

-- Keyset pagination, newest first, for "all statuses" and for one status.
CREATE INDEX workflows_tenant_created_idx
    ON workflows (tenant_id, created_at DESC, id DESC);
CREATE INDEX workflows_tenant_status_created_idx
    ON workflows (tenant_id, status, created_at DESC, id DESC);

CREATE TABLE workflow_steps (
    workflow_id uuid        NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    step_no     integer     NOT NULL CHECK (step_no >= 1),
    tenant_id   text        NOT NULL,
    approver_id text        NOT NULL,
    status      text        NOT NULL CHECK (status IN ('WAITING', 'PENDING', 'APPROVED', 'REJECTED')),
    decided_by  text        NULL,
    decided_at  timestamptz NULL,
    comment     text        NULL,
    PRIMARY KEY (workflow_id, step_no)
);
