//! The client handshake against real servers on 127.0.0.1: fastws, TLS, and
//! hand-written servers that misbehave on purpose.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

use fastws::{ClientRequest, Error, HandshakeError, Message};

const LIMIT: Duration = Duration::from_secs(10);

/// A fastws echo server on an ephemeral port, answering `connections` clients.
async fn echo_server(connections: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        for _ in 0..connections {
            let (tcp, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut ws = fastws::accept(tcp).await.unwrap();
                while let Some(Ok(message)) = ws.next().await {
                    if message.is_data() {
                        ws.send(message).await.unwrap();
                    }
                }
            });
        }
    });
    format!("ws://{addr}/echo")
}

/// A server that reads the request head, then writes `answer(request)` and closes.
async fn scripted_server(answer: impl FnOnce(&str) -> Vec<u8> + Send + 'static) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let head = read_head(&mut tcp).await;
        tcp.write_all(&answer(&head)).await.unwrap();
        // Keep the connection readable by the client until it is done.
        let mut rest = Vec::new();
        let _ = timeout(Duration::from_secs(2), tcp.read_to_end(&mut rest)).await;
    });
    format!("ws://{addr}/")
}

async fn read_head(tcp: &mut TcpStream) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8];
        if tcp.read(&mut byte).await.unwrap() == 0 {
            break;
        }
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

/// The `Sec-WebSocket-Accept` a correct server sends for `head`.
fn accept_for(head: &str) -> String {
    let key = head
        .lines()
        .find_map(|line| line.strip_prefix("Sec-WebSocket-Key: "))
        .expect("request has a key");
    fastws::handshake::accept_key(key.trim().as_bytes())
}

#[tokio::test]
async fn connect_exchanges_messages_with_a_fastws_server() {
    let url = echo_server(1).await;
    let (mut ws, response) = timeout(LIMIT, fastws::connect(url.as_str()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), 101);
    for i in 0..10 {
        ws.send(Message::text(format!("message {i}"))).await.unwrap();
        let echo = timeout(LIMIT, ws.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(echo.as_text(), Some(format!("message {i}").as_str()));
    }
    ws.send(Message::binary(vec![7u8; 200_000])).await.unwrap();
    let echo = timeout(LIMIT, ws.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(echo, Message::binary(vec![7u8; 200_000]));

    ws.close().await.unwrap();
    let close = timeout(LIMIT, ws.next()).await.unwrap().unwrap().unwrap();
    assert!(close.is_close());
    assert!(timeout(LIMIT, ws.next()).await.unwrap().is_none());
}

#[cfg(feature = "rustls")]
#[tokio::test]
async fn wss_connects_to_a_tls_server_with_a_generated_certificate() {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert = certified.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let server_config = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(server_config));

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let tls = acceptor.accept(tcp).await.unwrap();
        let mut ws = fastws::accept(tls).await.unwrap();
        while let Some(Ok(message)) = ws.next().await {
            if message.is_data() {
                ws.send(message).await.unwrap();
            }
        }
    });

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let client_config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let request = ClientRequest::new(format!("wss://localhost:{port}/secure"))
        .tls_config(std::sync::Arc::new(client_config));
    let (mut ws, _) = timeout(LIMIT, fastws::connect(request)).await.unwrap().unwrap();
    assert!(matches!(ws.get_ref(), fastws::MaybeTlsStream::Rustls(_)));
    ws.send(Message::text("over tls")).await.unwrap();
    let echo = timeout(LIMIT, ws.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(echo.as_text(), Some("over tls"));
}

#[cfg(feature = "rustls")]
#[tokio::test]
async fn wss_to_an_untrusted_certificate_is_a_tls_error() {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
    let server_config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![certified.cert.der().clone()], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(server_config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let _ = acceptor.accept(tcp).await;
    });
    // The default configuration trusts only the webpki roots.
    let result = timeout(LIMIT, fastws::connect(format!("wss://localhost:{port}/")))
        .await
        .unwrap();
    assert!(matches!(result, Err(Error::Tls(_))), "{result:?}");
}

#[tokio::test]
async fn a_403_answer_returns_status_headers_and_body() {
    let url = scripted_server(|_| {
        b"HTTP/1.1 403 Forbidden\r\nContent-Length: 9\r\nX-Reason: token\r\n\r\nno token!".to_vec()
    })
    .await;
    let err = timeout(LIMIT, fastws::connect(url.as_str()))
        .await
        .unwrap()
        .unwrap_err();
    let response = err
        .handshake()
        .and_then(HandshakeError::response)
        .expect("a refusal");
    assert_eq!(response.status(), 403);
    assert_eq!(response.headers()["x-reason"], "token");
    assert_eq!(&response.body()[..], b"no token!");
    assert_eq!(err.handshake().unwrap().status(), Some(403));
}

