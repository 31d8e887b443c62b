//! When to refresh a token and how long to back off: pure functions over integers.
//!
//! A token's life is cut into three moments, all measured from the moment its request was
//! *sent* (the server started the clock no earlier than that):
//!
//! ```text
//! sent_at ──────────────── refresh_at ────── wait_at ──── expires_at
//!          use it               use it and         wait for a
//!                               refresh in the     new token
//!                               background
//! ```
//!
//! With lifetime `L = expires_at − sent_at`:
//! - `refresh_at = expires_at − min(refresh_ahead, L/4) − jitter` (jitter: a few per cent of that
//!   window, so a fleet of isolates does not refresh in the same millisecond);
//! - `wait_at = expires_at − min(expiry_margin, L/10)`.
//!
//! For a 300 s token that is 225 s and 270 s (QPay: "refresh when `expires_in` − 30 s have
//! elapsed"); for a 3600 s token, 55 min and 59.5 min. Scaling by `L` keeps very short-lived
//! tokens (tests, odd providers) useful instead of refreshing them on every call.
//!
//! Everything here is integer arithmetic and saturates, so no input can overflow or panic.

use crate::util::rng::scale;
use crate::util::Millis;

/// How backoff delays are spread out (see the AWS Architecture Blog, "Exponential Backoff And
/// Jitter").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum BackoffJitter {
    /// No jitter: `min(cap, base · 2^(n−1))` exactly. Predictable; mostly for tests.
    None,
    /// Uniform in `[0, min(cap, base · 2^(n−1))]`.
    Full,
    /// Uniform in `[base, min(cap, 3 · previous)]`: never sooner than `base`, yet spread out.
    #[default]
    Decorrelated,
}

/// The knobs of token refresh and retry. All durations in milliseconds.
///
/// ```
/// use qbank_connect::oauth::policy::RefreshPolicy;
///
/// let policy = RefreshPolicy::default();
/// // QPay: a 300 s token, sent at t = 0, no jitter.
/// let s = policy.schedule(0, policy.expires_at(0, Some(300_000), None), 0);
/// assert_eq!((s.refresh_at, s.wait_at, s.expires_at), (225_000, 270_000, 300_000));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RefreshPolicy {
    /// Start a background refresh this long before expiry, at most a quarter of the lifetime.
    /// Default 300 s.
    pub refresh_ahead_ms: u64,
    /// Stop handing out a token this long before expiry (callers wait for a new one instead),
    /// at most a tenth of the lifetime. Covers transit time and clock skew. Default 30 s.
    pub expiry_margin_ms: u64,
    /// The lifetime assumed when the server states neither `expires_in` nor a JWT `exp`.
    /// Default 3600 s.
    pub default_lifetime_ms: u64,
    /// How far (in ‰ of the refresh-ahead window) refreshes are spread earlier at random.
    /// Values above 1000 count as 1000. Default 50 (5 %).
    pub refresh_jitter_permille: u16,
    /// The first backoff delay after a failed token request. Default 1 s.
    pub backoff_base_ms: u64,
    /// The longest backoff delay we choose ourselves (a server's `Retry-After` may be longer).
    /// Default 60 s.
    pub backoff_cap_ms: u64,
    /// How backoff delays are randomised. Default [`BackoffJitter::Decorrelated`].
    pub backoff_jitter: BackoffJitter,
    /// A token request whose completion has not arrived this long after it was sent is given up:
    /// the next caller starts a new one, and the late completion is ignored. It only guards
    /// against a lost completion; the edge's own request timeout should be shorter.
    /// Default 120 s.
    pub flight_timeout_ms: u64,
}

impl Default for RefreshPolicy {
    fn default() -> Self {
        RefreshPolicy {
            refresh_ahead_ms: 300_000,
            expiry_margin_ms: 30_000,
            default_lifetime_ms: 3_600_000,
            refresh_jitter_permille: 50,
            backoff_base_ms: 1_000,
            backoff_cap_ms: 60_000,
            backoff_jitter: BackoffJitter::Decorrelated,
            flight_timeout_ms: 120_000,
        }
    }
}

/// The three moments of one token's life, in epoch milliseconds;
/// `refresh_at ≤ wait_at ≤ expires_at` always holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// From here on, callers still get the token, and one background refresh starts.
    pub refresh_at: Millis,
    /// From here on, callers wait for a new token.
    pub wait_at: Millis,
    /// The token's end of life.
    pub expires_at: Millis,
}

