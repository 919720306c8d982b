//! Compiles `proto/` into Rust with protox (pure Rust, so no system `protoc`
//! is needed) and writes the encoded descriptor set that reflection serves.

use std::{env, fs, path::PathBuf};

use prost::Message;

const PROTO_ROOT: &str = "proto";
const PROTO_FILES: &[&str] = &[
    "proto/ninaivalaigal/auth/v1/auth.proto",
    "proto/ninaivalaigal/memory/v1/memory.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // compile_fds does not register the inputs with cargo; do it ourselves.
    println!("cargo:rerun-if-changed={PROTO_ROOT}");

    let fds = protox::compile(PROTO_FILES, [PROTO_ROOT])?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    // compile_fds does not write file_descriptor_set_path either.
    fs::write(
        out_dir.join("ninaivalaigal_descriptor.bin"),
        fds.encode_to_vec(),
    )?;

    tonic_prost_build::configure()
        .include_file("_includes.rs")
        .compile_fds(fds)?;
    Ok(())
}
