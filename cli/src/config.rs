//! Where the servers are and how to authenticate, resolved once per run from
//! flags, `NINAIVALAIGAL_*` variables, the saved login and the defaults, in
//! that order.

use std::time::Duration;

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

/// Accepts `http://` and `https://` URLs, without a trailing slash.
pub fn check_url(url: &str, variable: &str) -> Result<String, Failure> {
    let url = url.trim().trim_end_matches('/');
    let valid = (url.starts_with("http://") || url.starts_with("https://"))
        && url
            .parse::<tonic::transport::Uri>()
            .is_ok_and(|uri| uri.host().is_some());
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

#[cfg(test)]
mod tests {
    use super::*;

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
        for bad in ["127.0.0.1:13370", "ftp://host", "http://", "not a url"] {
            let failure = check_url(bad, "NINAIVALAIGAL_SERVER_URL").unwrap_err();
            assert_eq!(failure.kind, Kind::Usage, "{bad}");
            assert!(failure.hint.unwrap().contains("NINAIVALAIGAL_SERVER_URL"));
        }
    }
}
