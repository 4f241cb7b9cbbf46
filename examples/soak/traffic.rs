//! The traffic itself: a message as what it takes to generate it again ([`Spec`]),
//! the deterministic RNG every choice comes from ([`Rng`]), and the payloads, built
//! from a seed so that each echo can be regenerated and compared.

use fastws::Message;
use tokio::time::Instant;

/// Text or binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Text,
    Binary,
}

/// A message, as what it takes to generate it again.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Spec {
    pub(crate) kind: Kind,
    pub(crate) len: usize,
    pub(crate) large: bool,
    pub(crate) seed: u64,
    /// When it was queued for sending.
    pub(crate) queued: Instant,
}

/// Pieces of text, several with multi-byte UTF-8 (2, 3 and 4 bytes).
const PIECES: &[&str] = &[
    "the ",
    "echo ",
    "fastws ",
    "message ",
    "é",
    "ß",
    "ünïcödé ",
    "Ωμέγα ",
    "€",
    "日本語 ",
    "🦀",
    "🎉 ",
    "\n",
    "0123456789",
    ", ",
];

impl Spec {
    /// Mostly small (16 B–1 KiB); 2 % large (64 KiB–1 MiB) when `large_allowed`.
    pub(crate) fn random(rng: &mut Rng, large_allowed: bool) -> Spec {
        let kind = if rng.below(2) == 0 {
            Kind::Text
        } else {
            Kind::Binary
        };
        let large = large_allowed && rng.below(50) == 0;
        let len = match large {
            true => rng.range(64 * 1024, 1024 * 1024),
            false => rng.range(16, 1024),
        } as usize;
        Spec {
            kind,
            len,
            large,
            seed: rng.next(),
            queued: Instant::now(),
        }
    }

    /// The content, from the seed: compressible, but not trivially.
    pub(crate) fn fill(&self, out: &mut Vec<u8>) {
        out.clear();
        out.reserve(self.len);
        let mut rng = Rng::new(self.seed);
        match self.kind {
            Kind::Text => {
                while out.len() < self.len {
                    let piece = PIECES[rng.below(PIECES.len() as u64) as usize];
                    if out.len() + piece.len() <= self.len {
                        out.extend_from_slice(piece.as_bytes());
                    } else {
                        out.push(b'a' + rng.below(26) as u8);
                    }
                }
            }
            Kind::Binary => {
                while out.len() < self.len {
                    let run = (1 + rng.below(64) as usize).min(self.len - out.len());
                    let first = rng.next() as u8;
                    match rng.below(3) {
                        0 => out.extend((0..run).map(|_| rng.next() as u8)),
                        1 => out.extend(std::iter::repeat_n(first, run)),
                        _ => out.extend((0..run).map(|i| first.wrapping_add(i as u8))),
                    }
                }
            }
        }
    }

    pub(crate) fn message(&self) -> Message {
        let mut payload = Vec::new();
        self.fill(&mut payload);
        match self.kind {
            Kind::Text => Message::text(String::from_utf8(payload).expect("pieces are UTF-8")),
            Kind::Binary => Message::binary(payload),
        }
    }
}

/// SplitMix64: small, fast, and the same sequence everywhere.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// A number in `low..=high`.
    pub(crate) fn range(&mut self, low: u64, high: u64) -> u64 {
        low + self.below(high - low + 1)
    }
}
