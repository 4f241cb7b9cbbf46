//! The side-by-side echo benchmark of fastws against tokio-tungstenite,
//! fastwebsockets and tokio-websockets (issue 9).
//!
//! | module | what it holds |
//! |---|---|
//! | [`servers`] | one echo handler per library and variant, plus the raw TCP ceiling |
//! | [`client`] | the load side, on plain tokio: hand-made upgrade, pre-built masked frames, echo parsing |
//! | [`neutral_server`] | the client-role benchmark's server, on plain tokio: pushes pre-built frames, or echoes |
//! | [`clients`] | one client per library for the client-role benchmark |
//! | [`feed`] | an in-memory transport of pre-built frames, for exact client counts |
//!
//! Every `srv_*` binary is `BIN ADDR`: [`serve`] with one handler from [`servers`],
//! on a single-threaded runtime. `loadgen`, `allocs` and `idle` use [`client`].
//! `run.sh`, `report.py` and `idle_mem.sh` beside this crate run them.

pub mod client;
pub mod clients;
pub mod fanout;
pub mod feed;
pub mod neutral_server;
pub mod servers;

use std::fmt::Display;
use std::future::Future;

use tokio::net::{TcpListener, TcpStream};

/// Runs an echo server on the address given as the first argument: accepts
/// forever, sets `TCP_NODELAY`, and runs `handler` on each connection in its own
/// task. Errors of a connection go to stderr (run.sh sends them to a log file).
///
/// Call it from `#[tokio::main(flavor = "current_thread")]`: one server, one core.
pub async fn serve<F, Fut, E>(handler: F) -> std::io::Result<()>
where
    F: Fn(TcpStream) -> Fut,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Display,
{
    let Some(addr) = std::env::args().nth(1) else {
        let bin = std::env::args().next().unwrap_or_default();
        eprintln!("usage: {bin} ADDR   (for example 127.0.0.1:9001)");
        std::process::exit(2);
    };
    let listener = TcpListener::bind(&addr).await?;
    loop {
        let (tcp, peer) = listener.accept().await?;
        tcp.set_nodelay(true)?;
        let connection = handler(tcp);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                eprintln!("{peer}: {err}");
            }
        });
    }
}
