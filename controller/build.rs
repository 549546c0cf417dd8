//! Compiles the readiness protocol with protox: no protoc needed. The server side is what
//! maestro serves; the client side (without tonic's transport, so it needs nothing more in
//! the binary) is what the server's tests speak to it with.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=../proto/readiness.proto");
    let files = protox::compile(["readiness.proto"], ["../proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_transport(false)
        .build_server(true)
        .compile_fds(files)?;
    Ok(())
}
