//! An HTTP `CONNECT` tunnel (RFC 9110 §9.3.6) through an HTTP proxy.

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::Proxy;
use crate::error::{Error, ProxyError};

/// The largest `CONNECT` response head accepted.
const MAX_CONNECT_HEAD: usize = 16 * 1024;

/// Asks the proxy on `stream` for a tunnel to `authority` (`host:port`); once it
/// answers 2xx, `stream` carries bytes to and from the server.
///
/// # Errors
///
/// [`ProxyError::Refused`] with the proxy's status for any other answer,
/// [`ProxyError::Invalid`] for an answer that is not HTTP or bytes sent after it,
/// [`ProxyError::Closed`] when the proxy closes the connection first.
pub(in crate::handshake) async fn connect_tunnel<S>(
    stream: &mut S,
    proxy: &Proxy,
    authority: &str,
) -> Result<(), Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    stream
        .write_all(connect_request(proxy, authority).as_bytes())
        .await?;
    stream.flush().await?;
    let mut head = BytesMut::with_capacity(512);
    loop {
        if head.len() >= MAX_CONNECT_HEAD {
            return Err(ProxyError::Invalid("proxy's CONNECT answer exceeds 16 KiB").into());
        }
        if stream.read_buf(&mut head).await? == 0 {
            return Err(ProxyError::Closed.into());
        }
        if let Some(status) = parse_answer(&head)? {
            return match status {
                200..=299 => Ok(()),
                status => Err(ProxyError::Refused { status }.into()),
            };
        }
    }
}

/// The `CONNECT` request, with Basic credentials when the proxy URL has them.
fn connect_request(proxy: &Proxy, authority: &str) -> String {
    let mut request = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
    if let Some(authorization) = proxy.basic_authorization() {
        request.push_str("Proxy-Authorization: ");
        request.push_str(&authorization);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    request
}

/// The status of a complete answer head, `None` while incomplete. A 2xx answer must
/// be all there is: the server speaks only after the client, so bytes behind the
/// head mean a confused proxy.
fn parse_answer(head: &[u8]) -> Result<Option<u16>, ProxyError> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Response::new(&mut headers);
    let len = match parsed.parse(head) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(ProxyError::Invalid("proxy's CONNECT answer is not valid http")),
    };
    let status = parsed
        .code
        .ok_or(ProxyError::Invalid("proxy's CONNECT answer has no status"))?;
    if (200..300).contains(&status) && len < head.len() {
        return Err(ProxyError::Invalid("proxy sent bytes after accepting CONNECT"));
    }
    Ok(Some(status))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_names_the_authority_and_carries_basic_credentials() {
        let proxy = Proxy::new("http://user:pa%20ss@proxy:3128").unwrap();
        let request = connect_request(&proxy, "[::1]:443");
        assert_eq!(
            request,
            "CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\n\
             Proxy-Authorization: Basic dXNlcjpwYSBzcw==\r\n\r\n"
        );
        let anonymous = connect_request(&Proxy::new("proxy:3128").unwrap(), "h:80");
        assert!(!anonymous.contains("Authorization"));
    }

    #[test]
    fn answers_parse_to_a_status_or_an_error() {
        assert_eq!(parse_answer(b"HTTP/1.1 200 Connection established\r\n"), Ok(None));
        assert_eq!(
            parse_answer(b"HTTP/1.0 200 Connection established\r\n\r\n"),
            Ok(Some(200))
        );
        assert_eq!(
            parse_answer(
                b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\n\r\nbody"
            ),
            Ok(Some(407))
        );
        assert!(parse_answer(b"SSH-2.0-OpenSSH\r\n\r\n").is_err());
        assert!(parse_answer(b"HTTP/1.1 200 OK\r\n\r\nstray").is_err());
    }
}
