//! An axum app with a fastws WebSocket route, over HTTP/1.1 and HTTP/2 on one port.
//!
//! Usage: cargo run --release --features axum --example axum -- [ADDR] [--tls CERT KEY]
//!        (default 127.0.0.1:9005)
//!
//! Without `--tls` it serves HTTP/1.1 and cleartext HTTP/2 with prior knowledge
//! (h2c) on the same port; with `--tls CERT KEY` (PEM files) it serves TLS, HTTP/2
//! or HTTP/1.1 chosen by ALPN. `GET /` is a plain route; `/ws` is a WebSocket echo
//! (text back as text, binary as binary) that selects the subprotocol `echo` when
//! offered, reached by an HTTP/1.1 upgrade or by an HTTP/2 extended CONNECT
//! (RFC 8441; many WebSockets can share one HTTP/2 connection).

use std::sync::Arc;

use axum::Router;
use axum::response::Response;
use axum::routing::{any, get};
use fastws::axum::WebSocketUpgrade;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (addr, tls) = match args.as_slice() {
        [] => ("127.0.0.1:9005".to_owned(), None),
        [addr] => (addr.clone(), None),
        [addr, flag, cert, key] if flag == "--tls" => (addr.clone(), Some((cert.clone(), key.clone()))),
        _ => return Err("usage: axum [ADDR] [--tls CERT KEY]".into()),
    };
    let app = Router::new()
        .route("/", get(|| async { "fastws inside axum\n" }))
        // `any`: HTTP/1.1 upgrades with GET, HTTP/2 opens a WebSocket with CONNECT.
        .route("/ws", any(echo));
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    let addr = listener.local_addr()?;
    match tls {
        None => {
            println!("listening on http://{addr}/ (HTTP/1.1 and h2c), websocket echo at ws://{addr}/ws");
            // axum::serve speaks both, and announces extended CONNECT over HTTP/2.
            axum::serve(listener, app).await?;
        }
        Some((cert, key)) => {
            println!(
                "listening on https://{addr}/ (h2 or HTTP/1.1 by ALPN), websocket echo at wss://{addr}/ws"
            );
            serve_tls(listener, app, &cert, &key).await?;
        }
    }
    Ok(())
}

/// The route: a WebSocket echo that speaks the subprotocol `echo` if offered.
async fn echo(ws: WebSocketUpgrade) -> Response {
    ws.protocols(["echo"]).on_upgrade(|ws| async move {
        let (sink, stream) = ws.split();
        if let Err(err) = stream.forward(sink).await
            && !err.is_disconnect()
        {
            eprintln!("websocket: {err}");
        }
    })
}

/// TLS by hand: rustls with ALPN `h2` and `http/1.1`, hyper's automatic builder
/// with extended CONNECT enabled for HTTP/2.
async fn serve_tls(
    listener: tokio::net::TcpListener,
    app: Router,
    cert: &str,
    key: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let certs = CertificateDer::pem_file_iter(cert)?.collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file(key)?;
    let mut config =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    loop {
        let (tcp, peer) = listener.accept().await?;
        let (acceptor, app) = (acceptor.clone(), app.clone());
        tokio::spawn(async move {
            let tls = match acceptor.accept(tcp).await {
                Ok(tls) => tls,
                Err(err) => return eprintln!("{peer}: tls: {err}"),
            };
            let mut builder = Builder::new(TokioExecutor::new());
            builder.http2().enable_connect_protocol();
            let service = TowerToHyperService::new(app);
            if let Err(err) = builder
                .serve_connection_with_upgrades(TokioIo::new(tls), service)
                .await
            {
                eprintln!("{peer}: {err}");
            }
        });
    }
}
