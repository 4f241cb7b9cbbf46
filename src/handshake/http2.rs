//! WebSockets over HTTP/2, client side (RFC 8441; feature `http2`): one HTTP/2
//! connection carries many WebSockets, each opened as a stream with an extended
//! `CONNECT`.
//!
//! ```no_run
//! # async fn run() -> Result<(), fastws::Error> {
//! use futures_util::{SinkExt, StreamExt};
//! use fastws::handshake::http2::Http2Connection;
//!
//! let connection = Http2Connection::connect("wss://example.com/").await?;
//! let (mut chat, _) = connection.open("wss://example.com/chat").await?;
//! let (mut feed, _) = connection.open("wss://example.com/feed").await?;
//! chat.send(fastws::Message::text("hello")).await?;
//! let update = feed.next().await;
//! # Ok(()) }
//! ```
//!
//! The server must allow extended `CONNECT`: the connection waits for its
//! `SETTINGS_ENABLE_CONNECT_PROTOCOL` before any WebSocket is opened (RFC 8441 §3),
//! and fails with [`HandshakeError::Invalid`] when it does not come within
//! [`SETTINGS_WAIT`]. As over HTTP/1.1, the request's subprotocols, headers and
//! [`Config`](crate::Config) apply, and permessage-deflate is offered and
//! negotiated. Each [`Http2Connection::open`] request should name the host the
//! connection was made to: HTTP/2 sends its URL's authority as `:authority`, and
//! nothing checks it against the connection's host or certificate.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderValue};
use http::{Method, Request, Response};
use http_body_util::Empty;
use hyper::client::conn::http2::SendRequest;
use hyper::upgrade::Upgraded;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};

use super::client::ClientRequest;
use crate::codec::Role;
use crate::error::{Error, HandshakeError};
use crate::websocket::WebSocket;

/// How long [`Http2Connection::handshake`] waits for the server to announce
/// extended `CONNECT` (its first `SETTINGS` normally carries it).
pub const SETTINGS_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// How often the wait for that setting looks again.
const SETTINGS_CHECK: std::time::Duration = std::time::Duration::from_millis(2);

/// A WebSocket carried by one stream of an HTTP/2 connection.
pub type Http2WebSocket = WebSocket<TokioIo<Upgraded>>;

/// An HTTP/2 connection that opens WebSockets as its streams (RFC 8441). Cheap to
/// clone: clones share the connection, which lives while any clone or WebSocket
/// does.
#[derive(Debug, Clone)]
pub struct Http2Connection {
    sender: SendRequest<Empty<Bytes>>,
}

impl Http2Connection {
    /// Connects to the host of `request`'s URL and speaks HTTP/2: over TLS with ALPN
    /// `h2` for `wss://` (the request's [`tls_config`](ClientRequest::tls_config),
    /// else the webpki roots), cleartext with prior knowledge for `ws://`, through
    /// the request's proxy as [`connect`](crate::connect) would. Only the URL's
    /// host, the proxy, the TLS settings and the timeout are used here.
    ///
    /// # Errors
    ///
    /// As [`connect`](crate::connect) for the URL, DNS, TCP and TLS;
    /// [`HandshakeError::Invalid`] when TLS did not agree on `h2`, and
    /// [`Error::Io`] when the HTTP/2 handshake fails.
    pub async fn connect(request: impl Into<ClientRequest>) -> Result<Http2Connection, Error> {
        let request = request.into();
        let url = request.url()?;
        tokio::time::timeout(request.timeout, async {
            let stream = request.open(&url, Some(b"h2")).await?;
            if url.scheme() == "wss" && stream.alpn_protocol() != Some(b"h2") {
                return Err(HandshakeError::Invalid {
                    reason: "the server did not agree to HTTP/2 (ALPN h2)",
                    status: None,
                }
                .into());
            }
            Http2Connection::handshake(stream).await
        })
        .await
        .map_err(|_| HandshakeError::Timeout)?
    }

