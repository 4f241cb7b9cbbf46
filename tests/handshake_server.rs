//! The server's opening handshake (RFC 6455 §4.2) over a real socket: the `101`
//! response, refusals with the right HTTP status, the `accept_with` callback,
//! bytes sent right after the request head, and the size and time limits.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use fastws::{Acceptor, CloseCode, Error, Frame, HandshakeError, Message, Rejection, WebSocket};
use futures::StreamExt;
use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A server that only runs the handshake with `acceptor` and returns its result.
async fn start_handshake(
    acceptor: Acceptor,
) -> (SocketAddr, JoinHandle<Result<WebSocket<TcpStream>, Error>>) {
    start_raw(move |tcp| async move { acceptor.accept(tcp).await }).await
}

/// Sends `request`, reads everything until the server closes, and splits the
/// response into its head and body.
async fn exchange(addr: SocketAddr, request: &[u8]) -> (ResponseHead, Vec<u8>) {
    let (mut tcp, head, rest) = connect_with_request(addr, request).await;
    let mut body = rest.to_vec();
    within("the server to close", tcp.read_to_end(&mut body))
        .await
        .expect("read body");
    (head, body)
}

/// Asserts that the handshake failed with an HTTP status, as the predicates see it.
fn assert_refused(result: Result<WebSocket<TcpStream>, Error>, status: u16) -> Error {
    let err = match result {
        Ok(_) => panic!("handshake succeeded, expected a {status}"),
        Err(err) => err,
    };
    assert!(err.is_handshake(), "{err:?}");
    assert_eq!(
        err.handshake().and_then(HandshakeError::status),
        Some(status),
        "{err:?}"
    );
    err
}

#[tokio::test]
async fn sample_key_gets_the_rfc_accept_value_and_a_101() {
    let (addr, server) = start_handshake(Acceptor::new()).await;
    let request = upgrade_request("/", "");

    let (_tcp, head, rest) = connect_with_request(addr, request.as_bytes()).await;

    assert_eq!(head.status, 101, "{head:?}");
    // RFC 6455 §1.3: key dGhlIHNhbXBsZSBub25jZQ== gives this accept value.
    assert_eq!(
        head.header("sec-websocket-accept"),
        Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    );
    assert!(
        head.header("upgrade")
            .is_some_and(|v| v.eq_ignore_ascii_case("websocket")),
        "{head:?}"
    );
    assert!(
        head.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("upgrade")),
        "{head:?}"
    );
    assert_eq!(head.header("sec-websocket-protocol"), None);
    assert!(rest.is_empty(), "bytes after the 101: {rest:?}");
    finish(server).await.expect("handshake succeeds");
}

#[tokio::test]
async fn wrong_version_is_refused_with_426_and_the_supported_version() {
    let (addr, server) = start_handshake(Acceptor::new()).await;
    let request = upgrade_request("/", "").replace("Version: 13", "Version: 8");

    let (head, _body) = exchange(addr, request.as_bytes()).await;

    assert_eq!(head.status, 426, "{head:?}");
    assert_eq!(head.header("sec-websocket-version"), Some("13"));
    assert_refused(finish(server).await, 426);
}

#[tokio::test]
async fn non_get_request_is_refused_with_400() {
    let (addr, server) = start_handshake(Acceptor::new()).await;
    let request = upgrade_request("/", "").replacen("GET", "POST", 1);

    let (head, _body) = exchange(addr, request.as_bytes()).await;

    assert_eq!(head.status, 400, "{head:?}");
    assert_eq!(head.header("sec-websocket-accept"), None);
    assert_refused(finish(server).await, 400);
}

#[tokio::test]
async fn missing_key_is_refused_with_400() {
    let (addr, server) = start_handshake(Acceptor::new()).await;
    let request = upgrade_request("/", "").replace(&format!("Sec-WebSocket-Key: {SAMPLE_KEY}\r\n"), "");
    assert!(!request.contains("Key"));

    let (head, _body) = exchange(addr, request.as_bytes()).await;

    assert_eq!(head.status, 400, "{head:?}");
    assert_refused(finish(server).await, 400);
}

#[tokio::test]
async fn bytes_that_are_not_http_are_refused_with_400() {
    let (addr, server) = start_handshake(Acceptor::new()).await;
    // The start of a TLS ClientHello: a client speaking the wrong protocol.
    let garbage = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n";

    let (head, _body) = exchange(addr, garbage).await;

    assert_eq!(head.status, 400, "{head:?}");
    assert_refused(finish(server).await, 400);
}

