//! The chat example's resumable subscriptions (`examples/chat/`, `?since=N`),
//! soaked: publishers send lines at a steady rate while numbered subscribers
//! disconnect at random moments (dropping the connection, or closing it cleanly)
//! and resume with `since=` the last number they got, on a server chosen at
//! random. In the end every subscriber has had every number exactly once, in
//! order, and every publisher's lines in the order it sent them: without Redis on
//! one server, and through a real `redis-server` (started here on a loopback port,
//! stopped by PID) across two. Also: a resume from further back than the backlog,
//! and a numbered subscriber that falls behind, are told exactly how many lines
//! they missed; a room without Redis keeps its numbering while it lingers.
//!
//! The Redis tests need `redis-server` on the PATH (Debian: `apt-get install
//! redis-server`; `.ci/run` installs it), and are skipped, saying so, without it.
//!
//! No subscriber waits for its subscription before it counts: resuming from
//! `since=` is the thing under test, and it must not matter when the server joins
//! the room.

mod common;

#[allow(dead_code)]
#[path = "../examples/chat/main.rs"]
mod chat;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::chat::{Redis, numbered, numbered_binary, skipped};
use common::within;
use fastws::{ClientRequest, Config, DeflateConfig, MaybeTlsStream, Message, WebSocket};
use futures::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpSocket};
use tokio::time::MissedTickBehavior;

type Client = WebSocket<MaybeTlsStream>;

/// The lines each publisher sends.
const LINES: usize = 250;
/// A publisher's pace: with three, 500 lines a second, so a subscriber has about
/// half a second to resume before it is a backlog behind.
const PACE: Duration = Duration::from_millis(6);

async fn local_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(chat::serve(listener, chat::acceptor()));
    addr
}

async fn redis_server(redis: &Redis) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let url = redis.url.clone();
    tokio::spawn(async move { chat::serve_with_redis(listener, chat::acceptor(), &url).await });
    addr
}

/// A `redis-server` of the test's own, or `None` (and a note why the test proves
/// nothing) if it is not installed.
async fn redis_or_skip(test: &str) -> Option<Redis> {
    if Redis::installed() {
        return Some(Redis::start().await);
    }
    eprintln!("{test}: SKIPPED, redis-server is not installed (Debian: apt-get install redis-server)");
    None
}

async fn connect(url: String) -> Client {
    within("connecting", fastws::connect(url)).await.unwrap().0
}

/// A small deterministic generator (xorshift64): the random moments of a
/// subscriber are the same on every run, for a given seed.
struct Random(u64);

impl Random {
    /// A number in `0..n`.
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// A soak's servers and pace.
struct Soak<'a> {
    room: &'a str,
    /// The server of each publisher.
    publishers: &'a [SocketAddr],
    /// The servers each subscriber resumes on, chosen at random each time.
    subscribers: &'a [&'a [SocketAddr]],
    /// The most lines a subscriber reads on one connection before it leaves.
    stay: usize,
}

/// What a subscriber saw: line `n` of the room at `lines[n - 1]`.
#[derive(Default)]
struct Seen {
    lines: Vec<String>,
    dropped: usize,
    closed: usize,
    servers: HashSet<SocketAddr>,
}

impl Seen {
    /// Takes `message` as the next line: it must be the next number, not a
    /// notice, not a number again.
    fn record(&mut self, who: usize, message: &Message) {
        let text = message.as_text().expect("text lines only");
        let last = self.lines.len() as u64;
        if let Some(count) = skipped(text) {
            panic!("subscriber {who} was told {count} lines skipped after line #{last}");
        }
        let (seq, line) = numbered(text).unwrap_or_else(|| panic!("not a numbered line: {text:?}"));
        assert!(
            seq > last,
            "subscriber {who} got line #{seq} twice (its last was #{last})"
        );
        assert!(
            seq == last + 1,
            "subscriber {who} got line #{seq} after #{last}: lines lost"
        );
        self.lines.push(line.to_owned());
    }
}

