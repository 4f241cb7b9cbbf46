//! The client's opening handshake (RFC 6455 §4.1): [`connect`] to a `ws://` or
//! `wss://` URL, or [`client_handshake`] over a stream you already have.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::{BufMut, Bytes, BytesMut};
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Response, StatusCode};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use url::Url;

use super::proxy::Proxy;
use super::redirect;
use super::{accept_key, header_has_token, header_map};
use crate::codec::Role;
use crate::config::Config;
use crate::error::{Error, HandshakeError};
use crate::websocket::{Agreed, Negotiated, WebSocket};

pub use super::tls_stream::MaybeTlsStream;

/// The most of a refusal's body kept in [`HandshakeError::Refused`].
const MAX_REFUSAL_BODY: usize = 64 * 1024;
/// The largest response head accepted.
const MAX_RESPONSE_HEAD: usize = 16 * 1024;
/// The most headers a response may carry.
const MAX_HEADERS: usize = 64;

/// Connects to a `ws://` or `wss://` URL: resolves the host, opens TCP (with
/// `TCP_NODELAY`), adds TLS for `wss://`, and runs the opening handshake.
///
/// The proxy variables of the environment apply (`HTTPS_PROXY`, `HTTP_PROXY`,
/// `ALL_PROXY`, `NO_PROXY`, as curl reads them; see
/// [`ClientRequest::proxy_from_env`]); [`ClientRequest::proxy`] names one instead
/// and [`ClientRequest::no_proxy`] connects directly.
///
/// Returns the WebSocket and the server's `101` response, whose headers carry the
/// negotiated subprotocol (`Sec-WebSocket-Protocol`). Pass a [`ClientRequest`] to add
/// headers, offer subprotocols or set limits.
///
/// ```no_run
/// use futures_util::{SinkExt, StreamExt};
///
/// # async fn run() -> Result<(), fastws::Error> {
/// let (mut ws, _response) = fastws::connect("ws://127.0.0.1:9001/").await?;
/// ws.send(fastws::Message::text("hello")).await?;
/// let echo = ws.next().await;
/// # Ok(()) }
/// ```
///
/// # Errors
///
/// Each failure is its own variant: [`Error::InvalidUrl`] (a bad URL or scheme),
/// [`Error::Dns`], [`Error::Connect`] (for example, connection refused),
/// [`Error::Tls`], [`HandshakeError::Timeout`] (the whole of it, proxy and
/// redirects included, took longer than [`ClientRequest::timeout`]),
/// [`HandshakeError::Refused`] (a status other than `101`, with the response),
/// [`HandshakeError::Invalid`] (a `101` that breaks RFC 6455 §4.1),
/// [`HandshakeError::Proxy`] (the proxy refused the tunnel) and
/// [`HandshakeError::Redirect`] (a redirect not followed). Failing to reach a
/// proxy is [`Error::Dns`] or [`Error::Connect`], naming the proxy.
///
/// # Cancel safety
///
/// Not cancel safe: a dropped future leaves no usable connection.
#[doc(alias = "connect_async")]
pub async fn connect(
    request: impl Into<ClientRequest>,
) -> Result<(WebSocket<MaybeTlsStream>, Response<()>), Error> {
    request.into().connect().await
}

/// Runs the client handshake over a stream the caller opened (a proxy tunnel, a
/// Unix socket, an in-memory duplex). The request's URL supplies the `Host` header
/// and the path; its scheme must still be `ws` or `wss`, but no TLS is added, no
/// proxy is used, and a redirect is returned as [`HandshakeError::Refused`] (the
/// stream leads to one server only).
///
/// # Errors
///
/// As [`connect`], less the errors of resolving and connecting.
#[doc(alias = "client_async")]
pub async fn client_handshake<S>(
    stream: S,
    request: impl Into<ClientRequest>,
) -> Result<(WebSocket<S>, Response<()>), Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let request = request.into();
    let url = request.url()?;
    tokio::time::timeout(request.timeout, request.handshake(stream, &url))
        .await
        .map_err(|_| HandshakeError::Timeout)?
}

