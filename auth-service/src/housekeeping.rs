//! Background upkeep, every few seconds to a minute: forget throttle state
//! of recovered keys, write the summaries of audit windows that suppressed
//! rows, drop revocations whose tokens have expired and audit rows past
//! their retention. Database trouble is logged and retried on the next
//! round, never fatal.

use std::{sync::Arc, time::Duration};

use chrono::Utc;

use crate::{db, rpc::AuthState};

/// How often and what to keep.
pub struct Housekeeping {
    /// Time between rounds.
    pub interval: Duration,
    /// Clock leeway of token verifiers.
    pub leeway: Duration,
    /// How long audit rows are kept.
    pub audit_retention: chrono::Duration,
}

/// Runs a round every `interval`, for as long as the server runs.
pub async fn run(state: Arc<AuthState>, settings: Housekeeping) {
    let first = tokio::time::Instant::now() + settings.interval;
    let mut ticks = tokio::time::interval_at(first, settings.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        round(&state, &settings).await;
    }
}

async fn round(state: &AuthState, settings: &Housekeeping) {
    state.throttle.prune();
    state.registrations.prune();
    let summaries = state.audit.take_finished();
    let Ok(mut conn) = db::connection(&state.pool).await else {
        for summary in &summaries {
            tracing::warn!(?summary, "audit summary not written: database unavailable");
        }
        tracing::warn!("housekeeping: database unavailable; will retry");
        return;
    };
    for summary in summaries {
        if let Err(error) = summary.record(&mut conn).await {
            tracing::warn!(%error, ?summary, "cannot write an audit summary");
        }
    }
    // Keep revocations until the tokens they cover are past exp plus the
    // leeway, with an hour to spare for verifiers with a larger one.
    let margin = chrono::Duration::from_std(settings.leeway).unwrap_or_default()
        + chrono::Duration::hours(1);
    if let Err(error) = db::sessions::prune_revocations(&mut conn, Utc::now() - margin).await {
        tracing::warn!(%error, "cannot prune expired revocations; will retry");
    }
    match db::audit::prune(&mut conn, Utc::now() - settings.audit_retention).await {
        Ok(0) => {}
        Ok(deleted) => tracing::info!(deleted, "pruned audit rows past their retention"),
        Err(error) => tracing::warn!(%error, "cannot prune the audit trail; will retry"),
    }
}
