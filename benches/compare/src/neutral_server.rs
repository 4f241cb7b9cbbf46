//! The server of the client-role benchmark, on plain tokio and no WebSocket
//! library: the upgrade answered by hand (every client sends [`client::KEY`]),
//! then either pre-built unmasked frames pushed as fast as the client reads, or an
//! echo of what the client sends, unmasked by a plain loop.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::client;

/// What the server does once a connection is upgraded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Waits for the client's first message (its subscription), then writes
    /// `count` binary frames of the load's size, back to back, as fast as the
    /// client reads them (market data); then reads until the client closes.
    Push,
    /// Answers every data frame with the same payload, unmasked (request and
    /// response); ends when the client closes.
    Echo,
}

impl std::str::FromStr for Mode {
    type Err = String;

    fn from_str(text: &str) -> Result<Mode, String> {
        match text {
            "push" => Ok(Mode::Push),
            "echo" => Ok(Mode::Echo),
            _ => Err(format!("MODE is push or echo, not {text:?}")),
        }
    }
}

/// One unmasked, final, binary frame with `size` bytes of payload.
pub fn unmasked_frame(size: usize) -> Vec<u8> {
    let mut frame = Vec::with_capacity(size + 10);
    put_header(&mut frame, 0x2, size);
    frame.extend((0..size).map(|i| (i as u8).wrapping_mul(31)));
    frame
}

/// The header of an unmasked, final frame with `opcode` and `len` bytes.
fn put_header(out: &mut Vec<u8>, opcode: u8, len: usize) {
    out.push(0x80 | opcode);
    match len {
        0..=125 => out.push(len as u8),
        126..=65535 => {
            out.push(126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
}

/// Accepts `conns` connections on `listener` and serves each in a task of its
/// own, `count` messages each in push mode; returns when all have ended.
pub async fn serve(
    listener: TcpListener,
    conns: usize,
    mode: Mode,
    size: usize,
    count: u64,
) -> Result<(), String> {
    let mut tasks = Vec::with_capacity(conns);
    for _ in 0..conns {
        let (tcp, _) = listener.accept().await.map_err(|e| e.to_string())?;
        tcp.set_nodelay(true).map_err(|e| e.to_string())?;
        tasks.push(tokio::spawn(connection(tcp, mode, size, count)));
    }
    for task in tasks {
        task.await.map_err(|e| e.to_string())??;
    }
    Ok(())
}

async fn connection(mut tcp: TcpStream, mode: Mode, size: usize, count: u64) -> Result<(), String> {
    upgrade(&mut tcp).await?;
    match mode {
        Mode::Push => push(tcp, size, count).await,
        Mode::Echo => echo(tcp).await,
    }
}

/// Reads the request head and answers `101` with the accept key of [`client::KEY`].
async fn upgrade(tcp: &mut TcpStream) -> Result<(), String> {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 512];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tcp.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 || head.len() > 16 * 1024 {
            return Err("the client closed or sent too much before its request ended".to_owned());
        }
        head.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&head);
    if !text.contains(client::KEY) {
        return Err(format!("a request without the benchmark's key: {text:?}"));
    }
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        client::ACCEPT
    );
    tcp.write_all(response.as_bytes())
        .await
        .map_err(|e| e.to_string())
}

/// Writes `count` frames in writes of about 64 KiB once the client's first frame
/// has arrived, then reads until EOF (the
/// client may send a close frame; a reset after it is the client's way to end).
async fn push(mut tcp: TcpStream, size: usize, count: u64) -> Result<(), String> {
    // The subscription: frames sent before the client has read the `101` would
    // arrive with it, in the bytes the upgrade reads.
    let mut request = Vec::with_capacity(64);
    let mut chunk = [0u8; 64];
    loop {
        if let Some((_, header_len, len)) = parse_masked_header(&request)?
            && request.len() >= header_len + len
        {
            break;
        }
        let n = tcp.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("the client closed before it subscribed".to_owned());
        }
        request.extend_from_slice(&chunk[..n]);
    }
    let frame = unmasked_frame(size);
    let per_write = (64 * 1024 / frame.len()).max(1);
    let batch = frame.repeat(per_write);
    let mut left = count;
    while left > 0 {
        let n = left.min(per_write as u64) as usize;
        if tcp.write_all(&batch[..n * frame.len()]).await.is_err() {
            return Err(format!("the client left with {left} messages unsent"));
        }
        left -= n as u64;
    }
    let mut sink = vec![0u8; 64 * 1024];
    while let Ok(n) = tcp.read(&mut sink).await {
        if n == 0 {
            break;
        }
    }
    Ok(())
}

