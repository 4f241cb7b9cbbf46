//! A SOCKS5 tunnel (RFC 1928), with the username/password method (RFC 1929).

use std::net::IpAddr;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use url::Url;

use super::{Proxy, ProxyKind};
use crate::error::{Error, ProxyError};

const VERSION: u8 = 5;
const NO_AUTHENTICATION: u8 = 0x00;
const USERNAME_PASSWORD: u8 = 0x02;
const NO_ACCEPTABLE_METHOD: u8 = 0xff;
const CONNECT: u8 = 0x01;
const IPV4: u8 = 0x01;
const DOMAIN_NAME: u8 = 0x03;
const IPV6: u8 = 0x04;

/// Asks the SOCKS5 proxy on `stream` to connect to the host and port of `url`;
/// afterwards `stream` carries bytes to and from the server. `socks5h://` sends the
/// host's name for the proxy to resolve; `socks5://` resolves it here and sends
/// the address.
///
/// # Errors
///
/// [`ProxyError`]: no acceptable method, rejected credentials, a reply code other
/// than success, or an answer that breaks RFC 1928; [`Error::Dns`] when
/// `socks5://` cannot resolve the host here.
pub(in crate::handshake) async fn socks5_tunnel<S>(
    stream: &mut S,
    proxy: &Proxy,
    url: &Url,
) -> Result<(), Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let port = url.port_or_known_default().unwrap_or(80);
    let destination = destination(proxy.kind(), url, port).await?;
    let credentials = proxy.credentials();

    let methods: &[u8] = match credentials {
        Some(_) => &[NO_AUTHENTICATION, USERNAME_PASSWORD],
        None => &[NO_AUTHENTICATION],
    };
    let mut greeting = vec![VERSION, methods.len() as u8];
    greeting.extend_from_slice(methods);
    stream.write_all(&greeting).await?;
    stream.flush().await?;
    let [version, method] = read_array(stream).await?;
    if version != VERSION {
        return Err(ProxyError::Invalid("proxy does not speak socks5").into());
    }
    match (method, credentials) {
        (NO_AUTHENTICATION, _) => {}
        (USERNAME_PASSWORD, Some((user, password))) => authenticate(stream, user, password).await?,
        (NO_ACCEPTABLE_METHOD, _) => return Err(ProxyError::SocksNoAcceptableMethod.into()),
        _ => return Err(ProxyError::Invalid("socks5 proxy chose a method that was not offered").into()),
    }

    let mut request = vec![VERSION, CONNECT, 0];
    request.extend_from_slice(&destination);
    request.extend_from_slice(&port.to_be_bytes());
    stream.write_all(&request).await?;
    stream.flush().await?;
    read_reply(stream).await
}

/// The destination address of the connect request: a name, or an address.
async fn destination(kind: ProxyKind, url: &Url, port: u16) -> Result<Vec<u8>, Error> {
    let host = crate::handshake::host_name(url);
    let ip = match host.parse::<IpAddr>() {
        Ok(ip) => ip,
        Err(_) if kind == ProxyKind::Socks5h => {
            let name = host.as_bytes();
            let len = u8::try_from(name.len()).map_err(|_| {
                Error::InvalidUrl(format!(
                    "host name of {} bytes is too long for socks5",
                    name.len()
                ))
            })?;
            let mut destination = vec![DOMAIN_NAME, len];
            destination.extend_from_slice(name);
            return Ok(destination);
        }
        Err(_) => tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(Error::Dns)?
            .next()
            .ok_or_else(|| {
                Error::Dns(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "host has no addresses",
                ))
            })?
            .ip(),
    };
    Ok(match ip {
        IpAddr::V4(ip) => [&[IPV4][..], &ip.octets()].concat(),
        IpAddr::V6(ip) => [&[IPV6][..], &ip.octets()].concat(),
    })
}

/// The username/password subnegotiation (RFC 1929); lengths were checked when the
/// proxy URL was parsed.
async fn authenticate<S>(stream: &mut S, user: &str, password: &str) -> Result<(), Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut request = vec![1, user.len() as u8];
    request.extend_from_slice(user.as_bytes());
    request.push(password.len() as u8);
    request.extend_from_slice(password.as_bytes());
    stream.write_all(&request).await?;
    stream.flush().await?;
    match read_array(stream).await? {
        [1, 0] => Ok(()),
        [1, _] => Err(ProxyError::SocksAuthFailed.into()),
        _ => Err(ProxyError::Invalid("socks5 proxy's authentication answer is malformed").into()),
    }
}

/// Reads the connect reply to its end, bound address included, so that nothing of
/// it is left for the WebSocket handshake.
async fn read_reply<S: AsyncRead + Unpin>(stream: &mut S) -> Result<(), Error> {
    let [version, reply, _reserved, address_type] = read_array(stream).await?;
    if version != VERSION {
        return Err(ProxyError::Invalid("socks5 proxy's reply has the wrong version").into());
    }
    if reply != 0 {
        return Err(ProxyError::SocksRefused { reply }.into());
    }
    let address_len = match address_type {
        IPV4 => 4,
        IPV6 => 16,
        DOMAIN_NAME => usize::from(read_array::<_, 1>(stream).await?[0]),
        _ => return Err(ProxyError::Invalid("socks5 proxy's reply has an unknown address type").into()),
    };
    let mut bound = vec![0; address_len + 2];
    read_exact(stream, &mut bound).await
}