/// A client's upgrade request: the URL, extra headers, subprotocols to offer, and the
/// [`Config`] of the resulting WebSocket.
///
/// ```
/// let request = fastws::ClientRequest::new("wss://example.com/chat")
///     .header("authorization", "Bearer token")
///     .origin("https://example.com")
///     .protocol("chat.v2")
///     .config(fastws::Config::default().max_message_size(1 << 20));
/// ```
#[derive(Debug, Clone)]
pub struct ClientRequest {
    url: Result<Url, String>,
    pub(super) headers: HeaderMap,
    pub(super) protocols: Vec<String>,
    pub(super) config: Config,
    pub(super) timeout: Duration,
    #[cfg(feature = "rustls")]
    pub(super) tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    pub(super) proxy: ProxyChoice,
    max_redirects: usize,
}

/// Where a request's proxy comes from.
#[derive(Debug, Clone)]
pub(super) enum ProxyChoice {
    /// The environment's variables, read when connecting.
    Environment,
    /// This proxy, or the reason its URL was not one.
    Explicit(Result<Proxy, String>),
    /// None: connect directly.
    Direct,
}

impl ClientRequest {
    /// A request for `url` (`ws://` or `wss://`); a malformed URL is reported when
    /// connecting, as [`Error::InvalidUrl`].
    pub fn new(url: impl AsRef<str>) -> ClientRequest {
        ClientRequest {
            url: Url::parse(url.as_ref()).map_err(|err| format!("{err}: {}", url.as_ref())),
            headers: HeaderMap::new(),
            protocols: Vec::new(),
            config: Config::default(),
            timeout: Duration::from_secs(30),
            #[cfg(feature = "rustls")]
            tls: None,
            proxy: ProxyChoice::Environment,
            max_redirects: 0,
        }
    }

    /// Adds a header to the request (for example `Authorization` or a cookie). A
    /// name or value that is not valid HTTP is reported when connecting.
    pub fn header(mut self, name: &str, value: &str) -> ClientRequest {
        match (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            (Ok(name), Ok(value)) => {
                self.headers.append(name, value);
            }
            _ => self.url = Err(format!("invalid header {name:?}")),
        }
        self
    }

    /// Sets the `Origin` header, as a browser would.
    pub fn origin(self, origin: &str) -> ClientRequest {
        self.header("origin", origin)
    }

    /// Offers a subprotocol (`Sec-WebSocket-Protocol`); call it once per protocol,
    /// most preferred first. The server's choice is in the response's headers.
    pub fn protocol(mut self, protocol: &str) -> ClientRequest {
        self.protocols.push(protocol.to_owned());
        self
    }

    /// The configuration of the resulting WebSocket.
    pub fn config(mut self, config: Config) -> ClientRequest {
        self.config = config;
        self
    }

    /// A bound on resolving, connecting, the proxy's tunnel, TLS, the handshake and
    /// any redirects together (default 30 s): a proxy that accepts and never
    /// answers ends in [`HandshakeError::Timeout`].
    pub fn timeout(mut self, timeout: Duration) -> ClientRequest {
        self.timeout = timeout;
        self
    }

    /// The rustls configuration for `wss://` (for a private CA or client
    /// certificates), and for the TLS to an `https://` proxy. By default, the
    /// Mozilla roots of `webpki-roots` are trusted, and with the `native-roots`
    /// feature the operating system's store as well.
    #[cfg(feature = "rustls")]
    pub fn tls_config(mut self, config: std::sync::Arc<rustls::ClientConfig>) -> ClientRequest {
        self.tls = Some(config);
        self
    }

