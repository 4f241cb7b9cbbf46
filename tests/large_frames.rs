//! Large payloads take the zero-copy write path (header buffered, payload written
//! with a vectored write); what arrives must be exactly what was sent.

use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio::time::timeout;

use fastws::{Config, DeflateConfig, Message};

const LIMIT: Duration = Duration::from_secs(20);

fn pattern(len: usize, seed: u8) -> Bytes {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect::<Vec<u8>>()
        .into()
}

/// An echo server without compression, so payloads reach the write path as sent.
async fn echo_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let acceptor = fastws::Acceptor::new().config(Config::default().deflate(DeflateConfig::disabled()));
        let (sink, stream) = acceptor.accept(tcp).await.unwrap().split();
        let _ = stream.forward(sink).await;
    });
    format!("ws://{addr}/")
}

#[tokio::test]
async fn large_messages_pipelined_with_small_ones_arrive_intact_and_in_order() {
    let url = echo_server().await;
    let request =
        fastws::ClientRequest::new(url).config(Config::default().deflate(DeflateConfig::disabled()));
    let (ws, _) = timeout(LIMIT, fastws::connect(request)).await.unwrap().unwrap();
    let (mut sink, mut stream) = ws.split();
    let sizes = [70_000, 10, 1 << 20, 65_536, 3, 200_000, 65_535];
    let sent: Vec<Bytes> = sizes
        .iter()
        .enumerate()
        .map(|(i, &len)| pattern(len, i as u8))
        .collect();
    let expected = sent.clone();
    let writer = tokio::spawn(async move {
        for payload in sent {
            // Feed without flushing so large and small frames queue behind each other.
            sink.feed(Message::Binary(payload)).await.unwrap();
        }
        sink.flush().await.unwrap();
        sink
    });
    for payload in &expected {
        let echo = timeout(LIMIT, stream.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(echo.payload().len(), payload.len());
        assert!(
            echo.payload() == &payload[..],
            "payload of {} bytes differs",
            payload.len()
        );
    }
    let _ = writer.await.unwrap();
}

#[tokio::test]
async fn a_client_never_masks_a_payload_the_caller_still_holds() {
    let url = echo_server().await;
    let request =
        fastws::ClientRequest::new(url).config(Config::default().deflate(DeflateConfig::disabled()));
    let (mut ws, _) = timeout(LIMIT, fastws::connect(request)).await.unwrap().unwrap();
    let kept = pattern(300_000, 7);
    let copy_before = kept.to_vec();
    ws.send(Message::Binary(kept.clone())).await.unwrap();
    let echo = timeout(LIMIT, ws.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(
        kept.to_vec(),
        copy_before,
        "the caller's bytes were masked in place"
    );
    assert!(echo.payload() == &copy_before[..]);
}

/// A server `WebSocket` over one end of an in-memory pipe of `capacity` bytes, and
/// a client frame codec over the other end.
fn pipe(
    capacity: usize,
) -> (
    fastws::WebSocket<tokio::io::DuplexStream>,
    tokio_util::codec::Framed<tokio::io::DuplexStream, fastws::WsCodec>,
) {
    let (server_io, client_io) = tokio::io::duplex(capacity);
    let config = Config::default().deflate(DeflateConfig::disabled());
    let ws = fastws::WebSocket::from_raw_socket(server_io, fastws::Role::Server, config);
    (
        ws,
        tokio_util::codec::Framed::new(client_io, fastws::WsCodec::client()),
    )
}

#[tokio::test]
async fn uncopied_payloads_keep_their_place_among_small_and_control_frames_through_partial_writes() {
    // 1,000 bytes of pipe: every write is partial, and a duplex pipe has no
    // vectored writes, so each one takes a single slice of what is queued.
    let (mut ws, mut client) = pipe(1000);
    let sent = vec![
        fastws::Frame::binary(pattern(70_000, 1)),
        fastws::Frame::ping(Bytes::from_static(b"between")),
        fastws::Frame::binary(pattern(100_000, 2)),
        fastws::Frame::text("small"),
        fastws::Frame::binary(pattern(65_536, 3)),
        fastws::Frame::binary(pattern(65_536, 4)),
        fastws::Frame::text("last"),
    ];
    let messages: Vec<Message> = sent
        .iter()
        .map(|frame| match frame.opcode() {
            fastws::OpCode::Ping => Message::Ping(frame.payload().clone()),
            fastws::OpCode::Text => Message::text(std::str::from_utf8(frame.payload()).unwrap()),
            _ => Message::Binary(frame.payload().clone()),
        })
        .collect();
    let server = tokio::spawn(async move {
        for message in messages {
            ws.feed(message).await.unwrap();
        }
        ws.flush().await.unwrap();
        ws
    });
    for expected in &sent {
        let frame = timeout(LIMIT, client.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(frame.opcode(), expected.opcode());
        assert_eq!(frame.payload().len(), expected.payload().len());
        assert!(
            frame.payload() == expected.payload(),
            "{:?} payload differs",
            frame.opcode()
        );
    }
    let _ws = timeout(LIMIT, server).await.unwrap().unwrap();
}

#[tokio::test]
async fn a_task_that_only_reads_writes_out_a_queued_large_message() {
    let (mut ws, mut client) = pipe(1 << 20);
    let big = pattern(200_000, 5);
    let expected = big.clone();
    let server = tokio::spawn(async move {
        // Queued, never flushed by the sending side.
        ws.feed(Message::Binary(big)).await.unwrap();
        let go = ws.next().await.unwrap().unwrap();
        assert_eq!(go.as_text(), Some("go"));
        // Waiting for the next message is what writes the queued one out.
        ws.next().await
    });
    client.send(fastws::Frame::text("go")).await.unwrap();
    let frame = timeout(LIMIT, client.next()).await.unwrap().unwrap().unwrap();
    assert!(frame.payload() == &expected[..], "the queued message differs");
    client
        .send(fastws::Frame::close(fastws::CloseCode::Normal, ""))
        .await
        .unwrap();
    let last = timeout(LIMIT, server).await.unwrap().unwrap();
    assert!(matches!(last, Some(Ok(Message::Close(_)))), "{last:?}");
}

/// A transport that holds the bytes of whole frames and gives each read at most
/// `most_per_read` of them, recording where every read started and how much it
/// asked for. Writes are accepted and dropped.
struct RecordingTransport {
    wire: Bytes,
    at: usize,
    most_per_read: usize,
    reads: Vec<(usize, usize)>,
}

impl tokio::io::AsyncRead for RecordingTransport {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let this = &mut *self;
        this.reads.push((this.at, buf.remaining()));
        let n = buf
            .remaining()
            .min(this.most_per_read)
            .min(this.wire.len() - this.at);
        buf.put_slice(&this.wire[this.at..this.at + n]);
        this.at += n;
        std::task::Poll::Ready(Ok(()))
    }
}

impl tokio::io::AsyncWrite for RecordingTransport {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// Receives `payloads` as masked frames through a server `WebSocket` whose reads
/// get at most `most_per_read` bytes each; checks every message and returns the
/// reads (start, asked) with the frames' (start, end) on the wire.
async fn receive_recording_reads(
    payloads: &[Bytes],
    most_per_read: usize,
) -> (Vec<(usize, usize)>, Vec<(usize, usize)>) {
    let mut codec = fastws::WsCodec::client();
    let mut wire = bytes::BytesMut::new();
    let mut frames = Vec::new();
    for payload in payloads {
        let start = wire.len();
        tokio_util::codec::Encoder::encode(&mut codec, fastws::Frame::binary(payload.clone()), &mut wire)
            .unwrap();
        frames.push((start, wire.len()));
    }
    let transport = RecordingTransport {
        wire: wire.freeze(),
        at: 0,
        most_per_read,
        reads: Vec::new(),
    };
    let config = Config::default()
        .deflate(DeflateConfig::disabled())
        .max_message_size(16 << 20)
        .max_frame_size(16 << 20);
    let mut ws = fastws::WebSocket::from_raw_socket(transport, fastws::Role::Server, config);
    for payload in payloads {
        let message = timeout(LIMIT, ws.next()).await.unwrap().unwrap().unwrap();
        assert!(
            message.payload() == payload,
            "a {}-byte message arrived changed",
            payload.len()
        );
    }
    let reads = ws.into_framed().into_inner().reads;
    (reads, frames)
}

/// The frame (start, end) that `at` is in, if its header has arrived: from then on
/// the codec knows the frame's length.
fn frame_with_known_length(frames: &[(usize, usize)], at: usize) -> Option<(usize, usize)> {
    frames
        .iter()
        .copied()
        .find(|&(start, end)| at >= start + 14 && at < end)
}

#[tokio::test]
async fn reads_of_a_frame_too_large_for_several_in_a_buffer_stop_at_its_end_and_the_next_header() {
    let payloads: Vec<Bytes> = (0..4).map(|i| pattern(3 << 20, i)).collect();
    let (reads, frames) = receive_recording_reads(&payloads, usize::MAX).await;
    for &(at, asked) in &reads {
        if let Some((_, end)) = frame_with_known_length(&frames, at) {
            assert!(
                at + asked <= end + 14,
                "a read at {at} asked for {asked} bytes, past the frame's end at {end} and the next header"
            );
        }
    }
    // Every read is full here, so the reads grow: a 3 MiB frame takes a handful,
    // not 48 of 64 KiB.
    assert!(
        reads.len() <= 4 * 8,
        "{} reads for four 3 MiB frames",
        reads.len()
    );
}

#[tokio::test]
async fn a_reader_that_gets_less_than_it_asks_asks_for_less_inside_large_frames() {
    let payloads: Vec<Bytes> = (0..3).map(|i| pattern(1 << 20, i)).collect();
    let (reads, frames) = receive_recording_reads(&payloads, 16 << 10).await;
    let inside: Vec<usize> = reads
        .iter()
        .filter(|&&(at, _)| frame_with_known_length(&frames, at).is_some())
        .map(|&(_, asked)| asked)
        .collect();
    assert!(inside.len() > 3 * 60, "{} reads inside the frames", inside.len());
    // Each short read halves the large read, and it never goes below 64 KiB: a
    // socket that never has more than 16 KiB is asked for 64 KiB, not the frame.
    assert!(
        inside.iter().all(|&asked| asked <= 64 << 10),
        "reads asked for up to {} bytes",
        inside.iter().max().unwrap()
    );
}

#[tokio::test]
async fn reads_of_equal_frames_that_several_fit_in_a_buffer_end_at_a_frame_and_the_next_header() {
    let payloads: Vec<Bytes> = (0..64).map(|i| pattern(64 << 10, i)).collect();
    let (reads, frames) = receive_recording_reads(&payloads, usize::MAX).await;
    let header_ends: Vec<usize> = frames.iter().map(|&(start, _)| start + 14).collect();
    let wire_end = frames.last().unwrap().1;
    // Past the first reads the large read has grown beyond the buffer's room,
    // which is what limits a read from then on.
    let mut passing = 0;
    for &(at, asked) in reads.iter().skip(8) {
        let Some((_, end)) = frame_with_known_length(&frames, at) else {
            continue;
        };
        let read_end = at + asked;
        if read_end <= end {
            continue;
        }
        passing += 1;
        assert!(
            header_ends.contains(&read_end) || read_end >= wire_end,
            "a read at {at} asked for {asked} bytes, ending inside a frame at {read_end}: \
             that frame's start would be moved when the buffer is reclaimed"
        );
    }
    assert!(passing >= 8, "{passing} reads ran past a frame's end");
}

#[tokio::test]
async fn a_connection_streaming_frames_of_a_mebibyte_lets_the_other_tasks_of_its_thread_run() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    // 48 MiB in 1 MiB frames from a transport that is always ready, so the only
    // thing that can end the reader's turn is tokio's budget.
    let payloads: Vec<Bytes> = (0..48).map(|i| pattern(1 << 20, i)).collect();
    let done = Arc::new(AtomicBool::new(false));
    let turns = Arc::new(AtomicUsize::new(0));
    let other = {
        let (done, turns) = (Arc::clone(&done), Arc::clone(&turns));
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                turns.fetch_add(1, Ordering::Relaxed);
                tokio::task::yield_now().await;
            }
        })
    };
    // Let the other task start and park on its yield.
    tokio::task::yield_now().await;
    let before = turns.load(Ordering::Relaxed);
    let reader = tokio::spawn(async move { receive_recording_reads(&payloads, usize::MAX).await });
    let (reads, _) = timeout(LIMIT, reader).await.unwrap().unwrap();
    let during = turns.load(Ordering::Relaxed) - before;
    done.store(true, Ordering::Relaxed);
    other.await.unwrap();
    // A turn of 128 operations carries at most 16 MiB: 48 MiB take at least three.
    assert!(
        during >= 2,
        "the other task ran {during} times while {} reads brought in 48 MiB",
        reads.len()
    );
}
