//! Keepalive pings, the idle timeout and a graceful close from a split sink, over
//! real sockets on 127.0.0.1 against a raw frame-level peer.
//!
//! Durations are short (a few hundred milliseconds) and every bound has a generous
//! margin: the lower bounds are exact (a timer never fires early), the upper
//! bounds allow for a busy machine.

mod common;

use std::time::{Duration, Instant};

use common::*;
use fastws::{CloseCode, Config, Error, Frame, Message, OpCode};
use futures::{SinkExt, StreamExt};
use tokio::sync::oneshot;

/// Slack for a loaded machine on top of any upper bound.
const SLACK: Duration = Duration::from_millis(700);

/// Waits up to `wait` for a frame from the server: `None` if none came.
async fn frame_within(client: &mut Client, wait: Duration) -> Option<Frame> {
    match tokio::time::timeout(wait, client.next()).await {
        Err(_) => None,
        Ok(Some(Ok(frame))) => Some(frame),
        Ok(Some(Err(err))) => panic!("client read failed: {err}"),
        Ok(None) => panic!("server closed the connection, expected it open"),
    }
}

/// Ends a test's connection from the raw client: close 1000, its echo, then EOF.
async fn close_from_client(client: &mut Client) {
    send(client, Frame::close(CloseCode::Normal, "")).await;
    assert_eq!(expect_close(client).await, Some(1000));
    expect_eof(client).await;
}

/// What a recording server saw: each item with the instant it arrived (errors as
/// their `Debug` text).
type Seen = Vec<(Instant, Result<Message, String>)>;

/// A server that reads until the stream ends; returns when it started and what it
/// saw.
async fn record(mut ws: fastws::WebSocket<tokio::net::TcpStream>) -> Result<(Instant, Seen), Error> {
    let started = Instant::now();
    let mut seen = Vec::new();
    while let Some(item) = ws.next().await {
        seen.push((Instant::now(), item.map_err(|err| format!("{err:?}"))));
    }
    Ok((started, seen))
}

#[tokio::test]
async fn silent_peer_gets_a_ping_then_the_keepalive_timeout_closes_the_connection() {
    const INTERVAL: Duration = Duration::from_millis(200);
    const TIMEOUT: Duration = Duration::from_millis(300);
    let config = Config::default()
        .ping_interval(Some(INTERVAL))
        .ping_timeout(TIMEOUT);
    let (addr, server) = start(config, |mut ws| async move {
        let started = Instant::now();
        let first = ws.next().await;
        let failed_at = Instant::now();
        let after = ws.next().await;
        Ok((started, first, failed_at, after.is_none()))
    })
    .await;
    let mut client = connect(addr).await;

    let ping = recv(&mut client).await;
    let ping_at = Instant::now();
    assert_eq!(ping.opcode(), OpCode::Ping, "{ping:?}");
    // Answer nothing; the server gives up, says why, and closes TCP without
    // waiting for an answer.
    expect_close_with(&mut client, 1001, "keepalive timeout: no answer to ping").await;
    expect_eof(&mut client).await;

    let (started, first, failed_at, ended) = finish(server).await.expect("server result");
    assert!(
        matches!(first, Some(Err(Error::KeepaliveTimeout))),
        "expected a keepalive timeout, got {first:?}"
    );
    assert!(ended, "the stream goes on after the keepalive timeout");
    assert!(
        ping_at >= started + INTERVAL,
        "ping after {:?}, before the interval of {INTERVAL:?}",
        ping_at - started
    );
    assert!(
        failed_at >= started + INTERVAL + TIMEOUT,
        "timed out {:?} after the start, before interval + timeout",
        failed_at - started
    );
    assert!(
        failed_at <= ping_at + TIMEOUT + SLACK,
        "timed out {:?} after the ping, timeout is {TIMEOUT:?}",
        failed_at - ping_at
    );
}

