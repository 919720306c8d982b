//! TLS, on real sockets with certificates made per test: calls to both
//! services and the memory-service's key fetch over TLS, clients that do
//! not trust the server (or, with mTLS, that the server does not trust)
//! refused, a silent connection cut off at the handshake timeout, a renewed
//! certificate served without a restart, and database connections over TLS
//! to a PostgreSQL server of the test's own with `ssl = on`.

#![allow(clippy::unwrap_used)]

use std::{net::SocketAddr, sync::Arc, time::Duration};

use diesel::{QueryableByName, sql_types::BigInt, sql_types::Bool};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use ninaivalaigal::{
    db::{DatabaseTls, run_migrations_with},
    settings::Seconds,
};
use ninaivalaigal_tests::{
    PairSettings, PrivateCluster, TestPair,
    cluster::Role,
    eventually,
    pair::tls_channel,
    spawn_pair_with,
    tls::{CertFiles, LOCAL_NAMES, TestCa},
};
use rustls::pki_types::ServerName;
use tokio::{io::AsyncReadExt, net::TcpStream, time::timeout};
use tonic::transport::ClientTlsConfig;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

/// Both services serving TLS with certificates of `ca`, the memory-service
/// fetching keys over TLS and trusting `auth_ca`, the harness's clients
/// speaking `client_tls`; `more` adds the test's own changes.
fn tls_pair(
    ca: &TestCa,
    auth_ca: &TestCa,
    client_tls: ClientTlsConfig,
    more: impl FnOnce(PairSettings) -> PairSettings,
) -> PairSettings {
    let auth = ca.issue("auth", &LOCAL_NAMES);
    let memory = ca.issue("memory", &LOCAL_NAMES);
    let auth_ca_file = auth_ca.ca_file();
    more(
        PairSettings::default()
            .auth(move |s| {
                s.transport.tls.tls_cert = Some(auth.cert);
                s.transport.tls.tls_key = Some(auth.key);
            })
            .memory(move |s| {
                s.transport.tls.tls_cert = Some(memory.cert);
                s.transport.tls.tls_key = Some(memory.key);
                s.auth_ca = Some(auth_ca_file);
            })
            .client_tls(client_tls),
    )
}

/// The overall health of the server at `addr` over `tls`.
async fn health(addr: SocketAddr, tls: ClientTlsConfig) -> Result<ServingStatus, String> {
    let channel = tls_channel(addr, tls)
        .await
        .map_err(|error| format!("connect: {error:?}"))?;
    HealthClient::new(channel)
        .check(HealthCheckRequest::default())
        .await
        .map(|response| response.into_inner().status())
        .map_err(|status| format!("{status:?}"))
}

#[tokio::test]
async fn calls_and_the_key_fetch_go_over_tls() {
    let ca = TestCa::new("test CA");
    let pair = spawn_pair_with(tls_pair(&ca, &ca, ca.client_tls(), |s| s)).await;
    // The memory-service is ready only once it has fetched the auth-service's
    // keys, here over https:// checked against the CA.
    pair.wait_until_serving().await;

    let user = pair.register_user("tls@example.com").await;
    let memory = pair.memory_as(&user).await;
    let context = memory.create_context("over-tls", "").await.unwrap();
    assert_eq!(context.name, "over-tls");

    // A plaintext client gets no answer from a TLS port.
    let plaintext = HealthClient::new(channel_or_none(pair.auth_addr).await)
        .check(HealthCheckRequest::default())
        .await;
    assert!(plaintext.is_err(), "plaintext answered: {plaintext:?}");
}

/// A plaintext channel that is not connected until first used (connecting
/// an HTTP/2 channel to a TLS port fails or hangs, depending on timing).
async fn channel_or_none(addr: SocketAddr) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(2))
        .connect_lazy()
}

#[tokio::test]
async fn a_server_whose_certificate_is_not_trusted_is_refused() {
    let ca = TestCa::new("test CA");
    let stranger = TestCa::new("some other CA");
    // The memory-service trusts another CA than the one that signed the
    // auth-service's certificate, so it must never load keys from it.
    let pair = spawn_pair_with(tls_pair(&ca, &stranger, ca.client_tls(), |s| s)).await;
    eventually(
        "the auth-service to serve",
        Duration::from_secs(15),
        async || health(pair.auth_addr, ca.client_tls()).await == Ok(ServingStatus::Serving),
    )
    .await;

    // A client that trusts another CA cannot even connect.
    let refused = health(pair.auth_addr, stranger.client_tls()).await;
    assert!(
        refused.is_err(),
        "an untrusted server answered: {refused:?}"
    );

    // Several key fetches (one at start, then every 2 s without keys) have
    // had the time to fail: not ready.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        health(pair.memory_addr, ca.client_tls()).await,
        Ok(ServingStatus::NotServing),
        "the memory-service took keys from a server it does not trust"
    );
}

