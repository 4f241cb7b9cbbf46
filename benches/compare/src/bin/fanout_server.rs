//! A fan-out server (see `fastws_compare::fanout`): every data message a
//! connection sends goes to every other connection, on one single-threaded tokio
//! runtime.
//!
//! Usage: fanout_server NAME ADDR [--deflate]   (NAME in `fanout::NAMES`)

use fastws_compare::fanout;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(name), Some(addr)) = (args.first(), args.get(1)) else {
        eprintln!(
            "usage: fanout_server NAME ADDR [--deflate]; NAME in {:?}",
            fanout::NAMES
        );
        std::process::exit(2);
    };
    let deflate = args.iter().any(|arg| arg == "--deflate");
    let listener = tokio::net::TcpListener::bind(addr).await?;
    fanout::serve(name, listener, deflate).await
}
