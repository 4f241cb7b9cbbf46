//! Echo server: `servers::fastws` again, under a second name. The matrix runs it as
//! a control: any gap between it and `srv_fastws` in a cell is run-to-run noise,
//! which is how far apart two servers must be before a cell says anything.
//!
//! Usage: srv_fastws_twin ADDR   (for example 127.0.0.1:9001)

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    fastws_compare::serve(fastws_compare::servers::fastws).await
}
