//! Generated contracts. `workflow::v1` is the `ringiflow.workflow.v1` package.
#![forbid(unsafe_code)]

pub mod convert;

pub mod workflow {
    pub mod v1 {
        tonic::include_proto!("ringiflow.workflow.v1");
    }
}

/// Encoded `FileDescriptorSet` of every RingiFlow package, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/ringiflow_descriptor.bin"));
