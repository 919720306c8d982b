//! Asks a service for its gRPC health (`grpc.health.v1`) and exits 0 when it
//! reports SERVING. The start-up script and container health checks use it.

use std::{process::ExitCode, time::Duration};

use clap::Parser;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

/// Check that a Ninaivalaigal service reports SERVING.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// URL of the service, e.g. http://127.0.0.1:13370.
    url: String,
    /// Service name to check; empty means the server as a whole.
    #[arg(long, default_value = "")]
    service: String,
    /// Keep asking for up to this many seconds before giving up.
    #[arg(long, default_value_t = 0)]
    wait_seconds: u64,
}

async fn check(url: &str, service: &str) -> Result<ServingStatus, String> {
    let channel = tonic::transport::Endpoint::from_shared(url.to_owned())
        .map_err(|error| format!("bad URL {url}: {error}"))?
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
        let outcome = check(&args.url, &args.service).await;
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