    /// Connects through this proxy, whatever the environment says: `http://`,
    /// `https://`, `socks5://` or `socks5h://`, with `user:password@` for
    /// credentials (see [`Proxy`]). A malformed URL is reported when connecting, as
    /// [`Error::InvalidUrl`].
    ///
    /// ```
    /// let request = fastws::ClientRequest::new("wss://example.com/feed")
    ///     .proxy("http://user:secret@proxy.corp.example:3128");
    /// ```
    pub fn proxy(mut self, url: &str) -> ClientRequest {
        self.proxy = ProxyChoice::Explicit(Proxy::new(url).map_err(|err| match err {
            Error::InvalidUrl(reason) => reason,
            other => other.to_string(),
        }));
        self
    }

    /// Connects directly, whatever the environment says.
    pub fn no_proxy(mut self) -> ClientRequest {
        self.proxy = ProxyChoice::Direct;
        self
    }

    /// Takes the proxy from the environment when connecting: the default. As curl:
    ///
    /// - `wss://` uses `https_proxy`, else `HTTPS_PROXY`; `ws://` uses
    ///   `http_proxy`, else `HTTP_PROXY` (not in a CGI program, where
    ///   `REQUEST_METHOD` is set and a request's `Proxy:` header becomes
    ///   `HTTP_PROXY`: curl never reads it, Go not in CGI); both fall back to
    ///   `all_proxy`, else `ALL_PROXY`. Empty counts as unset; a value without a
    ///   scheme is an HTTP proxy.
    /// - `no_proxy` (else `NO_PROXY`) lists hosts reached directly, separated by
    ///   commas or spaces: `*` for all; a name, covering its subdomains
    ///   (`example.com` covers `api.example.com`, not `badexample.com`); an
    ///   address, or a CIDR block (`10.0.0.0/8`, `fd00::/8`) for hosts written as
    ///   addresses.
    /// - Loopback is not exempt: list `localhost,127.0.0.1` in `NO_PROXY` to reach
    ///   local servers directly while a proxy is set (Go's `net/http` exempts them
    ///   silently; curl does not).
    pub fn proxy_from_env(mut self) -> ClientRequest {
        self.proxy = ProxyChoice::Environment;
        self
    }

    /// Follows up to `max` redirects (301, 302, 307 and 308 answers with a
    /// `Location`) instead of failing with [`HandshakeError::Refused`]; 0, the
    /// default, follows none. Each hop opens a new connection (the proxy rules
    /// apply to the new host). An `http://` or `https://` location is taken as
    /// `ws://` or `wss://`. Never followed, as [`HandshakeError::Redirect`]: one
    /// more than `max`, a location that is not a WebSocket URL, and `wss://` to
    /// `ws://`. To another origin (scheme, host or port), the request's
    /// `Authorization` and `Cookie` headers are not sent; other headers (and the
    /// subprotocols offered) are, so keep credentials out of custom headers when
    /// following redirects to hosts you do not trust.
    pub fn follow_redirects(mut self, max: usize) -> ClientRequest {
        self.max_redirects = max;
        self
    }

    /// Connects; see [`connect`].
    ///
    /// # Errors
    ///
    /// See [`connect`].
    pub async fn connect(mut self) -> Result<(WebSocket<MaybeTlsStream>, Response<()>), Error> {
        let mut url = self.url()?;
        tokio::time::timeout(self.timeout, async {
            let mut redirects = 0;
            loop {
                let stream = self.open(&url, None).await?;
                let refused = match self.handshake(stream, &url).await {
                    Err(Error::Handshake(HandshakeError::Refused(response)))
                        if redirect::is_redirect(response.status()) =>
                    {
                        response
                    }
                    done => return done,
                };
                if self.max_redirects == 0 {
                    return Err(HandshakeError::Refused(refused).into());
                }
                let next = redirect::next_url(&url, &refused)?;
                if redirects == self.max_redirects {
                    return Err(redirect::refusal(&next, "too many redirects").into());
                }
                redirects += 1;
                if !redirect::same_origin(&url, &next) {
                    self.headers.remove(header::AUTHORIZATION);
                    self.headers.remove(header::COOKIE);
                }
                url = next;
            }
        })
        .await
        .map_err(|_| HandshakeError::Timeout)?
    }

