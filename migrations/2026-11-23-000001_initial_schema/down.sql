DROP TABLE memories;
DROP TABLE recording_contexts;
DROP TABLE audit_events;
DROP TABLE revoked_sessions;
DROP TABLE refresh_tokens;
DROP TABLE sessions;
DROP TABLE users;
