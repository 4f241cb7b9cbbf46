//! The server's opening handshake (RFC 6455 §4.2): read and validate the HTTP/1.1
//! upgrade request, answer `101 Switching Protocols`, hand over a [`WebSocket`].

use std::time::Duration;

use bytes::{BufMut, BytesMut};
use http::header::{self, HeaderValue};
use http::{HeaderMap, Request, Response, StatusCode, Version};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{accept_key, header_has_token, header_map, is_valid_key};
use crate::codec::Role;
use crate::config::Config;
use crate::error::{Error, HandshakeError};
use crate::websocket::{Agreed, Negotiated, WebSocket};

/// Upgrades an incoming connection with the default [`Acceptor`] settings. The
/// future is one pointer wide (see [`Acceptor::accept_with`], "Memory").
///
/// # Errors
///
/// See [`Acceptor::accept_with`].
///
/// # Cancel safety
///
/// Not cancel safe: dropping the future mid-handshake leaves the stream in an
/// unknown state. Bound it with [`Acceptor::handshake_timeout`] instead.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:9001").await?;
/// let (tcp, _) = listener.accept().await?;
/// let ws = fastws::accept(tcp).await?;
/// # Ok(()) }
/// ```
#[doc(alias = "accept_async")]
pub fn accept<S>(stream: S) -> impl Future<Output = Result<WebSocket<S>, Error>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    accept_with(stream, accept_any)
}

/// Upgrades an incoming connection, letting `callback` inspect the request and
/// shape the response, with the default [`Acceptor`] settings.
///
/// See [`Acceptor::accept_with`] for the callback's contract.
#[doc(alias = "accept_hdr_async")]
pub fn accept_with<S, F>(stream: S, callback: F) -> impl Future<Output = Result<WebSocket<S>, Error>>
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: FnOnce(&Request<()>, Response<()>) -> Result<Response<()>, Rejection>,
{
    Box::pin(async move { Acceptor::new().handshake(stream, callback).await })
}

/// The callback of a plain `accept`: every valid request gets the `101` as built.
fn accept_any(_: &Request<()>, response: Response<()>) -> Result<Response<()>, Rejection> {
    Ok(response)
}

/// Settings of the server handshake, and the [`Config`] the accepted WebSocket gets.
///
/// ```
/// use std::time::Duration;
/// let acceptor = fastws::Acceptor::new()
///     .config(fastws::Config::default().max_message_size(1 << 20))
///     .handshake_timeout(Duration::from_secs(5))
///     .max_header_size(8 * 1024);
/// ```
#[derive(Debug, Clone)]
#[doc(alias = "accept_async_with_config")]
#[doc(alias = "accept_hdr_async_with_config")]
pub struct Acceptor {
    config: Config,
    handshake_timeout: Duration,
    max_header_size: usize,
}

/// The most headers a request may carry.
const MAX_HEADERS: usize = 64;

impl Default for Acceptor {
    fn default() -> Acceptor {
        Acceptor::new()
    }
}

impl Acceptor {
    /// Defaults: [`Config::default`], a 10 s handshake timeout, 16 KiB of headers.
    pub fn new() -> Acceptor {
        Acceptor {
            config: Config::default(),
            handshake_timeout: Duration::from_secs(10),
            max_header_size: 16 * 1024,
        }
    }

    /// The configuration of the accepted WebSocket.
    pub fn config(mut self, config: Config) -> Acceptor {
        self.config = config;
        self
    }

    /// How long a client may take to send its request (default 10 s); a slower one
    /// is cut off with [`HandshakeError::Timeout`].
    pub fn handshake_timeout(mut self, timeout: Duration) -> Acceptor {
        self.handshake_timeout = timeout;
        self
    }

    /// The largest request head accepted, in bytes (default 16 KiB); a larger one is
    /// answered `431` ([`HandshakeError::TooLarge`]). At most 64 headers are accepted.
    pub fn max_header_size(mut self, size: usize) -> Acceptor {
        self.max_header_size = size;
        self
    }

