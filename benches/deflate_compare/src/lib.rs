//! What the load generators share: a client handshake offering deflate as Chromium
//! does, the client's compression contexts, frames, and the JSON messages sent.
//! Plain tokio + flate2, written from RFC 6455 and RFC 7692, not fastws.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use sha1::{Digest, Sha1};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The tail a sync flush ends with, stripped on the wire (RFC 7692 §7.2.1).
const SYNC_TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// What the server's 101 answer agreed to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Negotiated {
    pub deflate: bool,
    /// Window of our compressor (the server's `client_max_window_bits`, else 15).
    pub client_window_bits: u8,
    pub server_no_context_takeover: bool,
    pub client_no_context_takeover: bool,
}

/// Connects and upgrades offering `permessage-deflate; client_max_window_bits`;
/// returns the stream, the bytes read past the 101 answer, and what it agreed to.
pub async fn handshake(addr: &str, id: usize) -> Result<(TcpStream, Vec<u8>, Negotiated), Error> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let key = BASE64.encode(splitmix(id as u64 ^ 0x5eed).to_le_bytes().repeat(2));
    let request = format!(
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut buf = Vec::with_capacity(4096);
    let head_len = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        if buf.len() > 16 * 1024 || stream.read_buf(&mut buf).await? == 0 {
            return Err("no complete handshake response".into());
        }
    };
    let negotiated = parse_response(&buf[..head_len], &key)?;
    buf.drain(..head_len);
    Ok((stream, buf, negotiated))
}

/// Checks the 101 answer and reads its permessage-deflate parameters (RFC 7692 §7.1).
pub fn parse_response(head: &[u8], key: &str) -> Result<Negotiated, Error> {
    let head = std::str::from_utf8(head)?;
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("101") {
        return Err(format!("handshake answered {status:?}").into());
    }
    let expected_accept = {
        let mut sha = Sha1::new();
        sha.update(key.as_bytes());
        sha.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
        BASE64.encode(sha.finalize())
    };
    let mut accept_ok = false;
    let mut negotiated = Negotiated {
        deflate: false,
        client_window_bits: 15,
        server_no_context_takeover: false,
        client_no_context_takeover: false,
    };
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("sec-websocket-accept") {
            accept_ok = value == expected_accept;
        } else if name.eq_ignore_ascii_case("sec-websocket-extensions") {
            for extension in value.split(',') {
                let mut params = extension.split(';').map(str::trim);
                if params.next() != Some("permessage-deflate") {
                    return Err(format!("unexpected extension {extension:?}").into());
                }
                if negotiated.deflate {
                    return Err("permessage-deflate accepted twice".into());
                }
                negotiated.deflate = true;
                for param in params.filter(|p| !p.is_empty()) {
                    let (name, value) = match param.split_once('=') {
                        Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
                        None => (param, None),
                    };
                    match (name, value) {
                        ("server_no_context_takeover", None) => negotiated.server_no_context_takeover = true,
                        ("client_no_context_takeover", None) => negotiated.client_no_context_takeover = true,
                        ("client_max_window_bits", Some(bits)) => {
                            let bits: u8 = bits.parse()?;
                            if !(8..=15).contains(&bits) {
                                return Err(format!("client_max_window_bits={bits}").into());
                            }
                            negotiated.client_window_bits = bits;
                        }
                        // Our decompressor takes any window up to 15 bits.
                        ("server_max_window_bits", Some(_)) => {}
                        _ => return Err(format!("unexpected parameter {param:?}").into()),
                    }
                }
            }
        }
    }
    if !accept_ok {
        return Err("missing or wrong Sec-WebSocket-Accept".into());
    }
    Ok(negotiated)
}

/// The client's compression contexts for one connection.
pub struct Peer {
    negotiated: Negotiated,
    compress: Compress,
    decompress: Decompress,
}

impl Peer {
    pub fn new(negotiated: Negotiated) -> Self {
        // zlib turns a raw 8-bit window into 9 bits, which an 8-bit limit forbids.
        let bits = negotiated.client_window_bits.max(9);
        Peer {
            negotiated,
            compress: Compress::new_with_window_bits(Compression::new(6), false, bits),
            decompress: Decompress::new_with_window_bits(false, 15),
        }
    }

    /// The payload of one message: deflated with a sync flush, its tail stripped.
    pub fn compress(&mut self, plain: &[u8]) -> Result<Vec<u8>, Error> {
        if !self.negotiated.deflate {
            return Ok(plain.to_vec());
        }
        let mut out = Vec::with_capacity(plain.len() + 64);
        let start_in = self.compress.total_in();
        for round in 0.. {
            if round > 1000 {
                return Err("compressor makes no progress".into());
            }
            let consumed = (self.compress.total_in() - start_in) as usize;
            if out.len() == out.capacity() {
                out.reserve(256);
            }
            self.compress
                .compress_vec(&plain[consumed..], &mut out, FlushCompress::Sync)?;
            let consumed = (self.compress.total_in() - start_in) as usize;
            // Done when all input is in and the flush had room to finish.
            if consumed == plain.len() && out.len() < out.capacity() {
                break;
            }
        }
        if !out.ends_with(&SYNC_TAIL) {
            return Err("compressor output lacks the sync flush tail".into());
        }
        out.truncate(out.len() - SYNC_TAIL.len());
        if self.negotiated.client_no_context_takeover {
            self.compress.reset();
        }
        Ok(out)
    }