#[tokio::test]
async fn accept_with_sees_the_request_and_selects_a_subprotocol() {
    let (seen_tx, seen_rx) = oneshot::channel();
    let (addr, server) = start_raw(move |tcp| async move {
        let mut ws = fastws::accept_with(tcp, move |request, mut response| {
            let offered: Vec<String> = fastws::handshake::offered_protocols(request.headers())
                .map(str::to_owned)
                .collect();
            let token = request
                .headers()
                .get("x-token")
                .map(|v| v.to_str().unwrap().to_owned());
            let _ = seen_tx.send((
                request.uri().path().to_owned(),
                request.uri().query().map(str::to_owned),
                token,
                offered,
            ));
            response.headers_mut().insert(
                http::header::SEC_WEBSOCKET_PROTOCOL,
                http::HeaderValue::from_static("superchat"),
            );
            Ok(response)
        })
        .await?;
        // The connection works after the callback's response.
        let first = ws.next().await.transpose()?;
        Ok::<_, Error>(first)
    })
    .await;
    let request = upgrade_request(
        "/chat/room?id=42&x=y",
        "Sec-WebSocket-Protocol: chat, superchat\r\nX-Token: abc\r\n",
    );

    let (tcp, head, rest) = connect_with_request(addr, request.as_bytes()).await;

    assert_eq!(head.status, 101, "{head:?}");
    assert_eq!(head.header("sec-websocket-protocol"), Some("superchat"));
    assert_eq!(head.header("sec-websocket-accept"), Some(SAMPLE_ACCEPT));
    let (path, query, token, offered) = within("the callback", seen_rx).await.expect("callback ran");
    assert_eq!(path, "/chat/room");
    assert_eq!(query.as_deref(), Some("id=42&x=y"));
    assert_eq!(token.as_deref(), Some("abc"));
    assert_eq!(offered, ["chat", "superchat"]);

    let mut client = client_from(tcp, rest);
    send(&mut client, Frame::text("hi")).await;
    let first = finish(server).await.expect("server result");
    assert_eq!(first, Some(Message::text("hi")));
}

#[tokio::test]
async fn accept_with_can_reject_with_a_status_and_a_body() {
    let (addr, server) = start_raw(move |tcp| async move {
        fastws::accept_with(tcp, |request, _response| {
            assert_eq!(request.uri().path(), "/private");
            Err(Rejection::new(StatusCode::FORBIDDEN, "no entry here\n"))
        })
        .await
    })
    .await;
    let request = upgrade_request("/private", "");

    let (head, body) = exchange(addr, request.as_bytes()).await;

    assert_eq!(head.status, 403, "{head:?}");
    assert_eq!(body, b"no entry here\n");
    assert_eq!(head.header("content-length"), Some("14"));
    assert_eq!(head.header("sec-websocket-accept"), None);
    let err = assert_refused(finish(server).await, 403);
    assert!(
        matches!(err, Error::Handshake(HandshakeError::Rejected { status: 403 })),
        "{err:?}"
    );
}

#[tokio::test]
async fn frame_sent_together_with_the_request_head_is_the_first_message() {
    let (addr, server) = start(fastws::Config::default(), echo).await;
    let mut bytes = upgrade_request("/", "").into_bytes();
    bytes.extend_from_slice(&masked_frame(0x81, b"early bird", [0xde, 0xad, 0xbe, 0xef]));
    bytes.extend_from_slice(&masked_frame(0x82, b"\x00\x01", [1, 1, 1, 1]));

    // One write: head and frames arrive together.
    let (tcp, head, rest) = connect_with_request(addr, &bytes).await;
    assert_eq!(head.status, 101, "{head:?}");
    let mut client = client_from(tcp, rest);

    assert_eq!(recv(&mut client).await, Frame::text("early bird"));
    assert_eq!(recv(&mut client).await, Frame::binary(&b"\x00\x01"[..]));
    send(&mut client, Frame::close(CloseCode::Normal, "")).await;
    assert_eq!(expect_close(&mut client).await, Some(1000));
    let seen = finish(server).await.expect("server result");
    assert_eq!(
        seen[..2],
        [Message::text("early bird"), Message::binary(&b"\x00\x01"[..])]
    );
}

#[tokio::test]
async fn client_sending_its_head_too_slowly_is_cut_off_after_the_handshake_timeout() {
    let timeout = Duration::from_millis(300);
    let (addr, server) = start_raw(move |tcp| async move {
        let started = Instant::now();
        let result = Acceptor::new().handshake_timeout(timeout).accept(tcp).await;
        (result, started.elapsed())
    })
    .await;
    let tcp = within("connect", TcpStream::connect(addr))
        .await
        .expect("connect");
    let (mut reader, mut writer) = tcp.into_split();
    // A slowloris: one header line every 50 ms, never the blank line.
    let trickle = tokio::spawn(async move {
        if writer.write_all(b"GET / HTTP/1.1\r\n").await.is_err() {
            return;
        }
        for i in 0.. {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let line = format!("X-Slow-{i}: z\r\n");
            if writer.write_all(line.as_bytes()).await.is_err() {
                return;
            }
        }
    });

    // The server drops the connection: EOF (or a reset, if it arrives mid-write).
    let mut buf = Vec::new();
    let read = within("the server to cut the client off", reader.read_to_end(&mut buf)).await;
    assert!(buf.is_empty(), "server sent {:?}", String::from_utf8_lossy(&buf));
    drop(read);
    trickle.abort();

    let (result, elapsed) = finish(server).await;
    assert!(
        matches!(result, Err(Error::Handshake(HandshakeError::Timeout))),
        "{:?}",
        result.map(|_| ())
    );
    assert!(
        elapsed >= timeout - Duration::from_millis(10),
        "cut off after {elapsed:?}, before the timeout"
    );
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
}