    /// Upgrades `stream`, accepting any valid WebSocket request.
    ///
    /// # Errors
    ///
    /// See [`Acceptor::accept_with`].
    pub fn accept<S>(&self, stream: S) -> impl Future<Output = Result<WebSocket<S>, Error>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        self.accept_with(stream, accept_any)
    }

    /// Upgrades `stream`. `callback` sees the validated request (method, path and
    /// query, headers) and the `101` response about to be sent: it may add headers
    /// (for example `Sec-WebSocket-Protocol` with a subprotocol it picked from
    /// [`offered_protocols`](super::offered_protocols)), or reject the request by
    /// returning a [`Rejection`]: the response to send instead (any status, with a
    /// body).
    ///
    /// Bytes the client sent after its request head are kept: they are the start of
    /// the WebSocket stream.
    ///
    /// # Errors
    ///
    /// [`Error::Handshake`] if the request is not a valid WebSocket upgrade (the
    /// client gets `400 Bad Request`, or `426 Upgrade Required` with
    /// `Sec-WebSocket-Version: 13` for another protocol version), is too large
    /// (`431`), is too slow, or is rejected by `callback`; [`Error::Io`] if the
    /// transport fails.
    ///
    /// # Memory
    ///
    /// The returned future is one pointer wide: the handshake's state (the request
    /// head, its headers, the timer) is on the heap while the handshake runs and
    /// freed when it ends. A connection's task that awaits it and then serves the
    /// WebSocket does not carry the handshake's size for the connection's life.
    pub fn accept_with<S, F>(
        &self,
        stream: S,
        callback: F,
    ) -> impl Future<Output = Result<WebSocket<S>, Error>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
        F: FnOnce(&Request<()>, Response<()>) -> Result<Response<()>, Rejection>,
    {
        Box::pin(self.handshake(stream, callback))
    }

    /// The handshake behind [`Acceptor::accept_with`], unboxed.
    async fn handshake<S, F>(&self, mut stream: S, callback: F) -> Result<WebSocket<S>, Error>
    where
        S: AsyncRead + AsyncWrite + Unpin,
        F: FnOnce(&Request<()>, Response<()>) -> Result<Response<()>, Rejection>,
    {
        let read = tokio::time::timeout(self.handshake_timeout, self.read_request(&mut stream)).await;
        let (request, leftover) = match read {
            Err(_elapsed) => return Err(HandshakeError::Timeout.into()),
            Ok(Err(Refusal { error, response })) => {
                if let Some(response) = response {
                    // Best effort: the request is refused whether or not this arrives.
                    let _ = refuse(&mut stream, &response).await;
                }
                return Err(error);
            }
            Ok(Ok(parsed)) => parsed,
        };

        let (response, mut negotiated) = switching_protocols(request.headers(), &self.config);
        match callback(&request, response) {
            Ok(response) => {
                negotiated.agreed = Agreed::from_response(response.headers());
                // A callback that took the extension answer out agreed to none.
                #[cfg(feature = "deflate")]
                if !response.headers().contains_key(header::SEC_WEBSOCKET_EXTENSIONS) {
                    negotiated.deflate = None;
                }
                write_response(&mut stream, &response.map(|()| String::new())).await?;
                let config = self.config.clone();
                Ok(WebSocket::after_handshake(
                    stream,
                    leftover,
                    Role::Server,
                    config,
                    negotiated,
                ))
            }
            Err(Rejection(rejection)) => {
                refuse(&mut stream, &rejection).await?;
                Err(HandshakeError::Rejected {
                    status: rejection.status().as_u16(),
                }
                .into())
            }
        }
    }

    /// Reads the request head; returns it validated, with the bytes after it.
    async fn read_request<S>(&self, stream: &mut S) -> Result<(Request<()>, BytesMut), Refusal>
    where
        S: AsyncRead + Unpin,
    {
        let mut buf = BytesMut::with_capacity(1024.min(self.max_header_size));
        loop {
            if buf.len() >= self.max_header_size {
                return Err(Refusal::new(
                    HandshakeError::TooLarge,
                    StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                ));
            }
            if buf.capacity() == buf.len() {
                buf.reserve(buf.len().max(1024).min(self.max_header_size - buf.len()));
            }
            let read = stream.read_buf(&mut buf).await.map_err(|err| Refusal {
                error: Error::Io(err),
                response: None,
            })?;
            if read == 0 {
                return Err(Refusal {
                    error: HandshakeError::UnexpectedEof.into(),
                    response: None,
                });
            }
            if let Some((request, head_len)) = parse_request(&buf)? {
                // Keep only the bytes after the head, not the head's buffer: an idle
                // connection then holds no read buffer at all.
                let leftover = BytesMut::from(&buf[head_len..]);
                return Ok((request, leftover));
            }
        }
    }
}

