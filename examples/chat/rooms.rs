//! A server's rooms: each a log of its last lines, numbered in the room's one
//! order, and the cursors its members read it with.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use fastws::{Message, PreparedMessage};
use tokio::sync::watch;

use super::BACKLOG;

/// A line of a room, numbered in the room's order.
pub(crate) struct Line {
    pub(crate) seq: u64,
    /// The connection it came from (not sent back to plain subscribers).
    pub(crate) from: Origin,
    pub(crate) message: PreparedMessage,
    /// The line with its number, for numbered subscribers: prepared by the first
    /// one that sends it.
    pub(crate) numbered: OnceLock<PreparedMessage>,
}

impl Line {
    pub(crate) fn new(seq: u64, from: Origin, message: PreparedMessage) -> Arc<Line> {
        Arc::new(Line {
            seq,
            from,
            message,
            numbered: OnceLock::new(),
        })
    }

    /// The line as numbered subscribers get it: `#<seq> <text>`, or the number
    /// (8 bytes, big endian) before a binary payload.
    pub(crate) fn numbered(&self) -> &PreparedMessage {
        self.numbered.get_or_init(|| {
            let message = self.message.message();
            PreparedMessage::new(match message.as_text() {
                Some(text) => Message::text(format!("#{} {text}", self.seq)),
                None => {
                    let mut payload = Vec::with_capacity(8 + message.len());
                    payload.extend_from_slice(&self.seq.to_be_bytes());
                    payload.extend_from_slice(message.payload());
                    Message::binary(payload)
                }
            })
        })
    }
}

/// A connection, among all the servers that share rooms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Origin {
    /// The server (0 without Redis; random with it).
    pub(crate) server: u64,
    /// The connection, numbered by its server.
    pub(crate) connection: u64,
}

/// A room: its log, and the members it wakes when the log grows.
pub(crate) struct Room {
    pub(crate) log: Mutex<Log>,
    /// Told of every line added; its receivers are the room's members.
    pub(crate) added: watch::Sender<()>,
    /// How many members joined so far: a lingering room is forgotten only if
    /// nobody joined it since it emptied.
    pub(crate) joins: AtomicU64,
}

/// A room's last lines.
#[derive(Default)]
pub(crate) struct Log {
    /// The last [`BACKLOG`] lines, oldest first, their numbers ascending.
    pub(crate) lines: VecDeque<Arc<Line>>,
    /// The number of the newest line (0 before the first).
    pub(crate) newest: u64,
    /// How many times the numbering started again (Redis lost the room's keys).
    pub(crate) restarts: u64,
}

impl Log {
    pub(crate) fn push(&mut self, line: Arc<Line>) {
        self.newest = line.seq;
        self.lines.push_back(line);
        if self.lines.len() > BACKLOG {
            self.lines.pop_front();
        }
    }
}

/// Where a subscriber is in its room's numbering.
pub(crate) struct Cursor {
    /// The number of the last line sent or counted as skipped; `None` before the
    /// first, which is then taken whatever its number.
    pub(crate) last: Option<u64>,
    /// The room's restarts it counts from.
    pub(crate) restarts: u64,
}

impl Cursor {
    /// Moves past line `seq`: how many lines before it were skipped, or `None` if
    /// the subscriber has had it already.
    pub(crate) fn advance(&mut self, seq: u64) -> Option<u64> {
        let skipped = match self.last {
            Some(last) if seq <= last => return None,
            Some(last) => seq - last - 1,
            None => 0,
        };
        self.last = Some(seq);
        Some(skipped)
    }
}

impl Room {
    pub(crate) fn new() -> Room {
        Room {
            log: Mutex::new(Log::default()),
            added: watch::channel(()).0,
            joins: AtomicU64::new(0),
        }
    }

    /// Numbers `message` as the room's next line and adds it: without Redis, the
    /// room's order is the order of this lock.
    pub(crate) fn publish(&self, from: Origin, message: PreparedMessage) {
        let mut log = self.log.lock().unwrap();
        let seq = log.newest + 1;
        log.push(Line::new(seq, from, message));
        drop(log);
        self.added.send_replace(());
    }

    /// Adds a line Redis numbered. A number not after the newest means Redis
    /// started the room's numbering again: the old lines go.
    pub(crate) fn deliver(&self, line: Arc<Line>) {
        let mut log = self.log.lock().unwrap();
        if line.seq <= log.newest {
            log.lines.clear();
            log.restarts += 1;
        }
        log.push(line);
        drop(log);
        self.added.send_replace(());
    }

    /// A cursor after line `since` (from the start of the numbering if `since` is
    /// ahead of it: the room was made anew), or, without `since`, from now.
    pub(crate) fn cursor(&self, since: Option<u64>) -> Cursor {
        let log = self.log.lock().unwrap();
        let last = match since {
            Some(since) if since > log.newest => Some(0),
            Some(since) => Some(since),
            None => log.lines.back().map(|line| line.seq),
        };
        Cursor {
            last,
            restarts: log.restarts,
        }
    }

    /// The oldest line kept after the cursor's last one, if there is one yet.
    pub(crate) fn next(&self, cursor: &mut Cursor) -> Option<Arc<Line>> {
        let log = self.log.lock().unwrap();
        if cursor.restarts != log.restarts {
            *cursor = Cursor {
                last: None,
                restarts: log.restarts,
            };
        }
        let next = match cursor.last {
            Some(last) => log.lines.partition_point(|line| line.seq <= last),
            None => 0,
        };
        log.lines.get(next).cloned()
    }
}

/// The rooms of this server.
pub(crate) struct Rooms {
    pub(crate) by_name: Mutex<HashMap<String, Arc<Room>>>,
    /// How long a room outlives its last member.
    pub(crate) linger: Duration,
}

impl Rooms {
    pub(crate) fn new(linger: Duration) -> Arc<Rooms> {
        Arc::new(Rooms {
            by_name: Mutex::default(),
            linger,
        })
    }

    /// The room `name`, made if it is new, and a membership of it.
    pub(crate) fn join(&self, name: &str) -> (Arc<Room>, watch::Receiver<()>) {
        let mut rooms = self.by_name.lock().unwrap();
        let room = rooms
            .entry(name.to_owned())
            .or_insert_with(|| Arc::new(Room::new()));
        room.joins.fetch_add(1, Ordering::Relaxed);
        (Arc::clone(room), room.added.subscribe())
    }

    /// The room `name`, if it exists on this server.
    pub(crate) fn get(&self, name: &str) -> Option<Arc<Room>> {
        self.by_name.lock().unwrap().get(name).cloned()
    }

    /// Forgets the room `name` once its last member has gone (and, if it lingers,
    /// nobody joined it in the meantime).
    pub(crate) fn leave(self: &Arc<Self>, name: &str) {
        let mut rooms = self.by_name.lock().unwrap();
        let Some(room) = rooms.get(name) else { return };
        if room.added.receiver_count() > 0 {
            return;
        }
        if self.linger.is_zero() {
            rooms.remove(name);
            return;
        }
        let joins = room.joins.load(Ordering::Relaxed);
        let (this, name) = (Arc::clone(self), name.to_owned());
        tokio::spawn(async move {
            tokio::time::sleep(this.linger).await;
            let mut rooms = this.by_name.lock().unwrap();
            let still_empty = rooms.get(&name).is_some_and(|room| {
                room.joins.load(Ordering::Relaxed) == joins && room.added.receiver_count() == 0
            });
            if still_empty {
                rooms.remove(&name);
            }
        });
    }
}
