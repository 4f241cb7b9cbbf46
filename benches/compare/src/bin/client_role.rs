//! The client role (issue 17): one library's client against a neutral server on
//! plain tokio ([`neutral_server`]) that pushes pre-built frames as fast as the
//! client reads (MODE=push, market data) or echoes each request (MODE=echo).
//!
//! Usage: [MODE=push|echo|feed] [SIZE=BYTES] [CONNS=N] [WARMUP=N] [MEASURED=N] client_role [NAME ...|all]
//!        (NAME as in `clients::NAMES`; default: all)
//!
//! The server runs on a thread of its own; the client's connections run on the
//! main thread's single-threaded runtime (under callgrind with
//! --separate-threads, thread 1: `client_instructions.sh` counts it). The
//! connections handle WARMUP + MEASURED messages together, an equal share each,
//! so a run's total work is fixed. Prints messages per second over the measured
//! part: from the count passing WARMUP to the last message, and the CPU time each
//! of the two threads spent per message over that part (user + system, from
//! `/proc`, in clock ticks of 10 ms: about 1 % of a one-second run).
//!
//! MODE=feed has no server and no socket: each connection reads an endless
//! in-memory [`Feed`] of pushed frames, at most 64 KiB per read, so that a count
//! of the client's instructions does not depend on how two threads were
//! scheduled (`MODE=feed client_instructions.sh`). Its one thread is the client's.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fastws_compare::client::{self, Progress};
use fastws_compare::clients::{self, Job};
use fastws_compare::feed::Feed;
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
    let mode_name = env_or("MODE", "push".to_owned());
    // feed: a push with no server and no socket, from an in-memory `Feed`.
    let feed = mode_name == "feed";
    let mode: Mode = if feed {
        Mode::Push
    } else {
        mode_name.parse().unwrap_or_else(|e: String| {
            eprintln!("client_role: {e}, or feed");
            std::process::exit(2);
        })
    };
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
    println!("| client | mode | size | connections | messages/s | client ns/msg | server ns/msg |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    for name in &names {
        match measure(name, mode, feed, size, conns, warmup, measured) {
            Ok(Measured {
                rate,
                client_cpu,
                server_cpu,
            }) => println!(
                "| {name} | {mode_name} | {size} | {conns} | {rate:.0} | {client_cpu:.0} | {server_cpu:.0} |"
            ),
            Err(e) => {
                eprintln!("client_role: {name}: {e}");
                std::process::exit(1);
            }
        }
    }
}

/// What one run's measured part gave.
struct Measured {
    /// Messages per second.
    rate: f64,
    /// CPU time of the client's thread per message, ns.
    client_cpu: f64,
    /// CPU time of the server's thread per message, ns.
    server_cpu: f64,
}

/// One mark of the measured part: the count that passed it, when, and the CPU
/// ticks the client and server threads had used by then.
struct Mark {
    count: u64,
    at: Instant,
    client_ticks: u64,
    server_ticks: u64,
}

/// The `/proc` path of the calling thread (`PID/task/TID`).
fn this_thread() -> Result<std::path::PathBuf, String> {
    std::fs::read_link("/proc/thread-self")
        .map(|path| std::path::Path::new("/proc").join(path))
        .map_err(|e| format!("/proc/thread-self: {e}"))
}

/// The user + system CPU ticks the thread at `path` has used, 0 if unreadable.
fn cpu_ticks(path: &std::path::Path) -> u64 {
    let Ok(stat) = std::fs::read_to_string(path.join("stat")) else {
        return 0;
    };
    // The fields after the command's closing parenthesis: utime and stime are
    // the 12th and 13th of them.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let field = |at: usize| fields.get(at).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    field(11) + field(12)
}

/// Clock ticks per second of `/proc`'s CPU times (USER_HZ, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// One run: `conns` connections of client `name`, `warmup + measured` messages in
/// all; the measured part's messages per second and CPU time per message. With
/// `feed` the connections read from in-memory [`Feed`]s and there is no server.
fn measure(
    name: &str,
    mode: Mode,
    feed: bool,
    size: usize,
    conns: usize,
    warmup: u64,
    measured: u64,
) -> Result<Measured, String> {
    let per_connection = (warmup + measured).div_ceil(conns as u64);
    let total = per_connection * conns as u64;
    let (server_path_tx, server_path_rx) = std::sync::mpsc::channel();
    let (server, addr) = if feed {
        (None, String::new())
    } else {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?.to_string();
        let server = std::thread::spawn(move || -> Result<(), String> {
            let _ = server_path_tx.send(this_thread());
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let listener = tokio::net::TcpListener::from_std(listener).map_err(|e| e.to_string())?;
                neutral_server::serve(listener, conns, mode, size, per_connection).await
            })
        });
        (Some(server), addr)
    };

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let server_path = match server {
        Some(_) => Some(
            server_path_rx
                .recv()
                .map_err(|_| "the server thread ended before it started".to_owned())??,
        ),
        None => None,
    };
    let client_path = this_thread()?;
    let marks = Arc::new(Mutex::new(Vec::new()));
    let result = runtime.block_on(async {
        let progress = Arc::new(Progress::default());
        // Each mark is taken by the connection whose messages pass it, as they do.
        let marks_taken = Arc::clone(&marks);
        let _ = progress.on_echoed.set(Box::new(move |before, after| {
            for mark in [warmup.max(1), total] {
                if before < mark && mark <= after {
                    marks_taken.lock().unwrap().push(Mark {
                        count: after,
                        at: Instant::now(),
                        client_ticks: cpu_ticks(&client_path),
                        server_ticks: server_path.as_deref().map_or(0, cpu_ticks),
                    });
                }
            }
        }));
        let run = async {
            let mut tasks = Vec::with_capacity(conns);
            for _ in 0..conns {
                let job = Job {
                    mode,
                    size,
                    count: per_connection,
                    progress: Arc::clone(&progress),
                };
                let name = name.to_owned();
                let unknown = format!("no client {name:?}");
                if feed {
                    tasks.push(tokio::spawn(async move {
                        clients::run(&name, Feed::new(size), job)
                            .await
                            .unwrap_or(Err(unknown))
                    }));
                } else {
                    let tcp = client::connect(&addr).await.map_err(|e| e.to_string())?;
                    tasks.push(tokio::spawn(async move {
                        clients::run(&name, tcp, job).await.unwrap_or(Err(unknown))
                    }));
                }
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
    let served = server.map(|server| server.join().map_err(|_| "the server thread panicked".to_owned()));
    result?;
    if let Some(served) = served {
        served??;
    }
    let marks = marks.lock().unwrap();
    let [start, end] = &marks[..] else {
        return Err(format!("expected two marks, got {}", marks.len()));
    };
    let messages = (end.count - start.count) as f64;
    let cpu_per_message = |ticks: u64| ticks as f64 / TICKS_PER_SECOND * 1e9 / messages;
    Ok(Measured {
        rate: messages / end.at.duration_since(start.at).as_secs_f64(),
        client_cpu: cpu_per_message(end.client_ticks - start.client_ticks),
        server_cpu: cpu_per_message(end.server_ticks - start.server_ticks),
    })
}

/// The value of the environment variable `name`, or `default`.
fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}
