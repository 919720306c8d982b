// @generated automatically by Diesel CLI.

pub mod sql_types {
    #[derive(diesel::sql_types::SqlType)]
    #[diesel(postgres_type(name = "tsvector", schema = "pg_catalog"))]
    pub struct Tsvector;
}

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
    use diesel::sql_types::*;
    use super::sql_types::Tsvector;

    memories (owner_id, id) {
        owner_id -> Int8,
        id -> Int8,
        context_id -> Int8,
        memory_type -> Text,
        data -> Json,
        search -> Tsvector,
        created_at -> Timestamptz,
        data_bytes -> Int4,
        request_id -> Nullable<Uuid>,
    }
}

diesel::table! {
    memory_terms (owner_id, term, created_at, memory_id) {
        owner_id -> Int8,
        term -> Text,
        created_at -> Timestamptz,
        memory_id -> Int8,
        context_id -> Int8,
    }
}

diesel::table! {
    memory_usage (owner_id) {
        owner_id -> Int8,
        memories -> Int8,
        bytes -> Int8,
    }
}

diesel::table! {
    recording_contexts (owner_id, id) {
        owner_id -> Int8,
        id -> Int8,
        name -> Text,
        description -> Text,
        visibility -> Text,
        is_active -> Bool,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        memory_count -> Int8,
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

diesel::joinable!(memory_usage -> users (owner_id));
diesel::joinable!(recording_contexts -> users (owner_id));
diesel::joinable!(refresh_tokens -> sessions (session_id));
diesel::joinable!(sessions -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(
    audit_events,
    memories,
    memory_terms,
    memory_usage,
    recording_contexts,
    refresh_tokens,
    revoked_sessions,
    sessions,
    users,
);
