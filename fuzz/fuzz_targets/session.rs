//! A whole server session driven by peer bytes: a valid upgrade request offering
//! permessage-deflate, then the fuzz input as the client's frames. Exercises the
//! handshake leftovers, the codec, reassembly, UTF-8, inflation and the close
//! handshake together. Must never panic or hang (time is paused, so timeouts fire
//! at once).
#![no_main]

use futures_util::StreamExt;
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: fuzz\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n";

fuzz_target!(|data: &[u8]| {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let config = fastws::Config::default().max_message_size(1 << 20).max_frame_size(1 << 20);
        let serve = async move {
            if let Ok(mut ws) = fastws::Acceptor::new().config(config).accept(server).await {
                while ws.next().await.is_some() {}
            }
        };
        let peer = async move {
            let mut input = REQUEST.to_vec();
            input.extend_from_slice(data);
            let (mut read, mut write) = tokio::io::split(&mut client);
            let send = async {
                let _ = write.write_all(&input).await;
                let _ = write.shutdown().await;
            };
            let drain = async {
                let mut sink = vec![0u8; 16 * 1024];
                while matches!(read.read(&mut sink).await, Ok(n) if n > 0) {}
            };
            tokio::join!(send, drain);
        };
        tokio::join!(serve, peer);
    });
});
