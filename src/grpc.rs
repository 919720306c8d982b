//! Plumbing that both gRPC services share: binding the listener, the standard
//! health and reflection services, and the status helpers.

use std::net::SocketAddr;

use tokio::net::TcpListener;

use crate::proto::FILE_DESCRIPTOR_SET;

/// Binds the service's listening socket, naming the setting on failure so
/// that a port in use stops start-up with one clear line.
pub async fn bind(addr: SocketAddr, setting: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|error| anyhow::anyhow!("{setting}: cannot listen on {addr}: {error}"))
}

/// gRPC server reflection (v1 and the v1alpha that older clients ask for),
/// so `grpcurl list` works without proto files. It advertises the services
/// named in `served` plus health and reflection, not every service of the
/// shared descriptor set.
pub fn reflection_services(
    served: &[&str],
) -> anyhow::Result<(
    tonic_reflection::server::v1::ServerReflectionServer<
        impl tonic_reflection::server::v1::ServerReflection,
    >,
    tonic_reflection::server::v1alpha::ServerReflectionServer<
        impl tonic_reflection::server::v1alpha::ServerReflection,
    >,
)> {
    let builder = || {
        let standard = [
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection",
        ];
        served.iter().copied().chain(standard).fold(
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET),
            |builder, name| builder.with_service_name(name),
        )
    };
    Ok((builder().build_v1()?, builder().build_v1alpha()?))
}
