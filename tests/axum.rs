//! `fastws::axum::WebSocketUpgrade` in a real axum app (`axum::serve`, HTTP/1.1 and
//! cleartext HTTP/2 on one port), against clients not built on fastws: hyper's
//! HTTP/2 client opening WebSockets with extended CONNECT (RFC 8441) and
//! tokio-tungstenite speaking the WebSocket protocol over them; tokio-tungstenite
//! and fastws over HTTP/1.1; raw requests for the refusals.

mod common;

use std::net::SocketAddr;

use axum::Router;
use axum::response::Response;
use axum::routing::any;
use bytes::Bytes;
use fastws::axum::WebSocketUpgrade;
use fastws::{Config, Message};
use futures::{SinkExt, StreamExt};
use http_body_util::Empty;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::{self, protocol::Role};

/// The app: `/ws` echoes (subprotocol `echo` when offered), `/whoami` sends what the
/// handshake agreed and closes, `/small` allows messages of at most 16 bytes.
async fn serve() -> SocketAddr {
    async fn echo(ws: WebSocketUpgrade) -> Response {
        ws.protocols(["echo"]).on_upgrade(|ws| async move {
            let (sink, stream) = ws.split();
            let _ = stream.forward(sink).await;
        })
    }
    async fn whoami(ws: WebSocketUpgrade) -> Response {
        let ws = ws.protocols(["v2", "v1"]);
        let selected = ws.selected_protocol().cloned();
        ws.on_upgrade(move |mut ws| async move {
            let agreed = format!(
                "{:?} {:?} {:?}",
                selected.as_ref().map(|p| p.to_str().unwrap()),
                ws.protocol(),
                ws.extensions()
            );
            let _ = ws.send(Message::text(agreed)).await;
            let _ = ws.close().await;
        })
    }
    async fn small(ws: WebSocketUpgrade) -> Response {
        ws.config(Config::default().max_message_size(16))
            .on_upgrade(|ws| async move {
                let (sink, stream) = ws.split();
                let _ = stream.forward(sink).await;
            })
    }
    let app = Router::new()
        .route("/ws", any(echo))
        .route("/whoami", any(whoami))
        .route("/small", any(small));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// An HTTP/2 connection with prior knowledge (h2c), by hyper's client, once the
/// server has announced extended CONNECT (RFC 8441 §3).
async fn h2c(addr: SocketAddr) -> hyper::client::conn::http2::SendRequest<Empty<Bytes>> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (sender, mut connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    // hyper applies the server's SETTINGS in a task of its own: look every 2 ms.
    let announced = async {
        while !connection.is_extended_connect_protocol_enabled() {
            tokio::select! {
                end = &mut connection => panic!("the connection ended: {end:?}"),
                _ = tokio::time::sleep(std::time::Duration::from_millis(2)) => {}
            }
        }
    };
    common::within("SETTINGS_ENABLE_CONNECT_PROTOCOL", announced).await;
    tokio::spawn(connection);
    sender
}

/// Sends an extended CONNECT for `path` with `headers`; returns the response.
async fn extended_connect(
    sender: &mut hyper::client::conn::http2::SendRequest<Empty<Bytes>>,
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> http::Response<hyper::body::Incoming> {
    let mut request = http::Request::builder()
        .method(http::Method::CONNECT)
        .uri(format!("http://{addr}{path}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let mut request = request.body(Empty::new()).unwrap();
    request
        .extensions_mut()
        .insert(hyper::ext::Protocol::from_static("websocket"));
    sender.ready().await.unwrap();
    sender.send_request(request).await.expect("extended CONNECT")
}

/// A tokio-tungstenite client over the stream an extended CONNECT opened.
async fn tungstenite_over(
    response: http::Response<hyper::body::Incoming>,
) -> tokio_tungstenite::WebSocketStream<TokioIo<hyper::upgrade::Upgraded>> {
    let upgraded = hyper::upgrade::on(response)
        .await
        .expect("the stream is handed over");
    tokio_tungstenite::WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Client, None).await
}

#[tokio::test]
async fn http2_extended_connect_carries_several_websockets_on_one_connection() {
    let addr = serve().await;
    let mut sender = h2c(addr).await;
    let version = [
        ("sec-websocket-version", "13"),
        ("sec-websocket-protocol", "echo"),
    ];
    let first = extended_connect(&mut sender, addr, "/ws", &version).await;
    let second = extended_connect(&mut sender, addr, "/ws", &version).await;
    for response in [&first, &second] {
        assert_eq!(response.status(), 200, "RFC 8441 §5: a 2xx opens the stream");
        assert_eq!(response.headers()["sec-websocket-protocol"], "echo");
        assert!(!response.headers().contains_key("sec-websocket-accept"));
    }
    let (mut a, mut b) = (tungstenite_over(first).await, tungstenite_over(second).await);
    for round in 0..20 {
        a.send(tungstenite::Message::text(format!("a{round}")))
            .await
            .unwrap();
        b.send(tungstenite::Message::binary(vec![round as u8; 1000 * round]))
            .await
            .unwrap();
        let from_a = common::within("an echo on the first stream", a.next())
            .await
            .unwrap()
            .unwrap();
        let from_b = common::within("an echo on the second stream", b.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(from_a, tungstenite::Message::text(format!("a{round}")));
        assert_eq!(
            from_b,
            tungstenite::Message::binary(vec![round as u8; 1000 * round])
        );
    }
    a.close(None).await.unwrap();
    // The other WebSocket on the connection is unaffected by the first one's close.
    b.send(tungstenite::Message::text("still here")).await.unwrap();
    let last = common::within("an echo after the other closed", b.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(last, tungstenite::Message::text("still here"));
    b.close(None).await.unwrap();
}

#[tokio::test]
async fn http2_negotiates_permessage_deflate_and_the_subprotocol_as_http1_does() {
    let addr = serve().await;
    let mut sender = h2c(addr).await;
    let response = extended_connect(
        &mut sender,
        addr,
        "/whoami",
        &[
            ("sec-websocket-version", "13"),
            ("sec-websocket-protocol", "v1, v2"),
            (
                "sec-websocket-extensions",
                "permessage-deflate; client_max_window_bits",
            ),
        ],
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["sec-websocket-protocol"], "v2");
    let extensions = response.headers()["sec-websocket-extensions"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(extensions, "permessage-deflate; client_max_window_bits=12");
    // tokio-tungstenite has no permessage-deflate: the deflated text is read as a
    // raw frame and inflated by the tests' own decoder (tests/common/inflate.rs).
    let upgraded = hyper::upgrade::on(response).await.unwrap();
    let mut frames = tokio_util::codec::Framed::new(
        TokioIo::new(upgraded),
        fastws::WsCodec::client().allowed_rsv(0b100),
    );
    let frame = common::within("the agreed parameters", frames.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(frame.opcode(), fastws::OpCode::Text);
    assert_eq!(frame.rsv(), 0b100, "the server compressed its message");
    let mut payload = frame.payload().to_vec();
    payload.extend_from_slice(&[0x00, 0x00, 0xff, 0xff]); // RFC 7692 §7.2.2
    let text = common::inflate::inflate(&payload, &[])
        .expect("valid deflate")
        .data;
    assert_eq!(
        String::from_utf8(text).unwrap(),
        format!("Some(\"v2\") Some(\"v2\") Some({extensions:?})")
    );
}

#[tokio::test]
async fn http2_requests_that_are_not_websockets_are_refused() {
    let addr = serve().await;
    let mut sender = h2c(addr).await;
    let wrong_version = extended_connect(&mut sender, addr, "/ws", &[("sec-websocket-version", "8")]).await;
    assert_eq!(wrong_version.status(), 426);
    assert_eq!(wrong_version.headers()["sec-websocket-version"], "13");
    let no_version = extended_connect(&mut sender, addr, "/ws", &[]).await;
    assert_eq!(no_version.status(), 426);
}

#[tokio::test]
async fn http1_upgrade_with_a_fastws_client_selects_the_protocol_and_deflate() {
    let addr = serve().await;
    let (mut ws, response) = fastws::ClientRequest::new(format!("ws://{addr}/whoami"))
        .protocol("v1")
        .connect()
        .await
        .unwrap();
    assert_eq!(response.status(), 101);
    assert_eq!(ws.protocol(), Some("v1"));
    assert!(ws.is_compressed());
    let agreed = common::within("the agreed parameters", ws.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        agreed.to_text().unwrap(),
        format!(
            "Some(\"v1\") Some(\"v1\") Some({:?})",
            ws.extensions().expect("deflate agreed")
        )
    );
}

#[tokio::test]
async fn http1_upgrade_with_tokio_tungstenite_echoes_every_message_with_its_type() {
    let addr = serve().await;
    let (mut ws, response) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .unwrap();
    assert_eq!(response.status(), 101);
    let messages = [
        tungstenite::Message::text("hello"),
        tungstenite::Message::binary(vec![0u8, 1, 2, 255]),
        tungstenite::Message::text("é".repeat(40_000)),
    ];
    for message in messages {
        ws.send(message.clone()).await.unwrap();
        let echoed = common::within("an echo", ws.next()).await.unwrap().unwrap();
        assert_eq!(echoed, message);
    }
    ws.close(None).await.unwrap();
}

#[tokio::test]
async fn the_routes_config_applies() {
    let addr = serve().await;
    let (mut ws, _) = fastws::connect(format!("ws://{addr}/small")).await.unwrap();
    ws.send(Message::text("sixteen bytes ok")).await.unwrap();
    let echoed = common::within("an echo", ws.next()).await.unwrap().unwrap();
    assert_eq!(echoed, Message::text("sixteen bytes ok"));
    ws.send(Message::text("seventeen bytes!!")).await.unwrap();
    let close = common::within("the server's close", ws.next()).await;
    match close {
        Some(Ok(Message::Close(Some(close)))) => assert_eq!(close.code, fastws::CloseCode::Size),
        other => panic!("expected the server's close 1009, got {other:?}"),
    }
}

#[tokio::test]
async fn http1_requests_that_are_not_upgrades_are_refused_with_the_rfcs_status() {
    let addr = serve().await;
    let plain = "GET /ws HTTP/1.1\r\nHost: x\r\n\r\n";
    let (_, head, _) = common::connect_with_request(addr, plain.as_bytes()).await;
    assert_eq!(head.status, 400);
    let old_version = common::upgrade_request("/ws", "").replace("Version: 13", "Version: 8");
    let (_, head, _) = common::connect_with_request(addr, old_version.as_bytes()).await;
    assert_eq!(head.status, 426);
    assert_eq!(head.header("sec-websocket-version"), Some("13"));
    // RFC 9110 §15.5.22: a 426 names the protocol to switch to.
    assert_eq!(head.header("upgrade"), Some("websocket"));
    let http10 = common::upgrade_request("/ws", "").replacen("HTTP/1.1", "HTTP/1.0", 1);
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(http10.as_bytes()).await.unwrap();
    let mut answer = vec![0; 12];
    common::within("the HTTP/1.0 answer", tcp.read_exact(&mut answer))
        .await
        .unwrap();
    assert_eq!(&answer, b"HTTP/1.0 400", "HTTP/1.0 has no upgrade");
    let post = common::upgrade_request("/ws", "").replacen("GET", "POST", 1);
    let (_, head, _) = common::connect_with_request(addr, post.as_bytes()).await;
    assert_eq!(head.status, 405);
    assert_eq!(head.header("allow"), Some("GET, CONNECT"));
}

#[tokio::test]
async fn the_handler_sees_the_selected_protocol_without_deflate_too() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let addr = serve().await;
    let mut request = format!("ws://{addr}/whoami").into_client_request().unwrap();
    request
        .headers_mut()
        .insert("sec-websocket-protocol", http::HeaderValue::from_static("v1"));
    // tokio-tungstenite offers no permessage-deflate.
    let (mut ws, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(response.headers()["sec-websocket-protocol"], "v1");
    let agreed = common::within("the agreed parameters", ws.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(agreed.to_text().unwrap(), "Some(\"v1\") Some(\"v1\") None");
}
