//! Client-side balancing of gRPC requests: a channel that spreads its
//! requests over every address a server's name resolves to, request by
//! request (power of two choices over the ready connections). One HTTP/2
//! connection carries every request of a client, so a load balancer that
//! works per connection (a Kubernetes ClusterIP Service) pins each client to
//! one replica; a headless Service instead gives one DNS name with an
//! address per ready pod, and this channel uses them all.
//!
//! The name is resolved once, when the channel is made: right for the CLI
//! (a process per command) and for a service's occasional calls, which are
//! made with a fresh channel per restart. An address that refuses
//! connections is taken out of the channel within a second (probed), so
//! requests go on to the others.

use std::{
    net::{IpAddr, SocketAddr, ToSocketAddrs},
    time::Duration,
};

use http::Uri;
use tonic::transport::{Channel, Endpoint, channel::Change};

/// Why no channel could be made.
#[derive(Debug, thiserror::Error)]
pub enum BalanceError {
    /// Not a URL with a host.
    #[error("{0}")]
    InvalidUrl(String),
    /// The endpoint could not be configured (for example its TLS settings).
    #[error("{0}")]
    Endpoint(#[from] tonic::transport::Error),
}

/// A lazily connecting channel to `url` that balances over every address
/// its host resolves to. `configure` gets each endpoint and the host name
/// (for TLS, whose server name must stay the host's when the endpoint's URI
/// holds an address) and sets timeouts and TLS.
///
/// An IP address, or a name that resolves to one address (or not at all,
/// yet), gives a plain channel to the URL, as `Endpoint::connect_lazy` would.
pub fn channel(
    url: &str,
    configure: impl Fn(Endpoint, &str) -> Result<Endpoint, tonic::transport::Error>,
) -> Result<Channel, BalanceError> {
    let uri: Uri = url
        .parse()
        .map_err(|error| BalanceError::InvalidUrl(format!("{error}")))?;
    let host = uri
        .host()
        .ok_or_else(|| BalanceError::InvalidUrl("the URL names no host".into()))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let single = || -> Result<Channel, BalanceError> {
        let endpoint = Endpoint::from_shared(url.to_owned())?;
        Ok(configure(endpoint, &host)?.connect_lazy())
    };
    if host.parse::<IpAddr>().is_ok() {
        return single();
    }
    let https = uri.scheme_str() == Some("https");
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let mut addrs: Vec<SocketAddr> = match (host.as_str(), port).to_socket_addrs() {
        Ok(addrs) => addrs.collect(),
        // Let the connection attempt report it, as an unbalanced channel would.
        Err(_) => return single(),
    };
    addrs.sort();
    addrs.dedup();
    if addrs.len() < 2 {
        return single();
    }
    channel_to(&uri, &host, &addrs, configure)
}

/// How often each address is probed: one that refuses connections leaves
/// the channel within this, and one that accepts them again comes back.
const PROBE_EVERY: Duration = Duration::from_secs(1);
/// How long a probe's connection attempt may take.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// A channel that balances over `addrs`, each reached as `uri` would be
/// (scheme, path; the `:authority` stays the URI's, and TLS checks `host`).
///
/// tonic's balancer keeps an address whose server has gone and picks it
/// again (each such request failing with UNAVAILABLE "tcp connect error"),
/// so a background task probes every address with a TCP connect each
/// [`PROBE_EVERY`] and takes the ones that refuse out of the channel until
/// they accept again (all stay in while none accepts, so that calls fail
/// rather than wait). It ends when the channel is dropped.
pub fn channel_to(
    uri: &Uri,
    host: &str,
    addrs: &[SocketAddr],
    configure: impl Fn(Endpoint, &str) -> Result<Endpoint, tonic::transport::Error>,
) -> Result<Channel, BalanceError> {
    let scheme = uri.scheme_str().unwrap_or("http");
    let endpoints = addrs
        .iter()
        .map(|addr| {
            let endpoint = Endpoint::from_shared(format!("{scheme}://{addr}"))?.origin(uri.clone());
            Ok::<_, BalanceError>((*addr, configure(endpoint, host)?))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let (channel, changes) = Channel::balance_channel::<SocketAddr>(endpoints.len().max(1));
    tokio::spawn(async move {
        let mut present = vec![false; endpoints.len()];
        loop {
            let mut reachable = Vec::with_capacity(endpoints.len());
            for (addr, _) in &endpoints {
                let probe = tokio::net::TcpStream::connect(addr);
                reachable.push(matches!(
                    tokio::time::timeout(PROBE_TIMEOUT, probe).await,
                    Ok(Ok(_))
                ));
            }
            // With none reachable keep them all, so that calls fail at once
            // with the connection error instead of waiting for an address.
            if !reachable.contains(&true) {
                reachable.fill(true);
            }
            for (((addr, endpoint), present), wanted) in
                endpoints.iter().zip(present.iter_mut()).zip(reachable)
            {
                let change = match (wanted, *present) {
                    (true, false) => Change::Insert(*addr, endpoint.clone()),
                    (false, true) => Change::Remove(*addr),
                    _ => continue,
                };
                *present = wanted;
                if changes.send(change).await.is_err() {
                    return; // the channel was dropped
                }
            }
            tokio::time::sleep(PROBE_EVERY).await;
        }
    });
    Ok(channel)
}
