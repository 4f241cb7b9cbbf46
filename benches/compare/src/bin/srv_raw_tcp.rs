//! Echo server: `servers::raw_tcp` on one single-threaded tokio runtime.
//!
//! Usage: srv_raw_tcp ADDR   (for example 127.0.0.1:9001)

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    fastws_compare::serve(fastws_compare::servers::raw_tcp).await
}