#[tokio::test]
async fn mtls_refuses_clients_without_a_certificate_from_the_ca() {
    let ca = TestCa::new("test CA");
    let client = ca.issue("client", &["client.test"]);
    let memory_identity = ca.issue("memory-client", &["memory-service.test"]);
    let client_ca = ca.ca_file();
    let pair = spawn_pair_with(tls_pair(&ca, &ca, ca.client_tls_as(&client), |s| {
        s.auth(move |s| s.transport.tls.tls_client_ca = Some(client_ca))
            .memory(move |s| {
                s.auth_client_cert = Some(memory_identity.cert);
                s.auth_client_key = Some(memory_identity.key);
            })
    }))
    .await;
    // Ready means the memory-service fetched the keys with its certificate.
    pair.wait_until_serving().await;
    assert_eq!(
        health(pair.auth_addr, ca.client_tls_as(&client)).await,
        Ok(ServingStatus::Serving)
    );

    let without = health(pair.auth_addr, ca.client_tls()).await;
    assert!(
        without.is_err(),
        "no client certificate, answered: {without:?}"
    );

    let stranger = TestCa::new("some other CA");
    let foreign = stranger.issue("foreign", &["client.test"]);
    let with_foreign = health(pair.auth_addr, ca.client_tls_as(&foreign)).await;
    assert!(
        with_foreign.is_err(),
        "a certificate from another CA, answered: {with_foreign:?}"
    );
}

#[tokio::test]
async fn a_silent_connection_is_closed_at_the_handshake_timeout() {
    let ca = TestCa::new("test CA");
    let pair = spawn_pair_with(tls_pair(&ca, &ca, ca.client_tls(), |s| {
        s.auth(|s| {
            s.transport.tls.tls_handshake_seconds = Seconds(Duration::from_millis(300));
        })
    }))
    .await;

    // Opens TCP and sends nothing. Only the handshake timeout can close it
    // this soon: the idle timeout is a minute.
    let mut silent = TcpStream::connect(pair.auth_addr).await.unwrap();
    let mut buf = [0u8; 1];
    let closed = timeout(Duration::from_secs(3), silent.read(&mut buf)).await;
    assert!(
        matches!(closed, Ok(Ok(0) | Err(_))),
        "a connection without a handshake was held past the handshake timeout: {closed:?}"
    );
    // A client that does complete its handshake is served.
    assert_eq!(
        health(pair.auth_addr, ca.client_tls()).await,
        Ok(ServingStatus::Serving)
    );
}

