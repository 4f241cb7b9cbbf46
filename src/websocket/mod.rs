//! `WebSocket<S>`: a `Stream` and `Sink` of messages over a transport `S`.
//!
//! # Who sends the control frames the read path owes
//!
//! Reading a ping owes the peer a pong; reading a close owes it the echo. The read
//! path (`poll_next`) queues them and writes them out itself, so a task that only
//! reads still answers pings; the write path (`Sink`) also sends whatever is owed
//! before its own frames. Both halves poll the socket for writing through one proxy
//! waker that wakes the reading task and the writing task alike, so after `split()`
//! neither half can steal the other's wake-up.
//!
//! # What a peer that does not read can make us hold
//!
//! The read path never waits for its writes (two peers that both write faster than
//! the other reads would deadlock), so what it owes is bounded instead: one pong,
//! one keepalive ping, one close. A pong goes into the write buffer only while the
//! buffer is under [`Config::write_buffer_size`]; otherwise it waits, and the next
//! ping replaces it (RFC 6455 §5.5.3). A peer that goes on pinging while it reads
//! nothing fails the connection with [`Error::PingFlood`] (close 1008) once
//! [`MAX_SUPERSEDED_PINGS`] pongs were dropped that way.
//!
//! The parts: `frame_io` (frames to and from the transport, buffers, system
//! calls), `read` (frames in, control frames, close, teardown), `write` (messages
//! out), `timers` (close timeout, keepalive, the waker shared by both halves),
//! `split` (the two halves) and `forward` (the echo of one half into the other).

mod forward;
mod frame_io;
mod read;
mod split;
mod timers;
mod write;

pub use forward::Forward;
pub(crate) use split::Shared;
pub use split::{ReuniteError, SplitSink, SplitStream};

use std::pin::Pin;
use std::sync::Arc;
use std::task::Waker;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Sleep;
use tokio_util::codec::{Framed, FramedParts};

use frame_io::FrameIo;

use crate::assemble::MessageAssembler;
use crate::close::CloseState;
use crate::codec::{Role, WsCodec};
use crate::config::Config;
use crate::error::Error;
use crate::frame::Frame;
use crate::message::Message;

use timers::{BothHalves, Keepalive};

/// A WebSocket connection: a [`Stream`](futures_core::Stream) of received
/// [`Message`]s and a [`Sink`](futures_sink::Sink) of messages to send.
///
/// It reassembles fragments, validates UTF-8, answers pings, runs the close
/// handshake and enforces the limits of its [`Config`]. Get one from
/// [`accept`](crate::accept), or wrap a `Framed` you already have with
/// [`WebSocket::from_framed`].
///
/// ```no_run
/// use futures_util::{SinkExt, StreamExt};
///
/// # async fn run(tcp: tokio::net::TcpStream) -> Result<(), fastws::Error> {
/// let mut ws = fastws::accept(tcp).await?;
/// while let Some(message) = ws.next().await {
///     let message = message?;
///     if message.is_data() {
///         ws.send(message).await?;
///     }
/// }
/// # Ok(()) }
/// ```
///
/// # The end of the stream
///
/// When the close handshake completes, the stream yields the peer's
/// [`Message::Close`] and then ends; when the connection fails (a protocol
/// violation, a timeout, an I/O error) it yields the error, after sending the close
/// frame the error implies, and then ends. Either way the transport is shut down
/// first. A peer that drops the connection without a close frame gives an
/// [`Error::Io`] of kind `UnexpectedEof`.
///
/// # Cancel safety
///
/// `poll_next` and the `Sink` methods keep all progress in `self`: dropping a
/// `next()` or `send()` future loses no received data, and a message passed to
/// `start_send` is in the write buffer.
///
/// # Timers
///
/// The close timeout uses `tokio::time`: run the WebSocket inside a tokio runtime
/// with the time driver enabled (`#[tokio::main]` enables it).
#[derive(Debug)]
#[doc(alias = "WebSocketStream")]
pub struct WebSocket<S> {
    frames: FrameIo<S>,
    config: Config,
    close: CloseState,
    reading: ReadState,
    assembler: MessageAssembler,
    /// The payload of the latest unanswered ping (RFC 6455 §5.5.3 allows answering
    /// only the most recent one); it waits here while the write buffer is full.
    owed_pong: Option<Bytes>,
    /// Pings whose pong was dropped for a later one since a pong was last queued.
    superseded_pings: usize,
    /// A close frame owed to the peer (an echo, or the code of a failure).
    owed_close: Option<Frame>,
    /// The read path queued frames whose flush has not completed yet.
    read_path_unflushed: bool,
    /// Running while a close handshake or teardown may not take forever.
    close_deadline: Option<Pin<Box<Sleep>>>,
    both_halves: Arc<BothHalves>,
    /// Wakes both halves: polls that either half may be waiting on (writes, the
    /// close timer) register this waker, never one task's own.
    wake_both: Waker,
    /// A streaming reader was dropped mid-message: the rest of it is skipped.
    discarding: bool,
    /// Frames received so far: the keepalive and idle timers compare it.
    frames_received: u64,
    /// The keepalive and idle timers, created on first use if configured.
    keepalive: Keepalive,
    /// A keepalive ping is due.
    owed_ping: bool,
    /// Compresses outgoing data messages when permessage-deflate was negotiated.
    /// Boxed: a connection without the extension keeps a pointer, not its state.
    #[cfg(feature = "deflate")]
    deflater: Option<Box<crate::deflate::compression::Deflater>>,
    /// Running while zlib contexts are held under context takeover: when the
    /// connection has been quiet this long, they hibernate.
    #[cfg(feature = "deflate")]
    hibernation: Option<timers::Timer>,
    /// When the zlib contexts last hibernated.
    #[cfg(feature = "deflate")]
    hibernated_at: Option<tokio::time::Instant>,
    /// The subprotocol and extensions of the opening handshake.
    agreed: Agreed,
}

