//! Generated contracts. `workflow::v1` is the `ringiflow.workflow.v1` package, `systemboard::v1`
//! the System Board's `ringiflow.systemboard.v1`.
#![forbid(unsafe_code)]

mod board_codec;
pub mod board_convert;
pub mod convert;
mod workflow_codec;

pub use board_codec::{ScanCodec, SystemCodec, TaskCodec};
pub use workflow_codec::WorkflowCodec;

/// Limits that are part of the query contract: query-svc refuses more, and clients size their
/// calls by the same constants instead of repeating the numbers.
pub mod limits {
    /// The page size of a list whose request leaves it at 0.
    pub const DEFAULT_PAGE_SIZE: u32 = 20;
    /// Most ids one `BatchGetWorkflows` call may ask for.
    pub const MAX_BATCH_GET_WORKFLOWS: usize = 100;
    /// Most entries one `GetWorkflowHistory` page holds, and the page size when none is asked.
    pub const MAX_HISTORY_PAGE_SIZE: u32 = 100;
}

pub mod workflow {
    pub mod v1 {
        tonic::include_proto!("ringiflow.workflow.v1");
    }
}

/// projector-svc's status API.
pub mod projector {
    pub mod v1 {
        tonic::include_proto!("ringiflow.projector.v1");
    }
}

pub mod systemboard {
    pub mod v1 {
        tonic::include_proto!("ringiflow.systemboard.v1");
    }
}

/// Encoded `FileDescriptorSet` of every RingiFlow package, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/ringiflow_descriptor.bin"));