impl RefreshPolicy {
    /// When a token expires: `sent_at + expires_in` if the server said `expires_in`, else the
    /// JWT `exp` claim if there is one, else `sent_at + default_lifetime`.
    ///
    /// `sent_at` is when the token request was sent, not when the answer arrived: the server's
    /// clock started somewhere in between, so this errs on the safe side.
    pub fn expires_at(
        &self,
        sent_at: Millis,
        expires_in_ms: Option<u64>,
        jwt_exp_ms: Option<Millis>,
    ) -> Millis {
        match (expires_in_ms, jwt_exp_ms) {
            (Some(expires_in), _) => sent_at.saturating_add(expires_in),
            (None, Some(exp)) => exp,
            (None, None) => sent_at.saturating_add(self.default_lifetime_ms),
        }
    }

    /// The refresh schedule of a token sent at `sent_at` that expires at `expires_at`.
    ///
    /// `random` is any 64-bit random value; it only moves `refresh_at` earlier, by at most
    /// `refresh_jitter_permille` ‰ of the refresh-ahead window. An `expires_at` before `sent_at`
    /// (a JWT `exp` in the past) gives a lifetime of zero: every moment is `expires_at`.
    pub fn schedule(&self, sent_at: Millis, expires_at: Millis, random: u64) -> Schedule {
        let lifetime = expires_at.saturating_sub(sent_at);
        let margin = self.expiry_margin_ms.min(lifetime / 10);
        let wait_at = expires_at.saturating_sub(margin);
        let window = self.refresh_ahead_ms.min(lifetime / 4);
        // At most `window` (permille ≤ 1000), so `max_jitter + 1` cannot overflow.
        let max_jitter = permille_of(window, self.refresh_jitter_permille.min(1000));
        let jitter = scale(random, max_jitter);
        let refresh_at = expires_at
            .saturating_sub(window)
            .saturating_sub(jitter)
            .min(wait_at);
        Schedule {
            refresh_at,
            wait_at,
            expires_at,
        }
    }

    /// How long to wait before the next token request after `consecutive_failures` failures in
    /// a row (1 for the first), never less than the server's `retry_after_ms`.
    ///
    /// `previous_ms` is the delay chosen after the previous failure (0 if none; only
    /// [`BackoffJitter::Decorrelated`] uses it); `random` is any 64-bit random value.
    pub fn backoff_ms(
        &self,
        consecutive_failures: u32,
        previous_ms: u64,
        random: u64,
        retry_after_ms: Option<u64>,
    ) -> u64 {
        let base = self.backoff_base_ms;
        let cap = self.backoff_cap_ms;
        let exponent = consecutive_failures.saturating_sub(1);
        let ceiling = if exponent >= 64 {
            cap
        } else {
            base.saturating_mul(1u64 << exponent).min(cap)
        };
        let ours = match self.backoff_jitter {
            BackoffJitter::None => ceiling,
            BackoffJitter::Full => scale(random, ceiling),
            BackoffJitter::Decorrelated => {
                let floor = base.min(cap);
                let top = previous_ms.max(base).saturating_mul(3).min(cap);
                floor.saturating_add(scale(random, top.saturating_sub(floor)))
            }
        };
        ours.max(retry_after_ms.unwrap_or(0))
    }
}