/// Sends [`LINES`] lines, `p<name> <i>`, at the [`PACE`], then closes.
async fn publish(server: SocketAddr, room: &str, name: usize) {
    let mut client = connect(format!("ws://{server}/{room}")).await;
    let mut pace = tokio::time::interval(PACE);
    // After a stall, no burst: the rate stays bounded.
    pace.set_missed_tick_behavior(MissedTickBehavior::Delay);
    for i in 0..LINES {
        pace.tick().await;
        client.send(Message::text(format!("p{name} {i}"))).await.unwrap();
    }
    client.close().await.unwrap();
    // The others' lines, unread so far, then the close.
    while within("the publisher's close", client.next()).await.is_some() {}
}

/// Reads the room, numbered, until it has line `total`, leaving after a random
/// number of lines each time (none, sometimes) and resuming on a random one of
/// `servers`.
async fn subscribe(who: usize, room: String, servers: Vec<SocketAddr>, stay: usize, total: usize) -> Seen {
    let mut random = Random(0x9E37_79B9_7F4A_7C15 ^ (who as u64 + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9));
    let mut seen = Seen::default();
    while seen.lines.len() < total {
        let server = servers[random.below(servers.len())];
        seen.servers.insert(server);
        let mut client = connect(format!("ws://{server}/{room}?since={}", seen.lines.len())).await;
        for _ in 0..random.below(stay + 1) {
            if seen.lines.len() == total {
                break;
            }
            let message = within("a line", client.next()).await;
            let message = message.expect("the server ended the connection").unwrap();
            seen.record(who, &message);
        }
        if random.below(2) == 0 {
            // Gone without a word: the server finds out from the socket.
            drop(client);
            seen.dropped += 1;
        } else {
            client.close().await.unwrap();
            // The lines the server sent before it read the close are lines seen.
            while let Some(message) = within("the close", client.next()).await {
                let message = message.unwrap();
                if message.is_data() {
                    seen.record(who, &message);
                }
            }
            seen.closed += 1;
        }
    }
    seen
}

