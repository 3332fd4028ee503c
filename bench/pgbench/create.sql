-- W1-limit: one CreateWorkflow append (1 event), the one statement
-- event_store::EventStore::append sends: events INSERT via UNNEST, outbox INSERT,
-- processed_commands INSERT as data-modifying CTEs, one implicit transaction (the relay's
-- NOTIFY follows the commit, outside it). The values the service binds as
-- parameters are literals of the same size here, the ids fresh random UUIDs.
WITH new_events AS (
    INSERT INTO events (event_id, tenant_id, aggregate_type, aggregate_id, version,
                        event_type, schema_version, payload, metadata, occurred_at)
    SELECT e.event_id, 'bench', 'workflow', a.id, e.version, e.event_type, e.schema_version, e.payload,
           '{"tenant_id":"bench","user_id":"applicant","correlation_id":"0190f5a4-7c1e-7b7a-9d2e-3f1a2b3c4d5e","causation_id":"0190f5a4-7c1e-7b7a-9d2e-3f1a2b3c4d5f"}'::jsonb,
           now()
    FROM (SELECT gen_random_uuid() AS id) AS a,
         UNNEST(ARRAY[gen_random_uuid()]::uuid[], ARRAY[1]::bigint[],
                ARRAY['WorkflowCreated']::text[],
                ARRAY['{"title":"bench w1 0-1","description":"","priority":"Medium","applicant_id":"applicant","applicant_name":"applicant san","route":["approver"]}']::jsonb[],
                ARRAY[1]::int[])
         AS e(event_id, version, event_type, payload, schema_version)
    ORDER BY e.version
    RETURNING position
),
outbox_rows AS (INSERT INTO outbox (position) SELECT position FROM new_events),
command AS (
    INSERT INTO processed_commands (tenant_id, command_id, command_type, aggregate_id, version, event_ids)
    VALUES ('bench', gen_random_uuid(), 'CreateWorkflow', gen_random_uuid(), 1, ARRAY[gen_random_uuid()])
)
SELECT count(*) FROM new_events;