/// The first `len` bytes of a request head that never ends: a valid start, then
/// one long header line with no blank line after it.
fn endless_head(len: usize) -> Vec<u8> {
    let mut head = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: ".to_vec();
    assert!(head.len() < len);
    head.resize(len, b'p');
    head
}

/// A complete, valid upgrade request of exactly `len` bytes.
fn request_of_len(len: usize) -> String {
    let base = upgrade_request("/", "X-Pad: \r\n");
    let request = upgrade_request("/", &format!("X-Pad: {}\r\n", "p".repeat(len - base.len())));
    assert_eq!(request.len(), len);
    request
}

/// Sends exactly `max_header_size` bytes of a head that is not finished (so the
/// server reads every byte sent) and checks the `431`.
async fn assert_head_over_limit_gets_431(max_header_size: usize) {
    let (addr, server) = start_handshake(Acceptor::new().max_header_size(max_header_size)).await;

    let (head, body) = exchange(addr, &endless_head(max_header_size)).await;

    assert_eq!(head.status, 431, "max_header_size {max_header_size}: {head:?}");
    let content_length: usize = head
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .expect("content-length");
    assert_eq!(body.len(), content_length);
    let err = assert_refused(finish(server).await, 431);
    assert!(
        matches!(err, Error::Handshake(HandshakeError::TooLarge)),
        "{err:?}"
    );
}

#[tokio::test]
async fn head_bigger_than_max_header_size_is_refused_with_431() {
    assert_head_over_limit_gets_431(4096).await;
}

#[tokio::test]
async fn head_bigger_than_an_uneven_max_header_size_is_refused_with_431() {
    for max in [1500, 3000, 5000] {
        assert_head_over_limit_gets_431(max).await;
    }
}

#[tokio::test]
async fn head_just_under_max_header_size_is_accepted() {
    let (addr, server) = start_handshake(Acceptor::new().max_header_size(4096)).await;
    let request = request_of_len(4000);

    let (_tcp, head, _rest) = connect_with_request(addr, request.as_bytes()).await;

    assert_eq!(head.status, 101, "{head:?}");
    finish(server).await.expect("handshake succeeds");
}

#[tokio::test]
async fn head_under_an_uneven_max_header_size_is_accepted() {
    for (max, len) in [(1500, 1200), (3000, 2500), (5000, 4500)] {
        let (addr, server) = start_handshake(Acceptor::new().max_header_size(max)).await;
        let request = request_of_len(len);

        let (_tcp, head, _rest) = connect_with_request(addr, request.as_bytes()).await;

        assert_eq!(head.status, 101, "max_header_size {max}, head of {len}: {head:?}");
        finish(server).await.expect("handshake succeeds");
    }
}

#[tokio::test]
async fn refusal_ends_with_a_clean_close_even_if_the_client_sent_more_than_was_read() {
    // An 8 KiB head to a server that reads at most 4 KiB of it.
    let (addr, server) = start_handshake(Acceptor::new().max_header_size(4096)).await;
    let request = request_of_len(8192);

    let (mut tcp, head, rest) = connect_with_request(addr, request.as_bytes()).await;
    assert_eq!(head.status, 431, "{head:?}");
    let mut body = rest.to_vec();
    let end = within("the server to close", tcp.read_to_end(&mut body)).await;

    // The response must arrive whole and end with EOF, not ECONNRESET.
    end.expect("clean close after the refusal");
    let content_length: usize = head
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .expect("content-length");
    assert_eq!(body.len(), content_length);
    assert_refused(finish(server).await, 431);
}

#[tokio::test]
async fn a_callback_that_removes_the_extension_answer_turns_deflate_off() {
    let (addr, server) = start_raw(|tcp| async move {
        let mut ws = fastws::accept_with(tcp, |_, mut response| {
            response
                .headers_mut()
                .remove(http::header::SEC_WEBSOCKET_EXTENSIONS);
            Ok(response)
        })
        .await?;
        let compressed = ws.is_compressed();
        let message = ws.next().await.expect("a message")?;
        futures::SinkExt::send(&mut ws, message).await?;
        Ok::<_, Error>(compressed)
    })
    .await;
    // The client offers deflate (its default) and sees no answer: none agreed.
    let (mut ws, response) = fastws::connect(format!("ws://{addr}/")).await.unwrap();
    assert!(!response.headers().contains_key("sec-websocket-extensions"));
    assert!(!ws.is_compressed());
    futures::SinkExt::send(&mut ws, Message::text("plain"))
        .await
        .unwrap();
    let echoed = within("the echo", ws.next()).await.unwrap().unwrap();
    assert_eq!(echoed, Message::text("plain"));
    assert!(
        !finish(server).await.unwrap(),
        "the server must not compress either"
    );
}
