//! Reaching the server through a proxy: HTTP `CONNECT` (through an `http://` or
//! `https://` proxy) and SOCKS5, chosen explicitly on a
//! [`ClientRequest`](crate::ClientRequest) or taken from the environment as curl
//! does (see [`ClientRequest::proxy_from_env`](crate::ClientRequest::proxy_from_env)).

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use url::Url;

use crate::error::Error;

pub(super) mod env;
mod http_connect;
mod socks5;

pub(super) use http_connect::connect_tunnel;
pub(super) use socks5::socks5_tunnel;

/// A proxy to reach WebSocket servers through, from its URL.
///
/// | URL | how |
/// |---|---|
/// | `http://host:port` | HTTP `CONNECT` (port 1080 by default, as in curl) |
/// | `https://host:port` | TLS to the proxy, then `CONNECT` inside it, and TLS to a `wss://` server inside that (port 443 by default) |
/// | `socks5://host:port` | SOCKS5, the server's name resolved here (port 1080 by default) |
/// | `socks5h://host:port` | SOCKS5, the server's name resolved by the proxy |
///
/// Credentials in the URL (`http://user:pass@proxy:3128`, percent-encoded where
/// needed) are sent as Basic `Proxy-Authorization` to an HTTP proxy, and by the
/// username/password method (RFC 1929) to a SOCKS5 proxy. A URL without a scheme
/// (`proxy:3128`) is an HTTP proxy, as in curl.
///
/// ```
/// let proxy = fastws::Proxy::new("socks5h://alice:s%40cret@127.0.0.1:1080").unwrap();
/// assert_eq!(proxy.kind(), fastws::ProxyKind::Socks5h);
/// assert_eq!(proxy.host(), "127.0.0.1");
/// assert_eq!(proxy.port(), 1080);
/// assert_eq!(proxy.username(), Some("alice"));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Proxy {
    kind: ProxyKind,
    host: String,
    port: u16,
    credentials: Option<(String, String)>,
}

/// How a [`Proxy`] is spoken to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProxyKind {
    /// HTTP `CONNECT` over TCP (`http://`).
    Http,
    /// HTTP `CONNECT` over TLS to the proxy (`https://`).
    Https,
    /// SOCKS5, resolving the server's name before asking the proxy (`socks5://`).
    Socks5,
    /// SOCKS5, passing the server's name to the proxy to resolve (`socks5h://`).
    Socks5h,
}

impl Proxy {
    /// Parses a proxy URL (see the table above).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidUrl`] for a malformed URL, an unknown scheme, a missing host,
    /// or SOCKS5 credentials longer than the 255 bytes RFC 1929 allows.
    pub fn new(url: &str) -> Result<Proxy, Error> {
        let invalid = |why: &str| Error::InvalidUrl(format!("proxy {:?}: {why}", redacted(url)));
        let with_scheme = match url.contains("://") {
            true => url.to_owned(),
            false => format!("http://{url}"),
        };
        let parsed = Url::parse(&with_scheme).map_err(|err| invalid(&err.to_string()))?;
        let (kind, default_port) = match parsed.scheme() {
            "http" => (ProxyKind::Http, 1080),
            "https" => (ProxyKind::Https, 443),
            "socks5" => (ProxyKind::Socks5, 1080),
            "socks5h" => (ProxyKind::Socks5h, 1080),
            other => {
                return Err(invalid(&format!(
                    "scheme {other:?} is not http, https, socks5 or socks5h"
                )));
            }
        };
        let host = crate::handshake::host_name(&parsed);
        if host.is_empty() {
            return Err(invalid("no host"));
        }
        let decode = |part: &str| {
            percent_decode(part).ok_or_else(|| invalid("credentials are not valid percent-encoded utf-8"))
        };
        let credentials = match (parsed.username(), parsed.password()) {
            ("", None) => None,
            (user, password) => Some((decode(user)?, decode(password.unwrap_or(""))?)),
        };
        if let Some((user, _)) = &credentials
            && matches!(kind, ProxyKind::Http | ProxyKind::Https)
            && user.contains(':')
        {
            // RFC 7617 §2: the user-id of Basic credentials cannot hold a colon.
            return Err(invalid("a basic auth username cannot contain ':'"));
        }
        if let Some((user, password)) = &credentials
            && matches!(kind, ProxyKind::Socks5 | ProxyKind::Socks5h)
            && (user.len() > 255 || password.len() > 255 || user.is_empty())
        {
            return Err(invalid("socks5 username and password must be 1 to 255 bytes"));
        }
        Ok(Proxy {
            kind,
            host,
            port: explicit_port(&with_scheme, &parsed).unwrap_or(default_port),
            credentials,
        })
    }

    /// The proxy for `url` (`ws://` or `wss://`) by the environment's rules, as curl
    /// reads them: see [`ClientRequest::proxy_from_env`](crate::ClientRequest::proxy_from_env).
    /// `Ok(None)` means connect directly.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidUrl`] when the variable that applies holds no valid proxy URL.
    pub fn from_env_for(url: &Url) -> Result<Option<Proxy>, Error> {
        env::ProxyEnv::from_process().proxy_for(url)
    }

    /// How the proxy is spoken to.
    pub fn kind(&self) -> ProxyKind {
        self.kind
    }

