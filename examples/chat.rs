//! A chat server with rooms, built for broadcast: each line is framed, and
//! compressed, once for the whole room.
//!
//! Usage: cargo run --example chat -- [ADDR] [--redis redis://HOST:PORT]
//!        (ADDR defaults to 127.0.0.1:9002)
//!
//! Connect to `ws://ADDR/ROOM` (`ws://ADDR/` is the room `lobby`): every text or
//! binary message a client sends goes to everyone else in its room.
//!
//! - **Broadcast.** The reader of a connection turns each line into one
//!   [`PreparedMessage`] and publishes it on the room's `tokio::sync::broadcast`
//!   channel; every subscriber's writer sends that same frame, with the lines
//!   already waiting behind it in the same write (one flush per burst, not per
//!   line). permessage-deflate (which browsers always negotiate) runs without
//!   context takeover on the server's side, so a line is compressed once per
//!   room, not once per subscriber.
//! - **A slow subscriber skips ahead.** A room keeps its last [`BACKLOG`] lines,
//!   shared by all its subscribers. A subscriber whose writer falls further behind
//!   (its socket is full: the client reads too slowly) loses the oldest lines it
//!   has not sent yet, is told so with one text message, `* N lines skipped`, and
//!   goes on from the oldest line still kept. A slow client costs the server its
//!   connection's write buffer, never a queue that grows with the room's traffic
//!   (`tests/chat_memory.rs` measures it).
//! - A room exists while it has someone in it.
//! - **Past one machine.** With `--redis`, any number of these servers share their
//!   rooms through Redis pub/sub: a line is published on the channel `chat:ROOM`,
//!   and every server (its sender's included) passes what its subscription
//!   receives to its own subscribers of that room, each line prepared once per
//!   server. Every subscriber, on any server, then gets a room's lines once each,
//!   in the one order Redis received them. Redis pub/sub keeps nothing: lines
//!   published while a server's subscription is down never reach that server's
//!   clients, and a client that reconnects gets the lines published from then on
//!   (`tests/chat_redis.rs` runs two servers through a real `redis-server`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use fastws::{Acceptor, Bytes, Config, DeflateConfig, Message, PreparedMessage, Utf8Bytes};
use futures_util::{SinkExt, StreamExt};
use redis::AsyncCommands;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;

/// The lines a room keeps for subscribers that are behind.
pub const BACKLOG: usize = 256;

/// A line published in a room, and the connection it came from (not sent back to).
#[derive(Clone)]
struct Line {
    from: Origin,
    message: PreparedMessage,
}

/// A connection, among all the servers that share rooms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Origin {
    /// The server (0 without Redis; random with it).
    server: u64,
    /// The connection, numbered by its server.
    connection: u64,
}

/// Where a connection publishes its lines.
#[derive(Clone)]
enum Broker {
    /// Straight to the room's subscribers on this server.
    Local,
    /// To Redis, which passes them to every server's subscription.
    Redis(redis::aio::MultiplexedConnection),
}

/// The rooms that have someone in them.
#[derive(Default)]
struct Rooms {
    by_name: Mutex<HashMap<String, broadcast::Sender<Line>>>,
}

impl Rooms {
    /// The room `name`, made if it is new, and a subscription to it.
    fn join(&self, name: &str) -> (broadcast::Sender<Line>, broadcast::Receiver<Line>) {
        let mut rooms = self.by_name.lock().unwrap();
        let room = rooms
            .entry(name.to_owned())
            .or_insert_with(|| broadcast::channel(BACKLOG).0);
        (room.clone(), room.subscribe())
    }

    /// Passes a line to this server's subscribers of room `name`, if it has any.
    fn deliver(&self, name: &str, line: Line) {
        if let Some(room) = self.by_name.lock().unwrap().get(name) {
            let _ = room.send(line);
        }
    }

    /// Forgets the room `name` once its last subscriber has gone.
    fn leave(&self, name: &str) {
        let mut rooms = self.by_name.lock().unwrap();
        if rooms.get(name).is_some_and(|room| room.receiver_count() == 0) {
            rooms.remove(name);
        }
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
    run(listener, acceptor, Arc::new(Rooms::default()), Broker::Local, 0).await
}

/// Serves chat rooms on `listener` shared through the Redis server at `redis_url`
/// with every other server that uses it, until accepting fails.
pub async fn serve_with_redis(
    listener: TcpListener,
    acceptor: Acceptor,
    redis_url: &str,
) -> redis::RedisResult<()> {
    let client = redis::Client::open(redis_url)?;
    let publish = client.get_multiplexed_async_connection().await?;
    let mut subscription = client.get_async_pubsub().await?;
    subscription.psubscribe("chat:*").await?;
    let server = rand_server_id();
    let rooms = Arc::new(Rooms::default());
    let delivering = Arc::clone(&rooms);
    tokio::spawn(async move {
        let mut lines = subscription.into_on_message();
        while let Some(published) = lines.next().await {
            let Some(room) = published.get_channel_name().strip_prefix("chat:") else {
                continue;
            };
            match decode(published.get_payload_bytes()) {
                Some(line) => delivering.deliver(room, line),
                None => eprintln!("chat:{room}: a line that is not ours, dropped"),
            }
        }
        eprintln!("the Redis subscription ended: this server's clients get no more lines");
    });
    run(listener, acceptor, rooms, Broker::Redis(publish), server).await?;
    Ok(())
}

/// A server id that two processes are unlikely to share.
fn rand_server_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.finish() | 1
}