#[tokio::test]
async fn a_wrong_accept_key_fails_the_handshake() {
    let url = scripted_server(|_| {
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
            .to_vec()
    })
    .await;
    let err = timeout(LIMIT, fastws::connect(url.as_str()))
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(err, Error::Handshake(HandshakeError::Invalid { reason, .. }) if reason.contains("Accept")),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_server_closing_mid_handshake_is_an_unexpected_eof() {
    let url = scripted_server(|_| b"HTTP/1.1 101 Switching".to_vec()).await;
    let err = timeout(LIMIT, fastws::connect(url.as_str()))
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(err, Error::Handshake(HandshakeError::UnexpectedEof)),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_frame_sent_with_the_101_answer_is_not_lost() {
    let url = scripted_server(|head| {
        let mut answer = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n\r\n",
            accept_for(head)
        )
        .into_bytes();
        // An unmasked text frame "early", in the same write as the head.
        answer.extend_from_slice(b"\x81\x05early");
        answer
    })
    .await;
    let (mut ws, _) = timeout(LIMIT, fastws::connect(url.as_str()))
        .await
        .unwrap()
        .unwrap();
    let first = timeout(LIMIT, ws.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(first.as_text(), Some("early"));
}

#[tokio::test]
async fn an_unoffered_subprotocol_fails_and_an_offered_one_is_returned() {
    let answer_with = |protocol: &'static str| {
        move |head: &str| {
            format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Accept: {}\r\nSec-WebSocket-Protocol: {protocol}\r\n\r\n",
                accept_for(head)
            )
            .into_bytes()
        }
    };
    let url = scripted_server(answer_with("chat")).await;
    let (_, response) = timeout(LIMIT, fastws::connect(ClientRequest::new(&url).protocol("chat")))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.headers()["sec-websocket-protocol"], "chat");

    let url = scripted_server(answer_with("other")).await;
    let err = timeout(LIMIT, fastws::connect(ClientRequest::new(&url).protocol("chat")))
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(err, Error::Handshake(HandshakeError::Invalid { .. })),
        "{err:?}"
    );
}

#[tokio::test]
async fn request_headers_origin_and_path_reach_the_server() {
    let (seen_tx, seen_rx) = tokio::sync::oneshot::channel();
    let url = scripted_server(move |head| {
        seen_tx.send(head.to_owned()).unwrap();
        b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n".to_vec()
    })
    .await;
    let request = ClientRequest::new(format!("{url}path?q=1"))
        .header("authorization", "Bearer secret")
        .origin("https://example.com");
    let _ = timeout(LIMIT, fastws::connect(request)).await.unwrap();
    let head = seen_rx.await.unwrap();
    assert!(head.starts_with("GET /path?q=1 HTTP/1.1\r\n"), "{head}");
    assert!(head.contains("authorization: Bearer secret\r\n"));
    assert!(head.contains("origin: https://example.com\r\n"));
    assert!(head.contains("Sec-WebSocket-Version: 13\r\n"));
}

#[tokio::test]
async fn every_connect_failure_is_distinguishable() {
    let bad_scheme = fastws::connect("http://127.0.0.1:1/").await.unwrap_err();
    assert!(matches!(bad_scheme, Error::InvalidUrl(_)), "{bad_scheme:?}");

    // A port nobody listens on: bind, learn the port, drop the listener.
    let port = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let refused = fastws::connect(format!("ws://127.0.0.1:{port}/"))
        .await
        .unwrap_err();
    assert!(matches!(refused, Error::Connect(_)), "{refused:?}");

    // `.invalid` never resolves (RFC 6761).
    let dns = fastws::connect("ws://no-such-host.invalid/").await.unwrap_err();
    assert!(matches!(dns, Error::Dns(_)), "{dns:?}");

    // A server that accepts but never answers.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let silent = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(tcp);
    });
    let request = ClientRequest::new(format!("ws://{addr}/")).timeout(Duration::from_millis(200));
    let slow = fastws::connect(request).await.unwrap_err();
    assert!(
        matches!(slow, Error::Handshake(HandshakeError::Timeout)),
        "{slow:?}"
    );
    silent.abort();
}

#[tokio::test]
async fn client_handshake_runs_over_an_in_memory_duplex() {
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let server = tokio::spawn(async move {
        let mut ws = fastws::accept(server_io).await.unwrap();
        let message = ws.next().await.unwrap().unwrap();
        ws.send(message).await.unwrap();
        // Drive the close handshake to its end.
        while ws.next().await.is_some() {}
    });
    let (mut ws, _) = timeout(LIMIT, fastws::client_handshake(client_io, "ws://in-memory/"))
        .await
        .unwrap()
        .unwrap();
    ws.send(Message::text("duplex")).await.unwrap();
    assert_eq!(
        timeout(LIMIT, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
            .as_text(),
        Some("duplex")
    );
    ws.close().await.unwrap();
    assert!(
        timeout(LIMIT, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
            .is_close()
    );
    timeout(LIMIT, server).await.unwrap().unwrap();
}

#[tokio::test]
async fn client_frames_are_masked_on_the_wire() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let head = read_head(&mut tcp).await;
        let answer = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n\r\n",
            accept_for(&head)
        );
        tcp.write_all(answer.as_bytes()).await.unwrap();
        let mut frame = [0u8; 2 + 4 + 3];
        tcp.read_exact(&mut frame).await.unwrap();
        frame
    });
    let (mut ws, _) = fastws::connect(format!("ws://{addr}/")).await.unwrap();
    ws.send(Message::text("abc")).await.unwrap();
    let frame = timeout(LIMIT, server).await.unwrap().unwrap();
    assert_eq!(frame[0], 0x81);
    assert_eq!(frame[1], 0x80 | 3, "mask bit set, length 3");
    let mut payload = [frame[6], frame[7], frame[8]];
    fastws::mask::apply_mask(&mut payload, [frame[2], frame[3], frame[4], frame[5]], 0);
    assert_eq!(&payload, b"abc");
}