/// Runs `soak`, then checks that every subscriber had every number once, in
/// one order, with every publisher's lines in its order.
async fn soak(soak: Soak<'_>) {
    let started = Instant::now();
    let total = soak.publishers.len() * LINES;
    let subscribers: Vec<_> = soak
        .subscribers
        .iter()
        .enumerate()
        .map(|(who, servers)| {
            tokio::spawn(subscribe(
                who,
                soak.room.to_owned(),
                servers.to_vec(),
                soak.stay,
                total,
            ))
        })
        .collect();
    let publishers: Vec<_> = soak
        .publishers
        .iter()
        .enumerate()
        .map(|(name, &server)| {
            let room = soak.room.to_owned();
            tokio::spawn(async move { publish(server, &room, name).await })
        })
        .collect();
    for publisher in publishers {
        publisher.await.unwrap();
    }
    let mut seen = Vec::new();
    for subscriber in subscribers {
        seen.push(subscriber.await.unwrap());
    }

    let resumes: usize = seen.iter().map(|seen| seen.dropped + seen.closed).sum();
    println!(
        "{}: {total} lines, {} subscribers, {resumes} connections ({} dropped, {} closed), {:?}",
        soak.room,
        seen.len(),
        seen.iter().map(|seen| seen.dropped).sum::<usize>(),
        seen.iter().map(|seen| seen.closed).sum::<usize>(),
        started.elapsed()
    );
    for (who, (seen, servers)) in seen.iter().zip(soak.subscribers).enumerate() {
        // Each line was checked as it came: the next number, never one again.
        assert_eq!(seen.lines.len(), total, "subscriber {who}");
        assert!(
            seen.dropped >= 3 && seen.closed >= 3,
            "subscriber {who} left {} times abruptly and {} times cleanly: too few to prove anything",
            seen.dropped,
            seen.closed
        );
        assert_eq!(
            seen.servers.len(),
            servers.len(),
            "subscriber {who} did not try every server"
        );
    }
    // One order for the room, on every server.
    let first = &seen[0].lines;
    for (who, seen) in seen.iter().enumerate().skip(1) {
        assert!(
            &seen.lines == first,
            "subscriber {who} saw another order than subscriber 0"
        );
    }
    // Every publisher's lines, in the order it sent them.
    for name in 0..soak.publishers.len() {
        let prefix = format!("p{name} ");
        let of_it: Vec<&str> = first
            .iter()
            .filter_map(|line| line.strip_prefix(&prefix))
            .collect();
        let sent: Vec<String> = (0..LINES).map(|i| i.to_string()).collect();
        assert_eq!(of_it, sent, "publisher {name}'s lines");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_subscribers_get_every_line_once_in_order_on_one_server() {
    let server = local_server().await;
    let servers = [server];
    soak(Soak {
        room: "local",
        publishers: &[server, server, server],
        subscribers: &[&servers, &servers, &servers, &servers],
        stay: 40,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_subscribers_get_every_line_once_in_order_on_any_server_through_redis() {
    let Some(redis) =
        redis_or_skip("resuming_subscribers_get_every_line_once_in_order_on_any_server_through_redis").await
    else {
        return;
    };
    let (one, two) = (redis_server(&redis).await, redis_server(&redis).await);
    let both = [one, two];
    soak(Soak {
        room: "shared",
        publishers: &[one, two, one],
        subscribers: &[&both, &both, &both, &both],
        stay: 40,
    })
    .await;
}

/// A server on which the subscriber is the room's only member makes the room anew
/// at (nearly) every resume: lines logged while it reads the log must still reach
/// it, which they do only because it joins the room before it reads the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_where_the_room_is_new_misses_nothing_published_meanwhile() {
    let Some(redis) =
        redis_or_skip("resuming_where_the_room_is_new_misses_nothing_published_meanwhile").await
    else {
        return;
    };
    let (one, two) = (redis_server(&redis).await, redis_server(&redis).await);
    soak(Soak {
        room: "fresh",
        publishers: &[one, one, one],
        subscribers: &[&[two]],
        stay: 6,
    })
    .await;
}

/// `since=10` after `BACKLOG + 44` lines published on `server`, resumed on
/// `other`: one notice of exactly the lines no longer kept, then the oldest kept,
/// through the newest; a binary line numbered in its first 8 bytes.
async fn resume_from_too_far_back(server: SocketAddr, other: SocketAddr, room: &str) {
    let total = chat::BACKLOG as u64 + 44;
    // A numbered member gets its own lines: all are in the room once it has them.
    // In bursts well inside the backlog, so that it keeps up.
    let mut publisher = connect(format!("ws://{server}/{room}?since=0")).await;
    for burst in (1..total).collect::<Vec<_>>().chunks(50) {
        for i in burst {
            publisher.feed(Message::text(format!("line {i}"))).await.unwrap();
        }
        publisher.flush().await.unwrap();
        for &i in burst {
            let message = within("an own line", publisher.next()).await.unwrap().unwrap();
            assert_eq!(
                numbered(message.as_text().unwrap()),
                Some((i, format!("line {i}").as_str()))
            );
        }
    }
    publisher.send(Message::binary(vec![7, 8, 9])).await.unwrap();
    let message = within("an own line", publisher.next()).await.unwrap().unwrap();
    assert_eq!(numbered_binary(&message), Some((total, &[7u8, 8, 9][..])));

    let mut late = connect(format!("ws://{other}/{room}?since=10")).await;
    let oldest = total - chat::BACKLOG as u64 + 1;
    let message = within("the notice", late.next()).await.unwrap().unwrap();
    assert_eq!(
        skipped(message.as_text().unwrap()),
        Some(oldest - 1 - 10),
        "{message:?}"
    );
    for i in oldest..total {
        let message = within("a kept line", late.next()).await.unwrap().unwrap();
        assert_eq!(
            numbered(message.as_text().unwrap()),
            Some((i, format!("line {i}").as_str()))
        );
    }
    let message = within("the binary line", late.next()).await.unwrap().unwrap();
    assert_eq!(numbered_binary(&message), Some((total, &[7u8, 8, 9][..])));
    let quiet = tokio::time::timeout(Duration::from_millis(100), late.next()).await;
    assert!(quiet.is_err(), "more than the room's lines: {quiet:?}");
}

#[tokio::test]
async fn a_resume_from_further_back_than_the_backlog_is_told_exactly_what_it_missed() {
    let server = local_server().await;
    resume_from_too_far_back(server, server, "far").await;
}

#[tokio::test]
async fn a_resume_from_further_back_than_the_backlog_is_told_exactly_what_it_missed_through_redis() {
    let Some(redis) = redis_or_skip(
        "a_resume_from_further_back_than_the_backlog_is_told_exactly_what_it_missed_through_redis",
    )
    .await
    else {
        return;
    };
    // The log is read on the server the lines did not go through.
    let (one, two) = (redis_server(&redis).await, redis_server(&redis).await);
    resume_from_too_far_back(one, two, "far").await;
}

/// Without Redis, a room outlives its last member by `LINGER`: its numbering
/// goes on, and its lines are there for whoever comes back. (Each member leaves
/// before the next one's handshake starts, so the room has emptied in between,
/// nearly every time.)
#[tokio::test]
async fn a_room_that_emptied_keeps_its_numbering_and_its_lines_for_whoever_comes_back() {
    let server = local_server().await;
    for i in 1..=20 {
        let mut alone = connect(format!("ws://{server}/quiet?since={}", i - 1)).await;
        alone.send(Message::text(format!("line {i}"))).await.unwrap();
        let message = within("an own line", alone.next()).await.unwrap().unwrap();
        assert_eq!(
            numbered(message.as_text().unwrap()),
            Some((i, format!("line {i}").as_str()))
        );
        alone.close().await.unwrap();
        while within("the close", alone.next()).await.is_some() {}
    }
    let mut back = connect(format!("ws://{server}/quiet?since=0")).await;
    for i in 1..=20 {
        let message = within("a kept line", back.next()).await.unwrap().unwrap();
        assert_eq!(
            numbered(message.as_text().unwrap()),
            Some((i, format!("line {i}").as_str()))
        );
    }
}

/// A numbered subscriber that stops reading while the room floods is told, when
/// it reads again, exactly how many lines it missed, each time: every number is
/// delivered or counted, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_numbered_subscriber_that_falls_behind_is_told_exactly_how_many_lines_it_missed() {
    const FLOOD: u64 = 2_000;
    let line = |i: u64| format!("{i:06} {}", "flood ".repeat(1365));
    let server = local_server().await;
    let url = format!("ws://{server}/flood?since=0");
    // The publisher reads its own lines back in bursts well inside the backlog:
    // it keeps up, and its lines are the room's, numbered 1, 2, …
    let mut publisher = connect(url.clone()).await;
    // The slow subscriber's socket takes little before the server's writes wait;
    // uncompressed, so that the flood fills it.
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(16 * 1024).unwrap();
    let tcp = socket.connect(server).await.unwrap();
    let request = ClientRequest::new(url).config(Config::default().deflate(DeflateConfig::disabled()));
    let (mut slow, _) = within("the handshake", fastws::client_handshake(tcp, request))
        .await
        .unwrap();
    for burst in (1..=FLOOD).collect::<Vec<_>>().chunks(64) {
        for &i in burst {
            publisher.feed(Message::text(line(i))).await.unwrap();
        }
        publisher.flush().await.unwrap();
        for &i in burst {
            let message = within("an own line", publisher.next()).await.unwrap().unwrap();
            let (seq, _) = numbered(message.as_text().unwrap()).unwrap();
            assert_eq!(seq, i);
        }
    }

    let (mut next, mut skipped_in_all, mut notices) = (1, 0, 0);
    while next <= FLOOD {
        let message = within("the slow subscriber's lines", slow.next())
            .await
            .unwrap()
            .unwrap();
        let text = message.as_text().unwrap();
        if let Some(count) = skipped(text) {
            assert!(count > 0);
            next += count;
            skipped_in_all += count;
            notices += 1;
            continue;
        }
        let (seq, text) = numbered(text).unwrap();
        assert_eq!(seq, next, "after the notices so far, line #{next} was due");
        assert_eq!(text, line(seq));
        next += 1;
    }
    assert_eq!(next, FLOOD + 1, "a notice counted lines past the last");
    println!("{skipped_in_all} of {FLOOD} lines skipped, in {notices} notices");
    assert!(
        skipped_in_all > 0,
        "the slow subscriber never fell behind: the test proves nothing"
    );
}

#[tokio::test]
async fn a_since_that_is_not_a_number_is_refused() {
    let server = local_server().await;
    let err = fastws::connect(format!("ws://{server}/room?since=soon"))
        .await
        .expect_err("refused");
    assert_eq!(err.handshake().and_then(|err| err.status()), Some(400), "{err}");
}
