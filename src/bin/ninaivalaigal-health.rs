//! Asks a service for its gRPC health (`grpc.health.v1`) and exits 0 when it
//! reports SERVING. The start-up script and container health checks use it
//! (Kubernetes' own gRPC probes cannot speak TLS; an exec probe running
//! this can).

use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::Parser;
use ninaivalaigal::tls::{PemSetting, grpc_client_config};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

/// Check that a Ninaivalaigal service reports SERVING.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// URL of the service, e.g. http://127.0.0.1:13370 or
    /// https://127.0.0.1:13370.
    url: String,
    /// Service name to check; empty means the server as a whole.
    #[arg(long, default_value = "")]
    service: String,
    /// Keep asking for up to this many seconds before giving up.
    #[arg(long, default_value_t = 0)]
    wait_seconds: u64,
    /// PEM file of the CA that signed the service's certificate (https://).
    #[arg(long, env = "NINAIVALAIGAL_HEALTH_CA")]
    ca: Option<PathBuf>,
    /// The name the service's certificate must carry, when the URL's host
    /// is not it (as when checking 127.0.0.1 from inside the container).
    #[arg(long, env = "NINAIVALAIGAL_HEALTH_TLS_DOMAIN")]
    tls_domain: Option<String>,
    /// PEM certificate to present when the service asks for client
    /// certificates (NINAIVALAIGAL_TLS_CLIENT_CA); with --client-key.
    #[arg(
        long,
        env = "NINAIVALAIGAL_HEALTH_CLIENT_CERT",
        requires = "client_key"
    )]
    client_cert: Option<PathBuf>,
    /// Private key of --client-cert (PEM).
    #[arg(
        long,
        env = "NINAIVALAIGAL_HEALTH_CLIENT_KEY",
        requires = "client_cert"
    )]
    client_key: Option<PathBuf>,
}

fn endpoint(args: &Args) -> Result<tonic::transport::Endpoint, String> {
    let url = &args.url;
    let endpoint = tonic::transport::Endpoint::from_shared(url.to_owned())
        .map_err(|error| format!("bad URL {url}: {error}"))?;
    if endpoint.uri().scheme_str() != Some("https") {
        return Ok(endpoint);
    }
    let ca = args.ca.as_deref().map(|path| PemSetting {
        path,
        setting: "NINAIVALAIGAL_HEALTH_CA",
    });
    let identity = args
        .client_cert
        .as_deref()
        .zip(args.client_key.as_deref())
        .map(|(cert, key)| {
            (
                PemSetting {
                    path: cert,
                    setting: "NINAIVALAIGAL_HEALTH_CLIENT_CERT",
                },
                PemSetting {
                    path: key,
                    setting: "NINAIVALAIGAL_HEALTH_CLIENT_KEY",
                },
            )
        });
    let mut tls = grpc_client_config(ca, identity, Duration::from_secs(2))
        .map_err(|error| format!("{error:#}"))?;
    if let Some(domain) = &args.tls_domain {
        tls = tls.domain_name(domain);
    }
    endpoint
        .tls_config(tls)
        .map_err(|error| format!("TLS for {url}: {error}"))
}

async fn check(args: &Args) -> Result<ServingStatus, String> {
    let (url, service) = (&args.url, &args.service);
    let channel = endpoint(args)?
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(5))
        .connect()
        .await
        .map_err(|error| format!("cannot connect to {url}: {error}"))?;
    let response = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await
        .map_err(|status| format!("{url} answered {:?}: {}", status.code(), status.message()))?;
    Ok(response.into_inner().status())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.wait_seconds);
    loop {
        let outcome = check(&args).await;
        match &outcome {
            Ok(ServingStatus::Serving) => {
                println!("{} SERVING", args.url);
                return ExitCode::SUCCESS;
            }
            _ if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Ok(status) => {
                eprintln!("{} reports {}", args.url, status.as_str_name());
                return ExitCode::FAILURE;
            }
            Err(error) => {
                eprintln!("{error}");
                return ExitCode::FAILURE;
            }
        }
    }
}
