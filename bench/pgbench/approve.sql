-- W1-limit: one ApproveStep append of the last step (2 events), the one statement
-- event_store::EventStore::append sends (see create.sql).
WITH new_events AS (
    INSERT INTO events (event_id, tenant_id, aggregate_type, aggregate_id, version,
                        event_type, schema_version, payload, metadata, occurred_at)
    SELECT e.event_id, 'bench', 'workflow', a.id, e.version, e.event_type, e.schema_version, e.payload,
           '{"tenant_id":"bench","user_id":"approver","correlation_id":"0190f5a4-7c1e-7b7a-9d2e-3f1a2b3c4d5e","causation_id":"0190f5a4-7c1e-7b7a-9d2e-3f1a2b3c4d5f"}'::jsonb,
           now()
    FROM (SELECT gen_random_uuid() AS id) AS a,
         UNNEST(ARRAY[gen_random_uuid(), gen_random_uuid()]::uuid[], ARRAY[4, 5]::bigint[],
                ARRAY['WorkflowStepCompleted', 'WorkflowApproved']::text[],
                ARRAY['{"step":1,"decision":"Approved","decided_by":"approver","comment":""}', '{}']::jsonb[],
                ARRAY[1, 1]::int[])
         AS e(event_id, version, event_type, payload, schema_version)
    ORDER BY e.version
    RETURNING position
),
outbox_rows AS (INSERT INTO outbox (position) SELECT position FROM new_events),
command AS (
    INSERT INTO processed_commands (tenant_id, command_id, command_type, aggregate_id, version, event_ids)
    VALUES ('bench', gen_random_uuid(), 'ApproveStep', gen_random_uuid(), 5, ARRAY[gen_random_uuid(), gen_random_uuid()])
)
SELECT count(*) FROM new_events;
