-- The System Board's read models, kept by the `board-read-model` projections (Systems, Scans,
-- Tasks). Like every read-model row, each carries the tenant of the events that wrote it, and
-- every query filters by it. `version` is the aggregate version the row reflects: the
-- projection applies an event only if it is exactly version + 1.

-- One row per system (aggregate type `system`).
CREATE TABLE board_systems (
    id             uuid        PRIMARY KEY,
    tenant_id      text        NOT NULL,
    name           text        NOT NULL,
    owner          text        NOT NULL,
    environment    text        NOT NULL
        CHECK (environment IN ('PRODUCTION', 'STAGING', 'DEVELOPMENT', 'TEST')),
    -- `[{"name":…,"version":…}]`, sorted by name, as the events carry them.
    packages       jsonb       NOT NULL,
    decommissioned boolean     NOT NULL,
    registered_at  timestamptz NOT NULL,
    -- When its last event was recorded.
    updated_at     timestamptz NOT NULL,
    version        bigint      NOT NULL CHECK (version >= 1),
    last_event_id  uuid        NOT NULL
);
-- ListSystems: a tenant's systems by name, then id (keyset pages).
CREATE INDEX board_systems_tenant_name_idx ON board_systems (tenant_id, name, id);

-- The security alerts raised against a system, one per event; none is ever closed yet.
CREATE TABLE board_alerts (
    system_id   uuid        NOT NULL REFERENCES board_systems (id) ON DELETE CASCADE,
    tenant_id   text        NOT NULL,
    scan_id     uuid        NOT NULL,
    cve         text        NOT NULL,
    cvss_tenths smallint    NOT NULL CHECK (cvss_tenths BETWEEN 0 AND 100),
    severity    text        NOT NULL CHECK (severity IN ('LOW', 'MEDIUM', 'HIGH', 'CRITICAL')),
    package     text        NOT NULL,
    raised_at   timestamptz NOT NULL,
    -- The system version the alert's event made: orders a system's alerts exactly, oldest
    -- first.
    version     bigint      NOT NULL CHECK (version >= 1),
    PRIMARY KEY (system_id, scan_id, cve, package)
);
CREATE INDEX board_alerts_system_version_idx ON board_alerts (system_id, version);

-- One row per vulnerability scan (aggregate type `vulnerability_scan`).
CREATE TABLE board_scans (
    id           uuid        PRIMARY KEY,
    tenant_id    text        NOT NULL,
    system_id    uuid        NOT NULL,
    trigger      text        NOT NULL CHECK (trigger IN ('REGISTERED', 'PACKAGES_UPDATED')),
    -- The packages the scan looked at, like board_systems.packages: a finding must be in one.
    packages     jsonb       NOT NULL,
    completed    boolean     NOT NULL,
    initiated_at timestamptz NOT NULL,
    version      bigint      NOT NULL CHECK (version >= 1)
);
-- A system's latest scan (whose findings are its open vulnerabilities).
CREATE INDEX board_scans_tenant_system_idx
    ON board_scans (tenant_id, system_id, initiated_at DESC, id DESC);

-- What the scans found, one row per VulnerabilityDetected.
CREATE TABLE board_vulnerabilities (
    scan_id     uuid        NOT NULL REFERENCES board_scans (id) ON DELETE CASCADE,
    tenant_id   text        NOT NULL,
    system_id   uuid        NOT NULL,
    cve         text        NOT NULL,
    cvss_tenths smallint    NOT NULL CHECK (cvss_tenths BETWEEN 0 AND 100),
    severity    text        NOT NULL CHECK (severity IN ('LOW', 'MEDIUM', 'HIGH', 'CRITICAL')),
    package     text        NOT NULL,
    detected_at timestamptz NOT NULL,
    PRIMARY KEY (scan_id, cve, package)
);
CREATE INDEX board_vulnerabilities_tenant_system_idx
    ON board_vulnerabilities (tenant_id, system_id);

-- One row per task (aggregate type `task`).
CREATE TABLE board_tasks (
    id           uuid        PRIMARY KEY,
    tenant_id    text        NOT NULL,
    kind         text        NOT NULL CHECK (kind IN ('SCAN_REVIEW', 'REMEDIATION')),
    status       text        NOT NULL CHECK (status IN ('OPEN', 'ASSIGNED', 'COMPLETED')),
    system_id    uuid        NOT NULL,
    scan_id      uuid        NOT NULL,
    cve          text        NULL,
    title        text        NOT NULL,
    priority     text        NOT NULL CHECK (priority IN ('LOW', 'MEDIUM', 'HIGH', 'URGENT')),
    due_at       timestamptz NOT NULL,
    -- NULL while OPEN.
    assignee     text        NULL,
    created_at   timestamptz NOT NULL,
    -- NULL until COMPLETED.
    completed_at timestamptz NULL,
    version      bigint      NOT NULL CHECK (version >= 1),
    CHECK ((status = 'OPEN') = (assignee IS NULL)),
    CHECK ((status = 'COMPLETED') = (completed_at IS NOT NULL))
);
-- ListTasks, soonest due first, then id: all of a tenant's, mine, one system's, overdue ones.
CREATE INDEX board_tasks_tenant_due_idx ON board_tasks (tenant_id, due_at, id);
CREATE INDEX board_tasks_tenant_assignee_due_idx
    ON board_tasks (tenant_id, assignee, due_at, id) WHERE assignee IS NOT NULL;
CREATE INDEX board_tasks_tenant_system_due_idx ON board_tasks (tenant_id, system_id, due_at, id);
CREATE INDEX board_tasks_tenant_open_due_idx
    ON board_tasks (tenant_id, due_at, id) WHERE status <> 'COMPLETED';
