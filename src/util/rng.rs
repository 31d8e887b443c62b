//! A small deterministic random number generator and a bias-free way to scale its output.

/// Maps a uniform 64-bit `random` onto `0..=max`, without division bias worth speaking of.
pub(crate) fn scale(random: u64, max: u64) -> u64 {
    let span = u128::from(max) + 1;
    ((u128::from(random) * span) >> 64) as u64
}

/// A tiny deterministic random number generator (SplitMix64): jitter needs spread, not secrecy,
/// and a seed makes every test run the same.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator starting from `seed` (any value, zero included).
    pub fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    #[test]
    fn splitmix_is_deterministic_per_seed() {
        let a: Vec<u64> = {
            let mut r = SplitMix64::new(42);
            (0..4).map(|_| r.next_u64()).collect()
        };
        let mut r = SplitMix64::new(42);
        assert_eq!(a, (0..4).map(|_| r.next_u64()).collect::<Vec<_>>());
        assert_ne!(a, {
            let mut r = SplitMix64::new(43);
            (0..4).map(|_| r.next_u64()).collect::<Vec<_>>()
        });
    }
}
