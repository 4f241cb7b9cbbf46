//! Echo server: `servers::fastws` on one single-threaded tokio runtime.
//!
//! Usage: srv_fastws ADDR   (for example 127.0.0.1:9001)

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    fastws_compare::serve(fastws_compare::servers::fastws).await
}
