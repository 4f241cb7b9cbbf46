//! Rooms shared between servers through Redis: one script numbers, logs and
//! publishes each line; every server's subscription delivers it to its own room.

use std::sync::Arc;
use std::time::Duration;

use fastws::{Acceptor, Bytes, Message, PreparedMessage, Utf8Bytes};
use futures_util::StreamExt;
use tokio::net::TcpListener;

use super::rooms::{Line, Origin, Rooms};
use super::{BACKLOG, Broker, LOG_TTL, run};

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
    // Subscribed before the first connection is accepted: a line logged after a
    // connection read the log reaches this server.
    subscription.psubscribe("chat:*").await?;
    let server = rand_server_id();
    // Redis keeps the log: a room goes with its last member.
    let rooms = Rooms::new(Duration::ZERO);
    let delivering = Arc::clone(&rooms);
    tokio::spawn(async move {
        let mut lines = subscription.into_on_message();
        while let Some(published) = lines.next().await {
            let Some(name) = published.get_channel_name().strip_prefix("chat:") else {
                continue;
            };
            match decode(published.get_payload_bytes()) {
                Some(line) => {
                    if let Some(room) = delivering.get(name) {
                        room.deliver(line);
                    }
                }
                None => eprintln!("chat:{name}: a line that is not ours, dropped"),
            }
        }
        eprintln!("the Redis subscription ended: this server's clients get no more lines");
    });
    run(listener, acceptor, rooms, Broker::Redis(publish), server).await?;
    Ok(())
}

/// A server id that two processes are unlikely to share.
pub(crate) fn rand_server_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.finish() | 1
}

/// The names of a room in Redis.
pub(crate) struct Keys {
    /// The channel its lines are published on.
    pub(crate) channel: String,
    /// The number of its newest line.
    pub(crate) seq: String,
    /// Its last [`BACKLOG`] lines.
    pub(crate) log: String,
}

impl Keys {
    pub(crate) fn new(room: &str) -> Keys {
        Keys {
            channel: format!("chat:{room}"),
            seq: format!("chat:{room}:seq"),
            log: format!("chat:{room}:log"),
        }
    }
}

/// Numbers a line, logs it and publishes it, in one step of Redis: the order of
/// the numbers is the order every server receives the lines in. KEYS: the
/// room's number and log; ARGV: its channel, the line ([`encode`]), [`BACKLOG`],
/// [`LOG_TTL`] in seconds.
pub(crate) const PUBLISH: &str = "\
local seq = redis.call('INCR', KEYS[1])
local line = string.format('%d ', seq) .. ARGV[2]
redis.call('RPUSH', KEYS[2], line)
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[3]), -1)
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[4])
redis.call('PUBLISH', ARGV[1], line)
return seq";

/// Publishes `message` from `from` in the room of `keys`, through Redis.
pub(crate) async fn publish_to_redis(
    redis: &mut redis::aio::MultiplexedConnection,
    keys: &Keys,
    from: Origin,
    message: &Message,
) -> redis::RedisResult<u64> {
    redis::cmd("EVAL")
        .arg(PUBLISH)
        .arg(2)
        .arg(&keys.seq)
        .arg(&keys.log)
        .arg(&keys.channel)
        .arg(encode(from, message))
        .arg(BACKLOG)
        .arg(LOG_TTL.as_secs())
        .query_async(redis)
        .await
}

/// The room's log in Redis, oldest line first.
pub(crate) async fn read_log(
    redis: &mut redis::aio::MultiplexedConnection,
    keys: &Keys,
) -> redis::RedisResult<Vec<Arc<Line>>> {
    let logged: Vec<Vec<u8>> = redis::cmd("LRANGE")
        .arg(&keys.log)
        .arg(0)
        .arg(-1)
        .query_async(redis)
        .await?;
    Ok(logged.iter().filter_map(|bytes| decode(bytes)).collect())
}

/// A line as the [`PUBLISH`] script gets it: its kind (`t` or `b`), its origin,
/// its payload. The script puts its number before it, in decimal, and a space.
pub(crate) fn encode(from: Origin, message: &Message) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(17 + message.len());
    bytes.push(if message.is_text() { b't' } else { b'b' });
    bytes.extend_from_slice(&from.server.to_be_bytes());
    bytes.extend_from_slice(&from.connection.to_be_bytes());
    bytes.extend_from_slice(message.payload());
    bytes
}

/// A line as Redis logs and publishes it, framed for this server's subscribers;
/// `None` if it is not one [`PUBLISH`] made.
pub(crate) fn decode(bytes: &[u8]) -> Option<Arc<Line>> {
    let space = bytes.iter().position(|&byte| byte == b' ')?;
    let seq = std::str::from_utf8(&bytes[..space]).ok()?.parse().ok()?;
    let (&kind, rest) = bytes[space + 1..].split_first()?;
    let (server, rest) = rest.split_first_chunk::<8>()?;
    let (connection, payload) = rest.split_first_chunk::<8>()?;
    let payload = Bytes::copy_from_slice(payload);
    let message = match kind {
        b't' => Message::Text(Utf8Bytes::try_from(payload).ok()?),
        b'b' => Message::Binary(payload),
        _ => return None,
    };
    let from = Origin {
        server: u64::from_be_bytes(*server),
        connection: u64::from_be_bytes(*connection),
    };
    Some(Line::new(seq, from, PreparedMessage::new(message)))
}
