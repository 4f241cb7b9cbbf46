//! A chat room in axum on fastws: the first message names the user, every later one
//! goes to everyone in the room. HTTP/1.1 and HTTP/2 (RFC 8441) on one port.
//!
//! Usage: cargo run --release --features axum --example axum_chat -- [ADDR]   (default 127.0.0.1:9006)
//!
//! Open http://ADDR/ in two browser tabs, or connect any WebSocket client to ws://ADDR/chat.
//!
//! Written in the shape of axum's own chat example: the same file compiles against
//! `axum::extract::ws` when its one `use fastws::axum::…` line names that module
//! instead, so a port changes that line and nothing else.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::response::{Html, Response};
use axum::routing::{any, get};
use fastws::axum::{Message, WebSocket, WebSocketUpgrade};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::broadcast;

struct Room {
    names: Mutex<HashSet<String>>,
    tx: broadcast::Sender<String>,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9006".to_owned());
    let room = Arc::new(Room {
        names: Mutex::new(HashSet::new()),
        tx: broadcast::channel(100).0,
    });
    let app = Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/chat", any(chat))
        .with_state(room);
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("chat on http://{}/", listener.local_addr()?);
    axum::serve(listener, app).await
}

async fn chat(ws: WebSocketUpgrade, State(room): State<Arc<Room>>) -> Response {
    ws.on_upgrade(|ws| join(ws, room))
}

async fn join(ws: WebSocket, room: Arc<Room>) {
    let (mut sink, mut stream) = ws.split();
    // The first text message is the user's name.
    let name = loop {
        match stream.next().await {
            Some(Ok(Message::Text(name))) => break name.to_string(),
            Some(Ok(_)) => continue,
            _ => return,
        }
    };
    if !room.names.lock().unwrap().insert(name.clone()) {
        let _ = sink.send(Message::text("Username already taken.")).await;
        return;
    }
    let mut rx = room.tx.subscribe();
    let _ = room.tx.send(format!("{name} joined."));
    // Everything said in the room goes out to this user ...
    let mut send_task = tokio::spawn(async move {
        while let Ok(line) = rx.recv().await {
            if sink.send(Message::text(line)).await.is_err() {
                break;
            }
        }
    });
    // ... and everything this user says goes to the room.
    let (tx, who) = (room.tx.clone(), name.clone());
    let mut recv_task = tokio::spawn(async move {
        while let Some(Ok(message)) = stream.next().await {
            if let Message::Text(text) = message {
                let _ = tx.send(format!("{who}: {text}"));
            }
        }
    });
    tokio::select! {
        _ = &mut send_task => recv_task.abort(),
        _ = &mut recv_task => send_task.abort(),
    }
    let _ = room.tx.send(format!("{name} left."));
    room.names.lock().unwrap().remove(&name);
}

const PAGE: &str = r#"<!doctype html>
<meta charset="utf-8"><title>fastws chat</title>
<input id="name" placeholder="name"><button id="join">join</button>
<textarea id="log" cols="80" rows="20" readonly></textarea><br>
<input id="line" size="80" placeholder="message, then Enter">
<script>
const log = (text) => { document.getElementById("log").value += text + "\n"; };
document.getElementById("join").onclick = () => {
  const ws = new WebSocket(`ws://${location.host}/chat`);
  ws.onopen = () => ws.send(document.getElementById("name").value);
  ws.onmessage = (e) => log(e.data);
  ws.onclose = () => log("(disconnected)");
  document.getElementById("line").onkeydown = (e) => {
    if (e.key === "Enter") { ws.send(e.target.value); e.target.value = ""; }
  };
};
</script>
"#;