/// The response a server sends instead of `101` when its
/// [`accept_with`](Acceptor::accept_with) callback refuses a request.
///
/// ```
/// use fastws::handshake::server::Rejection;
/// let rejection = Rejection::new(http::StatusCode::FORBIDDEN, "no token");
/// assert_eq!(rejection.response().status(), 403);
/// ```
#[derive(Debug)]
#[doc(alias = "ErrorResponse")]
pub struct Rejection(Box<Response<String>>);

/// The upgrade request an [`accept_with`](Acceptor::accept_with) callback inspects
/// (tokio-tungstenite's `handshake::server::Request`).
#[doc(alias = "Request")]
pub type UpgradeRequest = Request<()>;

/// The `101` response an [`accept_with`](Acceptor::accept_with) callback may add
/// headers to and returns (tokio-tungstenite's `handshake::server::Response`).
///
/// ```no_run
/// use fastws::handshake::server::{Rejection, UpgradeRequest, UpgradeResponse};
///
/// fn check(request: &UpgradeRequest, response: UpgradeResponse) -> Result<UpgradeResponse, Rejection> {
///     match request.headers().get("authorization") {
///         Some(_) => Ok(response),
///         None => Err(Rejection::new(http::StatusCode::UNAUTHORIZED, "no token")),
///     }
/// }
/// # async fn run(tcp: tokio::net::TcpStream) -> Result<(), fastws::Error> {
/// let ws = fastws::accept_with(tcp, check).await?;
/// # Ok(()) }
/// ```
#[doc(alias = "Response")]
pub type UpgradeResponse = Response<()>;

impl Rejection {
    /// A response with `status` and a plain-text `body`.
    pub fn new(status: StatusCode, body: impl Into<String>) -> Rejection {
        let mut response = Response::new(body.into());
        *response.status_mut() = status;
        Rejection(Box::new(response))
    }

    /// The response to be sent.
    pub fn response(&self) -> &Response<String> {
        &self.0
    }

    /// The response to be sent, to add headers.
    pub fn response_mut(&mut self) -> &mut Response<String> {
        &mut self.0
    }

    /// Takes the response to be sent.
    pub fn into_inner(self) -> Response<String> {
        *self.0
    }
}

impl From<Response<String>> for Rejection {
    fn from(response: Response<String>) -> Rejection {
        Rejection(Box::new(response))
    }
}

/// The response of a refusal, or a plain `400 Bad Request` for one without.
impl From<Refusal> for Rejection {
    fn from(refusal: Refusal) -> Rejection {
        let response = refusal.response.map(|response| *response);
        Rejection::from(response.unwrap_or_else(|| {
            let mut response = Response::new(String::new());
            *response.status_mut() = StatusCode::BAD_REQUEST;
            response
        }))
    }
}

/// A handshake failure and the response the client gets for it.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub(crate) error: Error,
    pub(crate) response: Option<Box<Response<String>>>,
}

impl Refusal {
    fn new(error: HandshakeError, status: StatusCode) -> Refusal {
        let mut response = Response::new(format!("{error}\n"));
        *response.status_mut() = status;
        if status == StatusCode::UPGRADE_REQUIRED {
            let headers = response.headers_mut();
            headers.insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
            // RFC 9110 §15.5.22: a 426 names the protocol to upgrade to.
            headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        }
        Refusal {
            error: error.into(),
            response: Some(Box::new(response)),
        }
    }

    pub(crate) fn bad_request(reason: &'static str) -> Refusal {
        Refusal::new(
            HandshakeError::Invalid {
                reason,
                status: Some(400),
            },
            StatusCode::BAD_REQUEST,
        )
    }
}

