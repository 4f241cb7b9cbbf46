//! `Config`: the limits and switches of a WebSocket connection.

use std::time::Duration;

use crate::codec::DEFAULT_MAX_FRAME_SIZE;

/// The default of [`Config::max_fragments`].
pub const DEFAULT_MAX_FRAGMENTS: usize = 1 << 17;

/// Limits and switches of a [`WebSocket`](crate::WebSocket), set with chained calls.
///
/// ```
/// use std::time::Duration;
/// let config = fastws::Config::default()
///     .max_message_size(1 << 20)
///     .fragment_size(Some(64 * 1024))
///     .close_timeout(Duration::from_secs(2));
/// assert_eq!(config.get_max_message_size(), 1 << 20);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[doc(alias = "WebSocketConfig")]
pub struct Config {
    max_frame_size: usize,
    max_message_size: usize,
    max_fragments: usize,
    auto_pong: bool,
    control_messages: bool,
    fragment_size: Option<usize>,
    write_buffer_size: usize,
    close_timeout: Duration,
    ping_interval: Option<Duration>,
    ping_timeout: Duration,
    idle_timeout: Option<Duration>,
    #[cfg(feature = "deflate")]
    deflate: crate::deflate::DeflateConfig,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            max_message_size: 64 << 20,
            max_fragments: DEFAULT_MAX_FRAGMENTS,
            auto_pong: true,
            control_messages: false,
            fragment_size: None,
            write_buffer_size: 128 * 1024,
            close_timeout: Duration::from_secs(5),
            ping_interval: None,
            ping_timeout: Duration::from_secs(20),
            idle_timeout: None,
            #[cfg(feature = "deflate")]
            deflate: crate::deflate::DeflateConfig::default(),
        }
    }
}

impl Config {
    /// The largest frame payload accepted (default 16 MiB); a larger frame fails the
    /// connection with close 1009 as soon as its header arrives.
    pub fn max_frame_size(mut self, max: usize) -> Config {
        self.max_frame_size = max;
        self
    }

    /// The largest message accepted, all fragments together (default 64 MiB);
    /// checked as each fragment arrives, failing with close 1009.
    pub fn max_message_size(mut self, max: usize) -> Config {
        self.max_message_size = max;
        self
    }

    /// The most frames one incoming message may arrive in (default 131,072);
    /// the frame that passes it fails the connection with close 1009
    /// ([`Error::TooManyFragments`](crate::Error::TooManyFragments)). Empty
    /// fragments never reach the size limit, so without this a message could stay
    /// open forever. The default leaves room for a 4 MiB message in 32-byte
    /// fragments; browsers never fragment what they send.
    pub fn max_fragments(mut self, max: usize) -> Config {
        self.max_fragments = max.max(1);
        self
    }

    /// Whether a received ping is answered with a pong automatically (default on).
    pub fn auto_pong(mut self, on: bool) -> Config {
        self.auto_pong = on;
        self
    }

    /// Whether received pings and pongs are also yielded as [`Message::Ping`] and
    /// [`Message::Pong`](crate::Message::Pong) (default off: they are handled
    /// silently).
    ///
    /// [`Message::Ping`]: crate::Message::Ping
    pub fn control_messages(mut self, on: bool) -> Config {
        self.control_messages = on;
        self
    }

    /// Splits outgoing data messages larger than `size` bytes into frames of `size`
    /// bytes (default `None`: one frame per message). A size of 0 is treated as 1.
    pub fn fragment_size(mut self, size: Option<usize>) -> Config {
        self.fragment_size = size.map(|size| size.max(1));
        self
    }

