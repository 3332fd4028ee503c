//! Compiles `ringiflow/**/*.proto` with protox (pure Rust), so a fresh machine needs no protoc.

use std::path::PathBuf;

const PROTOS: &[&str] = &[
    "ringiflow/workflow/v1/common.proto",
    "ringiflow/workflow/v1/commands.proto",
    "ringiflow/workflow/v1/queries.proto",
    "ringiflow/workflow/v1/events.proto",
    "ringiflow/systemboard/v1/common.proto",
    "ringiflow/systemboard/v1/commands.proto",
    "ringiflow/systemboard/v1/queries.proto",
    "ringiflow/systemboard/v1/events.proto",
    "ringiflow/projector/v1/status.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let descriptors = protox::compile(PROTOS, ["."])?;
    let descriptor_path = out_dir.join("ringiflow_descriptor.bin");
    std::fs::write(
        &descriptor_path,
        prost::Message::encode_to_vec(&descriptors),
    )?;
    tonic_prost_build::configure()
        .file_descriptor_set_path(&descriptor_path)
        .skip_protoc_run()
        .compile_protos(PROTOS, &["."])?;
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    Ok(())
}
