//! Who the client is, for throttles and the audit trail: the TCP peer,
//! unless the peer is a trusted proxy (NINAIVALAIGAL_TRUSTED_PROXIES), in
//! which case the address it forwards in `x-forwarded-for`.

#![allow(clippy::unwrap_used)]

use ninaivalaigal::auth_v1::LoginRequest;
use ninaivalaigal_tests::{PairSettings, TestPair, auth_rows, spawn_pair_with};
use tonic::{Code, Request, metadata::MetadataValue};

/// The pair, allowing `failures` failed logins per client, trusting `proxies`.
fn settings(failures: u32, proxies: &[&str]) -> PairSettings {
    let proxies = proxies
        .iter()
        .map(|cidr| cidr.parse().expect("a CIDR"))
        .collect();
    PairSettings::default().auth(move |s| {
        s.login_failures_per_client = failures;
        s.trusted_proxies = proxies;
    })
}

/// A wrong login for a fresh email, claiming to come from `forwarded_for`.
async fn guess(pair: &TestPair, n: usize, forwarded_for: &str) -> tonic::Status {
    let mut request = Request::new(LoginRequest {
        email: format!("nobody{n}@example.test"),
        password: "guess1234".into(),
    });
    request.metadata_mut().insert(
        "x-forwarded-for",
        MetadataValue::try_from(forwarded_for).unwrap(),
    );
    pair.auth_client().await.login(request).await.unwrap_err()
}

async fn audited_addrs(pair: &TestPair) -> Vec<Option<String>> {
    auth_rows::audit_events(&pair.db)
        .await
        .into_iter()
        .filter(|event| event.event == "login_failed")
        .map(|event| event.client_addr)
        .collect()
}

#[tokio::test]
async fn an_untrusted_client_cannot_spoof_its_address() {
    // No trusted proxies (the default): the header is ignored.
    let pair = spawn_pair_with(settings(3, &[])).await;
    for n in 0..3 {
        let status = guess(&pair, n, &format!("203.0.113.{n}")).await;
        assert_eq!(status.code(), Code::Unauthenticated);
    }
    // A fresh claimed address does not escape the client's limit.
    let status = guess(&pair, 3, "198.51.100.99").await;
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(
        audited_addrs(&pair).await,
        vec![Some("127.0.0.1".to_owned()); 3]
    );
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_is_its_own() {
    let pair = spawn_pair_with(settings(2, &["10.0.0.0/8", "127.0.0.1/32"])).await;
    // The client claims 192.0.2.1; the outer proxy saw 203.0.113.7.
    let alice = "192.0.2.1, 203.0.113.7, 10.1.2.3";
    for n in 0..2 {
        assert_eq!(guess(&pair, n, alice).await.code(), Code::Unauthenticated);
    }
    assert_eq!(guess(&pair, 2, alice).await.code(), Code::ResourceExhausted);
    // Another user behind the same proxy is not throttled with alice...
    assert_eq!(
        guess(&pair, 3, "198.51.100.4").await.code(),
        Code::Unauthenticated
    );
    // ...and alice cannot escape by changing what she claims.
    assert_eq!(
        guess(&pair, 4, "198.51.100.5, 203.0.113.7").await.code(),
        Code::ResourceExhausted
    );
    // A malformed header counts as the proxy itself.
    assert_eq!(
        guess(&pair, 5, "not an address").await.code(),
        Code::Unauthenticated
    );
    assert_eq!(
        audited_addrs(&pair).await,
        [
            Some("203.0.113.7".to_owned()),
            Some("203.0.113.7".to_owned()),
            Some("198.51.100.4".to_owned()),
            Some("127.0.0.1".to_owned()),
        ]
    );
}
