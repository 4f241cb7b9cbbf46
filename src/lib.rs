//! fastws: a fast, correct WebSocket (RFC 6455) implementation for tokio.
//!
//! The crate is layered; each layer is usable on its own:
//!
//! | module | what it holds |
//! |---|---|
//! | [`frame`] | [`Frame`], [`OpCode`], [`CloseCode`]: plain data, no I/O |
//! | [`mask`] | payload masking, the fast path and its scalar reference |
//! | [`codec`] | [`WsCodec`]: a tokio-util `Decoder` / `Encoder<Frame>` |
//! | [`error`] | [`Error`], the one error type, and the close code each error implies |
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
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod assemble;
mod close;
pub mod codec;
pub mod config;
#[cfg(feature = "deflate")]
pub mod deflate;
pub mod error;
pub mod frame;
pub mod handshake;
#[cfg(feature = "hyper")]
pub mod hyper;
pub mod mask;
pub mod message;
pub mod split;
pub mod stream;
pub mod streaming;
mod utf8;
pub mod websocket;

pub use codec::{Role, WsCodec};
pub use config::Config;
#[cfg(feature = "deflate")]
pub use deflate::DeflateConfig;
pub use error::{Error, HandshakeError, ProtocolError};
pub use frame::{CloseCode, Frame, OpCode};
pub use handshake::client::{ClientRequest, client_handshake, connect};
pub use handshake::server::{Acceptor, Rejection, accept, accept_with};
pub use message::{CloseFrame, Message, Utf8Bytes};
pub use split::{SplitSink, SplitStream};
pub use stream::MaybeTlsStream;
pub use streaming::{MessageKind, MessageReader, MessageWriter};
pub use websocket::WebSocket;

#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
