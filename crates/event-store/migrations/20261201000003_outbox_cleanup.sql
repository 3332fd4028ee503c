-- The leading relay deletes published outbox rows past their retention in small batches;
-- this finds them without scanning the rows still waiting to be published.
CREATE INDEX outbox_published ON outbox (published_at) WHERE published_at IS NOT NULL;