/// A line as it travels through Redis: its kind (`t` or `b`), its origin, its
/// payload.
fn encode(from: Origin, message: &Message) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(17 + message.len());
    bytes.push(if message.is_text() { b't' } else { b'b' });
    bytes.extend_from_slice(&from.server.to_be_bytes());
    bytes.extend_from_slice(&from.connection.to_be_bytes());
    bytes.extend_from_slice(message.payload());
    bytes
}

/// A line from Redis, framed for this server's subscribers; `None` if it is not
/// one [`encode`] made.
fn decode(bytes: &[u8]) -> Option<Line> {
    let (&kind, rest) = bytes.split_first()?;
    let (server, rest) = rest.split_first_chunk::<8>()?;
    let (connection, payload) = rest.split_first_chunk::<8>()?;
    let payload = Bytes::copy_from_slice(payload);
    let message = match kind {
        b't' => Message::Text(Utf8Bytes::try_from(payload).ok()?),
        b'b' => Message::Binary(payload),
        _ => return None,
    };
    Some(Line {
        from: Origin {
            server: u64::from_be_bytes(*server),
            connection: u64::from_be_bytes(*connection),
        },
        message: PreparedMessage::new(message),
    })
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
    rooms: &Rooms,
    acceptor: &Acceptor,
    mut broker: Broker,
) -> Result<(), fastws::Error> {
    tcp.set_nodelay(true)?;
    let mut room = String::new();
    let ws = acceptor
        .accept_with(tcp, |request, response| {
            room = request.uri().path().trim_matches('/').to_owned();
            Ok(response)
        })
        .await?;
    if room.is_empty() {
        room = "lobby".to_owned();
    }
    let (publish, mut lines) = rooms.join(&room);
    let (mut sink, mut stream) = ws.split();

    // Writer: the room's lines until the connection closes. The first waits; the
    // lines already queued behind it go out in the same write, one flush for
    // the burst.
    let writer = tokio::spawn(async move {
        use broadcast::error::{RecvError, TryRecvError};
        loop {
            let mut next = match lines.recv().await {
                Ok(line) => Ok(line),
                Err(RecvError::Lagged(skipped)) => Err(TryRecvError::Lagged(skipped)),
                Err(RecvError::Closed) => break,
            };
            loop {
                match next {
                    Ok(line) if line.from == id => {}
                    Ok(line) => sink.feed_prepared(&line.message).await?,
                    Err(TryRecvError::Lagged(skipped)) => {
                        sink.feed(Message::text(format!("* {skipped} lines skipped")))
                            .await?;
                    }
                    // Nothing more waiting (or the room is gone): write the burst.
                    Err(_) => break,
                }
                next = lines.try_recv();
            }
            sink.flush().await?;
        }
        Ok::<_, fastws::Error>(())
    });

    // Reader: publish this client's lines; the stream answers pings itself.
    let read = async {
        while let Some(message) = stream.next().await {
            let message = message?;
            if !message.is_data() {
                continue;
            }
            match &mut broker {
                Broker::Local => {
                    // Framed here, once, for everyone in the room. Nobody else
                    // there is fine.
                    let _ = publish.send(Line {
                        from: id,
                        message: PreparedMessage::new(message),
                    });
                }
                Broker::Redis(redis) => {
                    // Awaited one by one, so a connection's lines keep their order.
                    let published: redis::RedisResult<usize> =
                        redis.publish(format!("chat:{room}"), encode(id, &message)).await;
                    // Without the broker the room is gone: end the connection.
                    published.map_err(|err| std::io::Error::other(format!("publishing to Redis: {err}")))?;
                }
            }
        }
        Ok(())
    };
    let result = read.await;
    writer.abort();
    // The subscription goes with the writer.
    let _ = writer.await;
    drop(publish);
    rooms.leave(&room);
    result
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
    println!("chat server listening on ws://{}/ROOM", listener.local_addr()?);
    match redis_url {
        Some(url) => serve_with_redis(listener, acceptor(), &url).await?,
        None => serve(listener, acceptor()).await?,
    }
    Ok(())
}
