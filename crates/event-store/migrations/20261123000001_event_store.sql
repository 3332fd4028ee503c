-- The event store: append-only events, the transactional outbox, and processed command ids.

CREATE TABLE events (
    -- Global position: assigned at insert, so it is NOT commit order. Nothing may assume that
    -- positions become visible in order; per-aggregate order is `version`.
    position       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id       UUID        NOT NULL UNIQUE,
    tenant_id      TEXT        NOT NULL,
    aggregate_type TEXT        NOT NULL,
    aggregate_id   UUID        NOT NULL,
    version        BIGINT      NOT NULL CHECK (version > 0),
    event_type     TEXT        NOT NULL,
    payload        JSONB       NOT NULL,
    metadata       JSONB       NOT NULL,
    occurred_at    TIMESTAMPTZ NOT NULL,
    -- The optimistic lock: a version is taken once per aggregate.
    CONSTRAINT events_aggregate_version UNIQUE (aggregate_id, version)
);

-- The event store is the audit log: refuse any change to a recorded event.
CREATE FUNCTION events_are_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events are append-only (% refused)', TG_OP;
END;
$$;
CREATE TRIGGER events_no_update_or_delete BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_are_append_only();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_are_append_only();

-- One row per event to publish, written in the same transaction as the event.
CREATE TABLE outbox (
    position     BIGINT PRIMARY KEY REFERENCES events (position),
    published_at TIMESTAMPTZ
);
CREATE INDEX outbox_pending ON outbox (position) WHERE published_at IS NULL;

-- Client-supplied command ids already handled, with their result, so a retry is answered
-- from here instead of being decided again.
CREATE TABLE processed_commands (
    tenant_id    TEXT        NOT NULL,
    command_id   UUID        NOT NULL,
    command_type TEXT        NOT NULL,
    aggregate_id UUID        NOT NULL,
    version      BIGINT      NOT NULL,
    event_ids    UUID[]      NOT NULL,
    recorded_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, command_id)
);