/// Parses and validates a request head (RFC 6455 §4.2.1); `Ok(None)` while
/// incomplete.
fn parse_request(buf: &[u8]) -> Result<Option<(Request<()>, usize)>, Refusal> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    let head_len = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Refusal::new(
                HandshakeError::TooLarge,
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ));
        }
        Err(_) => return Err(Refusal::bad_request("malformed http request")),
    };
    if parsed.method != Some("GET") {
        return Err(Refusal::bad_request("upgrade request method is not GET"));
    }
    if parsed.version != Some(1) {
        return Err(Refusal::bad_request("upgrade request is not HTTP/1.1"));
    }
    let map = header_map(parsed.headers).ok_or_else(|| Refusal::bad_request("invalid header"))?;
    let mut request = Request::builder()
        .method(http::Method::GET)
        .uri(parsed.path.unwrap_or("/"))
        .version(Version::HTTP_11)
        .body(())
        .map_err(|_| Refusal::bad_request("invalid request target"))?;
    *request.headers_mut() = map;
    validate_upgrade(request.headers())?;
    Ok(Some((request, head_len)))
}

/// The `101 Switching Protocols` answer to a validated upgrade request, with the
/// extensions accepted from its offers (RFC 6455 §4.2.2). Whoever sends the answer
/// reads `agreed` off it, after any edits.
pub(crate) fn switching_protocols(request: &HeaderMap, config: &Config) -> (Response<()>, Negotiated) {
    let mut response = Response::new(());
    switch_to_websocket(&mut response, request[header::SEC_WEBSOCKET_KEY].as_bytes());
    let negotiated = negotiate_extensions(request, response.headers_mut(), config);
    (response, negotiated)
}

/// Makes `response` the `101 Switching Protocols` that answers `key` (RFC 6455 §4.2.2).
pub(crate) fn switch_to_websocket<B>(response: &mut Response<B>, key: &[u8]) {
    let accept = HeaderValue::from_str(&accept_key(key)).expect("base64 is a valid header value");
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
}

/// Accepts the extensions offered that this server supports, adding them to the
/// response.
pub(crate) fn negotiate_extensions(
    request: &HeaderMap,
    response: &mut HeaderMap,
    config: &Config,
) -> Negotiated {
    #[cfg(feature = "deflate")]
    {
        let deflate = crate::deflate::negotiation::negotiate_offer(request, config.get_deflate());
        deflate.map_or_else(Negotiated::default, |(params, answer)| {
            let answer = HeaderValue::try_from(answer).expect("the answer is plain ASCII");
            response.insert(header::SEC_WEBSOCKET_EXTENSIONS, answer);
            Negotiated {
                deflate: Some(params),
                ..Negotiated::default()
            }
        })
    }
    #[cfg(not(feature = "deflate"))]
    {
        let _ = (request, response, config);
        Negotiated::default()
    }
}

/// `Sec-WebSocket-Version: 13` (RFC 6455 §4.2.1 item 6), else `426 Upgrade Required`
/// naming the version we speak (§4.4). HTTP/2's extended CONNECT keeps the rule
/// (RFC 8441 §5).
pub(crate) fn validate_version(headers: &HeaderMap) -> Result<(), Refusal> {
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .map(HeaderValue::as_bytes)
        != Some(b"13")
    {
        return Err(Refusal::new(
            HandshakeError::Invalid {
                reason: "unsupported Sec-WebSocket-Version",
                status: Some(426),
            },
            StatusCode::UPGRADE_REQUIRED,
        ));
    }
    Ok(())
}

/// The header rules of RFC 6455 §4.2.1.
pub(crate) fn validate_upgrade(headers: &HeaderMap) -> Result<(), Refusal> {
    if !headers.contains_key(header::HOST) {
        return Err(Refusal::bad_request("missing Host header"));
    }
    if !header_has_token(headers, header::UPGRADE, "websocket") {
        return Err(Refusal::bad_request("missing Upgrade: websocket"));
    }
    if !header_has_token(headers, header::CONNECTION, "upgrade") {
        return Err(Refusal::bad_request("missing Connection: upgrade"));
    }
    validate_version(headers)?;
    let mut keys = headers.get_all(header::SEC_WEBSOCKET_KEY).iter();
    match (keys.next(), keys.next()) {
        (Some(key), None) if is_valid_key(key.as_bytes()) => Ok(()),
        _ => Err(Refusal::bad_request("missing or invalid Sec-WebSocket-Key")),
    }
}

