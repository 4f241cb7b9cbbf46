//! A small reference DEFLATE (RFC 1951) decoder, after zlib's `puff.c`: it inflates
//! a raw stream and reports what a test needs to check a sender on the wire, such as
//! the longest back-reference (a permessage-deflate window limit, RFC 7692 §7.1.2)
//! and whether a block with BFINAL set was used. Slow and simple on purpose: it
//! shares no code with flate2 or zlib-rs.

/// What a raw DEFLATE stream decoded to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inflated {
    /// The decoded bytes (without the history passed in).
    pub data: Vec<u8>,
    /// The longest back-reference distance any match used (0 if none did).
    pub max_distance: usize,
    /// Whether the stream ended with a block that had BFINAL set.
    pub final_block: bool,
    /// Bytes left after the final block (always 0 without one).
    pub trailing: usize,
}

/// Decodes `input` as raw DEFLATE: blocks until the input ends at a block boundary
/// (as it does after a sync flush) or a block with BFINAL set ends. `history` is
/// the output that came before (the LZ77 window of earlier messages, under context
/// takeover); matches may reach into it.
pub fn inflate(input: &[u8], history: &[u8]) -> Result<Inflated, &'static str> {
    let mut state = State {
        input,
        pos: 0,
        bit_buf: 0,
        bit_count: 0,
        out: history.to_vec(),
        max_distance: 0,
    };
    let mut final_block = false;
    while state.pos < input.len() && !final_block {
        final_block = state.bits(1)? == 1;
        match state.bits(2)? {
            0 => state.stored()?,
            1 => state.codes(&fixed_lengths(), &fixed_distances())?,
            2 => state.dynamic()?,
            _ => return Err("invalid block type"),
        }
    }
    Ok(Inflated {
        data: state.out.split_off(history.len()),
        max_distance: state.max_distance,
        final_block,
        trailing: input.len() - state.pos,
    })
}

const LENGTH_BASE: [usize; 29] = [
    3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195,
    227, 258,
];
const LENGTH_EXTRA: [u32; 29] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];
const DISTANCE_BASE: [usize; 30] = [
    1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073,
    4097, 6145, 8193, 12289, 16385, 24577,
];
const DISTANCE_EXTRA: [u32; 30] = [
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13,
];
/// The order in which code length code lengths are sent (RFC 1951 §3.2.7).
const CODE_LENGTH_ORDER: [usize; 19] = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15];

/// A canonical Huffman code: how many codes of each length, and the symbols in
/// code order.
struct Huffman {
    count: [u16; 16],
    symbol: Vec<u16>,
}

impl Huffman {
    fn new(lengths: &[u8]) -> Huffman {
        let mut count = [0u16; 16];
        for &len in lengths {
            count[usize::from(len)] += 1;
        }
        let mut offsets = [0usize; 16];
        for len in 1..15 {
            offsets[len + 1] = offsets[len] + usize::from(count[len]);
        }
        let mut symbol = vec![0u16; lengths.len()];
        for (sym, &len) in lengths.iter().enumerate() {
            if len != 0 {
                symbol[offsets[usize::from(len)]] = sym as u16;
                offsets[usize::from(len)] += 1;
            }
        }
        Huffman { count, symbol }
    }
}

fn fixed_lengths() -> Huffman {
    let mut lengths = [0u8; 288];
    lengths[..144].fill(8);
    lengths[144..256].fill(9);
    lengths[256..280].fill(7);
    lengths[280..].fill(8);
    Huffman::new(&lengths)
}

fn fixed_distances() -> Huffman {
    Huffman::new(&[5; 30])
}

struct State<'a> {
    input: &'a [u8],
    pos: usize,
    bit_buf: u32,
    bit_count: u32,
    out: Vec<u8>,
    max_distance: usize,
}