    /// The URL, checked: `ws` or `wss`, with a host, without a fragment.
    pub(super) fn url(&self) -> Result<Url, Error> {
        let url = self.url.clone().map_err(Error::InvalidUrl)?;
        if !matches!(url.scheme(), "ws" | "wss") {
            return Err(Error::InvalidUrl(format!(
                "scheme {:?} is not ws or wss",
                url.scheme()
            )));
        }
        if url.host().is_none() {
            return Err(Error::InvalidUrl(format!("no host in {url}")));
        }
        // RFC 6455 §3: fragments are not allowed in WebSocket URIs.
        if url.fragment().is_some() {
            return Err(Error::InvalidUrl(format!("fragment in {url}")));
        }
        Ok(url)
    }

    /// Sends the upgrade request and validates the response.
    async fn handshake<S>(&self, mut stream: S, url: &Url) -> Result<(WebSocket<S>, Response<()>), Error>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let key = BASE64.encode(rand::random::<[u8; 16]>());
        stream.write_all(&self.encode_request(url, &key)).await?;
        stream.flush().await?;

        let mut buf = BytesMut::with_capacity(1024);
        let (response, head_len) = loop {
            if buf.len() >= MAX_RESPONSE_HEAD {
                return Err(HandshakeError::TooLarge.into());
            }
            if stream.read_buf(&mut buf).await? == 0 {
                return Err(HandshakeError::UnexpectedEof.into());
            }
            if let Some(parsed) = parse_response(&buf)? {
                break parsed;
            }
        };
        let leftover = BytesMut::from(&buf[head_len..]);
        if response.status() != StatusCode::SWITCHING_PROTOCOLS {
            let body = match self.max_redirects > 0 && redirect::is_redirect(response.status()) {
                // To be followed: its body is of no use, and waiting for it could stall.
                true => leftover.freeze(),
                false => read_refusal_body(&mut stream, response.headers(), leftover).await,
            };
            let (parts, ()) = response.into_parts();
            return Err(HandshakeError::Refused(Box::new(Response::from_parts(parts, body))).into());
        }
        let negotiated = self.validate_upgrade(response.headers(), &key)?;
        let ws = WebSocket::after_handshake(stream, leftover, Role::Client, self.config.clone(), negotiated);
        Ok((ws, response))
    }

    fn encode_request(&self, url: &Url, key: &str) -> BytesMut {
        let mut request = BytesMut::with_capacity(256);
        request.put_slice(b"GET ");
        request.put_slice(url.path().as_bytes());
        if let Some(query) = url.query() {
            request.put_u8(b'?');
            request.put_slice(query.as_bytes());
        }
        request.put_slice(b" HTTP/1.1\r\nHost: ");
        request.put_slice(url.host_str().unwrap_or_default().as_bytes());
        if let Some(port) = url.port() {
            request.put_slice(format!(":{port}").as_bytes());
        }
        request.put_slice(b"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n");
        request.put_slice(b"Sec-WebSocket-Key: ");
        request.put_slice(key.as_bytes());
        request.put_slice(b"\r\n");
        #[cfg(feature = "deflate")]
        if self.config.get_deflate().enabled {
            request.put_slice(b"Sec-WebSocket-Extensions: ");
            let offer = crate::deflate::negotiation::client_offer(self.config.get_deflate());
            request.put_slice(offer.as_bytes());
            request.put_slice(b"\r\n");
        }
        if !self.protocols.is_empty() {
            request.put_slice(b"Sec-WebSocket-Protocol: ");
            request.put_slice(self.protocols.join(", ").as_bytes());
            request.put_slice(b"\r\n");
        }
        // Proxy credentials are for the proxy's CONNECT, never for the server.
        for (name, value) in self
            .headers
            .iter()
            .filter(|(name, _)| *name != header::PROXY_AUTHORIZATION)
        {
            request.put_slice(name.as_str().as_bytes());
            request.put_slice(b": ");
            request.put_slice(value.as_bytes());
            request.put_slice(b"\r\n");
        }
        request.put_slice(b"\r\n");
        request
    }

    /// The rules of RFC 6455 §4.1 for a `101` response.
    fn validate_upgrade(&self, headers: &HeaderMap, key: &str) -> Result<Negotiated, HandshakeError> {
        let invalid = |reason| HandshakeError::Invalid { reason, status: None };
        if !header_has_token(headers, header::UPGRADE, "websocket") {
            return Err(invalid("response lacks Upgrade: websocket"));
        }
        if !header_has_token(headers, header::CONNECTION, "upgrade") {
            return Err(invalid("response lacks Connection: upgrade"));
        }
        let accept = headers
            .get(header::SEC_WEBSOCKET_ACCEPT)
            .map(HeaderValue::as_bytes);
        if accept != Some(accept_key(key.as_bytes()).as_bytes()) {
            return Err(invalid("wrong Sec-WebSocket-Accept"));
        }
        self.check_agreement(headers)
    }

    /// The subprotocol and extensions of a response that accepted the WebSocket
    /// (over HTTP/1.1 or HTTP/2): only what was offered may be chosen.
    pub(super) fn check_agreement(&self, headers: &HeaderMap) -> Result<Negotiated, HandshakeError> {
        let invalid = |reason| HandshakeError::Invalid { reason, status: None };
        let mut protocols = headers.get_all(header::SEC_WEBSOCKET_PROTOCOL).iter();
        match (protocols.next(), protocols.next()) {
            (None, _) => {}
            (Some(chosen), None) if self.protocols.iter().any(|p| p.as_bytes() == chosen.as_bytes()) => {}
            _ => {
                return Err(invalid("server chose a subprotocol the client did not offer"));
            }
        }
        let mut negotiated = self.check_extensions(headers)?;
        negotiated.agreed = Agreed::from_response(headers);
        Ok(negotiated)
    }

    /// The extensions the server agreed to; anything not offered is an error.
    #[cfg(feature = "deflate")]
    fn check_extensions(&self, headers: &HeaderMap) -> Result<Negotiated, HandshakeError> {
        let deflate = crate::deflate::negotiation::check_answer(headers, self.config.get_deflate())
            .map_err(|reason| HandshakeError::Invalid { reason, status: None })?;
        Ok(Negotiated {
            deflate,
            ..Negotiated::default()
        })
    }

    /// The extensions the server agreed to: none may be.
    #[cfg(not(feature = "deflate"))]
    fn check_extensions(&self, headers: &HeaderMap) -> Result<Negotiated, HandshakeError> {
        match headers.contains_key(header::SEC_WEBSOCKET_EXTENSIONS) {
            true => Err(HandshakeError::Invalid {
                reason: "server chose an extension the client did not offer",
                status: None,
            }),
            false => Ok(Negotiated::default()),
        }
    }
}

