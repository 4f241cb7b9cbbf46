//! `ClientRequest::follow_redirects`: 3xx answers to the upgrade request followed
//! to the server that accepts, within the bound, never from `wss://` to `ws://`,
//! and without the request's credentials once the origin changes.
#![cfg(feature = "rustls")]

#[path = "common/proxies.rs"]
mod proxies;

use std::sync::{Arc, Mutex};

use fastws::{ClientRequest, Error, HandshakeError};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// The request heads a server received, in order.
type Heads = Arc<Mutex<Vec<String>>>;

/// A server answering every request with `status` and the `Location` that
/// `location(its port, the request's path)` gives.
async fn redirector(status: u16, location: impl Fn(u16, &str) -> String + Send + 'static) -> (u16, Heads) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let heads = Heads::default();
    let seen = heads.clone();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let head = read_head(&mut tcp).await;
            let path = head.split(' ').nth(1).unwrap_or("").to_owned();
            seen.lock().unwrap().push(head);
            let location = location(port, &path);
            let answer =
                format!("HTTP/1.1 {status} Moved\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n");
            let _ = tcp.write_all(answer.as_bytes()).await;
        }
    });
    (port, heads)
}

async fn read_head(tcp: &mut tokio::net::TcpStream) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0];
        if tcp.read(&mut byte).await.unwrap_or(0) == 0 {
            break;
        }
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// A WebSocket echo server that records the headers of each upgrade request.
async fn recording_echo() -> (u16, Heads) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let heads = Heads::default();
    let seen = heads.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let accepted = fastws::accept_with(tcp, |request, response| {
                    let mut head = format!("GET {}\r\n", request.uri());
                    for (name, value) in request.headers() {
                        head.push_str(&format!("{name}: {}\r\n", value.to_str().unwrap_or("?")));
                    }
                    seen.lock().unwrap().push(head);
                    Ok(response)
                });
                let Ok(mut ws) = accepted.await else { return };
                while let Some(Ok(message)) = ws.next().await {
                    if message.is_data() {
                        let _ = ws.send(message).await;
                    }
                }
            });
        }
    });
    (port, heads)
}

fn with_credentials(url: String) -> ClientRequest {
    ClientRequest::new(url)
        .header("authorization", "Bearer secret-token")
        .header("cookie", "session=1")
        .header("x-trace", "kept")
        .no_proxy()
}

#[tokio::test]
async fn without_opting_in_a_redirect_is_a_refusal_with_its_location() {
    let (echo, _) = recording_echo().await;
    let (port, _) = redirector(301, move |_, _| format!("ws://127.0.0.1:{echo}/")).await;
    let err = fastws::connect(with_credentials(format!("ws://127.0.0.1:{port}/")))
        .await
        .unwrap_err();
    let response = err
        .handshake()
        .and_then(HandshakeError::response)
        .expect("a refusal");
    assert_eq!(response.status(), 301);
    assert_eq!(response.headers()["location"], format!("ws://127.0.0.1:{echo}/"));
}

#[tokio::test]
async fn same_origin_redirects_keep_credentials_and_other_hosts_do_not_get_them() {
    let (echo, echo_heads) = recording_echo().await;
    // 127.0.0.1 and localhost are different hosts, so different origins.
    let (far, far_heads) = redirector(307, move |_, _| format!("http://localhost:{echo}/final?x=1")).await;
    // `/` moves within its origin (a relative location), `/moved` to another port.
    let (near, near_heads) = redirector(308, move |_, path| match path {
        "/" => "moved".to_owned(),
        _ => format!("ws://127.0.0.1:{far}/elsewhere"),
    })
    .await;

    let request = with_credentials(format!("ws://127.0.0.1:{near}/")).follow_redirects(3);
    let (mut ws, response) = fastws::connect(request).await.unwrap();
    assert_eq!(response.status(), 101);
    ws.send(fastws::Message::text("arrived")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap().as_text(), Some("arrived"));

    let near_heads = near_heads.lock().unwrap();
    let moved = near_heads[1].to_ascii_lowercase();
    assert!(moved.starts_with("get /moved "), "{moved}");
    assert!(
        moved.contains("authorization: bearer secret-token") && moved.contains("cookie: session=1"),
        "{moved}"
    );
    let far_head = far_heads.lock().unwrap()[0].to_ascii_lowercase();
    assert!(far_head.starts_with("get /elsewhere "), "{far_head}");
    // A different port is a different origin too.
    assert!(
        !far_head.contains("authorization") && !far_head.contains("cookie"),
        "{far_head}"
    );
    let final_head = echo_heads.lock().unwrap()[0].to_ascii_lowercase();
    assert!(final_head.starts_with("get /final?x=1"), "{final_head}");
    assert!(
        final_head.contains(&format!("host: localhost:{echo}")),
        "{final_head}"
    );
    assert!(
        !final_head.contains("authorization") && !final_head.contains("cookie"),
        "{final_head}"
    );
    assert!(final_head.contains("x-trace: kept"), "{final_head}");
}

#[tokio::test]
async fn a_redirect_with_a_chunked_body_on_a_kept_connection_is_followed_at_once() {
    let (echo, _) = recording_echo().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut tcp, _)) = listener.accept().await {
            read_head(&mut tcp).await;
            let answer = format!(
                "HTTP/1.1 302 Found\r\nLocation: ws://127.0.0.1:{echo}/\r\n\
                 Transfer-Encoding: chunked\r\n\r\n5\r\nmoved\r\n"
            );
            let _ = tcp.write_all(answer.as_bytes()).await;
            // Neither the last chunk nor a close: a keep-alive server between bodies.
            held.push(tcp);
        }
    });
    let request = ClientRequest::new(format!("ws://127.0.0.1:{port}/"))
        .no_proxy()
        .follow_redirects(1)
        .timeout(std::time::Duration::from_secs(5));
    let started = std::time::Instant::now();
    let (mut ws, _) = fastws::connect(request).await.unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    ws.send(fastws::Message::text("followed")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap().as_text(), Some("followed"));
}

#[tokio::test]
async fn a_redirect_loop_stops_at_the_bound() {
    let (port, heads) = redirector(302, |port, _| format!("ws://127.0.0.1:{port}/again")).await;
    let request = ClientRequest::new(format!("ws://127.0.0.1:{port}/"))
        .no_proxy()
        .follow_redirects(4);
    match fastws::connect(request).await {
        Err(Error::Handshake(HandshakeError::Redirect { location, reason })) => {
            assert_eq!(reason, "too many redirects");
            assert!(location.ends_with("/again"), "{location}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        heads.lock().unwrap().len(),
        5,
        "the first request and 4 redirects"
    );
}

#[tokio::test]
async fn wss_is_never_redirected_to_ws() {
    let pki = proxies::pki();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let acceptor = tokio_rustls::TlsAcceptor::from(pki.server.clone());
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let Ok(mut tls) = acceptor.accept(tcp).await else {
                continue;
            };
            let mut head = [0; 1024];
            let _ = tls.read(&mut head).await;
            let answer = format!(
                "HTTP/1.1 301 Moved\r\nLocation: ws://127.0.0.1:{port}/\r\nContent-Length: 0\r\n\r\n"
            );
            let _ = tls.write_all(answer.as_bytes()).await;
            let _ = tls.shutdown().await;
        }
    });
    let request = ClientRequest::new(format!("wss://localhost:{port}/"))
        .tls_config(pki.client.clone())
        .no_proxy()
        .follow_redirects(5);
    match fastws::connect(request).await {
        Err(Error::Handshake(HandshakeError::Redirect { reason, .. })) => {
            assert!(reason.contains("tls"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
}