/// `value × permille / 1000`, rounded down, for `permille ≤ 1000`, in u64: `value = 1000·q + r`
/// gives `q·permille + r·permille / 1000`, each term in range (`q·permille ≤ value`). (A u128
/// division would link compiler-builtins' 128-bit divide into the wasm.)
fn permille_of(value: u64, permille: u16) -> u64 {
    let permille = u64::from(permille);
    value / 1000 * permille + value % 1000 * permille / 1000
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use crate::util::rng::SplitMix64;
    use proptest::prelude::*;

    const S: u64 = 1_000;
    const MIN: u64 = 60 * S;

    fn no_jitter() -> RefreshPolicy {
        RefreshPolicy {
            refresh_jitter_permille: 0,
            ..RefreshPolicy::default()
        }
    }

    #[test]
    fn defaults_are_300s_ahead_30s_margin_one_hour_lifetime() {
        let p = RefreshPolicy::default();
        assert_eq!(p.refresh_ahead_ms, 300 * S);
        assert_eq!(p.expiry_margin_ms, 30 * S);
        assert_eq!(p.default_lifetime_ms, 3600 * S);
        assert_eq!(p.backoff_base_ms, S);
        assert_eq!(p.backoff_cap_ms, 60 * S);
    }

    #[test]
    fn lifetime_is_measured_from_the_moment_the_request_was_sent() {
        let p = RefreshPolicy::default();
        let sent_at = 1_700_000_000_000;
        assert_eq!(
            p.expires_at(sent_at, Some(300 * S), None),
            sent_at + 300 * S
        );
    }

    #[test]
    fn expires_in_wins_over_the_jwt_exp_which_wins_over_the_default() {
        let p = RefreshPolicy::default();
        assert_eq!(p.expires_at(10, Some(5), Some(99)), 15);
        assert_eq!(p.expires_at(10, None, Some(99)), 99);
        assert_eq!(p.expires_at(10, None, None), 10 + 3600 * S);
    }

    #[test]
    fn qpay_300s_token_refreshes_at_225s_and_waits_from_270s() {
        let s = no_jitter().schedule(0, 300 * S, 0);
        assert_eq!(s.refresh_at, 225 * S);
        assert_eq!(s.wait_at, 270 * S);
        assert_eq!(s.expires_at, 300 * S);
    }

    #[test]
    fn one_hour_token_refreshes_at_55min_and_waits_from_59_5min() {
        let s = no_jitter().schedule(0, 60 * MIN, 0);
        assert_eq!(s.refresh_at, 55 * MIN);
        assert_eq!(s.wait_at, 59 * MIN + 30 * S);
    }

    #[test]
    fn refresh_jitter_is_at_most_5_percent_of_the_window_and_only_earlier() {
        let p = RefreshPolicy::default();
        let mut rng = SplitMix64::new(7);
        let mut seen_max = 0;
        for _ in 0..1_000 {
            let s = p.schedule(0, 60 * MIN, rng.next_u64());
            let jitter = 55 * MIN - s.refresh_at;
            assert!(jitter <= 15 * S, "jitter {jitter} above 5 % of 300 s");
            seen_max = seen_max.max(jitter);
        }
        assert!(
            seen_max > 10 * S,
            "jitter should use its range, max was {seen_max}"
        );
        assert_eq!(
            p.schedule(0, 60 * MIN, u64::MAX).refresh_at,
            55 * MIN - 15 * S
        );
    }

    #[test]
    fn exp_in_the_past_gives_zero_lifetime() {
        let s = RefreshPolicy::default().schedule(1_000, 400, 12345);
        assert_eq!((s.refresh_at, s.wait_at, s.expires_at), (400, 400, 400));
    }

    #[test]
    fn refresh_ahead_smaller_than_the_margin_still_refreshes_before_waiting() {
        let p = RefreshPolicy {
            refresh_ahead_ms: 5 * S,
            ..no_jitter()
        };
        let s = p.schedule(0, 60 * MIN, 0);
        assert_eq!(s.wait_at, 59 * MIN + 30 * S);
        assert_eq!(s.refresh_at, s.wait_at);
    }

    #[test]
    fn backoff_without_jitter_doubles_from_base_up_to_the_cap() {
        let p = RefreshPolicy {
            backoff_jitter: BackoffJitter::None,
            ..RefreshPolicy::default()
        };
        let delays: Vec<u64> = (1..=9).map(|n| p.backoff_ms(n, 0, 0, None)).collect();
        assert_eq!(
            delays,
            [1, 2, 4, 8, 16, 32, 60, 60, 60].map(|s| s * S).to_vec()
        );
        assert_eq!(p.backoff_ms(u32::MAX, 0, 0, None), 60 * S);
    }

    #[test]
    fn full_jitter_stays_below_the_doubling_ceiling_and_uses_it() {
        let p = RefreshPolicy {
            backoff_jitter: BackoffJitter::Full,
            ..RefreshPolicy::default()
        };
        let mut rng = SplitMix64::new(1);
        for n in 1..=8u32 {
            let ceiling = (S << (n - 1)).min(60 * S);
            let draws: Vec<u64> = (0..200)
                .map(|_| p.backoff_ms(n, 0, rng.next_u64(), None))
                .collect();
            assert!(draws.iter().all(|&d| d <= ceiling));
            assert!(draws.iter().any(|&d| d > ceiling / 2));
        }
    }

    #[test]
    fn decorrelated_jitter_is_between_base_and_three_times_the_previous_delay() {
        let p = RefreshPolicy::default();
        let mut rng = SplitMix64::new(2);
        let mut previous = 0;
        for n in 1..=50u32 {
            let d = p.backoff_ms(n, previous, rng.next_u64(), None);
            assert!(d >= S, "{d} below base");
            assert!(
                d <= (previous.max(S) * 3).min(60 * S),
                "{d} above 3x {previous}"
            );
            previous = d;
        }
    }

    #[test]
    fn backoff_is_never_earlier_than_retry_after() {
        for jitter in [
            BackoffJitter::None,
            BackoffJitter::Full,
            BackoffJitter::Decorrelated,
        ] {
            let p = RefreshPolicy {
                backoff_jitter: jitter,
                ..RefreshPolicy::default()
            };
            assert_eq!(p.backoff_ms(1, 0, u64::MAX, Some(120 * S)), 120 * S);
            assert!(p.backoff_ms(1, 0, u64::MAX, Some(1)) >= 1);
        }
    }

    fn any_policy() -> impl Strategy<Value = RefreshPolicy> {
        (
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            any::<u16>(),
            any::<u64>(),
            any::<u64>(),
            0..3u8,
        )
            .prop_map(
                |(ahead, margin, default, permille, base, cap, j)| RefreshPolicy {
                    refresh_ahead_ms: ahead,
                    expiry_margin_ms: margin,
                    default_lifetime_ms: default,
                    refresh_jitter_permille: permille,
                    backoff_base_ms: base,
                    backoff_cap_ms: cap,
                    backoff_jitter: match j {
                        0 => BackoffJitter::None,
                        1 => BackoffJitter::Full,
                        _ => BackoffJitter::Decorrelated,
                    },
                    flight_timeout_ms: 0,
                },
            )
    }

    #[test]
    fn permille_of_is_the_exact_product_rounded_down() {
        for (value, permille, want) in [
            (u64::MAX, 1000, u64::MAX),
            (u64::MAX, 999, 18_428_297_329_635_842_063),
            (u64::MAX, 0, 0),
            (999, 1000, 999),
            (999, 1, 0),
            (1000, 1, 1),
            (1999, 999, 1997),
        ] {
            assert_eq!(
                permille_of(value, permille),
                want,
                "{value} x {permille} / 1000"
            );
        }
    }

    proptest! {
        #[test]
        fn permille_of_equals_the_u128_product(value in any::<u64>(), permille in 0u16..=1000) {
            let want = (u128::from(value) * u128::from(permille) / 1000) as u64;
            prop_assert_eq!(permille_of(value, permille), want);
        }

        #[test]
        fn refresh_at_le_wait_at_le_expires_at_for_all_inputs(
            p in any_policy(),
            sent_at in any::<u64>(),
            expires_in in proptest::option::of(any::<u64>()),
            exp in proptest::option::of(any::<u64>()),
            random in any::<u64>(),
        ) {
            let expires_at = p.expires_at(sent_at, expires_in, exp);
            let s = p.schedule(sent_at, expires_at, random);
            prop_assert!(s.refresh_at <= s.wait_at);
            prop_assert!(s.wait_at <= s.expires_at);
            prop_assert_eq!(s.expires_at, expires_at);
            // Never before the request was sent, unless the token was born expired.
            prop_assert!(s.refresh_at >= sent_at.min(expires_at));
        }

        #[test]
        fn qpay_300s_token_keeps_at_least_30s_margin(
            sent_at in 0..u64::MAX - 300_000,
            random in any::<u64>(),
        ) {
            let p = RefreshPolicy::default();
            let s = p.schedule(sent_at, p.expires_at(sent_at, Some(300_000), None), random);
            prop_assert!(s.expires_at - s.wait_at >= 30_000);
            prop_assert!(s.expires_at - s.refresh_at >= 75_000);
        }

        #[test]
        fn schedule_is_monotonic_in_lifetime(
            p in any_policy(),
            sent_at in any::<u64>(),
            l1 in any::<u64>(),
            l2 in any::<u64>(),
            random in any::<u64>(),
        ) {
            let (short, long) = (l1.min(l2), l1.max(l2));
            let flat = RefreshPolicy { refresh_jitter_permille: 0, ..p };
            let a = flat.schedule(sent_at, sent_at.saturating_add(short), 0);
            let b = flat.schedule(sent_at, sent_at.saturating_add(long), 0);
            prop_assert!(a.refresh_at <= b.refresh_at);
            prop_assert!(a.wait_at <= b.wait_at);
            prop_assert!(a.expires_at <= b.expires_at);
            // With jitter, the head start before expiry still only grows with the lifetime.
            let a = p.schedule(0, short, random);
            let b = p.schedule(0, long, random);
            prop_assert!(a.expires_at - a.refresh_at <= b.expires_at - b.refresh_at);
            prop_assert!(a.expires_at - a.wait_at <= b.expires_at - b.wait_at);
        }

        #[test]
        fn backoff_never_overflows_and_honours_retry_after(
            p in any_policy(),
            n in any::<u32>(),
            previous in any::<u64>(),
            random in any::<u64>(),
            retry_after in proptest::option::of(any::<u64>()),
        ) {
            let d = p.backoff_ms(n, previous, random, retry_after);
            prop_assert!(d >= retry_after.unwrap_or(0));
            if retry_after.is_none() {
                prop_assert!(d <= p.backoff_cap_ms);
            }
        }
    }
}
