//! A chat server with rooms, built for broadcast: each line is framed, and
//! compressed, once for the whole room; a client that reconnects resumes where it
//! left off, on any server.
//!
//! Usage: cargo run --example chat -- [ADDR] [--redis redis://HOST:PORT]
//!        (ADDR defaults to 127.0.0.1:9002)
//!
//! This file serves connections; `rooms.rs` holds a server's rooms (their logs
//! and the members' cursors), `redis_broker.rs` the sharing through Redis.
//!
//! Connect to `ws://ADDR/ROOM` (`ws://ADDR/` is the room `lobby`): every text or
//! binary message a client sends goes to everyone else in its room.
//!
//! - **Broadcast.** The reader of a connection turns each line into one
//!   [`PreparedMessage`] and appends it to the room's log; every subscriber's
//!   writer sends that same frame, with the lines already waiting behind it in the
//!   same write (one flush per burst, not per line). permessage-deflate (which
//!   browsers always negotiate) runs without context takeover on the server's
//!   side, so a line is compressed once per room, not once per subscriber.
//! - **Every line is numbered.** A room's lines get the sequence numbers 1, 2,
//!   3, … in the room's one order: the order its lock (or, with `--redis`, Redis)
//!   took them in. A room keeps its last [`BACKLOG`] lines.
//! - **A slow subscriber skips ahead.** A subscriber whose writer falls more than
//!   [`BACKLOG`] lines behind (its socket is full: the client reads too slowly)
//!   loses the oldest lines it has not sent yet, is told so with one text message,
//!   `* K lines skipped` (K exact: the gap in the numbers), and goes on from the
//!   oldest line still kept. A slow client costs the server its connection's
//!   write buffer, never a queue that grows with the room's traffic
//!   (`tests/chat_memory.rs` measures it).
//! - **Numbered subscriptions.** `ws://ADDR/ROOM?since=N` subscribes numbered,
//!   from the line after `N`, the last number the client received (`since=0`:
//!   from the first line, the ones no longer kept counted in a notice);
//!   `ws://ADDR/ROOM?seq` subscribes numbered from now. A numbered subscriber
//!   gets every line of the room, its own included: a text line as
//!   `#<seq> <text>`, a binary one as its number (8 bytes, big endian) then its
//!   payload; notices stay `* K lines skipped`. The numbered form of a line is
//!   prepared once, by the first numbered subscriber that sends it: plain
//!   subscribers (no query) get the shared frames as before, without numbers and
//!   without their own lines.
//! - **Resuming.** The server joins the room first (from then on, every line the
//!   room gets is kept for this subscriber, up to [`BACKLOG`] behind), then reads
//!   the room's log (with `--redis`, from Redis, since this server's room may be
//!   new), then sends the logged lines after `N`, then the room's new lines,
//!   skipping every number it has sent already: a line published during the
//!   switch is in the log, or among the new lines, or both, and goes out once.
//! - **The guarantee.** A client that reconnects with `since=` the last number it
//!   received gets every line of the room exactly once, in the room's order,
//!   however often it reconnects and to whichever server (with `--redis`),
//!   provided it comes back before [`BACKLOG`] newer lines were published.
//!   Otherwise it first gets `* K lines skipped`, K exact, then the oldest line
//!   kept. While connected, the same: a numbered subscriber that falls behind
//!   gets the notice. Every number is delivered or counted, none lost silently
//!   or doubled (`tests/chat_reconnect.rs` disconnects subscribers at random
//!   moments and checks it).
//! - **Not guaranteed.** Without Redis, the numbering lives in the server process,
//!   in the room, which outlives its last member by [`LINGER`]. With Redis, it
//!   lives in the keys `chat:ROOM:seq` and `chat:ROOM:log`, which a Redis restart
//!   loses unless persistence is on (as do eviction, `FLUSHALL`, and [`LOG_TTL`]
//!   without a line, when the keys expire). The numbering then starts again at
//!   1: a client whose `since` is ahead of the room gets what is kept of the new
//!   numbering and can tell by the numbers going down, but the lines lost in
//!   between are not counted. A line a client sends is in the room once the
//!   server has published it; if the connection dropped with the line in flight,
//!   the numbered feed, which has the client's own lines, tells whether it got
//!   there. A server whose Redis subscription ended gives its subscribers no more
//!   lines (it logs it); they get them by resuming on another server.
//! - A room exists while it has someone in it; without Redis, for [`LINGER`] more,
//!   so that its log is still there for a client that comes back.
//! - **Past one machine.** With `--redis`, any number of these servers share their
//!   rooms through Redis: one script numbers a line (`INCR chat:ROOM:seq`), logs
//!   it (`RPUSH chat:ROOM:log`, trimmed to [`BACKLOG`]) and publishes it on the
//!   channel `chat:ROOM`, in one atomic step; every server (its sender's included)
//!   passes what its subscription receives to its own subscribers of that room,
//!   each line prepared once per server. Every subscriber, on any server, then
//!   gets a room's lines once each, in the order of their numbers
//!   (`tests/chat_redis.rs` runs two servers through a real `redis-server`).

