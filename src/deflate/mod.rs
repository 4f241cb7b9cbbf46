//! permessage-deflate (RFC 7692): compression of whole messages, negotiated in the
//! opening handshake. Enabled by the `deflate` feature (on by default) and
//! configured per connection with [`DeflateConfig`].
//!
//! - [`negotiation`]: the offer, the server's choice among offers, the client's
//!   check of the answer (RFC 7692 §5, §7.1).
//! - `compression`: the data path, a compressor and a decompressor per
//!   connection, created on first use, kept across messages or given back after
//!   each one as negotiated.
//! - `held`: a context held only while messages need it, and its history.
//! - `history`: what a context-takeover stream may refer back to, kept while the
//!   contexts hibernate.
//! - `pool`: the zlib contexts a thread keeps between the messages that need them.

use std::time::Duration;

pub(crate) mod compression;
mod held;
mod history;
pub mod negotiation;
mod pool;

/// The settings of permessage-deflate, for either side.
///
/// The "server" and "client" parameters name whose compressor they limit, as
/// RFC 7692 does: `server_no_context_takeover` makes the server reset its
/// compressor after every message, `client_max_window_bits` limits the client's
/// compressor window, and so on. A server applies its own limits and honours the
/// client's offer; a client offers its settings and checks the server's answer.
///
/// ```
/// use fastws::{Config, DeflateConfig};
/// let config = Config::default().deflate(
///     DeflateConfig::default()
///         .level(3)
///         .min_size(256)
///         .server_no_context_takeover(true),
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeflateConfig {
    pub(crate) enabled: bool,
    pub(crate) level: u32,
    pub(crate) min_size: usize,
    pub(crate) server_no_context_takeover: bool,
    pub(crate) client_no_context_takeover: bool,
    pub(crate) server_max_window_bits: u8,
    /// `None`: the defaults of each role (see [`DeflateConfig::client_max_window_bits`]).
    pub(crate) client_max_window_bits: Option<u8>,
    pub(crate) hibernate_after: Option<Duration>,
}

/// The window a server asks of a client that offers `client_max_window_bits`
/// unless [`DeflateConfig::client_max_window_bits`] says otherwise: 4 KiB.
/// Measured on 1 KiB JSON messages under context takeover (level 6), the wire
/// ratio is the same as with 32 KiB (0.175 against 0.179), and a hibernating
/// server keeps 4 KiB of the client's history instead of 32.
pub const DEFAULT_CLIENT_MAX_WINDOW_BITS: u8 = 12;

/// The default of [`DeflateConfig::hibernate_after`]. Measured with 2,000
/// connections of Chromium's offer to `examples/echo_server` (resident memory
/// growth per connection, after the connections went quiet): one 1 KiB message
/// each, 6.4 KiB at 1 s and 6.3 KiB at 100 ms; 100 messages each, 65 KiB at 1 s
/// and 28 KiB at 100 ms (fewer connections hold contexts at once, so the
/// allocator keeps less). A connection messaging more often than this keeps its
/// contexts; one messaging less often pays a wake (about 10 µs) per message.
pub const DEFAULT_HIBERNATE_AFTER: Duration = Duration::from_millis(100);

impl Default for DeflateConfig {
    /// Enabled, level 6, every message compressed, context takeover on both sides,
    /// a 15-bit window for the server's compressor, a 12-bit one asked of clients
    /// that offer to be limited, contexts hibernating after 100 ms of quiet.
    fn default() -> DeflateConfig {
        DeflateConfig {
            enabled: true,
            level: 6,
            min_size: 0,
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: 15,
            client_max_window_bits: None,
            hibernate_after: Some(DEFAULT_HIBERNATE_AFTER),
        }
    }
}

impl DeflateConfig {
    /// A configuration that never negotiates permessage-deflate.
    pub fn disabled() -> DeflateConfig {
        DeflateConfig {
            enabled: false,
            ..DeflateConfig::default()
        }
    }

    /// Whether to negotiate permessage-deflate at all (default on).
    pub fn enabled(mut self, on: bool) -> DeflateConfig {
        self.enabled = on;
        self
    }

    /// The compression level, 0 (none) to 9 (best); default 6. Values over 9 are 9.
    pub fn level(mut self, level: u32) -> DeflateConfig {
        self.level = level.min(9);
        self
    }

    /// Messages shorter than this many bytes are sent uncompressed (default 0:
    /// compress everything). Deflate makes tiny messages a few bytes longer; some
    /// peers, though, mishandle uncompressed messages once the extension is
    /// negotiated (the `kosoku` Autobahn runner fails its cases 12.x.1 and 13.x.1
    /// on them), so raise it only for peers you know.
    pub fn min_size(mut self, bytes: usize) -> DeflateConfig {
        self.min_size = bytes;
        self
    }

    /// Whether the server resets its compressor after every message. A server sets
    /// this for itself; a client asks it of the server.
    pub fn server_no_context_takeover(mut self, on: bool) -> DeflateConfig {
        self.server_no_context_takeover = on;
        self
    }

    /// Whether the client resets its compressor after every message. A client sets
    /// this for itself; a server asks it of the client.
    pub fn client_no_context_takeover(mut self, on: bool) -> DeflateConfig {
        self.client_no_context_takeover = on;
        self
    }

    /// The largest window (8–15 bits, clamped) the server's compressor may use.
    pub fn server_max_window_bits(mut self, bits: u8) -> DeflateConfig {
        self.server_max_window_bits = bits.clamp(8, 15);
        self
    }

    /// When the zlib contexts of a connection with context takeover hibernate
    /// (default 100 ms; `None`: never). A connection that messages now and then (its
    /// contexts had hibernated for at least this long before the message, or it
    /// is the connection's first) lets them go as soon as it waits; a busy one
    /// after going this long without a frame arriving or a message part compressed.
    ///
    /// A hibernating connection keeps only the history the peer may still refer
    /// back to (at most a window, less when fewer bytes went by); its compressor
    /// and decompressor go back to the thread, and the next message primes fresh
    /// ones with that history as their preset dictionary. Resting costs nothing on
    /// the wire; waking costs priming the compressor with up to 4 KiB of history
    /// (about 10 µs measured) and the decompressor with the peer's window (a copy).
    /// Quiet is judged while the connection is polled (its stream read, or its sink
    /// flushed).
    pub fn hibernate_after(mut self, after: Option<Duration>) -> DeflateConfig {
        self.hibernate_after = after;
        self
    }

    /// See [`DeflateConfig::hibernate_after`].
    pub fn get_hibernate_after(&self) -> Option<Duration> {
        self.hibernate_after
    }

    /// The largest window (8–15 bits, clamped) the client's compressor may use.
    /// A server asks it of a client that offers `client_max_window_bits`; a
    /// client offers it. By default a server asks 12 bits
    /// ([`DEFAULT_CLIENT_MAX_WINDOW_BITS`]) of a client that offers the parameter,
    /// as browsers do, and a client offers the parameter without a value (any
    /// window the server sets, up to 15 bits).
    pub fn client_max_window_bits(mut self, bits: u8) -> DeflateConfig {
        self.client_max_window_bits = Some(bits.clamp(8, 15));
        self
    }

    /// The window a server asks of a client that offers to be limited.
    pub(crate) fn client_window_limit(&self) -> u8 {
        self.client_max_window_bits
            .unwrap_or(DEFAULT_CLIENT_MAX_WINDOW_BITS)
    }

    /// The largest window a client offers to compress with.
    pub(crate) fn client_window_offer(&self) -> u8 {
        self.client_max_window_bits.unwrap_or(15)
    }
}
