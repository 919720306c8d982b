//! gRPC health that tells the truth: a service reports SERVING only while
//! its readiness check passes, checked periodically (and often while not
//! serving, so readiness shows soon after start-up or an outage).

use std::{future::Future, time::Duration};

use tonic_health::{ServingStatus, server::HealthReporter};

/// The health-check name that says only "this process serves requests", for
/// liveness and startup probes: SERVING whatever the readiness check says,
/// so a database outage makes a pod unready but never gets it restarted.
pub const LIVENESS: &str = "liveness";

/// What a service must have to do its work (its database, its keys).
pub trait Readiness: Send + Sync + 'static {
    /// `Ok` when ready; otherwise what is missing, for the log.
    fn check(&self) -> impl Future<Output = Result<(), String>> + Send;
}

/// How often to check while not serving.
const RECHECK_WHILE_NOT_SERVING: Duration = Duration::from_millis(250);

/// Sets the status of `services` and of the server as a whole (the empty
/// name) from `readiness`, every `every`; runs until aborted. A check that
/// takes longer than `every` counts as failed.
pub async fn report(
    reporter: HealthReporter,
    services: Vec<&'static str>,
    readiness: impl Readiness,
    every: Duration,
) {
    let mut reported: Option<bool> = None;
    loop {
        let check = match tokio::time::timeout(every, readiness.check()).await {
            Ok(result) => result,
            Err(_) => Err(format!(
                "readiness check took longer than {} ms",
                every.as_millis()
            )),
        };
        let serving = check.is_ok();
        if reported != Some(serving) {
            let status = match &check {
                Ok(()) => {
                    tracing::info!("ready: reporting SERVING");
                    ServingStatus::Serving
                }
                Err(reason) => {
                    tracing::warn!(%reason, "not ready: reporting NOT_SERVING");
                    ServingStatus::NotServing
                }
            };
            for service in services.iter().copied().chain([""]) {
                reporter.set_service_status(service, status).await;
            }
            reported = Some(serving);
        }
        let pause = if serving {
            every
        } else {
            every.min(RECHECK_WHILE_NOT_SERVING)
        };
        tokio::time::sleep(pause).await;
    }
}