mod redis_broker;
mod rooms;

use std::sync::Arc;
use std::time::Duration;

use fastws::http::StatusCode;
use fastws::{Acceptor, Config, DeflateConfig, Message, PreparedMessage, Rejection, SplitSink, WebSocket};
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub use redis_broker::serve_with_redis;
use redis_broker::{Keys, publish_to_redis, read_log};
use rooms::{Cursor, Line, Origin, Room, Rooms};

/// The lines a room keeps, for subscribers that are behind or resume.
pub const BACKLOG: usize = 256;

/// How long a room outlives its last member without Redis (so that a client that
/// reconnects finds its log).
pub const LINGER: Duration = Duration::from_secs(60);

/// How long Redis keeps a room's numbering and log after its last line.
pub const LOG_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// Where a connection publishes its lines.
#[derive(Clone)]
enum Broker {
    /// Straight to the room on this server, which numbers them.
    Local,
    /// To Redis, which numbers them and passes them to every server's subscription.
    Redis(redis::aio::MultiplexedConnection),
}

/// What a subscriber gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Feed {
    /// The lines of the others, as they were sent.
    Plain,
    /// Every line, with its number.
    Numbered,
}

/// The subscription a connection asks for in its URL's query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Wanted {
    feed: Feed,
    /// `since=N`: resume after line `N`.
    since: Option<u64>,
}

impl Wanted {
    /// `since=N` (numbered, after line `N`), `seq` (numbered, from now), or
    /// neither (plain); other parameters are not ours.
    fn from_query(query: Option<&str>) -> Result<Wanted, Rejection> {
        let mut wanted = Wanted {
            feed: Feed::Plain,
            since: None,
        };
        for parameter in query.unwrap_or_default().split('&') {
            match parameter.split_once('=') {
                Some(("since", number)) => {
                    let since = number.parse().map_err(|_| {
                        Rejection::new(
                            StatusCode::BAD_REQUEST,
                            "since= takes the number of the last line seen",
                        )
                    })?;
                    wanted = Wanted {
                        feed: Feed::Numbered,
                        since: Some(since),
                    };
                }
                None if parameter == "seq" => wanted.feed = Feed::Numbered,
                _ => {}
            }
        }
        Ok(wanted)
    }
}
/// The acceptor of a broadcast endpoint: permessage-deflate without context
/// takeover on the server's side, so one compressed frame serves every subscriber.
pub fn acceptor() -> Acceptor {
    Acceptor::new()
        .config(Config::default().deflate(DeflateConfig::default().server_no_context_takeover(true)))
}

/// Serves chat rooms on `listener`, on this server alone, until accepting fails.
pub async fn serve(listener: TcpListener, acceptor: Acceptor) -> std::io::Result<()> {
    run(listener, acceptor, Rooms::new(LINGER), Broker::Local, 0).await
}

async fn run(
    listener: TcpListener,
    acceptor: Acceptor,
    rooms: Arc<Rooms>,
    broker: Broker,
    server: u64,
) -> std::io::Result<()> {
    let acceptor = Arc::new(acceptor);
    for connection in 0.. {
        let (tcp, peer) = listener.accept().await?;
        let (rooms, acceptor, broker) = (Arc::clone(&rooms), Arc::clone(&acceptor), broker.clone());
        let origin = Origin { server, connection };
        tokio::spawn(async move {
            if let Err(err) = serve_connection(origin, tcp, &rooms, &acceptor, broker).await {
                eprintln!("{peer}: {err}");
            }
        });
    }
    Ok(())
}

async fn serve_connection(
    id: Origin,
    tcp: TcpStream,
    rooms: &Arc<Rooms>,
    acceptor: &Acceptor,
    broker: Broker,
) -> Result<(), fastws::Error> {
    tcp.set_nodelay(true)?;
    let (mut name, mut wanted) = (String::new(), None);
    let ws = acceptor
        .accept_with(tcp, |request, response| {
            name = request.uri().path().trim_matches('/').to_owned();
            wanted = Some(Wanted::from_query(request.uri().query())?);
            Ok(response)
        })
        .await?;
    let wanted = wanted.expect("the callback ran");
    if name.is_empty() {
        name = "lobby".to_owned();
    }
    // Joined before anything else: from here on, every line the room gets is kept
    // for this member (up to BACKLOG behind), so reading the log after it misses
    // nothing.
    let (room, added) = rooms.join(&name);
    let result = serve_member(id, ws, &Keys::new(&name), room, added, wanted, broker).await;
    rooms.leave(&name);
    result
}