    /// How many bytes may wait in the write buffer before sending waits for the
    /// socket (default 128 KiB): the backpressure that keeps a slow peer from
    /// growing memory without bound. The buffer (payloads of 64 KiB or more count
    /// though they are not copied into it) holds at most this plus one message and
    /// one frame of each control kind (ping, pong, close).
    ///
    /// The limit holds against a peer that pings and never reads too: while the
    /// buffer is full, the pong owed for a ping waits, and a later ping replaces it
    /// (RFC 6455 §5.5.3 lets only the latest ping be answered). Reading goes on
    /// meanwhile (a read path that waited on its writes could deadlock two peers
    /// that both write faster than the other reads), until 1,000 pings have been
    /// replaced that way: then the connection fails with
    /// [`Error::PingFlood`](crate::Error::PingFlood) and close 1008.
    pub fn write_buffer_size(mut self, size: usize) -> Config {
        self.write_buffer_size = size;
        self
    }

    /// How long to wait for the peer to complete the close handshake (default 5 s);
    /// then the connection is closed anyway with [`Error::CloseTimeout`](crate::Error::CloseTimeout).
    pub fn close_timeout(mut self, timeout: Duration) -> Config {
        self.close_timeout = timeout;
        self
    }

    /// Keepalive (default off): after `interval` without any frame from the peer,
    /// send a ping; if nothing arrives within [`Config::ping_timeout`] after it, fail
    /// the connection with [`Error::KeepaliveTimeout`](crate::Error::KeepaliveTimeout)
    /// and close it. Runs in the read path: something must be reading the stream.
    ///
    /// ```
    /// use std::time::Duration;
    /// let config = fastws::Config::default()
    ///     .ping_interval(Some(Duration::from_secs(30)))
    ///     .ping_timeout(Duration::from_secs(10));
    /// ```
    pub fn ping_interval(mut self, interval: Option<Duration>) -> Config {
        self.ping_interval = interval;
        self
    }

    /// How long a keepalive ping may go unanswered (default 20 s); see
    /// [`Config::ping_interval`].
    pub fn ping_timeout(mut self, timeout: Duration) -> Config {
        self.ping_timeout = timeout;
        self
    }

    /// Fails the connection with [`Error::IdleTimeout`](crate::Error::IdleTimeout)
    /// when no frame arrives for this long (default `None`: never). Checked with a
    /// granularity of the timeout itself: an idle connection is closed between one
    /// and two timeouts after the last frame.
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Config {
        self.idle_timeout = timeout;
        self
    }

    /// See [`Config::ping_interval`].
    pub fn get_ping_interval(&self) -> Option<Duration> {
        self.ping_interval
    }

    /// See [`Config::ping_timeout`].
    pub fn get_ping_timeout(&self) -> Duration {
        self.ping_timeout
    }

    /// See [`Config::idle_timeout`].
    pub fn get_idle_timeout(&self) -> Option<Duration> {
        self.idle_timeout
    }

    /// permessage-deflate settings (default: offered by clients and accepted by
    /// servers; see [`DeflateConfig`](crate::DeflateConfig)).
    #[cfg(feature = "deflate")]
    pub fn deflate(mut self, deflate: crate::deflate::DeflateConfig) -> Config {
        self.deflate = deflate;
        self
    }

    /// See [`Config::deflate`].
    #[cfg(feature = "deflate")]
    pub fn get_deflate(&self) -> &crate::deflate::DeflateConfig {
        &self.deflate
    }

    /// See [`Config::max_frame_size`].
    pub fn get_max_frame_size(&self) -> usize {
        self.max_frame_size
    }

    /// See [`Config::max_message_size`].
    pub fn get_max_message_size(&self) -> usize {
        self.max_message_size
    }

    /// See [`Config::max_fragments`].
    pub fn get_max_fragments(&self) -> usize {
        self.max_fragments
    }

    /// See [`Config::auto_pong`].
    pub fn get_auto_pong(&self) -> bool {
        self.auto_pong
    }

    /// See [`Config::control_messages`].
    pub fn get_control_messages(&self) -> bool {
        self.control_messages
    }

    /// See [`Config::fragment_size`].
    pub fn get_fragment_size(&self) -> Option<usize> {
        self.fragment_size
    }

    /// See [`Config::write_buffer_size`].
    pub fn get_write_buffer_size(&self) -> usize {
        self.write_buffer_size
    }

    /// See [`Config::close_timeout`].
    pub fn get_close_timeout(&self) -> Duration {
        self.close_timeout
    }
}