#[tokio::test]
async fn peer_that_answers_pings_keeps_the_connection_open() {
    const INTERVAL: Duration = Duration::from_millis(100);
    const TIMEOUT: Duration = Duration::from_millis(300);
    // Without counting the pongs the server would fail at INTERVAL + TIMEOUT.
    const RUN: Duration = Duration::from_millis(1500);
    let config = Config::default()
        .ping_interval(Some(INTERVAL))
        .ping_timeout(TIMEOUT);
    let (addr, server) = start(config, record).await;
    let mut client = connect(addr).await;

    let deadline = tokio::time::Instant::now() + RUN;
    let mut pings = 0;
    loop {
        tokio::select! {
            frame = client.next() => {
                let frame = match frame {
                    Some(Ok(frame)) => frame,
                    other => panic!("connection failed after {pings} answered pings: {other:?}"),
                };
                assert_eq!(frame.opcode(), OpCode::Ping, "{frame:?}");
                send(&mut client, Frame::pong(frame.into_payload())).await;
                pings += 1;
            }
            _ = tokio::time::sleep_until(deadline) => break,
        }
    }
    assert!(
        pings >= 2,
        "only {pings} pings in {RUN:?} with an interval of {INTERVAL:?}"
    );

    close_from_client(&mut client).await;
    let (_, seen) = finish(server).await.expect("server result");
    let items: Vec<_> = seen.into_iter().map(|(_, item)| item).collect();
    assert_eq!(items, vec![Ok(Message::close(CloseCode::Normal, ""))]);
}

#[tokio::test]
async fn next_ping_follows_one_interval_after_the_pong() {
    const INTERVAL: Duration = Duration::from_millis(100);
    const TIMEOUT: Duration = Duration::from_secs(2);
    let config = Config::default()
        .ping_interval(Some(INTERVAL))
        .ping_timeout(TIMEOUT);
    let (addr, server) = start(config, record).await;
    let mut client = connect(addr).await;

    let ping = recv(&mut client).await;
    assert_eq!(ping.opcode(), OpCode::Ping, "{ping:?}");
    send(&mut client, Frame::pong(ping.into_payload())).await;
    let ponged_at = Instant::now();
    let ping = recv(&mut client).await;
    let gap = ponged_at.elapsed();
    assert_eq!(ping.opcode(), OpCode::Ping, "{ping:?}");
    // Silence for one interval after the pong calls for a ping; allow twice that
    // (a timer checked with the interval's granularity) and slack, far below the
    // ping timeout.
    assert!(
        gap <= 2 * INTERVAL + SLACK,
        "the next ping came {gap:?} after the pong; interval {INTERVAL:?}, ping timeout {TIMEOUT:?}"
    );

    close_from_client(&mut client).await;
    finish(server).await.expect("server result");
}

#[tokio::test]
async fn any_frame_from_the_peer_counts_as_life() {
    const INTERVAL: Duration = Duration::from_millis(200);
    const RUN: Duration = Duration::from_millis(1400);
    let config = Config::default()
        .ping_interval(Some(INTERVAL))
        .ping_timeout(Duration::from_millis(300));
    let (addr, server) = start(config, record).await;
    let mut client = connect(addr).await;

    let deadline = tokio::time::Instant::now() + RUN;
    let mut every_half_interval = tokio::time::interval(INTERVAL / 2);
    let mut sent = 0;
    loop {
        tokio::select! {
            frame = client.next() => panic!("the server sent {frame:?} to a peer that sends data all the time"),
            _ = every_half_interval.tick() => {
                send(&mut client, Frame::binary(format!("data {sent}"))).await;
                sent += 1;
            }
            _ = tokio::time::sleep_until(deadline) => break,
        }
    }

    close_from_client(&mut client).await;
    let (_, seen) = finish(server).await.expect("server result");
    let items: Vec<_> = seen.into_iter().map(|(_, item)| item).collect();
    let mut expected: Vec<_> = (0..sent)
        .map(|i| Ok(Message::binary(format!("data {i}"))))
        .collect();
    expected.push(Ok(Message::close(CloseCode::Normal, "")));
    assert_eq!(items, expected);
}