/// Sends a refusal and closes gracefully (RFC 9112 §9.6): shut down writing, then
/// drain what the client still sends for a moment, so unread request bytes do not
/// turn the close into a reset that could destroy the response.
async fn refuse<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    response: &Response<String>,
) -> Result<(), Error> {
    write_response(stream, response).await?;
    stream.shutdown().await?;
    let drain = async {
        // On the heap: an array here would sit in every connection's task state.
        let mut sink = vec![0u8; 4096];
        let mut drained = 0;
        while drained < 64 * 1024 {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_millis(500), drain).await;
    Ok(())
}

/// Writes an HTTP/1.1 response head and body.
async fn write_response<S: AsyncWrite + Unpin>(
    stream: &mut S,
    response: &Response<String>,
) -> Result<(), Error> {
    let status = response.status();
    let mut head = BytesMut::with_capacity(256 + response.body().len());
    head.put_slice(b"HTTP/1.1 ");
    head.put_slice(status.as_str().as_bytes());
    head.put_u8(b' ');
    head.put_slice(status.canonical_reason().unwrap_or("Unknown").as_bytes());
    head.put_slice(b"\r\n");
    for (name, value) in response.headers() {
        head.put_slice(name.as_str().as_bytes());
        head.put_slice(b": ");
        head.put_slice(value.as_bytes());
        head.put_slice(b"\r\n");
    }
    if status != StatusCode::SWITCHING_PROTOCOLS {
        if !response.headers().contains_key(header::CONTENT_LENGTH) {
            head.put_slice(format!("content-length: {}\r\n", response.body().len()).as_bytes());
        }
        head.put_slice(b"connection: close\r\n");
    }
    head.put_slice(b"\r\n");
    head.put_slice(response.body().as_bytes());
    stream.write_all(&head).await?;
    stream.flush().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "GET /chat?room=1 HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n\
        Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Sec-WebSocket-Version: 13\r\n\r\n";

    fn status_of(request: &str) -> Option<u16> {
        match parse_request(request.as_bytes()) {
            Ok(_) => None,
            Err(refusal) => refusal.response.map(|r| r.status().as_u16()),
        }
    }

    #[test]
    fn valid_request_parses_with_path_and_headers() {
        let (request, len) = parse_request(VALID.as_bytes()).unwrap().unwrap();
        assert_eq!(len, VALID.len());
        assert_eq!(request.uri().path(), "/chat");
        assert_eq!(request.uri().query(), Some("room=1"));
        assert_eq!(request.headers()["host"], "example.com");
    }

    #[test]
    fn partial_request_needs_more_bytes() {
        assert!(parse_request(&VALID.as_bytes()[..40]).unwrap().is_none());
    }

    #[test]
    fn invalid_requests_get_400_or_426() {
        assert_eq!(status_of(&VALID.replace("GET", "POST")), Some(400));
        assert_eq!(status_of(&VALID.replace("HTTP/1.1", "HTTP/1.0")), Some(400));
        assert_eq!(
            status_of(&VALID.replace("Upgrade: websocket", "Upgrade: h2c")),
            Some(400)
        );
        assert_eq!(
            status_of(&VALID.replace("keep-alive, Upgrade", "keep-alive")),
            Some(400)
        );
        assert_eq!(status_of(&VALID.replace("Version: 13", "Version: 8")), Some(426));
        assert_eq!(
            status_of(&VALID.replace("dGhlIHNhbXBsZSBub25jZQ==", "c2hvcnQ=")),
            Some(400)
        );
        assert_eq!(status_of(&VALID.replace("Host: example.com\r\n", "")), Some(400));
        assert_eq!(status_of("GARBAGE\0\r\n\r\n"), Some(400));
    }

    #[test]
    fn too_many_headers_get_431() {
        let many: String = (0..MAX_HEADERS).map(|i| format!("X-{i}: v\r\n")).collect();
        let request = VALID.replacen("\r\n", &format!("\r\n{many}"), 1);
        assert_eq!(status_of(&request), Some(431));
    }
}