/// The certificate the server at `addr` presents (DER), as seen by a
/// client that trusts `ca`.
async fn served_certificate(addr: SocketAddr, ca: &TestCa) -> Vec<u8> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.ca_pem().as_bytes()).unwrap())
        .unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(ninaivalaigal::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

#[tokio::test]
async fn a_renewed_certificate_is_served_without_a_restart() {
    let ca = TestCa::new("test CA");
    let files = CertFiles {
        cert: ca.dir().join("renewed.crt"),
        key: ca.dir().join("renewed.key"),
    };
    let first = ca.issue_into(&files, &LOCAL_NAMES);
    let served = files.clone();
    let ca_file = ca.ca_file();
    let pair = spawn_pair_with(
        PairSettings::default()
            .auth(move |s| {
                s.transport.tls.tls_cert = Some(served.cert);
                s.transport.tls.tls_key = Some(served.key);
            })
            .memory(move |s| s.auth_ca = Some(ca_file)),
    )
    .await;
    let addr = pair.auth_addr;
    assert_eq!(served_certificate(addr, &ca).await, first);

    let second = ca.issue_into(&files, &LOCAL_NAMES);
    assert_ne!(first, second);
    eventually(
        "the renewed certificate to be served",
        Duration::from_secs(10),
        async || served_certificate(addr, &ca).await == second,
    )
    .await;

    // A broken file (say, half written) is not taken: the renewed
    // certificate stays in service.
    std::fs::write(&files.cert, "-----BEGIN CERTIFICATE-----\nAAAA\n").unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(served_certificate(addr, &ca).await, second);
    drop(pair);
}

#[derive(QueryableByName)]
struct Ssl {
    #[diesel(sql_type = Bool)]
    ssl: bool,
}

/// Whether the connection's own session is encrypted, as the server sees it.
async fn session_is_encrypted(conn: &mut AsyncPgConnection) -> bool {
    diesel::sql_query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .get_result::<Ssl>(conn)
        .await
        .unwrap()
        .ssl
}

#[derive(QueryableByName)]
struct Sessions {
    #[diesel(sql_type = BigInt)]
    encrypted: i64,
    #[diesel(sql_type = BigInt)]
    plaintext: i64,
}

#[tokio::test]
async fn database_connections_use_tls_when_the_url_asks() {
    let ca = TestCa::new("database CA");
    let (cert, key) = ca.leaf(&LOCAL_NAMES);
    let cluster = PrivateCluster::start_new_with_tls(&cert, &key).await;
    let url_with = |role, mode: &str| {
        format!("{}?sslmode={mode}", cluster.url(role))
            .parse::<ninaivalaigal::db::DatabaseUrl>()
            .unwrap()
    };

    // verify-full against the CA: encrypted.
    let url = url_with(Role::Memory, "verify-full");
    let tls = DatabaseTls::new(&url, Some(&ca.ca_file())).unwrap();
    let mut conn = tls.connect(url.expose()).await.unwrap();
    assert!(session_is_encrypted(&mut conn).await);
    drop(conn);

    // No sslmode: the same server, in plaintext (so the check above can
    // fail); prefer: TLS, since the server offers it.
    for (url, encrypted) in [
        (cluster.database_url(Role::Memory), false),
        (url_with(Role::Memory, "disable"), false),
        (url_with(Role::Memory, "prefer"), true),
        (url_with(Role::Memory, "require"), true),
    ] {
        let mut conn = DatabaseTls::new(&url, None)
            .unwrap()
            .connect(url.expose())
            .await
            .unwrap();
        assert_eq!(session_is_encrypted(&mut conn).await, encrypted, "{url}");
    }

    // A server whose certificate another CA signed is refused.
    let stranger = TestCa::new("some other CA");
    let url = url_with(Role::Memory, "verify-full");
    let refused = DatabaseTls::new(&url, Some(&stranger.ca_file()))
        .unwrap()
        .connect(url.expose())
        .await;
    assert!(
        refused.is_err(),
        "an untrusted database server was accepted"
    );

    // The migration tool connects the same way.
    let owner = url_with(Role::Owner, "verify-full");
    let applied = run_migrations_with(
        &owner,
        &DatabaseTls::new(&owner, Some(&ca.ca_file())).unwrap(),
    )
    .await
    .unwrap();
    assert!(applied.is_empty(), "{applied:?}");

    // Both services, with sslmode=verify-full and the CA, do their work over
    // encrypted sessions only.
    let (auth_url, memory_url) = (
        url_with(Role::Auth, "verify-full"),
        url_with(Role::Memory, "verify-full"),
    );
    let (auth_ca, memory_ca) = (ca.ca_file(), ca.ca_file());
    let pair: TestPair = spawn_pair_with(
        PairSettings::default()
            .auth(move |s| {
                s.database.database_url = auth_url;
                s.database.database_ca = Some(auth_ca);
            })
            .memory(move |s| {
                s.database.database_url = memory_url;
                s.database.database_ca = Some(memory_ca);
            }),
    )
    .await;
    pair.wait_until_serving().await;
    let user = pair.register_user("db-tls@example.com").await;
    pair.memory_as(&user)
        .await
        .create_context("encrypted", "")
        .await
        .unwrap();
    let mut superuser = cluster.superuser().await;
    let sessions: Sessions = diesel::sql_query(
        "SELECT count(*) FILTER (WHERE s.ssl) AS encrypted, count(*) FILTER (WHERE NOT s.ssl) AS plaintext
         FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
         WHERE a.usename IN ('ninaivalaigal_auth', 'ninaivalaigal_memory')",
    )
    .get_result(&mut superuser)
    .await
    .unwrap();
    assert!(sessions.encrypted >= 2, "{} encrypted", sessions.encrypted);
    assert_eq!(sessions.plaintext, 0);
}
