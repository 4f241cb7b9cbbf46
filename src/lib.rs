//! fastws: a fast, correct WebSocket (RFC 6455, RFC 7692) implementation for tokio.
//!
//! # Quick start
//!
//! An echo server: accept, split, forward (one write system call per burst).
//!
//! ```no_run
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:9001").await?;
//!     loop {
//!         let (tcp, _) = listener.accept().await?;
//!         tokio::spawn(async move {
//!             let (sink, stream) = fastws::accept(tcp).await?.split();
//!             stream.forward(sink).await
//!         });
//!     }
//! }
//! ```
//!
//! A client: `let (ws, response) = fastws::connect("wss://example.com/chat").await?;`
//! ([`connect`], [`ClientRequest`] for headers, subprotocols and TLS settings).
//!
//! # Map
//!
//! Data flows frame → codec → message layer → handshake; each layer is usable on
//! its own.
//!
//! | module | what it holds |
//! |---|---|
//! | [`frame`] | [`Frame`], [`OpCode`], [`CloseCode`]: plain data, no I/O |
//! | [`mask`] | payload masking, the fast path and its scalar reference |
//! | [`codec`] | [`WsCodec`]: a tokio-util `Decoder` / `Encoder<Frame>`, role and limits |
//! | [`message`] | [`Message`] and [`Utf8Bytes`], the zero-copy text type |
//! | [`websocket`] | [`WebSocket`]: `Stream` + `Sink` of messages, pings, the close handshake; [`SplitSink`] / [`SplitStream`], its halves for concurrent tasks |
//! | [`streaming`] | [`MessageReader`] / [`MessageWriter`]: one message as `AsyncRead` / `AsyncWrite` |
//! | [`config`] | [`Config`]: limits, keepalive, timeouts, fragmentation, compression |
//! | [`handshake`] | [`accept`], [`Acceptor`], [`connect`], [`ClientRequest`], [`client_handshake`], [`MaybeTlsStream`]; [`Proxy`] (HTTP `CONNECT`, SOCKS5, the proxy environment variables) and redirects |
//! | `deflate` | permessage-deflate (feature `deflate`, on by default): `DeflateConfig` |
//! | `hyper` | upgrading a hyper 1.x request (feature `hyper`) |
//! | `axum` | `WebSocketUpgrade`, the axum extractor, HTTP/1.1 and HTTP/2 (feature `axum`) |
//! | [`porting`] | coming from tokio-tungstenite or `axum::extract::ws`: names and defaults |
//! | [`error`] | [`Error`], the one error type, and the close code each error implies; [`Result`] |
//!
//! # Features
//!
//! - `deflate` (default): permessage-deflate, negotiated by both sides.
//! - `rustls` (default): `wss://` in [`connect`] (and `https://` proxies), trusting
//!   the webpki roots.
//! - `native-roots`: trust the operating system's certificate store as well (where
//!   corporate CAs live), through `rustls-native-certs`.
//! - `hyper`: `fastws::hyper::upgrade` for hyper 1.x servers.
//! - `axum`: `fastws::axum::WebSocketUpgrade`, the extractor for axum routes, over
//!   HTTP/1.1 and HTTP/2 (RFC 8441).
//! - `http2`: `fastws::handshake::http2::Http2Connection`, a client for WebSockets
//!   over HTTP/2 (RFC 8441), many on one connection.
//!
//! On docs.rs every feature is documented, each item marked with the feature it needs.
//!
//! # Frames over a socket
//!
//! ```no_run
//! use fastws::WsCodec;
//! use futures_util::{SinkExt, StreamExt};
//! use tokio_util::codec::Framed;
//!
//! # async fn run(tcp: tokio::net::TcpStream) -> Result<(), fastws::Error> {
//! let mut frames = Framed::new(tcp, WsCodec::server());
//! while let Some(frame) = frames.next().await {
//!     frames.send(frame?).await?;
//! }
//! # Ok(()) }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod assemble;
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod axum;
mod close;
pub mod codec;
pub mod config;
#[cfg(feature = "deflate")]
#[cfg_attr(docsrs, doc(cfg(feature = "deflate")))]
pub mod deflate;
pub mod error;
pub mod frame;
pub mod handshake;
#[cfg(feature = "hyper")]
#[cfg_attr(docsrs, doc(cfg(feature = "hyper")))]
pub mod hyper;
pub mod mask;
pub mod message;
#[doc = include_str!("../PORTING.md")]
pub mod porting {}
pub mod prepared;
pub mod streaming;
mod utf8;
pub mod websocket;

pub use codec::{Role, WsCodec};
pub use config::Config;
#[cfg(feature = "deflate")]
pub use deflate::DeflateConfig;
pub use error::{Error, HandshakeError, ProtocolError, ProxyError};
pub use frame::{CloseCode, Frame, OpCode};
pub use handshake::client::MaybeTlsStream;
pub use handshake::client::{ClientRequest, client_handshake, connect};
pub use handshake::proxy::{Proxy, ProxyKind};
pub use handshake::server::{Acceptor, Rejection, UpgradeRequest, UpgradeResponse, accept, accept_with};
pub use message::{CloseFrame, Message, Utf8Bytes};
pub use prepared::PreparedMessage;
pub use streaming::{MessageKind, MessageReader, MessageWriter};
pub use websocket::{SplitSink, SplitStream, WebSocket};

/// The byte buffer of every payload (re-exported from `bytes`).
pub use bytes::Bytes;
/// The HTTP types of the handshake: `Request`, `Response`, `HeaderMap`, `StatusCode`
/// (re-exported from `http` 1.x).
pub use http;
/// The TLS library behind `wss://` (re-exported for [`ClientRequest::tls_config`]).
#[cfg(feature = "rustls")]
pub use rustls;

/// `Result` with fastws's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