async fn read_array<S: AsyncRead + Unpin, const N: usize>(stream: &mut S) -> Result<[u8; N], Error> {
    let mut bytes = [0; N];
    read_exact(stream, &mut bytes).await?;
    Ok(bytes)
}

/// `read_exact`, with an early end of the stream reported as the proxy's.
async fn read_exact<S: AsyncRead + Unpin>(stream: &mut S, bytes: &mut [u8]) -> Result<(), Error> {
    match stream.read_exact(bytes).await {
        Ok(_) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => Err(ProxyError::Closed.into()),
        Err(err) => Err(err.into()),
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::duplex;

    use super::*;
    use crate::error::HandshakeError;

    /// Runs the tunnel against a scripted proxy: what the client sends is
    /// returned; the proxy answers `answers` in turn, each after one read.
    async fn exchange(proxy: &str, url: &str, answers: &[&[u8]]) -> (Result<(), Error>, Vec<u8>) {
        let (mut client, mut server) = duplex(4096);
        let answers: Vec<Vec<u8>> = answers.iter().map(|a| a.to_vec()).collect();
        let script = tokio::spawn(async move {
            let mut seen = Vec::new();
            for answer in answers {
                let mut buf = [0; 512];
                let n = server.read(&mut buf).await.unwrap();
                seen.extend_from_slice(&buf[..n]);
                server.write_all(&answer).await.unwrap();
            }
            seen
        });
        let proxy = Proxy::new(proxy).unwrap();
        let result = socks5_tunnel(&mut client, &proxy, &Url::parse(url).unwrap()).await;
        drop(client);
        (result, script.await.unwrap())
    }

    const SUCCESS_V4: &[u8] = &[5, 0, 0, IPV4, 127, 0, 0, 1, 0x1f, 0x90];

    #[tokio::test]
    async fn socks5h_sends_the_name_and_reads_the_whole_reply() {
        let (result, seen) = exchange(
            "socks5h://127.0.0.1:1",
            "wss://example.com/",
            &[&[5, 0], SUCCESS_V4],
        )
        .await;
        result.unwrap();
        let mut expected = vec![5, 1, 0, 5, 1, 0, DOMAIN_NAME, 11];
        expected.extend_from_slice(b"example.com");
        expected.extend_from_slice(&443u16.to_be_bytes());
        assert_eq!(seen, expected);
    }

    #[tokio::test]
    async fn socks5_sends_an_address_and_credentials_when_asked() {
        let (result, seen) = exchange(
            "socks5://al:pw@127.0.0.1:1",
            "ws://[::1]:9001/",
            &[&[5, USERNAME_PASSWORD], &[1, 0], SUCCESS_V4],
        )
        .await;
        result.unwrap();
        let mut expected = vec![5, 2, 0, 2, 1, 2, b'a', b'l', 2, b'p', b'w', 5, 1, 0, IPV6];
        expected.extend_from_slice(&"::1".parse::<std::net::Ipv6Addr>().unwrap().octets());
        expected.extend_from_slice(&9001u16.to_be_bytes());
        assert_eq!(seen, expected);
    }

    #[tokio::test]
    async fn socks5_resolves_a_name_here_and_sends_the_address() {
        let (result, seen) = exchange(
            "socks5://127.0.0.1:1",
            "ws://localhost:9001/",
            &[&[5, 0], SUCCESS_V4],
        )
        .await;
        result.unwrap();
        let mut expected = vec![5, 1, 0, 5, 1, 0, IPV4, 127, 0, 0, 1];
        expected.extend_from_slice(&9001u16.to_be_bytes());
        assert_eq!(seen, expected);
    }

    #[tokio::test]
    async fn refusals_are_distinct_errors() {
        let proxy_error = |result: Result<(), Error>| match result {
            Err(Error::Handshake(HandshakeError::Proxy(err))) => err,
            other => panic!("{other:?}"),
        };
        let (result, _) = exchange("socks5h://127.0.0.1:1", "ws://x/", &[&[5, NO_ACCEPTABLE_METHOD]]).await;
        assert_eq!(proxy_error(result), ProxyError::SocksNoAcceptableMethod);
        let (result, _) = exchange("socks5h://u:p@127.0.0.1:1", "ws://x/", &[&[5, 2], &[1, 1]]).await;
        assert_eq!(proxy_error(result), ProxyError::SocksAuthFailed);
        let (result, _) = exchange(
            "socks5h://127.0.0.1:1",
            "ws://x/",
            &[&[5, 0], &[5, 5, 0, IPV4, 0, 0, 0, 0, 0, 0]],
        )
        .await;
        assert_eq!(proxy_error(result), ProxyError::SocksRefused { reply: 5 });
        let (result, _) = exchange("socks5h://127.0.0.1:1", "ws://x/", &[&[5, USERNAME_PASSWORD]]).await;
        assert!(matches!(proxy_error(result), ProxyError::Invalid(_)));
        let (result, _) = exchange("socks5h://127.0.0.1:1", "ws://x/", &[&[4, 0]]).await;
        assert!(matches!(proxy_error(result), ProxyError::Invalid(_)));
        let (result, _) = exchange("socks5h://127.0.0.1:1", "ws://x/", &[&[5, 0], &[5, 0, 0]]).await;
        assert!(
            matches!(
                result,
                Err(Error::Handshake(HandshakeError::Proxy(ProxyError::Closed)))
            ),
            "{result:?}"
        );
    }
}
