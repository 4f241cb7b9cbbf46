//! A subscriber of the chat example (`examples/chat/`) that stops reading while
//! a room floods: the server's heap stays bounded (the room's backlog and one
//! write buffer, not the flood), the other subscribers get every line, and the
//! slow one, when it reads again, is told how many lines it missed: each line is
//! delivered or counted as skipped, none lost silently. One test: the allocator
//! counts the whole binary.

mod common;

#[allow(dead_code)]
#[path = "../examples/chat/main.rs"]
mod chat;

use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;

use common::chat::{next_line, until_subscribed};
use common::counting::{Counting, live_bytes};
use fastws::{ClientRequest, Config, DeflateConfig, Message};
use futures::SinkExt;
use tokio::net::{TcpListener, TcpSocket};

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const LINES: usize = 2_000;
const LINE_LEN: usize = 8 * 1024;

fn request(url: String) -> ClientRequest {
    ClientRequest::new(url).config(Config::default().deflate(DeflateConfig::disabled()))
}

/// Line `i`: its number, then filler up to [`LINE_LEN`].
fn line(i: usize) -> String {
    let mut text = format!("{i:06} ");
    while text.len() < LINE_LEN {
        text.push_str("flood ");
    }
    text.truncate(LINE_LEN);
    text
}

fn number(text: &str) -> usize {
    text[..6].parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_stops_reading_costs_the_server_a_bounded_amount_and_is_told_what_it_missed() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(chat::serve(listener, chat::acceptor()));
    let url = format!("ws://{addr}/flood");

    let (mut publisher, _) = fastws::connect(request(url.clone())).await.unwrap();
    let (mut fast, _) = fastws::connect(request(url.clone())).await.unwrap();
    // The slow subscriber's socket takes little before the server's writes wait.
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(16 * 1024).unwrap();
    let tcp = socket.connect(addr).await.unwrap();
    let (mut slow, _) = fastws::client_handshake(tcp, request(url.clone())).await.unwrap();
    until_subscribed(&mut publisher, &mut fast).await;
    until_subscribed(&mut publisher, &mut slow).await;
    until_subscribed(&mut fast, &mut publisher).await;
    // Probes still in flight are read and skipped below.

    let before = live_bytes();
    let peak = Arc::new(AtomicIsize::new(before));
    let sampler = {
        let peak = Arc::clone(&peak);
        tokio::spawn(async move {
            loop {
                peak.fetch_max(live_bytes(), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };
    // The publisher floods in bursts well inside the backlog, each read by the
    // fast subscriber before the next: it keeps up, the slow one does not.
    let mut next = 0;
    for burst in (0..LINES).collect::<Vec<_>>().chunks(64) {
        for &i in burst {
            publisher.feed(Message::text(line(i))).await.unwrap();
        }
        publisher.flush().await.unwrap();
        while next <= *burst.last().unwrap() {
            let text = next_line(&mut fast, "the fast subscriber's lines").await;
            assert_eq!(
                number(&text),
                next,
                "the fast subscriber missed or reordered a line"
            );
            next += 1;
        }
    }
    sampler.abort();
    let growth = peak.load(Ordering::Relaxed) - before;
    let flooded = (LINES * LINE_LEN) as isize;
    println!(
        "published {flooded} bytes; the process's heap grew by at most {growth} bytes ({:.1} % of the flood)",
        100.0 * growth as f64 / flooded as f64
    );
    // The room's backlog (256 lines of 8 KiB) and the buffers of three
    // connections, with room for BytesMut's doubling: far below the flood.
    let bound = (chat::BACKLOG * LINE_LEN * 3) as isize;
    assert!(growth < bound, "the heap grew by {growth} bytes (bound {bound})");

    // The slow subscriber reads again: lines in order, and one notice that
    // accounts for every line it did not get.
    let (mut delivered, mut skipped, mut last) = (0, 0, None::<usize>);
    while last != Some(LINES - 1) {
        let text = next_line(&mut slow, "the slow subscriber's lines").await;
        if let Some(count) = text
            .strip_prefix("* ")
            .and_then(|rest| rest.strip_suffix(" lines skipped"))
        {
            skipped += count.parse::<usize>().unwrap();
            continue;
        }
        let n = number(&text);
        assert!(last.is_none_or(|last| n > last), "line {n} after {last:?}");
        last = Some(n);
        delivered += 1;
    }
    assert!(
        skipped > 0,
        "the slow subscriber never fell behind: the test proves nothing"
    );
    assert_eq!(
        delivered + skipped,
        LINES,
        "{delivered} delivered, {skipped} skipped"
    );
}
