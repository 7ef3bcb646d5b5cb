//! The generated gRPC code (`proto/moderation/v1`). Only the gRPC layer and the tests use it;
//! the domain and the pipeline never see these types.

#![allow(missing_docs)]
#![allow(clippy::all, clippy::pedantic)]

/// Package `moderation.v1`.
pub mod v1 {
    tonic::include_proto!("moderation.v1");
}

/// The encoded file descriptor set of every proto file, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/moderation_descriptor.bin"));