/// Serves a member of `room`: its lines to the room, the room's lines to it.
async fn serve_member(
    id: Origin,
    ws: WebSocket<TcpStream>,
    keys: &Keys,
    room: Arc<Room>,
    mut added: watch::Receiver<()>,
    wanted: Wanted,
    mut broker: Broker,
) -> Result<(), fastws::Error> {
    let redis_error =
        |doing: &str, err: redis::RedisError| std::io::Error::other(format!("{doing} Redis: {err}"));
    let (mut cursor, backlog) = match (&mut broker, wanted.since) {
        (Broker::Redis(redis), Some(since)) => {
            let logged = read_log(redis, keys)
                .await
                .map_err(|err| redis_error("reading the log from", err))?;
            // Ahead of the log: Redis started the room's numbering again.
            let newest = logged.last().map_or(0, |line| line.seq);
            let cursor = Cursor {
                last: Some(if since > newest { 0 } else { since }),
                restarts: room.cursor(None).restarts,
            };
            (cursor, logged)
        }
        _ => (room.cursor(wanted.since), Vec::new()),
    };
    let (mut sink, mut stream) = ws.split();

    // Writer: the logged lines it asked for, then the room's lines until the
    // connection closes, each number once. The first line of a burst waits; the
    // lines already kept behind it go out in the same write, one flush for the
    // burst.
    let writer = {
        let room = Arc::clone(&room);
        tokio::spawn(async move {
            let mut fed = false;
            for line in &backlog {
                fed |= feed_line(&mut sink, &mut cursor, line, id, wanted.feed).await?;
            }
            loop {
                // Seen before looking, so a line added after the look ends the wait.
                added.borrow_and_update();
                while let Some(line) = room.next(&mut cursor) {
                    fed |= feed_line(&mut sink, &mut cursor, &line, id, wanted.feed).await?;
                }
                if fed {
                    sink.flush().await?;
                    fed = false;
                }
                if added.changed().await.is_err() {
                    break;
                }
            }
            Ok::<_, fastws::Error>(())
        })
    };

    // Reader: publish this client's lines; the stream answers pings itself.
    let read = async {
        while let Some(message) = stream.next().await {
            let message = message?;
            if !message.is_data() {
                continue;
            }
            match &mut broker {
                // Framed here, once, for everyone in the room.
                Broker::Local => room.publish(id, PreparedMessage::new(message)),
                Broker::Redis(redis) => {
                    // Awaited one by one, so a connection's lines keep their order.
                    // Without the broker the room is gone: end the connection.
                    publish_to_redis(redis, keys, id, &message)
                        .await
                        .map_err(|err| redis_error("publishing to", err))?;
                }
            }
        }
        Ok(())
    };
    let result = read.await;
    writer.abort();
    // The membership goes with the writer.
    let _ = writer.await;
    result
}

/// Feeds `line` to a subscriber at `cursor`, after the notice of the lines it
/// skipped; nothing if it had the line already or, plain, sent it. Whether
/// anything was fed.
async fn feed_line(
    sink: &mut SplitSink<TcpStream>,
    cursor: &mut Cursor,
    line: &Line,
    to: Origin,
    feed: Feed,
) -> Result<bool, fastws::Error> {
    let Some(skipped) = cursor.advance(line.seq) else {
        return Ok(false);
    };
    if skipped > 0 {
        sink.feed(Message::text(format!("* {skipped} lines skipped")))
            .await?;
    }
    match feed {
        Feed::Numbered => sink.feed_prepared(line.numbered()).await?,
        Feed::Plain if line.from == to => return Ok(skipped > 0),
        Feed::Plain => sink.feed_prepared(&line.message).await?,
    }
    Ok(true)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (mut addr, mut redis_url) = ("127.0.0.1:9002".to_owned(), None);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--redis" => redis_url = Some(args.next().ok_or("--redis needs a URL")?),
            _ => addr = arg,
        }
    }
    let listener = TcpListener::bind(&addr).await?;
    let local = listener.local_addr()?;
    println!("chat server listening on ws://{local}/ROOM (numbered: ws://{local}/ROOM?since=N or ?seq)");
    match redis_url {
        Some(url) => serve_with_redis(listener, acceptor(), &url).await?,
        None => serve(listener, acceptor()).await?,
    }
    Ok(())
}