impl State<'_> {
    /// The next `need` bits (at most 16), least significant first.
    fn bits(&mut self, need: u32) -> Result<u32, &'static str> {
        let mut value = self.bit_buf;
        while self.bit_count < need {
            let byte = *self.input.get(self.pos).ok_or("out of input")?;
            self.pos += 1;
            value |= u32::from(byte) << self.bit_count;
            self.bit_count += 8;
        }
        self.bit_buf = value >> need;
        self.bit_count -= need;
        Ok(value & ((1 << need) - 1))
    }

    /// A stored block: byte aligned, LEN and NLEN, then LEN bytes (RFC 1951 §3.2.4).
    fn stored(&mut self) -> Result<(), &'static str> {
        self.bit_buf = 0;
        self.bit_count = 0;
        let header = self.input.get(self.pos..self.pos + 4).ok_or("out of input")?;
        let len = usize::from(u16::from_le_bytes([header[0], header[1]]));
        let nlen = u16::from_le_bytes([header[2], header[3]]);
        if nlen != !(len as u16) {
            return Err("stored block length does not match its complement");
        }
        self.pos += 4;
        let data = self.input.get(self.pos..self.pos + len).ok_or("out of input")?;
        self.out.extend_from_slice(data);
        self.pos += len;
        Ok(())
    }

    fn decode(&mut self, huffman: &Huffman) -> Result<usize, &'static str> {
        let (mut code, mut first, mut index) = (0i32, 0i32, 0i32);
        for len in 1..16 {
            code |= self.bits(1)? as i32;
            let count = i32::from(huffman.count[len]);
            if code - count < first {
                return Ok(usize::from(huffman.symbol[(index + code - first) as usize]));
            }
            index += count;
            first = (first + count) << 1;
            code <<= 1;
        }
        Err("invalid huffman code")
    }

    /// The symbols of a fixed or dynamic block, up to its end-of-block code.
    fn codes(&mut self, lengths: &Huffman, distances: &Huffman) -> Result<(), &'static str> {
        loop {
            let symbol = self.decode(lengths)?;
            match symbol {
                0..=255 => self.out.push(symbol as u8),
                256 => return Ok(()),
                _ => {
                    let symbol = symbol - 257;
                    if symbol >= 29 {
                        return Err("invalid length symbol");
                    }
                    let len = LENGTH_BASE[symbol] + self.bits(LENGTH_EXTRA[symbol])? as usize;
                    let symbol = self.decode(distances)?;
                    if symbol >= 30 {
                        return Err("invalid distance symbol");
                    }
                    let distance = DISTANCE_BASE[symbol] + self.bits(DISTANCE_EXTRA[symbol])? as usize;
                    if distance > self.out.len() {
                        return Err("distance too far back");
                    }
                    self.max_distance = self.max_distance.max(distance);
                    for _ in 0..len {
                        self.out.push(self.out[self.out.len() - distance]);
                    }
                }
            }
        }
    }

    /// A block with dynamic Huffman codes (RFC 1951 §3.2.7).
    fn dynamic(&mut self) -> Result<(), &'static str> {
        let nlen = self.bits(5)? as usize + 257;
        let ndist = self.bits(5)? as usize + 1;
        let ncode = self.bits(4)? as usize + 4;
        if nlen > 286 || ndist > 30 {
            return Err("too many length or distance codes");
        }
        let mut lengths = [0u8; 19];
        for &index in &CODE_LENGTH_ORDER[..ncode] {
            lengths[index] = self.bits(3)? as u8;
        }
        let code_lengths = Huffman::new(&lengths);
        let mut lengths = vec![0u8; nlen + ndist];
        let mut index = 0;
        while index < nlen + ndist {
            let symbol = self.decode(&code_lengths)?;
            let (value, repeat) = match symbol {
                0..=15 => (symbol as u8, 1),
                16 => {
                    let previous = *lengths[..index].last().ok_or("repeat with no previous length")?;
                    (previous, 3 + self.bits(2)? as usize)
                }
                17 => (0, 3 + self.bits(3)? as usize),
                _ => (0, 11 + self.bits(7)? as usize),
            };
            if index + repeat > lengths.len() {
                return Err("too many code lengths");
            }
            lengths[index..index + repeat].fill(value);
            index += repeat;
        }
        let (literal_lengths, distance_lengths) = lengths.split_at(nlen);
        self.codes(&Huffman::new(literal_lengths), &Huffman::new(distance_lengths))
    }
}
