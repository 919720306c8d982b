//! Reading (and, for a few tests, ageing) the auth-service's rows directly,
//! as the auth role, for assertions a client cannot make.

use chrono::{DateTime, Utc};
use diesel::{
    QueryableByName,
    sql_types::{BigInt, Nullable, Text, Timestamptz, Uuid as SqlUuid},
};
use diesel_async::RunQueryDsl;
use uuid::Uuid;

use crate::{TestDb, cluster::Role};

/// A row of `revoked_sessions`.
#[derive(Clone, Debug, PartialEq, Eq, QueryableByName)]
pub struct RevokedRow {
    /// The revoked session.
    #[diesel(sql_type = SqlUuid)]
    pub session_id: Uuid,
    /// Its account.
    #[diesel(sql_type = BigInt)]
    pub user_id: i64,
    /// When its newest access token expires.
    #[diesel(sql_type = Timestamptz)]
    pub access_expires_at: DateTime<Utc>,
}

/// A row of `audit_events`.
#[derive(Clone, Debug, QueryableByName)]
pub struct AuditRow {
    /// Event name, e.g. `login_failed`.
    #[diesel(sql_type = Text)]
    pub event: String,
    /// When.
    #[diesel(sql_type = Timestamptz)]
    pub occurred_at: DateTime<Utc>,
    /// The account concerned.
    #[diesel(sql_type = Nullable<BigInt>)]
    pub user_id: Option<i64>,
    /// The admin who acted.
    #[diesel(sql_type = Nullable<BigInt>)]
    pub actor_id: Option<i64>,
    /// The email presented.
    #[diesel(sql_type = Nullable<Text>)]
    pub email: Option<String>,
    /// The client's IP address.
    #[diesel(sql_type = Nullable<Text>)]
    pub client_addr: Option<String>,
    /// Extra facts, as JSON text.
    #[diesel(sql_type = Text)]
    pub detail: String,
}

#[derive(QueryableByName)]
struct TextRow {
    #[diesel(sql_type = Text)]
    text: String,
}

/// Every row of `revoked_sessions`.
pub async fn revoked_sessions(db: &TestDb) -> Vec<RevokedRow> {
    let mut conn = db.connect(Role::Auth).await;
    diesel::sql_query(
        "SELECT session_id, user_id, access_expires_at FROM revoked_sessions ORDER BY revoked_at",
    )
    .load(&mut conn)
    .await
    .expect("read revoked_sessions")
}

/// True when `session_id` is listed in `revoked_sessions`.
pub async fn is_revoked(db: &TestDb, session_id: &str) -> bool {
    let session_id: Uuid = session_id.parse().expect("session id is a uuid");
    revoked_sessions(db)
        .await
        .iter()
        .any(|row| row.session_id == session_id)
}

/// Every audit event, oldest first.
pub async fn audit_events(db: &TestDb) -> Vec<AuditRow> {
    let mut conn = db.connect(Role::Auth).await;
    diesel::sql_query(
        "SELECT event, occurred_at, user_id, actor_id, email, client_addr, detail::text AS detail \
         FROM audit_events ORDER BY id",
    )
    .load(&mut conn)
    .await
    .expect("read audit_events")
}

/// Every row of the auth-service's tables, as text, to search for secrets.
pub async fn everything_stored(db: &TestDb) -> String {
    let mut conn = db.connect(Role::Auth).await;
    let mut all = String::new();
    for table in [
        "users",
        "sessions",
        "refresh_tokens",
        "revoked_sessions",
        "audit_events",
    ] {
        // Table names are constants above, not input.
        let rows: Vec<TextRow> =
            diesel::sql_query(format!("SELECT t::text AS text FROM {table} t"))
                .load(&mut conn)
                .await
                .expect("read table");
        for row in rows {
            all.push_str(&row.text);
            all.push('\n');
        }
    }
    // bytea columns print as hex; add a decoded form too, in case a token
    // were stored as raw bytes.
    let bytes: Vec<TextRow> = diesel::sql_query(
        "SELECT convert_from(token_hash, 'SQL_ASCII') AS text FROM refresh_tokens",
    )
    .load(&mut conn)
    .await
    .unwrap_or_default();
    for row in bytes {
        all.push_str(&row.text);
        all.push('\n');
    }
    all
}

/// Moves a session's refresh expiry into the past.
pub async fn expire_session(db: &TestDb, session_id: &str) {
    let mut conn = db.connect(Role::Auth).await;
    diesel::sql_query(
        "UPDATE sessions SET expires_at = now() - interval '1 minute' WHERE id = $1::uuid",
    )
    .bind::<Text, _>(session_id)
    .execute(&mut conn)
    .await
    .expect("expire session");
}

/// The stored bcrypt hash of an account.
pub async fn password_hash(db: &TestDb, email: &str) -> String {
    let mut conn = db.connect(Role::Auth).await;
    let row: TextRow =
        diesel::sql_query("SELECT password_hash AS text FROM users WHERE email = $1")
            .bind::<Text, _>(email)
            .get_result(&mut conn)
            .await
            .expect("read password hash");
    row.text
}

/// Adds an audit row dated `days_ago` days back (the auth role may insert
/// rows with any time), for tests of retention.
pub async fn insert_old_audit_event(db: &TestDb, event: &str, days_ago: i32) {
    let mut conn = db.connect(Role::Auth).await;
    diesel::sql_query(
        "INSERT INTO audit_events (event, occurred_at) \
         VALUES ($1, now() - make_interval(days => $2))",
    )
    .bind::<Text, _>(event)
    .bind::<diesel::sql_types::Integer, _>(days_ago)
    .execute(&mut conn)
    .await
    .expect("insert an old audit event");
}
