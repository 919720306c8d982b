//! Where the servers are and how to authenticate, resolved once per run from
//! flags, `NINAIVALAIGAL_*` variables, the saved login and the defaults, in
//! that order.

use std::{net::IpAddr, time::Duration};

use crate::{
    args::GlobalArgs,
    credentials::CredentialsFile,
    exit::{Failure, Kind},
};

/// The variable whose access token overrides the saved login.
pub const USER_TOKEN_VAR: &str = "NINAIVALAIGAL_USER_TOKEN";

/// Everything a command needs to reach and authenticate to the services.
#[derive(Clone, Debug)]
pub struct Config {
    /// memory-service URL.
    pub server_url: String,
    /// auth-service URL.
    pub auth_url: String,
    /// An access token from `NINAIVALAIGAL_USER_TOKEN`, which wins over the file.
    pub env_token: Option<String>,
    /// The saved login.
    pub credentials: CredentialsFile,
    /// Refresh the access token when less than this is left of it.
    pub refresh_margin: chrono::Duration,
    /// How long to wait for a server.
    pub timeout: Duration,
    /// An extra CA certificate (PEM) for https:// URLs.
    pub ca_cert: Option<Vec<u8>>,
}

impl Config {
    /// Resolves the settings for this run.
    pub fn resolve(global: &GlobalArgs) -> Result<Self, Failure> {
        let credentials = CredentialsFile::locate()?;
        // The saved login only supplies defaults here; a damaged file is
        // reported by the commands that need it.
        let saved = credentials.load().ok().flatten();
        let server_url = pick_url(
            global.server_url.as_deref(),
            saved.as_ref().map(|saved| saved.server_url.as_str()),
            ninaivalaigal::DEFAULT_MEMORY_PORT,
            "NINAIVALAIGAL_SERVER_URL",
        )?;
        let auth_url = pick_url(
            global.auth_url.as_deref(),
            saved.as_ref().map(|saved| saved.auth_url.as_str()),
            ninaivalaigal::DEFAULT_AUTH_PORT,
            "NINAIVALAIGAL_AUTH_URL",
        )?;
        let env_token = std::env::var(USER_TOKEN_VAR)
            .ok()
            .map(|token| token.trim().to_owned())
            .filter(|token| !token.is_empty());
        let ca_cert = match &global.ca_cert {
            Some(path) => Some(std::fs::read(path).map_err(|error| {
                Failure::usage(format!(
                    "cannot read the CA certificate {}: {error}",
                    path.display()
                ))
            })?),
            None => None,
        };
        Ok(Self {
            server_url,
            auth_url,
            env_token,
            credentials,
            refresh_margin: chrono::Duration::seconds(
                i64::try_from(global.refresh_margin_secs).unwrap_or(i64::MAX / 1_000),
            ),
            timeout: Duration::from_secs(global.timeout_secs.max(1)),
            ca_cert,
        })
    }
}

fn pick_url(
    given: Option<&str>,
    saved: Option<&str>,
    default_port: u16,
    variable: &str,
) -> Result<String, Failure> {
    match given.map(str::trim).filter(|url| !url.is_empty()) {
        Some(url) => check_url(url, variable),
        // A saved URL was checked when it was saved; re-check anyway, it is cheap.
        None => match saved.and_then(|url| check_url(url, variable).ok()) {
            Some(url) => Ok(url),
            None => Ok(format!("http://127.0.0.1:{default_port}")),
        },
    }
}

/// Accepts `http://` and `https://` URLs, without a trailing slash. A user
/// name in the URL (`http://trusted.example@elsewhere.example`) is refused:
/// it only serves to make a URL look like it goes somewhere it does not.
pub fn check_url(url: &str, variable: &str) -> Result<String, Failure> {
    let url = url.trim().trim_end_matches('/');
    let valid =
        (url.starts_with("http://") || url.starts_with("https://")) && Origin::of(url).is_some();
    if valid {
        Ok(url.to_owned())
    } else {
        Err(
            Failure::new(Kind::Usage, format!("`{url}` is not a server URL")).hint(format!(
                "set {variable} to an http:// or https:// URL such as http://127.0.0.1:13370"
            )),
        )
    }
}

/// Where requests to a URL go: scheme, host and port. Two URLs with the same
/// origin reach the same server (gRPC ignores the path), so a saved login may
/// go to either: the host's case, a trailing dot or slash, a default port
/// written out and the spelling of an IPv6 address make no difference.
/// Anything else does, including `localhost` against `127.0.0.1`, since
/// names are resolved by whoever controls the resolver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

impl Origin {
    /// The origin of an `http://` or `https://` URL; `None` for anything
    /// else, and for URLs with a user name.
    pub fn of(url: &str) -> Option<Self> {
        let uri: tonic::transport::Uri = url.trim().parse().ok()?;
        let scheme = uri.scheme_str()?.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "http" => 80,
            "https" => 443,
            _ => return None,
        };
        let authority = uri.authority()?;
        if authority.as_str().contains('@') {
            return None;
        }
        let host = authority.host().to_ascii_lowercase();
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let host = match bare.parse::<IpAddr>() {
            Ok(ip) => ip.to_string(),
            Err(_) => host.trim_end_matches('.').to_owned(),
        };
        if host.is_empty() {
            return None;
        }
        Some(Self {
            scheme,
            host,
            port: uri.port_u16().unwrap_or(default_port),
        })
    }

    /// This machine: `localhost` or a loopback address.
    pub fn is_loopback(&self) -> bool {
        match self.host.parse::<IpAddr>() {
            Ok(IpAddr::V4(ip)) => ip.is_loopback(),
            Ok(IpAddr::V6(ip)) => {
                ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|ip| ip.is_loopback())
            }
            Err(_) => self.host == "localhost",
        }
    }

    /// Plain `http://` to another machine: tokens and passwords would cross
    /// the network in cleartext.
    pub fn is_cleartext_remote(&self) -> bool {
        self.scheme == "http" && !self.is_loopback()
    }
}