/// Echoes every data frame the client sends, unmasked; a close frame is answered
/// with an empty close frame and ends the connection, so does EOF.
async fn echo(mut tcp: TcpStream) -> Result<(), String> {
    let mut input: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut output: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; 256 * 1024];
    loop {
        let n = tcp.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Ok(());
        }
        input.extend_from_slice(&chunk[..n]);
        let mut at = 0;
        let mut closed = false;
        while let Some((opcode, header_len, len)) = parse_masked_header(&input[at..])? {
            if input.len() - at < header_len + len {
                break;
            }
            let mask = [
                input[at + header_len - 4],
                input[at + header_len - 3],
                input[at + header_len - 2],
                input[at + header_len - 1],
            ];
            let payload = &input[at + header_len..at + header_len + len];
            match opcode {
                0x1 | 0x2 => {
                    put_header(&mut output, opcode, len);
                    output.extend(payload.iter().enumerate().map(|(i, byte)| byte ^ mask[i % 4]));
                }
                0x8 => {
                    output.extend_from_slice(&[0x88, 0]);
                    closed = true;
                }
                _ => {}
            }
            at += header_len + len;
        }
        input.drain(..at);
        if !output.is_empty() {
            tcp.write_all(&output).await.map_err(|e| e.to_string())?;
            output.clear();
        }
        if closed {
            return Ok(());
        }
    }
}

/// The opcode, header length and payload length of the masked client frame at the
/// start of `bytes`, or `None` while the header is incomplete.
fn parse_masked_header(bytes: &[u8]) -> Result<Option<(u8, usize, usize)>, String> {
    if bytes.len() < 2 {
        return Ok(None);
    }
    if bytes[0] & 0x80 == 0 || bytes[1] & 0x80 == 0 {
        return Err("the benchmark's clients send unfragmented, masked frames".to_owned());
    }
    let (len, at) = match bytes[1] & 0x7f {
        126 if bytes.len() >= 4 => (u16::from_be_bytes([bytes[2], bytes[3]]) as usize, 4),
        127 if bytes.len() >= 10 => (
            u64::from_be_bytes(bytes[2..10].try_into().expect("8 bytes")) as usize,
            10,
        ),
        126 | 127 => return Ok(None),
        len => (len as usize, 2),
    };
    if bytes.len() < at + 4 {
        return Ok(None);
    }
    Ok(Some((bytes[0] & 0x0f, at + 4, len)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_parsed_in_their_three_lengths() {
        let (frames, frame_len) = client::build_frames(200, 2);
        assert_eq!(parse_masked_header(&frames).unwrap(), Some((2, 8, 200)));
        assert_eq!(frame_len, 208);
        let (frames, _) = client::build_frames(70_000, 1);
        assert_eq!(parse_masked_header(&frames).unwrap(), Some((2, 14, 70_000)));
        assert_eq!(parse_masked_header(&frames[..9]).unwrap(), None);
        let (frames, _) = client::build_frames(5, 1);
        assert_eq!(parse_masked_header(&frames).unwrap(), Some((2, 6, 5)));
    }

    #[test]
    fn an_unmasked_frame_has_the_shortest_header() {
        assert_eq!(&unmasked_frame(3)[..2], &[0x82, 3]);
        assert_eq!(&unmasked_frame(300)[..4], &[0x82, 126, 1, 44]);
        assert_eq!(unmasked_frame(70_000).len(), 70_010);
    }
}
