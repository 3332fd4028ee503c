-- Aggregate state after event `version`, so loading reads the newest snapshot plus the events
-- after it. Derived data, not events: rows may be deleted at any time and are ignored unless
-- `state_schema` is the shape the running build writes.
CREATE TABLE snapshots (
    aggregate_id UUID        NOT NULL,
    version      BIGINT      NOT NULL,
    state        JSONB       NOT NULL,
    state_schema INT         NOT NULL,
    taken_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (aggregate_id, version),
    -- A snapshot is of a recorded event, whose tenant is the snapshot's tenant.
    FOREIGN KEY (aggregate_id, version) REFERENCES events (aggregate_id, version)
);
