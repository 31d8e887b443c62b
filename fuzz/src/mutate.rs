//! Byte-level mutations, in the spirit of libFuzzer's: flips, interesting bytes, inserts and
//! deletes, copies within the input, splices with another input, and dictionary tokens.

use crate::rng::Rng;

/// Inputs are kept below this size, like libFuzzer's `-max_len`.
pub const MAX_LEN: usize = 8192;

const INTERESTING: &[u8] = &[
    0, 1, 0x7f, 0x80, 0xff, b'\n', b'\r', b'\t', b' ', b'"', b'\\', b',', b'=', b'.', b':', b'/',
    b'%', b'?', b'#', b'0', b'9', b'-', b'+', b'e', b'{', b'}', b'[', b']',
];

/// Applies 1 to 4 random mutations to `data`. `dict` holds tokens worth inserting whole;
/// `other` is another input to splice from.
pub fn mutate(rng: &mut Rng, data: &mut Vec<u8>, dict: &[&[u8]], other: &[u8]) {
    let rounds = 1 + rng.below(4);
    for _ in 0..rounds {
        mutate_once(rng, data, dict, other);
    }
    data.truncate(MAX_LEN);
}

fn mutate_once(rng: &mut Rng, data: &mut Vec<u8>, dict: &[&[u8]], other: &[u8]) {
    let len = data.len();
    match rng.below(13) {
        // Flip one bit.
        0 if len > 0 => {
            let i = rng.below(len);
            data[i] ^= 1 << rng.below(8);
        }
        // Set a byte to an interesting value or a random one.
        1 if len > 0 => {
            let i = rng.below(len);
            data[i] = if rng.coin() {
                rng.pick(INTERESTING)
            } else {
                rng.next_u64() as u8
            };
        }
        // Insert a few bytes.
        2 => {
            let at = rng.below(len + 1);
            let n = 1 + rng.below(4);
            for _ in 0..n {
                let b = if rng.coin() {
                    rng.pick(INTERESTING)
                } else {
                    rng.next_u64() as u8
                };
                data.insert(at, b);
            }
        }
        // Delete a range.
        3 if len > 0 => {
            let at = rng.below(len);
            let n = 1 + rng.below((len - at).min(16));
            data.drain(at..at + n);
        }
        // Copy a range of the input to elsewhere in it (insert).
        4 if len > 0 => {
            let from = rng.below(len);
            let n = 1 + rng.below((len - from).min(32));
            let chunk = data[from..from + n].to_vec();
            let at = rng.below(len + 1);
            data.splice(at..at, chunk);
        }
        // Repeat a range many times (deep nesting, long runs).
        5 if len > 0 => {
            let from = rng.below(len);
            let n = 1 + rng.below((len - from).min(4));
            let chunk = data[from..from + n].to_vec();
            let times = 1 + rng.below(80);
            let at = rng.below(len + 1);
            let mut rep = Vec::with_capacity(n * times);
            for _ in 0..times {
                rep.extend_from_slice(&chunk);
            }
            data.splice(at..at, rep);
        }
        // Insert a dictionary token.
        6 | 7 if !dict.is_empty() => {
            let tok = rng.pick(dict);
            let at = rng.below(len + 1);
            data.splice(at..at, tok.iter().copied());
        }
        // Overwrite with a dictionary token.
        8 if !dict.is_empty() && len > 0 => {
            let tok = rng.pick(dict);
            let at = rng.below(len);
            let end = (at + tok.len()).min(len);
            data.splice(at..end, tok.iter().copied());
        }
        // Splice: our head with the other input's tail.
        9 if !other.is_empty() => {
            let keep = rng.below(len + 1);
            let from = rng.below(other.len());
            data.truncate(keep);
            data.extend_from_slice(&other[from..]);
        }
        // Truncate.
        10 if len > 0 => {
            data.truncate(rng.below(len));
        }
        // Change an ASCII digit run's value (numbers are everywhere in these formats).
        11 if len > 0 => {
            let k0 = rng.below(len);
            if let Some(hit) = (0..len)
                .map(|k| (k0 + k) % len)
                .find(|&k| data[k].is_ascii_digit())
            {
                let mut start = hit;
                while start > 0 && data[start - 1].is_ascii_digit() {
                    start -= 1;
                }
                let mut end = hit;
                while end < len && data[end].is_ascii_digit() {
                    end += 1;
                }
                let digits: &[u8] = match rng.below(6) {
                    0 => b"0",
                    1 => b"00",
                    2 => b"18446744073709551616",
                    3 => b"99999999999999999999999999999999999999",
                    4 => b"1",
                    _ => b"4294967296",
                };
                data.splice(start..end, digits.iter().copied());
            }
        }
        // Swap two bytes.
        12 if len > 1 => {
            let a = rng.below(len);
            let b = rng.below(len);
            data.swap(a, b);
        }
        _ => {
            let b = rng.next_u64() as u8;
            data.push(b);
        }
    }
}

/// Random bytes of a random length, sometimes only printable ASCII.
pub fn random_bytes(rng: &mut Rng, max: usize) -> Vec<u8> {
    let n = rng.len(max);
    let printable = rng.coin();
    (0..n)
        .map(|_| {
            if printable {
                rng.range(0x20, 0x7e) as u8
            } else {
                rng.next_u64() as u8
            }
        })
        .collect()
}
