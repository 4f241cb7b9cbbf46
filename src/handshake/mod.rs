//! The opening handshake (RFC 6455 §4): the pieces both sides share.
//!
//! [`server`] upgrades an incoming HTTP/1.1 request; [`client`] sends one, through
//! a [`proxy`] when there is one, following redirects when asked.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::HeaderMap;
use sha1::{Digest, Sha1};

pub mod client;
#[cfg(feature = "http2")]
#[cfg_attr(docsrs, doc(cfg(feature = "http2")))]
pub mod http2;
pub mod proxy;
mod redirect;
pub mod server;
mod tls_stream;
mod transport;

/// The GUID RFC 6455 §1.3 appends to the key before hashing.
const ACCEPT_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The `Sec-WebSocket-Accept` value for a `Sec-WebSocket-Key` (RFC 6455 §4.2.2):
/// base64 of the SHA-1 of the key followed by the protocol's GUID.
///
/// ```
/// // The example of RFC 6455 §1.3.
/// let accept = fastws::handshake::accept_key(b"dGhlIHNhbXBsZSBub25jZQ==");
/// assert_eq!(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
/// ```
pub fn accept_key(key: &[u8]) -> String {
    let mut sha1 = Sha1::new();
    sha1.update(key);
    sha1.update(ACCEPT_GUID);
    BASE64.encode(sha1.finalize())
}

/// The URL's host as DNS and TLS want it: IPv6 literals without brackets.
pub(crate) fn host_name(url: &url::Url) -> String {
    match url.host() {
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        Some(host) => host.to_string(),
        None => String::new(),
    }
}

/// Copies parsed HTTP headers into a `HeaderMap`; `None` if a name or value is
/// not valid HTTP.
pub(crate) fn header_map(headers: &[httparse::Header<'_>]) -> Option<HeaderMap> {
    let mut map = HeaderMap::with_capacity(headers.len());
    for header in headers {
        let name = http::HeaderName::from_bytes(header.name.as_bytes()).ok()?;
        let value = http::HeaderValue::from_bytes(header.value).ok()?;
        map.append(name, value);
    }
    Some(map)
}

/// Whether `key` is a valid `Sec-WebSocket-Key`: base64 of exactly 16 bytes
/// (RFC 6455 §4.1).
pub fn is_valid_key(key: &[u8]) -> bool {
    key.len() == 24 && BASE64.decode(key).is_ok_and(|nonce| nonce.len() == 16)
}

/// Whether any `name` header holds `token` in its comma-separated list, ignoring
/// ASCII case (as `Connection: keep-alive, Upgrade` must match `upgrade`).
pub fn header_has_token(headers: &HeaderMap, name: impl http::header::AsHeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|value| {
        value
            .as_bytes()
            .split(|&byte| byte == b',')
            .any(|item| item.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    })
}

/// The subprotocols a request offers in `Sec-WebSocket-Protocol`, in the client's
/// order of preference.
///
/// ```
/// let request = http::Request::get("/")
///     .header("sec-websocket-protocol", "chat, superchat")
///     .body(())
///     .unwrap();
/// let offered: Vec<&str> = fastws::handshake::offered_protocols(request.headers()).collect();
/// assert_eq!(offered, ["chat", "superchat"]);
/// ```
pub fn offered_protocols(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|protocol| !protocol.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_must_be_base64_of_16_bytes() {
        assert!(is_valid_key(b"dGhlIHNhbXBsZSBub25jZQ=="));
        assert!(!is_valid_key(b"dGhlIHNhbXBsZSBub25jZQ"));
        assert!(!is_valid_key(b"dGhlIHNhbXBsZSBub25j"));
        assert!(!is_valid_key(b"!!!!!!!!!!!!!!!!!!!!!!=="));
    }

    #[test]
    fn tokens_match_case_insensitively_in_lists() {
        let mut headers = HeaderMap::new();
        headers.append("connection", "keep-alive, Upgrade".parse().unwrap());
        assert!(header_has_token(&headers, "connection", "upgrade"));
        assert!(!header_has_token(&headers, "connection", "close"));
        assert!(!header_has_token(&headers, "upgrade", "websocket"));
    }
}
