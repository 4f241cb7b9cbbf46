//! Criterion benches of the frame layer's hot paths: decoding and encoding binary
//! frames in both directions, and masking and UTF-8 validation against a plain
//! memcpy of the same bytes.
//!
//! Run with `cargo bench --bench codec`; add `-- decode/masked` (any id prefix) to
//! run a subset.
//!
//! Decode benches time only `WsCodec::decode` (and dropping the frame it returns):
//! the encoded input is copied into a fresh read buffer outside the timed region, a
//! chunk of many frames at a time, so the 16-byte case shows the per-frame cost
//! rather than the cost of building its input.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use fastws::mask::{apply_mask, apply_mask_scalar};
use fastws::{Frame, Role, Utf8Bytes, WsCodec};
use tokio_util::codec::{Decoder, Encoder};

const FRAME_SIZES: [(usize, &str); 4] = [
    (16, "16B"),
    (1 << 10, "1KiB"),
    (64 << 10, "64KiB"),
    (1 << 20, "1MiB"),
];

const MASK_SIZES: [(usize, &str); 4] = [
    (16, "16B"),
    (1 << 10, "1KiB"),
    (64 << 10, "64KiB"),
    (1 << 20, "1MiB"),
];

/// Bytes of encoded frames per untimed refill of the read buffer.
const CHUNK_BYTES: usize = 256 << 10;

/// The two directions of a connection, named by what is on the wire.
#[derive(Clone, Copy)]
enum Direction {
    /// Client to server: the client encodes with a mask, the server unmasks.
    Masked,
    /// Server to client: no mask either way.
    Unmasked,
}

impl Direction {
    fn name(self) -> &'static str {
        match self {
            Direction::Masked => "masked",
            Direction::Unmasked => "unmasked",
        }
    }

    fn sender(self) -> Role {
        match self {
            Direction::Masked => Role::Client,
            Direction::Unmasked => Role::Server,
        }
    }

    fn receiver(self) -> Role {
        match self {
            Direction::Masked => Role::Server,
            Direction::Unmasked => Role::Client,
        }
    }
}

fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + 7) as u8).collect()
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    for direction in [Direction::Masked, Direction::Unmasked] {
        for (size, label) in FRAME_SIZES {
            let frame = Frame::binary(payload(size));
            let frames_per_chunk = (CHUNK_BYTES / size).max(1);
            let mut encoder = WsCodec::new(direction.sender());
            let mut chunk = BytesMut::new();
            for _ in 0..frames_per_chunk {
                encoder.encode(frame.clone(), &mut chunk).unwrap();
            }
            let mut decoder = WsCodec::new(direction.receiver());

            group.throughput(Throughput::Bytes(size as u64));
            group.bench_function(BenchmarkId::new(direction.name(), label), |b| {
                b.iter_custom(|iters| {
                    let mut elapsed = Duration::ZERO;
                    let mut left = iters;
                    while left > 0 {
                        let n = left.min(frames_per_chunk as u64);
                        // Untimed: a fresh read buffer holding `n` or more frames.
                        let mut buf = BytesMut::from(&chunk[..]);
                        let start = Instant::now();
                        for _ in 0..n {
                            let frame = decoder.decode(black_box(&mut buf)).unwrap();
                            black_box(frame);
                        }
                        elapsed += start.elapsed();
                        left -= n;
                    }
                    elapsed
                });
            });
        }
    }
    group.finish();
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    for direction in [Direction::Masked, Direction::Unmasked] {
        for (size, label) in FRAME_SIZES {
            let frame = Frame::binary(payload(size));
            let mut encoder = WsCodec::new(direction.sender());
            let mut dst = BytesMut::with_capacity(size + 14);

            group.throughput(Throughput::Bytes(size as u64));
            group.bench_function(BenchmarkId::new(direction.name(), label), |b| {
                b.iter(|| {
                    dst.clear();
                    // Cloning a frame only bumps its payload's reference count.
                    encoder.encode(black_box(frame.clone()), &mut dst).unwrap();
                    black_box(&mut dst);
                });
            });
        }
    }
    group.finish();
}

fn mask(c: &mut Criterion) {
    let mut group = c.benchmark_group("mask");
    let key = [0x37, 0xfa, 0x21, 0x3d];
    for (size, label) in MASK_SIZES {
        let source = payload(size);
        let mut buf = source.clone();
        let mut dst = vec![0u8; size];
        group.throughput(Throughput::Bytes(size as u64));

        group.bench_function(BenchmarkId::new("apply_mask", label), |b| {
            b.iter(|| apply_mask(black_box(&mut buf), black_box(key), 0));
        });
        group.bench_function(BenchmarkId::new("apply_mask_scalar", label), |b| {
            b.iter(|| apply_mask_scalar(black_box(&mut buf), black_box(key), 0));
        });
        group.bench_function(BenchmarkId::new("memcpy", label), |b| {
            b.iter(|| {
                dst.copy_from_slice(black_box(&source));
                black_box(&mut dst);
            });
        });
    }
    group.finish();
}

/// Text that is mostly ASCII with two- and three-byte characters mixed in, as
/// JSON with non-English strings is.
fn text(size: usize) -> Bytes {
    let unit = "{\"name\":\"Grüße\",\"city\":\"東京\",\"n\":12345}";
    let mut text = String::with_capacity(size + unit.len());
    while text.len() + unit.len() <= size {
        text.push_str(unit);
    }
    while text.len() < size {
        text.push(' ');
    }
    Bytes::from(text)
}

/// The validation a text message gets (`Utf8Bytes::try_from` runs the same
/// SIMD validator as the message layer), against copying the same bytes.
fn utf8(c: &mut Criterion) {
    let mut group = c.benchmark_group("utf8");
    for (size, label) in MASK_SIZES.into_iter().skip(1) {
        let source = text(size);
        let mut dst = vec![0u8; size];
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(BenchmarkId::new("validate", label), |b| {
            b.iter(|| Utf8Bytes::try_from(black_box(source.clone())).is_ok());
        });
        group.bench_function(BenchmarkId::new("memcpy", label), |b| {
            b.iter(|| {
                dst.copy_from_slice(black_box(&source));
                black_box(&mut dst);
            });
        });
    }
    group.finish();
}

criterion_group!(benches, decode, encode, mask, utf8);
criterion_main!(benches);