    /// The proxy's host: a name, or an IP address (IPv6 without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The proxy's port (from the URL, else the scheme's default).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The username from the URL, decoded.
    pub fn username(&self) -> Option<&str> {
        self.credentials.as_ref().map(|(user, _)| user.as_str())
    }

    pub(super) fn credentials(&self) -> Option<(&str, &str)> {
        self.credentials
            .as_ref()
            .map(|(user, password)| (user.as_str(), password.as_str()))
    }

    /// The `Proxy-Authorization` value for an HTTP proxy, if the URL had credentials.
    fn basic_authorization(&self) -> Option<String> {
        let (user, password) = self.credentials()?;
        Some(format!("Basic {}", BASE64.encode(format!("{user}:{password}"))))
    }
}

/// Without the password, which a log must not show.
impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy")
            .field("kind", &self.kind)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username())
            .finish_non_exhaustive()
    }
}

/// A proxy URL as errors may show it: any credentials replaced by `***`.
fn redacted(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_owned();
    };
    let prefix = if scheme.is_empty() {
        String::new()
    } else {
        format!("{scheme}://")
    };
    format!("{prefix}***@{}", &rest[at + 1..])
}

/// The port written in the URL. `Url::port` hides a port equal to the scheme's
/// default (`http://proxy:80`), which is not a proxy's default (1080).
fn explicit_port(text: &str, parsed: &Url) -> Option<u16> {
    parsed.port().or_else(|| {
        let authority = text.split_once("://")?.1.split(['/', '?', '#']).next()?;
        let host_port = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
        let (_, port) = host_port
            .rsplit_once(':')
            .filter(|(_, port)| !port.contains(']'))?;
        port.parse().ok()
    })
}

/// Decodes `%XX` escapes; `None` if one is malformed or the result is not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(text.len());
    let mut rest = text.as_bytes();
    while let Some((&byte, tail)) = rest.split_first() {
        if byte == b'%' {
            let hex = std::str::from_utf8(tail.get(..2)?).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            rest = &tail[2..];
        } else {
            bytes.push(byte);
            rest = tail;
        }
    }
    String::from_utf8(bytes).ok()
}

/// The `host:port` a tunnel is asked for, IPv6 in brackets (RFC 9110 §9.3.6).
pub(super) fn authority(url: &Url) -> String {
    let port = url.port_or_known_default().unwrap_or(80);
    match url.host() {
        Some(url::Host::Ipv6(ip)) => format!("[{ip}]:{port}"),
        _ => format!("{}:{port}", url.host_str().unwrap_or_default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_urls_parse_with_defaults_and_decoded_credentials() {
        let http = Proxy::new("proxy.example:3128").unwrap();
        assert_eq!(
            (http.kind(), http.host(), http.port()),
            (ProxyKind::Http, "proxy.example", 3128)
        );
        assert_eq!(Proxy::new("http://proxy.example").unwrap().port(), 1080);
        assert_eq!(Proxy::new("http://proxy.example:80").unwrap().port(), 80);
        assert_eq!(Proxy::new("https://[::1]:443/").unwrap().port(), 443);
        assert_eq!(http.basic_authorization(), None);

        let https = Proxy::new("https://u%40x:p%3Ass@[::1]").unwrap();
        assert_eq!(
            (https.kind(), https.host(), https.port()),
            (ProxyKind::Https, "::1", 443)
        );
        assert_eq!(https.credentials(), Some(("u@x", "p:ss")));
        // base64("u@x:p:ss")
        assert_eq!(https.basic_authorization().as_deref(), Some("Basic dUB4OnA6c3M="));

        let socks = Proxy::new("socks5://127.0.0.1").unwrap();
        assert_eq!((socks.kind(), socks.port()), (ProxyKind::Socks5, 1080));
        assert!(!format!("{:?}", Proxy::new("http://a:secret@h").unwrap()).contains("secret"));
    }

    #[test]
    fn bad_proxy_urls_are_invalid_url_errors() {
        let long = "x".repeat(256);
        for bad in [
            "ftp://proxy:21".to_owned(),
            "http://".to_owned(),
            "http://a:%zz@proxy".to_owned(),
            format!("socks5://{long}:p@proxy"),
            "socks5://:p@proxy".to_owned(),
            "http://a%3Ab:p@proxy".to_owned(),
        ] {
            assert!(matches!(Proxy::new(&bad), Err(Error::InvalidUrl(_))), "{bad}");
        }
    }

    #[test]
    fn errors_never_show_the_password() {
        for bad in [
            "http://alice:s3cret@proxy:99999",
            "alice:s3cret@proxy:99999/path@x",
            "gopher://alice:s3cret@proxy",
        ] {
            let err = Proxy::new(bad).unwrap_err().to_string();
            assert!(!err.contains("s3cret") && err.contains("***@proxy"), "{err}");
        }
        let request = crate::ClientRequest::new("ws://x/").proxy("http://alice:s3cret@proxy:99999");
        assert!(!format!("{request:?}").contains("s3cret"));
    }

    #[test]
    fn tunnel_authorities_bracket_ipv6_and_default_the_port() {
        let url = |u: &str| Url::parse(u).unwrap();
        assert_eq!(authority(&url("wss://example.com/x")), "example.com:443");
        assert_eq!(authority(&url("ws://example.com/x")), "example.com:80");
        assert_eq!(authority(&url("ws://[::1]:9001/")), "[::1]:9001");
    }
}
