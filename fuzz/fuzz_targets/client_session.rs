//! A whole client session driven by the server's bytes: the response to the
//! upgrade, then the server's frames, with permessage-deflate offered. Exercises
//! the response parser, the accept check, the answer to the deflate offer, the
//! handshake leftovers, the client's codec (unmasked frames in, masked out),
//! reassembly, UTF-8, inflation, compression with the negotiated parameters, and
//! the close handshake from either side. Must never panic or hang (time is paused,
//! so timeouts fire at once).
//!
//! Usage: `RUSTC_BOOTSTRAP=1 cargo fuzz run -s none --release -a client_session`
//! (from the repository root), or `bash scripts/fuzz.sh` for every target.
//!
//! Input layout:
//! - byte 0, bits 0–3: the response. 0 to 14 build a valid `101` with the right
//!   `Sec-WebSocket-Accept` and the extension answer `EXTENSIONS[n]`, and the rest
//!   of the input follows it as the server's frames; 15 sends the rest of the input
//!   as it is, head and all, with every `{accept}` replaced by the accept value.
//! - byte 0, bits 4–5: the client's deflate offer, `deflate_config`.
//! - byte 0, bits 6–7: what the client does, `Behaviour`.
//! - byte 1, bits 0–2: the capacity of the in-memory pipe, `PIPE_SIZES` (small
//!   ones cut every read and write short).
//! - byte 1, bits 3–4: the client's outgoing fragment size, `FRAGMENT_SIZES`.
//! - byte 1, bit 5: received pings and pongs are yielded as messages.
//! - byte 1, bit 6: keepalive on (a ping after one second of silence).
//! - the rest: the server's bytes, as above.
#![no_main]

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use fastws::{ClientRequest, Config, DeflateConfig, Error, Message};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use libfuzzer_sys::fuzz_target;
use sha1::{Digest, Sha1};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

/// Answers to the client's offer in `Sec-WebSocket-Extensions`: `None` sends no
/// header. The first nine are valid against the default offer, the rest are not.
const EXTENSIONS: [Option<&str>; 15] = [
    None,
    Some("permessage-deflate"),
    Some("permessage-deflate; server_no_context_takeover"),
    Some("permessage-deflate; client_max_window_bits=9"),
    Some("permessage-deflate; server_max_window_bits=10"),
    Some("permessage-deflate; client_no_context_takeover"),
    Some(
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
         server_max_window_bits=8; client_max_window_bits=8",
    ),
    Some("permessage-deflate; server_max_window_bits=15; client_max_window_bits=15"),
    Some("PerMessage-Deflate ; server_max_window_bits=\"12\""),
    Some("permessage-deflate; server_max_window_bits=7"),
    Some("permessage-deflate; client_max_window_bits"),
    Some("permessage-deflate; server_no_context_takeover; server_no_context_takeover"),
    Some("permessage-deflate, permessage-deflate"),
    Some("x-webkit-deflate-frame"),
    Some("permessage-deflate; unknown=1"),
];

/// The response selector that sends the input's own bytes as the response.
const RAW_RESPONSE: u8 = 15;

/// Capacities of the pipe between the client and the harness.
const PIPE_SIZES: [usize; 8] = [64 * 1024, 1, 2, 7, 64, 1024, 4096, 64 * 1024];

/// The client's outgoing fragment sizes.
const FRAGMENT_SIZES: [Option<usize>; 4] = [None, Some(1), Some(16), Some(100)];

/// The RFC 6455 §1.3 GUID, appended to the key before hashing.
const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The most bytes of the client's request the harness reads before answering.
const MAX_REQUEST: usize = 16 * 1024;

/// What the client does once the handshake succeeds.
#[derive(Clone, Copy)]
enum Behaviour {
    /// Sends its messages and the close first, then reads until the stream ends.
    CloseFirst,
    /// Reads until the stream ends, echoing every data message, then closes.
    Echo,
    /// Splits: one half sends its messages and the close while the other reads.
    Split,
    /// Sends its messages, reads until the stream ends, then closes.
    SendThenRead,
}

fn deflate_config(selector: u8) -> DeflateConfig {
    match selector & 0b11 {
        0 | 1 => DeflateConfig::default(),
        // Answers with client_max_window_bits above 12 are refused.
        2 => DeflateConfig::default()
            .client_no_context_takeover(true)
            .client_max_window_bits(12),
        _ => DeflateConfig::disabled(),
    }
}

fn behaviour(selector: u8) -> Behaviour {
    match selector & 0b11 {
        0 => Behaviour::CloseFirst,
        1 => Behaviour::Echo,
        2 => Behaviour::Split,
        _ => Behaviour::SendThenRead,
    }
}

/// The messages the client sends: compressible text, binary, a ping.
fn messages() -> Vec<Message> {
    let binary: Vec<u8> = (0..=255u8).cycle().take(512).collect();
    vec![
        Message::text("fuzz ".repeat(20)),
        Message::binary(binary),
        Message::text(""),
        Message::ping(&b"ping"[..]),
    ]
}

/// `Sec-WebSocket-Accept` for the key in a request head (empty if it has none).
fn accept_value(request: &[u8]) -> String {
    let key = request
        .split(|&byte| byte == b'\n')
        .find_map(|line| {
            let (name, value) = line.split_at(line.iter().position(|&byte| byte == b':')?);
            name.eq_ignore_ascii_case(b"sec-websocket-key")
                .then(|| value[1..].trim_ascii())
        })
        .unwrap_or_default();
    let mut sha1 = Sha1::new();
    sha1.update(key);
    sha1.update(GUID);
    BASE64.encode(sha1.finalize())
}

