// @generated-style: matches `diesel print-schema` for the tables of
// migrations/2026-11-23-000001_initial_schema that the auth-service uses.

diesel::table! {
    audit_events (id) {
        id -> Int8,
        occurred_at -> Timestamptz,
        event -> Text,
        user_id -> Nullable<Int8>,
        actor_id -> Nullable<Int8>,
        email -> Nullable<Text>,
        client_addr -> Nullable<Text>,
        detail -> Jsonb,
    }
}

diesel::table! {
    refresh_tokens (token_hash) {
        token_hash -> Bytea,
        session_id -> Uuid,
        issued_at -> Timestamptz,
        used_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    revoked_sessions (session_id) {
        session_id -> Uuid,
        user_id -> Int8,
        revoked_at -> Timestamptz,
        access_expires_at -> Timestamptz,
    }
}

diesel::table! {
    sessions (id) {
        id -> Uuid,
        user_id -> Int8,
        created_at -> Timestamptz,
        refreshed_at -> Timestamptz,
        expires_at -> Timestamptz,
        access_expires_at -> Timestamptz,
        revoked_at -> Nullable<Timestamptz>,
        revoked_reason -> Nullable<Text>,
    }
}

diesel::table! {
    users (id) {
        id -> Int8,
        email -> Text,
        name -> Text,
        password_hash -> Text,
        account_type -> Text,
        role -> Text,
        disabled_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
    }
}

diesel::joinable!(refresh_tokens -> sessions (session_id));
diesel::joinable!(sessions -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(
    audit_events,
    refresh_tokens,
    revoked_sessions,
    sessions,
    users,
);