    /// Speaks HTTP/2 over a transport the caller opened (after ALPN agreed on `h2`,
    /// or cleartext with prior knowledge), and waits for the server to allow
    /// extended `CONNECT`. The connection is then driven by a task of its own on the
    /// current tokio runtime.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the HTTP/2 handshake fails or the connection ends;
    /// [`HandshakeError::Invalid`] when the server has not sent
    /// `SETTINGS_ENABLE_CONNECT_PROTOCOL` within [`SETTINGS_WAIT`].
    pub async fn handshake<S>(io: S) -> Result<Http2Connection, Error>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (sender, mut connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
                .await
                .map_err(|err| Error::Io(std::io::Error::other(err)))?;
        // RFC 8441 §3: no extended CONNECT before the server's setting says it may.
        // hyper applies the setting in a task of its own and tells nobody, so it is
        // checked every few milliseconds while the connection is driven.
        let deadline = tokio::time::Instant::now() + SETTINGS_WAIT;
        let mut check = tokio::time::interval(SETTINGS_CHECK);
        std::future::poll_fn(|cx| {
            loop {
                if connection.is_extended_connect_protocol_enabled() {
                    return Poll::Ready(Ok(()));
                }
                if tokio::time::Instant::now() >= deadline {
                    return Poll::Ready(Err(Error::from(HandshakeError::Invalid {
                        reason: "the server did not enable extended CONNECT (RFC 8441)",
                        status: None,
                    })));
                }
                if let Poll::Ready(end) = Pin::new(&mut connection).poll(cx) {
                    let err = match end {
                        Ok(()) => std::io::ErrorKind::UnexpectedEof.into(),
                        Err(err) => std::io::Error::other(err),
                    };
                    return Poll::Ready(Err(Error::Io(err)));
                }
                if check.poll_tick(cx).is_pending() {
                    return Poll::Pending;
                }
            }
        })
        .await?;
        tokio::spawn(connection);
        Ok(Http2Connection { sender })
    }

    /// Opens a WebSocket as a new stream: an extended `CONNECT` with
    /// `:protocol = websocket` for the request's URL (its path and query), its
    /// subprotocols, headers and permessage-deflate offer (RFC 8441 §4, §5).
    ///
    /// # Errors
    ///
    /// [`HandshakeError::Refused`] for an answer other than 2xx (with its status and
    /// headers), [`HandshakeError::Invalid`] for a subprotocol or extension that was
    /// not offered, [`HandshakeError::Timeout`] past the request's timeout, and
    /// [`Error::Io`] when the stream cannot be opened.
    pub async fn open(
        &self,
        request: impl Into<ClientRequest>,
    ) -> Result<(Http2WebSocket, Response<()>), Error> {
        let request = request.into();
        let url = request.url()?;
        tokio::time::timeout(request.timeout, async {
            let mut sender = self.sender.clone();
            let connect = extended_connect(&request, &url)?;
            sender
                .ready()
                .await
                .map_err(|err| Error::Io(std::io::Error::other(err)))?;
            let mut response = sender
                .send_request(connect)
                .await
                .map_err(|err| Error::Io(std::io::Error::other(err)))?;
            if !response.status().is_success() {
                let (parts, _body) = response.into_parts();
                return Err(
                    HandshakeError::Refused(Box::new(Response::from_parts(parts, Bytes::new()))).into(),
                );
            }
            let negotiated = request.check_agreement(response.headers())?;
            let upgraded = hyper::upgrade::on(&mut response)
                .await
                .map_err(|err| Error::Io(std::io::Error::other(err)))?;
            let (parts, _body) = response.into_parts();
            let ws = WebSocket::after_handshake(
                TokioIo::new(upgraded),
                BytesMut::new(),
                Role::Client,
                request.config.clone(),
                negotiated,
            );
            Ok((ws, Response::from_parts(parts, ())))
        })
        .await
        .map_err(|_| HandshakeError::Timeout)?
    }
}

/// The extended `CONNECT` of RFC 8441 §4 for `url`.
fn extended_connect(request: &ClientRequest, url: &url::Url) -> Result<Request<Empty<Bytes>>, Error> {
    let scheme = if url.scheme() == "wss" { "https" } else { "http" };
    let authority = match url.port() {
        Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_owned(),
    };
    let path = match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    };
    let mut connect = Request::builder()
        .method(Method::CONNECT)
        .uri(format!("{scheme}://{authority}{path}"))
        .header(header::SEC_WEBSOCKET_VERSION, "13")
        .body(Empty::new())
        .map_err(|err| Error::InvalidUrl(err.to_string()))?;
    let headers = connect.headers_mut();
    #[cfg(feature = "deflate")]
    if request.config.get_deflate().enabled {
        let offer = crate::deflate::negotiation::client_offer(request.config.get_deflate());
        headers.insert(
            header::SEC_WEBSOCKET_EXTENSIONS,
            HeaderValue::try_from(offer).expect("the offer is plain ASCII"),
        );
    }
    if !request.protocols.is_empty() {
        let protocols = HeaderValue::try_from(request.protocols.join(", "))
            .map_err(|_| Error::InvalidUrl("invalid subprotocol name".to_owned()))?;
        headers.insert(header::SEC_WEBSOCKET_PROTOCOL, protocols);
    }
    for (name, value) in &request.headers {
        headers.append(name, value.clone());
    }
    connect
        .extensions_mut()
        .insert(hyper::ext::Protocol::from_static("websocket"));
    Ok(connect)
}