/// Replaces every `{accept}` in `input` with `accept`.
fn substitute(input: &[u8], accept: &str) -> Vec<u8> {
    const PLACEHOLDER: &[u8] = b"{accept}";
    let mut out = Vec::with_capacity(input.len() + accept.len());
    let mut rest = input;
    while !rest.is_empty() {
        if rest.starts_with(PLACEHOLDER) {
            out.extend_from_slice(accept.as_bytes());
            rest = &rest[PLACEHOLDER.len()..];
        } else {
            out.push(rest[0]);
            rest = &rest[1..];
        }
    }
    out
}

/// What the harness sends back for `request`: the response head and the frames.
fn server_bytes(response: u8, rest: &[u8], request: &[u8]) -> Vec<u8> {
    let accept = accept_value(request);
    if response == RAW_RESPONSE {
        return substitute(rest, &accept);
    }
    let mut out = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n"
    );
    if let Some(extension) = EXTENSIONS[usize::from(response)] {
        out.push_str(&format!("Sec-WebSocket-Extensions: {extension}\r\n"));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(rest);
    out
}

/// The server's side: reads the request head, answers with the fuzz input, ends
/// its output, and reads whatever the client sends until it goes away.
async fn serve(io: DuplexStream, response: u8, rest: &[u8]) {
    let (mut read, mut write) = tokio::io::split(io);
    let mut request = Vec::new();
    let mut chunk = vec![0u8; 4096];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < MAX_REQUEST {
        match read.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => request.extend_from_slice(&chunk[..n]),
        }
    }
    let reply = server_bytes(response, rest, &request);
    let send = async {
        let _ = write.write_all(&reply).await;
        let _ = write.shutdown().await;
    };
    let drain = async { while matches!(read.read(&mut chunk).await, Ok(n) if n > 0) {} };
    tokio::join!(send, drain);
}

/// Reads until the stream ends, echoing data messages into `echo` if given. Each
/// message takes at least two bytes of input, so more items than `limit` means the
/// stream never ends.
async fn read_to_end<R, W>(stream: &mut R, mut echo: Option<&mut W>, limit: usize)
where
    R: Stream<Item = Result<Message, Error>> + Unpin,
    W: Sink<Message, Error = Error> + Unpin,
{
    let mut items = 0;
    while let Some(item) = stream.next().await {
        items += 1;
        assert!(
            items <= limit,
            "the stream yields more items than the input holds"
        );
        if let (Ok(message), Some(sink)) = (item, echo.as_mut())
            && message.is_data()
        {
            let _ = sink.send(message).await;
        }
    }
}

/// Sends the client's messages, each queued and then flushed together.
async fn send_messages<W>(sink: &mut W)
where
    W: Sink<Message, Error = Error> + Unpin,
{
    for message in messages() {
        if sink.feed(message).await.is_err() {
            return;
        }
    }
    let _ = sink.flush().await;
}

async fn client(io: DuplexStream, config: Config, behaviour: Behaviour, limit: usize) {
    let request = ClientRequest::new("ws://fuzz/chat")
        .config(config)
        .timeout(Duration::from_secs(5));
    let Ok((mut ws, _response)) = fastws::client_handshake(io, request).await else {
        return;
    };
    let none = None::<&mut fastws::WebSocket<DuplexStream>>;
    match behaviour {
        Behaviour::CloseFirst => {
            send_messages(&mut ws).await;
            let _ = ws.close().await;
            read_to_end(&mut ws, none, limit).await;
        }
        Behaviour::Echo => {
            let (mut sink, mut stream) = ws.split();
            read_to_end(&mut stream, Some(&mut sink), limit).await;
            let _ = sink.close().await;
        }
        Behaviour::Split => {
            let (mut sink, mut stream) = ws.split();
            let write = async {
                send_messages(&mut sink).await;
                let _ = sink.close().await;
            };
            tokio::join!(write, read_to_end(&mut stream, none, limit));
        }
        Behaviour::SendThenRead => {
            send_messages(&mut ws).await;
            read_to_end(&mut ws, none, limit).await;
            let _ = ws.close().await;
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let [mode, io, rest @ ..] = data else {
        return;
    };
    let mut config = Config::default()
        .max_message_size(1 << 20)
        .max_frame_size(1 << 20)
        .deflate(deflate_config(mode >> 4))
        .fragment_size(FRAGMENT_SIZES[usize::from((io >> 3) & 0b11)])
        .control_messages(io & 0b10_0000 != 0);
    if io & 0b100_0000 != 0 {
        config = config.ping_interval(Some(Duration::from_secs(1)));
    }
    let behaviour = behaviour(mode >> 6);
    let limit = rest.len() / 2 + 8;

    // Timers only: the pipe is in memory, and without an I/O driver to poll each
    // time the runtime parks, a fifth more inputs run per second.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let (client_io, server_io) = tokio::io::duplex(PIPE_SIZES[usize::from(io & 0b111)]);
        tokio::join!(
            client(client_io, config, behaviour, limit),
            serve(server_io, mode & 0x0f, rest),
        );
    });
});