/// What the opening handshake negotiated beyond the base protocol.
#[derive(Debug, Clone, Default)]
pub(crate) struct Negotiated {
    /// The permessage-deflate parameters, if the extension is in use.
    #[cfg(feature = "deflate")]
    pub(crate) deflate: Option<crate::deflate::negotiation::DeflateParams>,
    /// The `Sec-WebSocket-Protocol` and `Sec-WebSocket-Extensions` of the `101`.
    pub(crate) agreed: Agreed,
}

/// The subprotocol and extensions the `101` response agreed to, as it sent them.
/// Boxed, and absent when neither was: a pointer in every connection's state, not
/// two header values.
#[derive(Debug, Clone, Default)]
pub(crate) struct Agreed(Option<Box<AgreedHeaders>>);

#[derive(Debug, Clone)]
struct AgreedHeaders {
    protocol: Option<HeaderValue>,
    extensions: Option<HeaderValue>,
}

impl Agreed {
    /// Read off the headers of the `101` response.
    pub(crate) fn from_response(headers: &HeaderMap) -> Agreed {
        let protocol = headers.get(http::header::SEC_WEBSOCKET_PROTOCOL).cloned();
        let extensions = headers.get(http::header::SEC_WEBSOCKET_EXTENSIONS).cloned();
        if protocol.is_none() && extensions.is_none() {
            return Agreed(None);
        }
        Agreed(Some(Box::new(AgreedHeaders { protocol, extensions })))
    }

    fn protocol(&self) -> Option<&str> {
        self.0.as_ref()?.protocol.as_ref()?.to_str().ok()
    }

    fn extensions(&self) -> Option<&str> {
        self.0.as_ref()?.extensions.as_ref()?.to_str().ok()
    }
}

/// Empty buffers larger than this are freed when the connection goes idle.
const SHRINK_ABOVE: usize = 64 * 1024;

/// How many pings may arrive, each replacing the pong owed for the one before
/// while the write buffer is full, before the peer counts as flooding us with pings
/// it never reads the answers to ([`Error::PingFlood`]). A keepalive pinging every
/// second would need a write stalled for over a quarter of an hour to get there.
pub const MAX_SUPERSEDED_PINGS: usize = 1000;

/// Where the read side is.
#[derive(Debug)]
enum ReadState {
    Reading,
    /// Flushing what is owed, waiting for the server's EOF (a client after a clean
    /// close, RFC 6455 §7.1.1), shutting the transport down; then yielding `last`.
    TearingDown {
        await_eof: bool,
        /// Flush and shut down only as far as goes without waiting: the connection
        /// ended on a timeout, the peer is silent or gone.
        best_effort: bool,
        last: Option<Result<Message, Error>>,
    },
    Done,
}