    /// One echoed payload, inflated (the stripped tail put back first).
    pub fn decompress(&mut self, payload: &[u8]) -> Result<Vec<u8>, Error> {
        let mut input = Vec::with_capacity(payload.len() + 4);
        input.extend_from_slice(payload);
        input.extend_from_slice(&SYNC_TAIL);
        let mut out = Vec::with_capacity(payload.len() * 4 + 64);
        let start_in = self.decompress.total_in();
        for round in 0.. {
            if round > 1000 {
                return Err("decompressor makes no progress".into());
            }
            let consumed = (self.decompress.total_in() - start_in) as usize;
            if out.len() == out.capacity() {
                out.reserve(out.capacity().max(1024));
            }
            let before_out = out.len();
            let status =
                self.decompress
                    .decompress_vec(&input[consumed..], &mut out, FlushDecompress::Sync)?;
            let consumed = (self.decompress.total_in() - start_in) as usize;
            if status == Status::StreamEnd {
                return Err("echo ended its deflate stream (BFINAL)".into());
            }
            if consumed == input.len() && out.len() < out.capacity() {
                break;
            }
            if consumed == input.len() && out.len() == before_out {
                break;
            }
            if out.len() > 16 << 20 {
                return Err("echo inflates past 16 MiB".into());
            }
        }
        if self.negotiated.server_no_context_takeover {
            self.decompress.reset(false);
        }
        Ok(out)
    }
}

/// A masked client frame of one text message, FIN set (RFC 6455 §5.2).
pub fn frame(payload: &[u8], rsv1: bool, mask: [u8; 4]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 14);
    out.push(0x80 | if rsv1 { 0x40 } else { 0 } | 0x1);
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n <= 0xffff => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

/// Reads one data message (fragments joined); returns its RSV1 bit and payload.
pub async fn read_message(
    stream: &mut (impl AsyncRead + Unpin),
    buf: &mut Vec<u8>,
) -> Result<(bool, Vec<u8>), Error> {
    let mut message: Option<(bool, Vec<u8>)> = None;
    loop {
        let (fin, rsv1, opcode, payload) = read_frame(stream, buf).await?;
        match opcode {
            0x1 | 0x2 if message.is_none() => message = Some((rsv1, payload)),
            0x0 if message.is_some() => message.as_mut().unwrap().1.extend_from_slice(&payload),
            0x8 => return Err(format!("server closed: {payload:?}").into()),
            0x9 | 0xA => continue, // pings are not expected within seconds; ignore
            _ => return Err(format!("unexpected opcode {opcode:#x}").into()),
        }
        if fin {
            return Ok(message.unwrap());
        }
    }
}

/// Reads one unmasked server frame: (FIN, RSV1, opcode, payload).
pub async fn read_frame(
    stream: &mut (impl AsyncRead + Unpin),
    buf: &mut Vec<u8>,
) -> Result<(bool, bool, u8, Vec<u8>), Error> {
    loop {
        if buf.len() >= 2 {
            let (b0, b1) = (buf[0], buf[1]);
            if b1 & 0x80 != 0 {
                return Err("server frame is masked".into());
            }
            let (len, header) = match b1 & 0x7f {
                126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4),
                127 if buf.len() >= 10 => (u64::from_be_bytes(buf[2..10].try_into()?) as usize, 10),
                126 | 127 => (usize::MAX, 0),
                n => (n as usize, 2),
            };
            if len != usize::MAX && buf.len() >= header + len {
                let payload = buf[header..header + len].to_vec();
                buf.drain(..header + len);
                return Ok((b0 & 0x80 != 0, b0 & 0x40 != 0, b0 & 0x0f, payload));
            }
        }
        if stream.read_buf(buf).await? == 0 {
            return Err("connection closed mid-frame".into());
        }
    }
}

/// A JSON text of `len` bytes, deterministic, its numbers varying with the connection and sequence.
pub fn json_message(id: usize, seq: usize, len: usize) -> String {
    let mut state = splitmix((id as u64) << 32 | seq as u64);
    let mut next = || {
        state = splitmix(state);
        state
    };
    let mut text = format!(
        "{{\"type\":\"ticker\",\"conn\":{id},\"seq\":{seq},\"ts\":{},\"items\":[",
        1_764_000_000_000u64 + next() % 1_000_000
    );
    let mut first = true;
    while text.len() < len - 120 {
        let r = next();
        if !first {
            text.push(',');
        }
        first = false;
        text.push_str(&format!(
            "{{\"sym\":\"S{:03}\",\"bid\":{}.{:02},\"ask\":{}.{:02},\"qty\":{}}}",
            r % 500,
            100 + (r >> 9) % 900,
            (r >> 19) % 100,
            100 + (r >> 26) % 900,
            (r >> 36) % 100,
            (r >> 43) % 10_000
        ));
    }
    text.push_str("],\"note\":\"");
    while text.len() < len - 2 {
        text.push((b'a' + (next() % 26) as u8) as char);
    }
    text.push_str("\"}");
    debug_assert_eq!(text.len(), len);
    text
}

/// SplitMix64: a small deterministic mixer.
pub fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
