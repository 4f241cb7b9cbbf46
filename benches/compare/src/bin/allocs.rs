//! Heap allocations per message on the server side of a steady-state echo: 16-byte
//! binary messages (or `SIZE` bytes), 16 in flight, one loopback connection (or
//! `CONNS`), driven in-process.
//!
//! Usage: [SIZE=BYTES] [WARMUP=N] [MEASURED=N] [CONNS=N] allocs [NAME ...|all]   (default: fastws; NAME as in srv_NAME)
//!
//! The server runs on its own thread with its own single-threaded runtime, and only
//! that thread's allocations are counted (alloc, alloc_zeroed and realloc), from
//! message WARMUP to WARMUP + MEASURED as the client counts echoes. The client
//! sends exactly WARMUP + MEASURED messages and waits for every echo, so a run ends
//! with nothing in flight: the server's total work is the same in every run of the
//! same count (what `instructions.sh` relies on).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fastws_compare::client::{self, Load, Progress};
use fastws_compare::servers;

/// The message size unless `SIZE` says otherwise.
const DEFAULT_SIZE: usize = 16;
const IN_FLIGHT: usize = 16;
/// Messages echoed before counting starts unless `WARMUP` says otherwise.
const DEFAULT_WARMUP: u64 = 20_000;
/// Messages counted unless `MEASURED` says otherwise (fewer for large messages).
const DEFAULT_MEASURED: u64 = 500_000;
/// A run that has not finished by then has failed.
const TIME_LIMIT: Duration = Duration::from_secs(300);
/// The most connections `CONNS` may ask for.
const MAX_CONNS: usize = 1024;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static ALLOCATED_BYTES: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Set on the server thread only.
    static COUNTED: Cell<bool> = const { Cell::new(false) };
}

fn count(size: usize) {
    if COUNTED.try_with(Cell::get).unwrap_or(false) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        ALLOCATED_BYTES.fetch_add(size as u64, Ordering::Relaxed);
    }
}

/// The system allocator, counting what the server thread asks of it.
struct Counting;

// SAFETY: every method forwards to `System` with the caller's arguments unchanged,
// so `System`'s guarantees hold; counting touches only atomics and a const-initialised
// thread-local `Cell` without destructor, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: forwarded as is (see the impl).
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: forwarded as is (see the impl).
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        // SAFETY: forwarded as is (see the impl).
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as is (see the impl).
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn main() {
    let mut names: Vec<String> = std::env::args().skip(1).collect();
    if names.is_empty() {
        names.push("fastws".to_owned());
    }
    if names == ["all"] {
        names = servers::NAMES.iter().map(|name| name.to_string()).collect();
    }
    println!(
        "| server | allocations / message | bytes allocated / message | allocations before (handshake + warm-up) |"
    );
    println!("|---|---:|---:|---:|");
    for name in &names {
        match measure(name) {
            Ok(Measured {
                per_message,
                bytes_per_message,
                before,
            }) => {
                println!("| {name} | {per_message:.4} | {bytes_per_message:.1} | {before} |")
            }
            Err(e) => {
                eprintln!("allocs: {name}: {e}");
                std::process::exit(1);
            }
        }
    }
}

/// What one run found.
struct Measured {
    /// Allocations per message over the measured part.
    per_message: f64,
    /// Bytes allocated per message over the measured part.
    bytes_per_message: f64,
    /// Allocations from the server thread's start to the end of the warm-up (shows
    /// the counter at work: the runtime, the handshake, the first buffers).
    before: u64,
}

/// Runs one echo of WARMUP + MEASURED messages.
fn measure(name: &str) -> Result<Measured, String> {
    // Earlier runs' server threads are joined: everything from here on is this run's.
    let baseline = ALLOCATIONS.load(Ordering::Relaxed);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?.to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server_name = name.to_owned();
    let conns = env_or("CONNS", 1).clamp(1, MAX_CONNS);
    let server = std::thread::spawn(move || -> Result<(), String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        runtime.block_on(async move {
            COUNTED.with(|counted| counted.set(true));
            let listener = tokio::net::TcpListener::from_std(listener).map_err(|e| e.to_string())?;
            for _ in 0..conns {
                let (tcp, _) = listener.accept().await.map_err(|e| e.to_string())?;
                tcp.set_nodelay(true).map_err(|e| e.to_string())?;
                let connection = servers::by_name(&server_name, tcp).ok_or("no such server")?;
                // Spawned, since some handlers (hyper's upgrade) hand the echo to a task
                // of their own and return; the runtime lives until the client is done.
                tokio::spawn(connection);
            }
            let _ = stopped.await;
            Ok(())
        })
    });

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let result = runtime.block_on(async {
        let progress = Arc::new(Progress::default());
        let measured = env_or("MEASURED", DEFAULT_MEASURED);
        let warmup = env_or("WARMUP", DEFAULT_WARMUP);
        progress.send_limit.store(warmup + measured, Ordering::Relaxed);
        // The counters are read by the reader whose echoes reach each mark, as
        // they reach it: this task may run long after, behind busy connections.
        let snapshots = Arc::new(Mutex::new(Vec::new()));
        let marks = Arc::clone(&snapshots);
        let _ = progress.on_echoed.set(Box::new(move |before, after| {
            for mark in [warmup, warmup + measured] {
                if before < mark && mark <= after {
                    marks.lock().unwrap().push((
                        after,
                        ALLOCATIONS.load(Ordering::Relaxed),
                        ALLOCATED_BYTES.load(Ordering::Relaxed),
                    ));
                }
            }
        }));
        let load = Load::new(env_or("SIZE", DEFAULT_SIZE), IN_FLIGHT, name.starts_with("raw"));
        let mut drivers = Vec::with_capacity(conns);
        for _ in 0..conns {
            let tcp = client::connect(&addr).await.map_err(|e| e.to_string())?;
            drivers.push(tokio::spawn(client::drive(
                tcp,
                load.clone(),
                Arc::clone(&progress),
            )));
        }
        let deadline = Instant::now() + TIME_LIMIT;
        while snapshots.lock().unwrap().len() < 2 {
            if drivers.iter().any(|driver| driver.is_finished()) || Instant::now() > deadline {
                return Err("the echo stopped or took too long".to_owned());
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let snapshots = snapshots.lock().unwrap().clone();
        for driver in &drivers {
            driver.abort();
        }
        let messages = (snapshots[1].0 - snapshots[0].0) as f64;
        Ok(Measured {
            per_message: (snapshots[1].1 - snapshots[0].1) as f64 / messages,
            bytes_per_message: (snapshots[1].2 - snapshots[0].2) as f64 / messages,
            before: snapshots[0].1 - baseline,
        })
    });
    drop(runtime);
    let _ = stop.send(());
    server
        .join()
        .map_err(|_| "the server thread panicked".to_owned())??;
    result
}

/// The number in the environment variable `name`, or `default`.
fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}
