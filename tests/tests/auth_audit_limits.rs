//! The audit trail cannot be flooded: failure rows are limited per client
//! and kind, and old rows are pruned after the retention period.

#![allow(clippy::unwrap_used)]

use ninaivalaigal::auth_v1::RefreshRequest;
use std::time::Duration;

use ninaivalaigal_tests::{PairSettings, auth_rows, spawn_pair, spawn_pair_with};
use tonic::Code;

#[tokio::test]
async fn two_hundred_bad_refreshes_write_a_bounded_number_of_rows() {
    let pair = spawn_pair().await;
    let mut auth = pair.auth_client().await;
    for n in 0..200 {
        let status = auth
            .refresh(RefreshRequest {
                refresh_token: format!("not-a-token-{n}"),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated);
    }
    let events = auth_rows::audit_events(&pair.db).await;
    let failed = events
        .iter()
        .filter(|event| event.event == "refresh_failed")
        .count();
    assert!(failed >= 1, "the first failures are recorded");
    assert!(failed <= 20, "{failed} rows for 200 failures");
}

#[tokio::test]
async fn housekeeping_prunes_rows_older_than_the_retention() {
    let pair = spawn_pair_with(PairSettings::default().auth(|s| {
        s.audit_retention_days = 30;
        s.housekeeping_seconds = "0.2".parse().expect("seconds");
    }))
    .await;
    pair.wait_until_serving().await;
    let user = pair.register_user("ada@example.test").await;
    auth_rows::insert_old_audit_event(&pair.db, "ancient", 400).await;
    auth_rows::insert_old_audit_event(&pair.db, "expired", 31).await;
    auth_rows::insert_old_audit_event(&pair.db, "recent", 29).await;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let remaining = loop {
        let events = auth_rows::audit_events(&pair.db).await;
        let names: Vec<String> = events.iter().map(|event| event.event.clone()).collect();
        if !names
            .iter()
            .any(|name| name == "ancient" || name == "expired")
        {
            break names;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not pruned: {names:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(remaining, ["register", "recent"], "user {}", user.id);
}
