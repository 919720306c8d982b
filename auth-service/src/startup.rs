//! Builds the auth-service (pool, health, reflection, RPC services) and serves
//! it until the shutdown signal.

use std::{future::Future, net::SocketAddr};

use anyhow::Context;
use ninaivalaigal::auth_v1::{
    admin_service_server::AdminServiceServer, auth_service_server::AuthServiceServer,
};
use tokio::net::TcpListener;
use tonic::transport::{Server, server::TcpIncoming};

use crate::{config::Settings, rpc};

/// A bound, ready-to-serve auth-service.
pub struct Application {
    listener: TcpListener,
    settings: Settings,
}

impl Application {
    /// Checks the settings and binds the listener (port 0 picks a free port).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let listener =
            ninaivalaigal::grpc::bind(settings.listen_addr, "NINAIVALAIGAL_AUTH_LISTEN_ADDR")
                .await?;
        Ok(Self { listener, settings })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or(self.settings.listen_addr)
    }

    /// Serves until `shutdown` resolves, then drains in-flight requests.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let _pool = self.settings.database.pool();
        let (health_reporter, health_service) = tonic_health::server::health_reporter();
        health_reporter
            .set_serving::<AuthServiceServer<rpc::AuthRpc>>()
            .await;
        health_reporter
            .set_serving::<AdminServiceServer<rpc::AdminRpc>>()
            .await;
        let (reflection_v1, reflection_v1alpha) = ninaivalaigal::grpc::reflection_services()?;

        let addr = self.local_addr();
        tracing::info!(%addr, "auth-service listening");
        Server::builder()
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(AuthServiceServer::new(rpc::AuthRpc))
            .add_service(AdminServiceServer::new(rpc::AdminRpc))
            .serve_with_incoming_shutdown(TcpIncoming::from(self.listener), shutdown)
            .await
            .context("gRPC server failed")?;
        tracing::info!("auth-service stopped");
        Ok(())
    }
}