#[tokio::test]
async fn silent_peer_gets_an_idle_timeout_between_one_and_two_timeouts() {
    const IDLE: Duration = Duration::from_millis(300);
    let (addr, server) = start(Config::default().idle_timeout(Some(IDLE)), record).await;
    let mut client = connect(addr).await;

    // No ping; a close frame that says why, then the end, without waiting for an
    // answer.
    expect_close_with(&mut client, 1001, "idle timeout").await;
    expect_eof(&mut client).await;
    let (started, seen) = finish(server).await.expect("server result");
    let [(failed_at, item)] = &seen[..] else {
        panic!("expected one item, got {seen:?}");
    };
    assert_eq!(*item, Err(format!("{:?}", Error::IdleTimeout)));
    let after = *failed_at - started;
    assert!(after >= IDLE, "idle timeout after {after:?}, before {IDLE:?}");
    assert!(
        after <= 2 * IDLE + SLACK,
        "idle timeout after {after:?}, idle is {IDLE:?}"
    );
}

#[tokio::test]
async fn idle_timeout_counts_from_the_last_frame() {
    const IDLE: Duration = Duration::from_millis(300);
    let (addr, server) = start(Config::default().idle_timeout(Some(IDLE)), record).await;
    let mut client = connect(addr).await;

    // Half-way through the first period: the timer must not fire at its first
    // expiry, and the timeout counts from here.
    tokio::time::sleep(IDLE / 2).await;
    let sent_at = Instant::now();
    send(&mut client, Frame::text("still here")).await;
    assert_eq!(expect_close(&mut client).await, Some(1001));
    expect_eof(&mut client).await;

    let (_, seen) = finish(server).await.expect("server result");
    let [(_, message), (failed_at, error)] = &seen[..] else {
        panic!("expected the message and the error, got {seen:?}");
    };
    assert_eq!(*message, Ok(Message::text("still here")));
    assert_eq!(*error, Err(format!("{:?}", Error::IdleTimeout)));
    let after = *failed_at - sent_at;
    assert!(
        after >= IDLE,
        "idle timeout {after:?} after the last frame, before {IDLE:?}"
    );
    assert!(
        after <= 2 * IDLE + SLACK,
        "idle timeout {after:?} after the last frame, idle is {IDLE:?}"
    );
}

#[tokio::test]
async fn keepalive_is_off_by_default() {
    let config = Config::default();
    assert_eq!(config.get_ping_interval(), None);
    assert_eq!(config.get_idle_timeout(), None);
    let (addr, server) = start(config, record).await;
    let mut client = connect(addr).await;

    let frame = frame_within(&mut client, Duration::from_millis(800)).await;
    assert!(
        frame.is_none(),
        "a silent peer got {frame:?} with the default config"
    );

    close_from_client(&mut client).await;
    let (_, seen) = finish(server).await.expect("server result");
    let items: Vec<_> = seen.into_iter().map(|(_, item)| item).collect();
    assert_eq!(items, vec![Ok(Message::close(CloseCode::Normal, ""))]);
}

#[tokio::test]
async fn closing_the_split_sink_still_delivers_what_the_peer_sent_before_its_close_reply() {
    let (closed_tx, closed_rx) = oneshot::channel();
    let (addr, server) = start(Config::default(), |ws| async move {
        let (mut sink, mut stream) = ws.split();
        let closer = tokio::spawn(async move {
            let result = sink.close().await;
            closed_tx.send(()).expect("the test waits");
            (sink, result)
        });
        let mut seen = Vec::new();
        while let Some(item) = stream.next().await {
            seen.push(item?);
        }
        let (sink, closed) = closer.await.expect("closer panicked");
        closed?;
        stream
            .reunite(sink)
            .unwrap_or_else(|_| panic!("halves of different websockets"));
        Ok(seen)
    })
    .await;
    let mut client = connect(addr).await;

    assert_eq!(expect_close(&mut client).await, Some(1000));
    within("SinkExt::close to return", closed_rx)
        .await
        .expect("signal");
    // RFC 6455 §5.5.1: the peer may finish what it is sending before it answers.
    send(&mut client, Frame::text("late one")).await;
    send(&mut client, Frame::binary("late").with_fin(false)).await;
    send(&mut client, Frame::continuation(" two")).await;
    send(&mut client, Frame::close(CloseCode::Away, "")).await;
    expect_eof(&mut client).await;

    let seen = finish(server).await.expect("server result");
    assert_eq!(
        seen,
        vec![
            Message::text("late one"),
            Message::binary("late two"),
            Message::close(CloseCode::Away, ""),
        ]
    );
}