/// Whether `a` and `b` reach the same server (see [`Origin`]).
pub fn same_server(a: &str, b: &str) -> bool {
    matches!((Origin::of(a), Origin::of(b)), (Some(a), Some(b)) if a == b)
}

/// A warning naming the `http://` URLs to other machines among `urls`, if any.
pub fn cleartext_warning(urls: &[&str]) -> Option<String> {
    let mut remote: Vec<&str> = Vec::new();
    for url in urls {
        if Origin::of(url).is_some_and(|origin| origin.is_cleartext_remote())
            && !remote.iter().any(|seen| same_server(seen, url))
        {
            remote.push(url);
        }
    }
    (!remote.is_empty()).then(|| {
        format!(
            "{} {} plain http:// to another machine: passwords and tokens sent there travel in cleartext (use https://)",
            remote.join(" and "),
            if remote.len() == 1 { "is" } else { "are" }
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equivalent_spellings_of_a_url_are_the_same_server() {
        for (a, b) in [
            ("http://127.0.0.1:13371", "http://127.0.0.1:13371/"),
            ("https://EM.Example.com", "https://em.example.com:443"),
            ("https://em.example.com.", "https://em.example.com"),
            ("http://em.example.com:80", "http://em.example.com"),
            ("http://[::1]:13371", "http://[0:0:0:0:0:0:0:1]:13371"),
            ("http://127.0.0.1:13371/some/path", "http://127.0.0.1:13371"),
        ] {
            assert!(same_server(a, b), "{a} and {b}");
        }
    }

    #[test]
    fn other_servers_are_not_the_same_server() {
        for (a, b) in [
            ("http://127.0.0.1:13371", "http://evil.example"),
            ("http://127.0.0.1:13371", "http://127.0.0.1:13372"),
            ("http://127.0.0.1:13371", "http://localhost:13371"),
            ("https://em.example.com", "http://em.example.com"),
            ("https://em.example.com", "https://em.example.com:8443"),
            (
                "https://em.example.com",
                "https://em.example.com.evil.example",
            ),
            (
                "http://127.0.0.1:13371",
                "http://127.0.0.1:13371@evil.example",
            ),
            ("http://127.0.0.1:13371", "not a url"),
        ] {
            assert!(!same_server(a, b), "{a} and {b}");
        }
    }

    #[test]
    fn only_plain_http_to_other_machines_is_cleartext() {
        for url in ["http://em.example.com", "http://10.0.0.5:13370"] {
            assert!(Origin::of(url).unwrap().is_cleartext_remote(), "{url}");
        }
        for url in [
            "http://127.0.0.1:13370",
            "http://127.8.0.1:13370",
            "http://localhost:13370",
            "http://LOCALHOST.:13370",
            "http://[::1]:13370",
            "http://[::ffff:127.0.0.1]:13370",
            "https://em.example.com",
        ] {
            assert!(!Origin::of(url).unwrap().is_cleartext_remote(), "{url}");
        }
        assert_eq!(
            cleartext_warning(&["http://127.0.0.1:1", "https://em.example.com"]),
            None
        );
        let warning =
            cleartext_warning(&["http://em.example.com", "http://EM.example.com:80/"]).unwrap();
        assert!(
            warning.starts_with("http://em.example.com is plain http://"),
            "named once: {warning}"
        );
    }

    #[test]
    fn urls_come_from_the_flag_then_the_login_then_the_default() {
        assert_eq!(
            pick_url(
                Some("https://em.example.com/"),
                Some("http://saved:1"),
                13370,
                "V"
            )
            .unwrap(),
            "https://em.example.com"
        );
        assert_eq!(
            pick_url(None, Some("http://saved:1"), 13370, "V").unwrap(),
            "http://saved:1"
        );
        assert_eq!(
            pick_url(None, None, 13370, "V").unwrap(),
            "http://127.0.0.1:13370"
        );
        assert_eq!(
            pick_url(Some("  "), None, 13371, "V").unwrap(),
            "http://127.0.0.1:13371"
        );
    }

    #[test]
    fn bad_urls_are_usage_errors_that_name_the_variable() {
        for bad in [
            "127.0.0.1:13370",
            "ftp://host",
            "http://",
            "not a url",
            "http://127.0.0.1:13371@evil.example",
        ] {
            let failure = check_url(bad, "NINAIVALAIGAL_SERVER_URL").unwrap_err();
            assert_eq!(failure.kind, Kind::Usage, "{bad}");
            assert!(failure.hint.unwrap().contains("NINAIVALAIGAL_SERVER_URL"));
        }
    }
}
