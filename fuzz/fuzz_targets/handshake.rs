//! The server handshake on arbitrary bytes: the request parser and validation
//! must answer or refuse, never panic or hang.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fuzz_target!(|data: &[u8]| {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let serve = async move {
            let acceptor = fastws::Acceptor::new().max_header_size(4096);
            let _ = acceptor.accept(server).await;
        };
        let peer = async move {
            let (mut read, mut write) = tokio::io::split(&mut client);
            let send = async {
                let _ = write.write_all(data).await;
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
