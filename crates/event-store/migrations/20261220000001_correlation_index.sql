-- Every event of one request chain, of whatever aggregate, shares the correlation id in its
-- metadata: this finds a tenant's chain without scanning the store (`EventStore::chain`).
CREATE INDEX events_tenant_correlation
    ON events (tenant_id, (metadata->>'correlation_id'));