impl From<&str> for ClientRequest {
    fn from(url: &str) -> ClientRequest {
        ClientRequest::new(url)
    }
}

impl From<String> for ClientRequest {
    fn from(url: String) -> ClientRequest {
        ClientRequest::new(url)
    }
}

impl From<&String> for ClientRequest {
    fn from(url: &String) -> ClientRequest {
        ClientRequest::new(url)
    }
}

impl From<Url> for ClientRequest {
    fn from(url: Url) -> ClientRequest {
        ClientRequest::new(url)
    }
}

/// Parses a response head; `Ok(None)` while incomplete.
fn parse_response(buf: &[u8]) -> Result<Option<(Response<()>, usize)>, HandshakeError> {
    let invalid = |reason| HandshakeError::Invalid { reason, status: None };
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut headers);
    let head_len = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HandshakeError::TooLarge),
        Err(_) => return Err(invalid("malformed http response")),
    };
    let status = parsed
        .code
        .and_then(|code| StatusCode::from_u16(code).ok())
        .ok_or(invalid("invalid status code"))?;
    let mut response = Response::new(());
    *response.status_mut() = status;
    *response.headers_mut() = header_map(parsed.headers).ok_or(invalid("invalid header"))?;
    Ok(Some((response, head_len)))
}

/// Reads the body of a refusal, at most [`MAX_REFUSAL_BODY`] bytes: the
/// `Content-Length` if given, a chunked body (kept as sent) up to its last chunk,
/// otherwise until EOF. A read error ends the body early.
async fn read_refusal_body<S: AsyncRead + Unpin>(
    stream: &mut S,
    headers: &HeaderMap,
    mut body: BytesMut,
) -> Bytes {
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok()?.parse::<usize>().ok());
    let limit = length.unwrap_or(usize::MAX).min(MAX_REFUSAL_BODY);
    let chunked = length.is_none() && header_has_token(headers, header::TRANSFER_ENCODING, "chunked");
    let complete =
        |body: &BytesMut| chunked && (body.starts_with(b"0\r\n\r\n") || body.ends_with(b"\r\n0\r\n\r\n"));
    while body.len() < limit && !complete(&body) {
        body.reserve((limit - body.len()).min(8 * 1024));
        match stream.read_buf(&mut body).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    body.truncate(limit);
    body.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_carries_host_port_path_query_and_offers() {
        let request = ClientRequest::new("ws://example.com:8080/chat?room=1")
            .protocol("a")
            .protocol("b")
            .header("authorization", "Bearer x")
            .header("proxy-authorization", "Basic for-the-proxy");
        let url = request.url().unwrap();
        let head = request.encode_request(&url, "dGhlIHNhbXBsZSBub25jZQ==");
        let head = std::str::from_utf8(&head).unwrap();
        assert!(head.starts_with("GET /chat?room=1 HTTP/1.1\r\nHost: example.com:8080\r\n"));
        assert!(head.contains("Sec-WebSocket-Protocol: a, b\r\n"));
        assert!(head.contains("authorization: Bearer x\r\n"));
        assert!(
            !head.contains("for-the-proxy"),
            "proxy credentials never reach the server"
        );
        assert!(head.ends_with("\r\n\r\n"));
    }

    #[test]
    fn urls_are_checked() {
        for bad in [
            "http://example.com/",
            "ws://",
            "not a url",
            "ws://example.com/#frag",
        ] {
            assert!(
                matches!(ClientRequest::new(bad).url(), Err(Error::InvalidUrl(_))),
                "{bad}"
            );
        }
        assert!(ClientRequest::new("wss://[::1]:9001/").url().is_ok());
        assert!(matches!(
            ClientRequest::new("ws://x/").header("bad header", "v").url(),
            Err(Error::InvalidUrl(_))
        ));
    }

    #[test]
    fn response_validation_follows_rfc_6455_4_1() {
        let request = ClientRequest::new("ws://example.com/").protocol("chat");
        let key = "dGhlIHNhbXBsZSBub25jZQ==";
        let good = || {
            let mut headers = HeaderMap::new();
            headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
            headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
            headers.insert(
                header::SEC_WEBSOCKET_ACCEPT,
                HeaderValue::from_static("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
            );
            headers
        };
        assert!(request.validate_upgrade(&good(), key).is_ok());
        let mut chosen = good();
        chosen.insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static("chat"));
        assert!(request.validate_upgrade(&chosen, key).is_ok());
        let mut unoffered = good();
        unoffered.insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static("other"));
        assert!(request.validate_upgrade(&unoffered, key).is_err());
        let mut extension = good();
        extension.insert(
            header::SEC_WEBSOCKET_EXTENSIONS,
            HeaderValue::from_static("x-unknown-extension"),
        );
        assert!(request.validate_upgrade(&extension, key).is_err());
        let mut wrong = good();
        wrong.insert(header::SEC_WEBSOCKET_ACCEPT, HeaderValue::from_static("AAAA"));
        assert!(request.validate_upgrade(&wrong, key).is_err());
        let mut no_upgrade = good();
        no_upgrade.remove(header::UPGRADE);
        assert!(request.validate_upgrade(&no_upgrade, key).is_err());
    }
}
