//! The transport `connect` opens: TCP to the server or to a proxy, the proxy's
//! tunnel, and TLS (to the server, and to an `https://` proxy).

use tokio::net::TcpStream;
use url::Url;

use super::client::{ClientRequest, MaybeTlsStream, ProxyChoice};
use super::host_name;
use super::proxy::{self, Proxy, ProxyKind};
use crate::error::Error;

impl ClientRequest {
    /// The transport to the server of `url`: TCP to it or to the proxy, the
    /// proxy's tunnel, and TLS for `wss://` (asking for `alpn` if given).
    pub(super) async fn open(&self, url: &Url, alpn: Option<&'static [u8]>) -> Result<MaybeTlsStream, Error> {
        let Some(proxy) = self.proxy_for(url)? else {
            let tcp = open_tcp(url).await?;
            return self.secure(tcp, url, alpn).await;
        };
        let mut tcp = open_tcp_to_proxy(&proxy).await?;
        match proxy.kind() {
            ProxyKind::Http => proxy::connect_tunnel(&mut tcp, &proxy, &proxy::authority(url)).await?,
            ProxyKind::Socks5 | ProxyKind::Socks5h => proxy::socks5_tunnel(&mut tcp, &proxy, url).await?,
            ProxyKind::Https => return self.through_https_proxy(tcp, &proxy, url, alpn).await,
        }
        self.secure(tcp, url, alpn).await
    }

    /// The proxy to reach `url` through, if any.
    fn proxy_for(&self, url: &Url) -> Result<Option<Proxy>, Error> {
        match &self.proxy {
            ProxyChoice::Environment => Proxy::from_env_for(url),
            ProxyChoice::Explicit(proxy) => proxy.clone().map(Some).map_err(Error::InvalidUrl),
            ProxyChoice::Direct => Ok(None),
        }
    }

    /// TLS to an `https://` proxy, `CONNECT` inside it, and TLS to a `wss://`
    /// server inside that.
    #[cfg(feature = "rustls")]
    async fn through_https_proxy(
        &self,
        tcp: TcpStream,
        proxy: &Proxy,
        url: &Url,
        alpn: Option<&'static [u8]>,
    ) -> Result<MaybeTlsStream, Error> {
        let mut to_proxy = self.tls_to(tcp, proxy.host(), Some(b"http/1.1")).await?;
        proxy::connect_tunnel(&mut to_proxy, proxy, &proxy::authority(url)).await?;
        if url.scheme() == "ws" {
            return Ok(MaybeTlsStream::HttpsProxy(to_proxy));
        }
        let to_server = self.tls_to(*to_proxy, &host_name(url), alpn).await?;
        Ok(MaybeTlsStream::RustlsInHttpsProxy(to_server))
    }

    #[cfg(not(feature = "rustls"))]
    async fn through_https_proxy(
        &self,
        _tcp: TcpStream,
        _proxy: &Proxy,
        _url: &Url,
        _alpn: Option<&'static [u8]>,
    ) -> Result<MaybeTlsStream, Error> {
        Err(Error::Tls(std::io::Error::other(
            "an https:// proxy needs the `rustls` feature of fastws",
        )))
    }

    /// Adds TLS for `wss://`, asking for `alpn` (RFC 7301) if given.
    async fn secure(
        &self,
        tcp: TcpStream,
        url: &Url,
        alpn: Option<&'static [u8]>,
    ) -> Result<MaybeTlsStream, Error> {
        if url.scheme() == "ws" {
            return Ok(MaybeTlsStream::Plain(tcp));
        }
        #[cfg(feature = "rustls")]
        {
            Ok(MaybeTlsStream::Rustls(
                self.tls_to(tcp, &host_name(url), alpn).await?,
            ))
        }
        #[cfg(not(feature = "rustls"))]
        {
            let _ = (tcp, alpn);
            Err(Error::Tls(std::io::Error::other(
                "wss:// needs the `rustls` feature of fastws",
            )))
        }
    }

    /// TLS over `stream` to `host`, by the request's configuration.
    #[cfg(feature = "rustls")]
    async fn tls_to<S>(
        &self,
        stream: S,
        host: &str,
        alpn: Option<&'static [u8]>,
    ) -> Result<Box<tokio_rustls::client::TlsStream<S>>, Error>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        let mut config = self.tls.clone().unwrap_or_else(default_tls_config);
        if let Some(alpn) = alpn {
            std::sync::Arc::make_mut(&mut config).alpn_protocols = vec![alpn.to_vec()];
        }
        let name = rustls::pki_types::ServerName::try_from(host.to_owned())
            .map_err(|err| Error::InvalidUrl(format!("{err}")))?;
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, stream)
            .await
            .map_err(Error::Tls)?;
        Ok(Box::new(tls))
    }
}

/// Resolves the URL's host and connects to the first address that answers.
async fn open_tcp(url: &Url) -> Result<TcpStream, Error> {
    open_tcp_to(&host_name(url), url.port_or_known_default().unwrap_or(80)).await
}

/// Connects to the proxy; its failures name it.
async fn open_tcp_to_proxy(proxy: &Proxy) -> Result<TcpStream, Error> {
    let name = |err: std::io::Error| {
        std::io::Error::new(
            err.kind(),
            format!("proxy {}:{}: {err}", proxy.host(), proxy.port()),
        )
    };
    open_tcp_to(proxy.host(), proxy.port())
        .await
        .map_err(|err| match err {
            Error::Dns(err) => Error::Dns(name(err)),
            Error::Connect(err) => Error::Connect(name(err)),
            other => other,
        })
}

/// Resolves `host` and connects to the first of its addresses that answers.
async fn open_tcp_to(host: &str, port: u16) -> Result<TcpStream, Error> {
    let addrs: Vec<_> = tokio::net::lookup_host((host, port))
        .await
        .map_err(Error::Dns)?
        .collect();
    let mut last_error = std::io::Error::new(std::io::ErrorKind::NotFound, "host has no addresses");
    if addrs.is_empty() {
        return Err(Error::Dns(last_error));
    }
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(tcp) => {
                tcp.set_nodelay(true).map_err(Error::Connect)?;
                return Ok(tcp);
            }
            Err(err) => last_error = err,
        }
    }
    Err(Error::Connect(last_error))
}

/// The default TLS configuration: ring, safe protocol versions, Mozilla's roots,
/// and with the `native-roots` feature the operating system's as well. Built once
/// per process, on first use.
#[cfg(feature = "rustls")]
pub(super) fn default_tls_config() -> std::sync::Arc<rustls::ClientConfig> {
    use std::sync::{Arc, OnceLock};
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            #[cfg(feature = "native-roots")]
            add_system_roots(&mut roots);
            let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
            Arc::new(config)
        })
        .clone()
}

/// Adds the operating system's trusted certificates (on Linux, the file and
/// directory `SSL_CERT_FILE` and `SSL_CERT_DIR` name, else the distribution's
/// bundle). A certificate that does not parse is skipped, as is a store that
/// cannot be read: the webpki roots remain.
#[cfg(feature = "native-roots")]
fn add_system_roots(roots: &mut rustls::RootCertStore) {
    let system = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(system.certs);
}
