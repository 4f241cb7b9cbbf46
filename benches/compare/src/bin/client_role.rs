//! The client role (issue 17): one library's client against a neutral server on
//! plain tokio ([`neutral_server`]) that pushes pre-built frames as fast as the
//! client reads (MODE=push, market data) or echoes each request (MODE=echo).
//!
//! Usage: [MODE=push|echo] [SIZE=BYTES] [CONNS=N] [WARMUP=N] [MEASURED=N] client_role [NAME ...|all]
//!        (NAME as in `clients::NAMES`; default: all)
//!
//! The server runs on a thread of its own; the client's connections run on the
//! main thread's single-threaded runtime (under callgrind with
//! --separate-threads, thread 1: `client_instructions.sh` counts it). The
//! connections handle WARMUP + MEASURED messages together, an equal share each,
//! so a run's total work is fixed. Prints messages per second over the measured
//! part: from the count passing WARMUP to the last message.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fastws_compare::client::{self, Progress};
use fastws_compare::clients::{self, Job};
use fastws_compare::neutral_server::{self, Mode};

/// A run that has not finished by then has failed.
const TIME_LIMIT: Duration = Duration::from_secs(300);
/// The most connections `CONNS` may ask for.
const MAX_CONNS: usize = 1024;

fn main() {
    let mut names: Vec<String> = std::env::args().skip(1).collect();
    if names.is_empty() || names == ["all"] {
        names = clients::NAMES.iter().map(|name| name.to_string()).collect();
    }
    let mode: Mode = env_or("MODE", "push".to_owned())
        .parse()
        .unwrap_or_else(|e: String| {
            eprintln!("client_role: {e}");
            std::process::exit(2);
        });
    let size = env_or("SIZE", 16usize);
    let conns = env_or("CONNS", 1usize).clamp(1, MAX_CONNS);
    // About a second of traffic per run, on this machine (an echo waits for
    // every round trip: tens of thousands a second).
    let default_measured = if mode == Mode::Echo {
        if size >= 1 << 20 { 2_000 } else { 50_000 }
    } else if size >= 1 << 20 {
        4_000
    } else if size >= 64 << 10 {
        50_000
    } else if size >= 1024 {
        2_000_000
    } else {
        10_000_000
    };
    let measured = env_or("MEASURED", default_measured);
    let warmup = env_or("WARMUP", measured / 10);
    println!("| client | mode | size | connections | messages/s |");
    println!("|---|---|---:|---:|---:|");
    for name in &names {
        match measure(name, mode, size, conns, warmup, measured) {
            Ok(rate) => println!("| {name} | {mode:?} | {size} | {conns} | {rate:.0} |"),
            Err(e) => {
                eprintln!("client_role: {name}: {e}");
                std::process::exit(1);
            }
        }
    }
}

/// One run: `conns` connections of client `name`, `warmup + measured` messages in
/// all; the measured part's messages per second.
fn measure(
    name: &str,
    mode: Mode,
    size: usize,
    conns: usize,
    warmup: u64,
    measured: u64,
) -> Result<f64, String> {
    let per_connection = (warmup + measured).div_ceil(conns as u64);
    let total = per_connection * conns as u64;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?.to_string();
    let server = std::thread::spawn(move || -> Result<(), String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        runtime.block_on(async {
            let listener = tokio::net::TcpListener::from_std(listener).map_err(|e| e.to_string())?;
            neutral_server::serve(listener, conns, mode, size, per_connection).await
        })
    });

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let marks = Arc::new(Mutex::new(Vec::new()));
    let result = runtime.block_on(async {
        let progress = Arc::new(Progress::default());
        // Each mark is taken by the connection whose messages pass it, as they do.
        let marks_taken = Arc::clone(&marks);
        let _ = progress.on_echoed.set(Box::new(move |before, after| {
            for mark in [warmup.max(1), total] {
                if before < mark && mark <= after {
                    marks_taken.lock().unwrap().push((after, Instant::now()));
                }
            }
        }));
        let run = async {
            let mut tasks = Vec::with_capacity(conns);
            for _ in 0..conns {
                let tcp = client::connect(&addr).await.map_err(|e| e.to_string())?;
                let job = Job {
                    mode,
                    size,
                    count: per_connection,
                    progress: Arc::clone(&progress),
                };
                let name = name.to_owned();
                tasks.push(tokio::spawn(async move {
                    clients::run(&name, tcp, job)
                        .await
                        .unwrap_or_else(|| Err(format!("no client {name:?}")))
                }));
            }
            for task in tasks {
                task.await.map_err(|e| e.to_string())??;
            }
            Ok::<(), String>(())
        };
        tokio::time::timeout(TIME_LIMIT, run)
            .await
            .map_err(|_| "the run took too long".to_owned())?
    });
    drop(runtime);
    let served = server
        .join()
        .map_err(|_| "the server thread panicked".to_owned())?;
    result?;
    served?;
    let marks = marks.lock().unwrap();
    let [(start_count, start), (end_count, end)] = marks[..] else {
        return Err(format!("expected two marks, got {}", marks.len()));
    };
    Ok((end_count - start_count) as f64 / end.duration_since(start).as_secs_f64())
}

/// The value of the environment variable `name`, or `default`.
fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}
