-- What the projector remembers about delivery besides the read model itself: events that came
-- early, aggregates set aside after a dead letter, and dead letters already replayed.

-- An event whose version is beyond the stored version + 1, kept until its predecessors are
-- applied. Buffering instead of holding the Kafka offset keeps the partition moving, and
-- applying buffered successors in the same transaction as their predecessor ends in exactly the
-- state of in-order delivery.
CREATE TABLE pending_events (
    aggregate_id uuid        NOT NULL,
    version      bigint      NOT NULL CHECK (version >= 1),
    -- The whole recorded event (envelope, metadata and `{"type", "data"}` domain event).
    event        jsonb       NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (aggregate_id, version)
);

-- An aggregate one of whose events went to the dead-letter topic. Its later events go there
-- too, so the read model never builds on a hole and the dead-letter topic keeps the
-- aggregate's events in order for a replay.
CREATE TABLE parked_aggregates (
    aggregate_id   uuid        PRIMARY KEY,
    -- NULL when the message that parked it did not say (it did not decode).
    tenant_id      text        NULL,
    reason         text        NOT NULL,
    first_event_id uuid        NULL,
    parked_at      timestamptz NOT NULL DEFAULT now(),
    -- Dead letters produced for this aggregate since it was parked. A replay unparks only if it
    -- saw at least this many, so a dead letter produced while the replay ran is never missed.
    dead_letters   bigint      NOT NULL DEFAULT 0 CHECK (dead_letters >= 0)
);

-- Dead letters a replay has resolved, so the next replay skips them. Keyed by topic as well: a
-- recreated dead-letter topic starts its offsets again at 0.
CREATE TABLE dlq_replayed (
    dlq_topic     text        NOT NULL,
    dlq_partition integer     NOT NULL,
    dlq_offset    bigint      NOT NULL,
    replayed_at   timestamptz NOT NULL DEFAULT now(),
    outcome       text        NOT NULL
        CHECK (outcome IN ('applied', 'already_applied', 'buffered', 'superseded', 'failed')),
    PRIMARY KEY (dlq_topic, dlq_partition, dlq_offset)
);
