-- The shape of each stored payload, so it can be upcast to the current shape on every read
-- (events are append-only: an old payload is never rewritten). Every event stored before this
-- column existed is version 1. A constant default makes this a catalogue-only change: no
-- table rewrite, and the append-only triggers (row-level UPDATE/DELETE) are not involved.
ALTER TABLE events ADD COLUMN schema_version INT NOT NULL DEFAULT 1;
