//! Small text helpers that keep the formatting machinery and slice panics out of the wasm,
//! and the "did you mean" suggestion for misspelt names.

use crate::prelude::*;

/// Appends the decimal form of `n` to `out`.
///
/// Used instead of `format!` so the wasm build does not pull in the formatting machinery.
pub fn push_u64(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut len = 0;
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in digits[..len].iter().rev() {
        out.push(d as char);
    }
}

/// Concatenates string pieces into one `String` (a `format!` without the formatting machinery).
pub fn concat(parts: &[&str]) -> String {
    let mut out = String::with_capacity(parts.iter().map(|p| p.len()).sum());
    for p in parts {
        out.push_str(p);
    }
    out
}

/// The words of a space-separated list (`"a  b"` is `["a", "b"]`): a scope string.
pub fn words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    for w in s.split(' ') {
        if !w.is_empty() {
            out.push(String::from(w));
        }
    }
    out
}

/// The strings borrowed, for the functions that take `&[&str]`.
pub fn as_strs(list: &[String]) -> Vec<&str> {
    let mut out = Vec::with_capacity(list.len());
    for s in list {
        out.push(s.as_str());
    }
    out
}

/// Sorts a short list in place (an insertion sort). `slice::sort` links core's sorting network,
/// quicksort and heapsort per element type, and their panic message: KiBs of wasm for lists of a
/// few items (a scope, extra parameters).
pub fn sort_short<T: Ord>(items: &mut [T]) {
    for i in 1..items.len() {
        let mut j = i;
        while j > 0 && items.get(j - 1) > items.get(j) {
            items.swap(j - 1, j);
            j -= 1;
        }
    }
}

/// `s[from..to]` without a panic path. A `&str` index that the compiler cannot prove to be on
/// a char boundary links core's slice panic, and through its message the formatting machinery
/// (`char` Debug escapes, Unicode tables, integer padding: about 8 KiB of wasm). The indices the
/// core slices at are found ASCII bytes, so always boundaries; were one not, the result would be
/// the empty string (which the URL parser refuses) rather than a trap that aborts a Worker isolate.
pub fn sub(s: &str, from: usize, to: usize) -> &str {
    s.get(from..to).unwrap_or_default()
}

/// `s[from..]` without a panic path (see [`sub`]).
pub fn tail(s: &str, from: usize) -> &str {
    s.get(from..).unwrap_or_default()
}

/// Where `needle` first occurs in `hay`, as a byte index (`str::find` with a `&str` pattern
/// links core's two-way searcher and its slice panic; the needles here are a few bytes long).
pub fn find_bytes(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Appends at most `max_chars` characters of `s`, with control characters shown as `?` and
/// `...` if it was cut, so a message can name a value without carrying all of it.
pub fn push_preview(out: &mut String, s: &str, max_chars: usize) {
    for (n, c) in s.chars().enumerate() {
        if n == max_chars {
            out.push_str("...");
            return;
        }
        out.push(if c.is_control() { '?' } else { c });
    }
}

/// The closest known name to `name`, if close enough to be a typo.
pub fn suggest<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    const MAX_LEN: usize = 64;
    let norm = |s: &str| -> Vec<char> {
        let mut out = Vec::new();
        for c in s.chars() {
            if out.len() > MAX_LEN {
                break;
            }
            if !matches!(c, '_' | '-') {
                out.push(c.to_ascii_lowercase());
            }
        }
        out
    };
    let a = norm(name);
    if a.is_empty() || a.len() > MAX_LEN {
        return None;
    }
    let mut best: Option<(usize, &str)> = None;
    for k in known {
        let b = norm(k);
        let limit = if a.len().min(b.len()) <= 4 { 1 } else { 2 };
        if b.len() > MAX_LEN || a.len().abs_diff(b.len()) > limit {
            continue;
        }
        let d = edit_distance(&a, &b);
        let better = match best {
            Some((bd, _)) => d < bd,
            None => true,
        };
        if d <= limit && better {
            best = Some((d, k));
        }
    }
    best.map(|(_, k)| k)
}

/// Optimal-string-alignment distance (Levenshtein plus swaps of neighbours).
pub(crate) fn edit_distance(a: &[char], b: &[char]) -> usize {
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut prev: Vec<usize> = vec![0; b.len() + 1];
    for (j, p) in prev.iter_mut().enumerate() {
        *p = j;
    }
    let mut cur: Vec<usize> = vec![0; b.len() + 1];
    for i in 1..a.len() + 1 {
        cur[0] = i;
        for j in 1..b.len() + 1 {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(before[j - 2] + 1);
            }
            cur[j] = d;
        }
        core::mem::swap(&mut before, &mut prev);
        core::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::sort_short;

    #[test]
    fn sort_short_sorts_as_slice_sort_does() {
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        for len in 0..12 {
            let mut v: Vec<u64> = (0..len)
                .map(|_| {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    rng % 5
                })
                .collect();
            let mut want = v.clone();
            want.sort();
            sort_short(&mut v);
            assert_eq!(v, want);
        }
    }

    use super::*;

    #[test]
    fn words_are_the_non_empty_pieces_between_spaces() {
        assert_eq!(words(" read  write\tx "), ["read", "write\tx"]);
        assert!(words("   ").is_empty());
        let list = [String::from("a"), String::from("b c")];
        assert_eq!(as_strs(&list), ["a", "b c"]);
    }

    #[test]
    fn push_u64_writes_every_digit() {
        for n in [0u64, 7, 10, 300, 1_000_000_007, u64::MAX] {
            let mut s = String::from("n=");
            push_u64(&mut s, n);
            assert_eq!(s, ["n=", &n.to_string()].concat());
        }
    }

    #[test]
    fn slicing_helpers_never_panic() {
        assert_eq!(sub("abcdef", 1, 3), "bc");
        assert_eq!(tail("abcdef", 4), "ef");
        assert_eq!(tail("abc", 3), "");
        // Off a char boundary or past the end: empty, not a panic.
        assert_eq!(sub("\u{e9}x", 1, 2), "");
        assert_eq!(sub("abc", 2, 9), "");
        assert_eq!(tail("\u{e9}", 1), "");
        assert_eq!(tail("abc", 4), "");
        assert_eq!(find_bytes(b"a::b::", b"::"), Some(1));
        assert_eq!(find_bytes(b"a:b", b"::"), None);
        assert_eq!(find_bytes(b"", b"::"), None);
        assert_eq!(find_bytes(b"ab", b""), Some(0));
        for (hay, needle) in [
            ("x..y", ".."),
            ("..", ".."),
            ("a.b", ".."),
            ("caf\u{e9}\u{e9}", "\u{e9}"),
        ] {
            assert_eq!(
                find_bytes(hay.as_bytes(), needle.as_bytes()),
                hay.find(needle)
            );
        }
    }

    #[test]
    fn edit_distance_counts_swaps_as_one() {
        let d = |a: &str, b: &str| {
            edit_distance(
                &a.chars().collect::<Vec<_>>(),
                &b.chars().collect::<Vec<_>>(),
            )
        };
        assert_eq!(d("secert", "secret"), 1);
        assert_eq!(d("", "abc"), 3);
        assert_eq!(d("kitten", "sitting"), 3);
        assert_eq!(d("same", "same"), 0);
    }
}
