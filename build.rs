//! Compiles `proto/` into Rust without a system `protoc`: protox parses the files (and bundles
//! the Google well-known types), tonic-prost-build generates messages, clients and servers, and
//! the encoded descriptor set is written for gRPC server reflection.

use std::path::PathBuf;

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/moderation/v1/comments.proto",
        "proto/moderation/v1/moderation.proto",
        "proto/moderation/v1/admin.proto",
        "proto/moderation/v1/feed.proto",
        "proto/moderation/v1/readers.proto",
    ];
    println!("cargo:rerun-if-changed=proto");
    let descriptors = protox::compile(protos, ["proto"])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("moderation_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Undecodable requests are INVALID_ARGUMENT, not tonic's INTERNAL (src/grpc/codec.rs).
        .codec_path("crate::grpc::codec::Codec")
        .compile_fds(descriptors)?;
    Ok(())
}