/// Which half of the connection is polling.
#[derive(Debug, Clone, Copy)]
enum Side {
    Read,
    Write,
}

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocket<S> {
    /// Wraps a transport whose opening handshake is already done.
    ///
    /// Read and write buffers start empty and grow with traffic.
    pub fn from_raw_socket(io: S, role: Role, config: Config) -> WebSocket<S> {
        WebSocket::from_parts(
            FramedParts::new(io, WsCodec::new(role)),
            config,
            Negotiated::default(),
        )
    }

    /// Wraps a transport whose handshake is done, with bytes already read from it
    /// (for example, read together with the HTTP head) as the start of the stream.
    pub fn from_partially_read(io: S, read: BytesMut, role: Role, config: Config) -> WebSocket<S> {
        WebSocket::after_handshake(io, read, role, config, Negotiated::default())
    }

    /// Wraps a transport after a handshake that negotiated `negotiated`.
    pub(crate) fn after_handshake(
        io: S,
        read: BytesMut,
        role: Role,
        config: Config,
        negotiated: Negotiated,
    ) -> WebSocket<S> {
        let mut parts = FramedParts::new(io, WsCodec::new(role));
        parts.read_buf = read;
        WebSocket::from_parts(parts, config, negotiated)
    }

    /// Wraps an existing `Framed`, keeping its codec's role and any bytes it has
    /// buffered. The config's frame size limit replaces the codec's.
    pub fn from_framed(framed: Framed<S, WsCodec>, config: Config) -> WebSocket<S> {
        WebSocket::from_parts(framed.into_parts(), config, Negotiated::default())
    }

    fn from_parts(
        mut parts: FramedParts<S, WsCodec>,
        config: Config,
        negotiated: Negotiated,
    ) -> WebSocket<S> {
        parts.codec = parts.codec.max_frame_size(config.get_max_frame_size());
        #[cfg_attr(not(feature = "deflate"), allow(unused_mut))]
        let mut assembler = MessageAssembler::new(config.get_max_message_size(), config.get_max_fragments());
        #[cfg(feature = "deflate")]
        let deflater = negotiated.deflate.map(|params| {
            // RFC 7692 §6: RSV1 marks a compressed message.
            parts.codec = parts.codec.clone().allowed_rsv(0b100);
            let (deflater, inflater) =
                crate::deflate::compression::for_role(&params, parts.codec.role(), config.get_deflate());
            assembler.set_inflater(inflater);
            Box::new(deflater)
        });
        #[cfg(not(feature = "deflate"))]
        let Negotiated { agreed } = negotiated;
        #[cfg(feature = "deflate")]
        let agreed = negotiated.agreed;
        let both_halves = Arc::new(BothHalves::default());
        WebSocket {
            frames: FrameIo::from_parts(parts),
            assembler,
            #[cfg(feature = "deflate")]
            deflater,
            #[cfg(feature = "deflate")]
            hibernation: None,
            #[cfg(feature = "deflate")]
            hibernated_at: None,
            config,
            close: CloseState::Open,
            reading: ReadState::Reading,
            owed_pong: None,
            superseded_pings: 0,
            owed_close: None,
            discarding: false,
            frames_received: 0,
            keepalive: Keepalive::default(),
            owed_ping: false,
            read_path_unflushed: false,
            close_deadline: None,
            wake_both: Waker::from(Arc::clone(&both_halves)),
            both_halves,
            agreed,
        }
    }
}

impl<S> WebSocket<S> {
    /// The transport underneath.
    pub fn get_ref(&self) -> &S {
        &self.frames.io
    }

    /// Mutable access to the transport underneath. Bytes read from or written to
    /// it directly bypass the WebSocket and corrupt the stream.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.frames.io
    }

    /// Gives back the frame layer as a `Framed`, with any buffered bytes. A partly
    /// received message and owed control frames are dropped.
    pub fn into_framed(self) -> Framed<S, WsCodec> {
        Framed::from_parts(self.frames.into_parts())
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// This end's role.
    pub fn role(&self) -> Role {
        self.frames.codec.role()
    }

    /// The subprotocol the opening handshake selected (`Sec-WebSocket-Protocol` of
    /// the response that accepted the WebSocket), if any. `None` for a WebSocket
    /// built over a transport whose handshake fastws did not run, and after
    /// `fastws::hyper::upgrade`, whose response the caller finishes (use
    /// `fastws::axum`, or remember the protocol you chose).
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), fastws::Error> {
    /// let (ws, _) = fastws::ClientRequest::new("ws://127.0.0.1:9001/")
    ///     .protocol("chat.v2")
    ///     .protocol("chat.v1")
    ///     .connect()
    ///     .await?;
    /// println!("speaking {:?}", ws.protocol());
    /// # Ok(()) }
    /// ```
    pub fn protocol(&self) -> Option<&str> {
        self.agreed.protocol()
    }

    /// The extensions the opening handshake agreed to, as the `101` response's
    /// `Sec-WebSocket-Extensions` spelled them (for example
    /// `permessage-deflate; client_max_window_bits=12`), if any.
    pub fn extensions(&self) -> Option<&str> {
        self.agreed.extensions()
    }

    /// Whether permessage-deflate is in use on this connection.
    pub fn is_compressed(&self) -> bool {
        #[cfg(feature = "deflate")]
        return self.deflater.is_some();
        #[cfg(not(feature = "deflate"))]
        false
    }

    /// A streaming reader was dropped before its message ended: skip the rest.
    pub(crate) fn discard_rest_of_message(&mut self) {
        self.discarding = true;
    }

    /// The next message: `StreamExt::next` by the name axum's WebSocket uses.
    /// `None` once the stream has ended.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as `next()`: a message is never lost to a dropped future.
    pub async fn recv(&mut self) -> Option<Result<Message, Error>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        futures_util::StreamExt::next(self).await
    }

    /// Splits into a sending half and a receiving half that can be used from
    /// different tasks at the same time; [`SplitStream::reunite`] undoes it.
    ///
    /// The receiving half answers pings on its own, so a task that only reads keeps
    /// the connection healthy. Prefer this over `futures`' `StreamExt::split`,
    /// whose sink holds one message back in a slot of its own until its next poll.
    pub fn split(self) -> (SplitSink<S>, SplitStream<S>) {
        split::split(self)
    }
}
