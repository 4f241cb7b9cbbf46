//! The Autobahn testsuite's client loop: echo every case the fuzzing server runs.
//!
//! Usage: cargo run --release --example autobahn_client -- [ws://127.0.0.1:9001]
//!
//! Asks `/getCaseCount`, runs `/runCase?case=N&agent=fastws` for each case (echoing
//! every data message until the server closes), then `/updateReports?agent=fastws`.

use futures_util::{SinkExt, StreamExt};

const AGENT: &str = "fastws";

#[tokio::main]
async fn main() -> Result<(), fastws::Error> {
    let base = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "ws://127.0.0.1:9001".to_owned());
    let count = case_count(&base).await?;
    println!("running {count} cases against {base}");
    for case in 1..=count {
        // A failing case is the report's business, not a reason to stop.
        if let Err(err) = run_case(&format!("{base}/runCase?case={case}&agent={AGENT}")).await {
            eprintln!("case {case}: {err}");
        }
    }
    let (mut ws, _) = fastws::connect(format!("{base}/updateReports?agent={AGENT}")).await?;
    ws.close().await?;
    while ws.next().await.is_some() {}
    println!("reports updated");
    Ok(())
}

async fn case_count(base: &str) -> Result<u32, fastws::Error> {
    let (mut ws, _) = fastws::connect(format!("{base}/getCaseCount")).await?;
    let mut count = 0;
    while let Some(message) = ws.next().await {
        if let Some(text) = message?.as_text() {
            count = text.trim().parse().unwrap_or(0);
        }
    }
    Ok(count)
}

async fn run_case(url: &str) -> Result<(), fastws::Error> {
    let config = fastws::Config::default().max_message_size(64 << 20);
    let (mut ws, _) = fastws::connect(fastws::ClientRequest::new(url).config(config)).await?;
    while let Some(message) = ws.next().await {
        let message = message?;
        if message.is_data() {
            ws.send(message).await?;
        }
    }
    Ok(())
}
