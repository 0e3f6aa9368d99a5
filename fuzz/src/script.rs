//! How a fuzz input is read: 8 bytes of seed (they drive the split points and the faults, so
//! the fuzzer chooses them like any other byte), then parts separated by [`SEP`]. Seeds are
//! written with [`Script::encode`] so the corpus files read the same way.

/// Separator between the parts of an input. Four bytes no fixture contains; libFuzzer learns
/// it from the comparisons and inserts it to add parts.
pub const SEP: &[u8] = b"\x00\xfe\x01\xff";

/// A parsed input.
#[derive(Debug, Clone)]
pub struct Script<'a> {
    pub seed: u64,
    pub parts: Vec<&'a [u8]>,
}

impl<'a> Script<'a> {
    pub fn parse(data: &'a [u8]) -> Script<'a> {
        let n = data.len().min(8);
        let mut seed = [0u8; 8];
        seed[..n].copy_from_slice(&data[..n]);
        let mut rest = &data[n..];
        let mut parts = Vec::new();
        while let Some(i) = find(rest, SEP) {
            parts.push(&rest[..i]);
            rest = &rest[i + SEP.len()..];
        }
        parts.push(rest);
        Script {
            seed: u64::from_le_bytes(seed),
            parts,
        }
    }

    pub fn encode(seed: u64, parts: &[&[u8]]) -> Vec<u8> {
        let mut out = seed.to_le_bytes().to_vec();
        for (i, p) in parts.iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(SEP);
            }
            out.extend_from_slice(p);
        }
        out
    }
}

pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A small deterministic generator (splitmix64): split points and faults from the seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// In `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// True one time in `n`.
    pub fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }
}

/// How a byte string is cut into reads, chosen by the seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// One piece.
    Whole,
    /// One byte at a time.
    Bytes,
    /// 1..=16 bytes.
    Small,
    /// 1..=4096 bytes.
    Large,
}

impl Cut {
    pub fn from_seed(seed: u64) -> Cut {
        match seed & 3 {
            0 => Cut::Whole,
            1 => Cut::Bytes,
            2 => Cut::Small,
            _ => Cut::Large,
        }
    }

    /// Cut `data` into pieces.
    pub fn pieces<'a>(self, data: &'a [u8], rng: &mut Rng) -> Vec<&'a [u8]> {
        let mut out = Vec::new();
        let mut rest = data;
        while !rest.is_empty() {
            let n = match self {
                Cut::Whole => rest.len(),
                Cut::Bytes => 1,
                Cut::Small => 1 + rng.below(16) as usize,
                Cut::Large => 1 + rng.below(4096) as usize,
            }
            .min(rest.len());
            out.push(&rest[..n]);
            rest = &rest[n..];
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_then_parse_gives_the_parts_back() {
        let data = Script::encode(42, &[b"abc", b"", b"de"]);
        let s = Script::parse(&data);
        assert_eq!(s.seed, 42);
        assert_eq!(s.parts, vec![&b"abc"[..], b"", b"de"]);
        let short = Script::parse(b"\x01\x02");
        assert_eq!(short.seed, 0x0201);
        assert_eq!(short.parts, vec![&b""[..]]);
    }

    #[test]
    fn every_cut_covers_the_input_in_order() {
        let data: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        for seed in 0..4 {
            let mut rng = Rng::new(seed);
            let pieces = Cut::from_seed(seed).pieces(&data, &mut rng);
            assert_eq!(pieces.concat(), data);
            assert!(pieces.iter().all(|p| !p.is_empty()));
        }
        let mut rng = Rng::new(1);
        assert_eq!(Cut::Bytes.pieces(&data, &mut rng).len(), data.len());
    }
}
