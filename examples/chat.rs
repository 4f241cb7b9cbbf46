//! A chat server with rooms, built for broadcast: each line is framed, and
//! compressed, once for the whole room.
//!
//! Usage: cargo run --example chat -- [ADDR]   (default 127.0.0.1:9002)
//!
//! Connect to `ws://ADDR/ROOM` (`ws://ADDR/` is the room `lobby`): every text or
//! binary message a client sends goes to everyone else in its room.
//!
//! - **Broadcast.** The reader of a connection turns each line into one
//!   [`PreparedMessage`] and publishes it on the room's `tokio::sync::broadcast`
//!   channel; every subscriber's writer sends that same frame. permessage-deflate
//!   (which browsers always negotiate) runs without context takeover on the
//!   server's side, so a line is compressed once per room, not once per
//!   subscriber.
//! - **A slow subscriber skips ahead.** A room keeps its last [`BACKLOG`] lines,
//!   shared by all its subscribers. A subscriber whose writer falls further behind
//!   (its socket is full: the client reads too slowly) loses the oldest lines it
//!   has not sent yet, is told so with one text message, `* N lines skipped`, and
//!   goes on from the oldest line still kept. A slow client costs the server its
//!   connection's write buffer, never a queue that grows with the room's traffic
//!   (`tests/chat_memory.rs` measures it).
//! - A room exists while it has someone in it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use fastws::{Acceptor, Config, DeflateConfig, Message, PreparedMessage};
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;

/// The lines a room keeps for subscribers that are behind.
pub const BACKLOG: usize = 256;

/// A line published in a room, and the connection it came from (not sent back to).
#[derive(Clone)]
struct Line {
    from: u64,
    message: PreparedMessage,
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

/// Serves chat rooms on `listener` until accepting fails.
pub async fn serve(listener: TcpListener, acceptor: Acceptor) -> std::io::Result<()> {
    let rooms = Arc::new(Rooms::default());
    let acceptor = Arc::new(acceptor);
    for id in 0.. {
        let (tcp, peer) = listener.accept().await?;
        let (rooms, acceptor) = (Arc::clone(&rooms), Arc::clone(&acceptor));
        tokio::spawn(async move {
            if let Err(err) = connection(id, tcp, &rooms, &acceptor).await {
                eprintln!("{peer}: {err}");
            }
        });
    }
    Ok(())
}

async fn connection(
    id: u64,
    tcp: TcpStream,
    rooms: &Rooms,
    acceptor: &Acceptor,
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

    // Writer: the room's lines, as they come, until the connection closes.
    let writer = tokio::spawn(async move {
        loop {
            match lines.recv().await {
                Ok(line) if line.from == id => {}
                Ok(line) => sink.send_prepared(&line.message).await?,
                Err(broadcast::error::RecvError::Lagged(skipped)) => {
                    sink.send(Message::text(format!("* {skipped} lines skipped")))
                        .await?;
                }
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
        Ok::<_, fastws::Error>(())
    });

    // Reader: publish this client's lines; the stream answers pings itself.
    let read = async {
        while let Some(message) = stream.next().await {
            let message = message?;
            if message.is_data() {
                // Framed here, once, for everyone in the room. Nobody else
                // there is fine.
                let _ = publish.send(Line {
                    from: id,
                    message: PreparedMessage::new(message),
                });
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
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9002".to_owned());
    let listener = TcpListener::bind(&addr).await?;
    println!("chat server listening on ws://{}/ROOM", listener.local_addr()?);
    serve(listener, acceptor()).await
}
