//! The HTTP/2 client (RFC 8441) against an independent server: axum's own
//! `extract::ws::WebSocketUpgrade` (built on tokio-tungstenite), served by
//! `axum::serve` over cleartext HTTP/2 (h2c) and by hyper over TLS with ALPN `h2`;
//! and against `fastws::axum` for permessage-deflate over HTTP/2.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::ws::{self as axum_ws, WebSocketUpgrade as AxumUpgrade};
use axum::response::Response;
use axum::routing::any;
use fastws::handshake::http2::Http2Connection;
use fastws::{ClientRequest, Message};
use futures::{SinkExt, StreamExt};
use hyper_util::rt::{TokioExecutor, TokioIo};

/// axum's WebSocket echo, selecting `echo` when offered.
fn axum_app() -> Router {
    async fn echo(ws: AxumUpgrade) -> Response {
        ws.protocols(["echo"])
            .on_upgrade(|mut socket: axum_ws::WebSocket| async move {
                while let Some(Ok(message)) = socket.recv().await {
                    if matches!(message, axum_ws::Message::Text(_) | axum_ws::Message::Binary(_))
                        && socket.send(message).await.is_err()
                    {
                        break;
                    }
                }
            })
    }
    Router::new().route("/ws", any(echo))
}

async fn serve_h2c(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// Echoes a text and a binary message on `ws`, tagged with `tag`.
async fn round_trip(ws: &mut fastws::handshake::http2::Http2WebSocket, tag: &str) {
    ws.send(Message::text(format!("text {tag}"))).await.unwrap();
    let text = common::within("a text echo", ws.next()).await.unwrap().unwrap();
    assert_eq!(text, Message::text(format!("text {tag}")));
    let payload = vec![tag.len() as u8; 70_000];
    ws.send(Message::binary(payload.clone())).await.unwrap();
    let binary = common::within("a binary echo", ws.next()).await.unwrap().unwrap();
    assert_eq!(binary, Message::binary(payload));
}

#[tokio::test]
async fn many_websockets_share_one_h2c_connection_to_axums_own_extractor() {
    let addr = serve_h2c(axum_app()).await;
    let connection = Http2Connection::connect(format!("ws://{addr}/")).await.unwrap();
    let mut sockets = Vec::new();
    for _ in 0..5 {
        let (ws, response) = connection
            .open(ClientRequest::new(format!("ws://{addr}/ws")).protocol("echo"))
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(ws.protocol(), Some("echo"));
        // axum's extractor does not negotiate permessage-deflate.
        assert!(!ws.is_compressed());
        sockets.push(ws);
    }
    for round in 0..3 {
        for (i, ws) in sockets.iter_mut().enumerate() {
            round_trip(ws, &format!("{i}.{round}")).await;
        }
    }
    // Closing one leaves the others working.
    let mut first = sockets.remove(0);
    common::within("the close handshake", first.close())
        .await
        .unwrap();
    for (i, ws) in sockets.iter_mut().enumerate() {
        round_trip(ws, &format!("after {i}")).await;
    }
}

#[tokio::test]
async fn a_route_that_is_not_there_is_a_refusal_with_its_status() {
    let addr = serve_h2c(axum_app()).await;
    let connection = Http2Connection::connect(format!("ws://{addr}/")).await.unwrap();
    let err = connection
        .open(format!("ws://{addr}/nowhere"))
        .await
        .expect_err("no such route");
    assert_eq!(err.handshake().and_then(|e| e.status()), Some(404), "{err:?}");
}

#[tokio::test]
async fn deflate_is_negotiated_and_works_over_http2() {
    async fn echo(ws: fastws::axum::WebSocketUpgrade) -> Response {
        ws.on_upgrade(|ws| async move {
            let (sink, stream) = ws.split();
            let _ = stream.forward(sink).await;
        })
    }
    let addr = serve_h2c(Router::new().route("/ws", any(echo))).await;
    let connection = Http2Connection::connect(format!("ws://{addr}/")).await.unwrap();
    let (mut ws, response) = connection.open(format!("ws://{addr}/ws")).await.unwrap();
    assert!(ws.is_compressed());
    let extensions = response.headers()["sec-websocket-extensions"].to_str().unwrap();
    assert!(extensions.starts_with("permessage-deflate"), "{extensions}");
    for i in 0..50 {
        let text = format!("{{\"seq\":{i},\"body\":\"{}\"}}", "abc".repeat(i * 50));
        ws.send(Message::text(text.clone())).await.unwrap();
        let echoed = common::within("an echo", ws.next()).await.unwrap().unwrap();
        assert_eq!(echoed, Message::text(text));
    }
}

#[tokio::test]
async fn wss_with_alpn_h2_to_axums_extractor_behind_rustls() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert_der = cert.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server_config = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert_der.clone()], key)
        .unwrap();
    server_config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = axum_app();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let (acceptor, app) = (acceptor.clone(), app.clone());
            tokio::spawn(async move {
                let tls = acceptor.accept(tcp).await.unwrap();
                let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                builder.http2().enable_connect_protocol();
                let service = hyper_util::service::TowerToHyperService::new(app);
                let _ = builder
                    .serve_connection_with_upgrades(TokioIo::new(tls), service)
                    .await;
            });
        }
    });

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert_der).unwrap();
    let client_config = Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    let url = format!("wss://localhost:{port}/ws");
    let connection = Http2Connection::connect(ClientRequest::new(&url).tls_config(client_config.clone()))
        .await
        .unwrap();
    let (mut a, _) = connection
        .open(ClientRequest::new(&url).protocol("echo"))
        .await
        .unwrap();
    let (mut b, _) = connection.open(ClientRequest::new(&url)).await.unwrap();
    assert_eq!((a.protocol(), b.protocol()), (Some("echo"), None));
    round_trip(&mut a, "a").await;
    round_trip(&mut b, "b").await;
    // The same server over HTTP/1.1 still works for the ordinary client.
    let (mut plain, _) = ClientRequest::new(&url)
        .tls_config(client_config)
        .connect()
        .await
        .unwrap();
    plain.send(Message::text("http/1.1")).await.unwrap();
    let echoed = common::within("an HTTP/1.1 echo", plain.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(echoed, Message::text("http/1.1"));
}

#[tokio::test]
async fn a_server_that_does_not_enable_extended_connect_is_a_handshake_error() {
    // hyper's HTTP/2 server without `enable_connect_protocol`.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new()).http2_only();
        let service = hyper_util::service::TowerToHyperService::new(axum_app());
        let _ = builder
            .serve_connection_with_upgrades(TokioIo::new(tcp), service)
            .await;
    });
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let err = common::within_for(
        fastws::handshake::http2::SETTINGS_WAIT * 2,
        "the settings wait",
        Http2Connection::handshake(tcp),
    )
    .await
    .expect_err("no SETTINGS_ENABLE_CONNECT_PROTOCOL");
    assert!(
        matches!(err.handshake(), Some(fastws::HandshakeError::Invalid { .. })),
        "{err:?}"
    );
}
