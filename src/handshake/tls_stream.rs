//! `MaybeTlsStream`: the transport [`connect`](crate::connect) opens, plain TCP or
//! TLS, to the server or through a proxy's tunnel.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// TLS over a transport, as tokio-rustls's client makes it.
#[cfg(feature = "rustls")]
type Tls<S> = Box<tokio_rustls::client::TlsStream<S>>;

/// A TCP stream, with TLS on top for `wss://` URLs. A tunnel through an HTTP or
/// SOCKS5 proxy is a TCP stream like a direct connection; only an `https://` proxy
/// adds a layer of its own.
#[derive(Debug)]
#[non_exhaustive]
pub enum MaybeTlsStream {
    /// A `ws://` connection, direct or through an `http://` or SOCKS5 proxy.
    Plain(TcpStream),
    /// A `wss://` connection through rustls, direct or through an `http://` or
    /// SOCKS5 proxy.
    #[cfg(feature = "rustls")]
    Rustls(Tls<TcpStream>),
    /// A `ws://` connection through an `https://` proxy: TLS to the proxy only.
    #[cfg(feature = "rustls")]
    HttpsProxy(Tls<TcpStream>),
    /// A `wss://` connection through an `https://` proxy: TLS to the server inside
    /// TLS to the proxy.
    #[cfg(feature = "rustls")]
    RustlsInHttpsProxy(Tls<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl MaybeTlsStream {
    /// The TCP stream underneath (to the proxy, when there is one).
    pub fn tcp(&self) -> &TcpStream {
        match self {
            MaybeTlsStream::Plain(tcp) => tcp,
            #[cfg(feature = "rustls")]
            MaybeTlsStream::Rustls(tls) | MaybeTlsStream::HttpsProxy(tls) => tls.get_ref().0,
            #[cfg(feature = "rustls")]
            MaybeTlsStream::RustlsInHttpsProxy(tls) => tls.get_ref().0.get_ref().0,
        }
    }

    /// The protocol the server agreed to by ALPN (RFC 7301) on its TLS, if any.
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        match self {
            #[cfg(feature = "rustls")]
            MaybeTlsStream::Rustls(tls) => tls.get_ref().1.alpn_protocol(),
            #[cfg(feature = "rustls")]
            MaybeTlsStream::RustlsInHttpsProxy(tls) => tls.get_ref().1.alpn_protocol(),
            _ => None,
        }
    }
}

/// Calls `$call` on whichever stream `$self` holds, pinned.
macro_rules! each_stream {
    ($self:expr, $stream:ident => $call:expr) => {
        match $self {
            MaybeTlsStream::Plain($stream) => {
                let $stream = Pin::new($stream);
                $call
            }
            #[cfg(feature = "rustls")]
            MaybeTlsStream::Rustls($stream) | MaybeTlsStream::HttpsProxy($stream) => {
                let $stream = Pin::new($stream.as_mut());
                $call
            }
            #[cfg(feature = "rustls")]
            MaybeTlsStream::RustlsInHttpsProxy($stream) => {
                let $stream = Pin::new($stream.as_mut());
                $call
            }
        }
    };
}

impl AsyncRead for MaybeTlsStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        each_stream!(self.get_mut(), stream => stream.poll_read(cx, buf))
    }
}

impl AsyncWrite for MaybeTlsStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        each_stream!(self.get_mut(), stream => stream.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        each_stream!(self.get_mut(), stream => stream.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            MaybeTlsStream::Plain(tcp) => tcp.is_write_vectored(),
            #[cfg(feature = "rustls")]
            MaybeTlsStream::Rustls(tls) | MaybeTlsStream::HttpsProxy(tls) => tls.is_write_vectored(),
            #[cfg(feature = "rustls")]
            MaybeTlsStream::RustlsInHttpsProxy(tls) => tls.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each_stream!(self.get_mut(), stream => stream.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each_stream!(self.get_mut(), stream => stream.poll_shutdown(cx))
    }
}
