//! Compiles the .proto files with protox (no system protoc) and generates tonic code.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/kv.proto",
        "proto/server.proto",
        "proto/replication.proto",
    ];
    for p in protos {
        println!("cargo:rerun-if-changed={p}");
    }
    let fds = protox::compile(protos, ["proto"])?;
    tonic_prost_build::configure()
        // Hold a stream token: `Debug` is written by hand in lib.rs, redacting it.
        .skip_debug([
            ".roach.replication.StreamPartitionRequest",
            ".roach.replication.IngestRequest",
        ])
        .compile_fds(fds)?;
    Ok(())
}
