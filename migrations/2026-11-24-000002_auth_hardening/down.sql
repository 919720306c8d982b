DROP INDEX audit_events_occurred_at_idx;
REVOKE DELETE ON audit_events FROM ninaivalaigal_auth;
