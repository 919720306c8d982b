-- The auth-service enforces a retention period on its audit trail
-- (NINAIVALAIGAL_AUDIT_RETENTION_DAYS): it may delete rows, which the
-- auth_service_all policy already lets it see. An index on the time keeps
-- each pruning round from scanning the whole table.
GRANT DELETE ON audit_events TO ninaivalaigal_auth;
CREATE INDEX audit_events_occurred_at_idx ON audit_events (occurred_at);
