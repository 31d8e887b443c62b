//! The QBank API retry decisions: after each answer to an API request, whether to hand it back,
//! drop the token and send again, wait and send again, or give up.
//!
//! The edge drives it like the token cache: it sends a request with the cache's token, feeds the
//! answer's status (and its `Retry-After`) to [`ApiRetry::answer`] with the time it arrived, and
//! does what it is told. Time is an argument; nothing here reads a clock or does I/O.
//!
//! ```
//! use qbank_connect::providers::qbank::api_retry::{ApiRetry, Next, RetryRules};
//!
//! let now = 1_700_000_000_000;
//! let mut retry = ApiRetry::new(RetryRules::BALANCE);
//! // A 401: drop the token this request carried, get a new one, send again (once).
//! assert_eq!(retry.answer(401, None, now), Next::Refresh);
//! // A 429 asking for 2 seconds: wait them, send again.
//! assert_eq!(retry.answer(429, Some("2"), now), Next::Wait(2_000));
//! assert_eq!(retry.answer(200, None, now + 2_100), Next::Done);
//! ```
//!
//! Rules, in short:
//! - A 2xx is [`Next::Done`]. Anything not retried is [`Next::GiveUp`]: the edge turns it into
//!   the caller's error (or, for the authorized `fetch`, hands the `Response` back as it is).
//! - A 401 gets one new token and one more request, never a second ([`RetryRules::refresh_on_401`]).
//!   The token it drops is the one that request carried: the cache keeps a newer one (a late 401).
//! - A 429 or 503 is retried at most [`RetryRules::max_retries`] times, after the server's
//!   `Retry-After` (delta-seconds or an HTTP-date, read at `now`) or else [`RETRY_BASE_MS`]
//!   doubled per retry. A wait longer than [`MAX_RETRY_WAIT_MS`] is not waited for: give up, and
//!   the error carries the server's `Retry-After` for the caller to decide.
//! - A request body that cannot be sent twice, or a method that is not idempotent, is never sent
//!   again ([`RetryRules::fetch`]). A transport failure is not retried at all: a request that may
//!   have reached the bank is not replayed blindly (the edge hands the failure back).
//!
//! So one call makes at most `2 + max_retries` requests: each answer that is not final spends the
//! one refresh or one of the retries.

use crate::util::http_date::parse_retry_after;
use crate::util::Millis;

/// 429 and 503 answers to `getBalance`'s GET are retried at most this many times.
pub const MAX_RETRIES: u32 = 2;
/// A `Retry-After` longer than this is not waited for: the error carries it instead.
pub const MAX_RETRY_WAIT_MS: u64 = 10_000;
/// The first retry delay when the server gave no `Retry-After`; doubled for each retry after it.
pub const RETRY_BASE_MS: u64 = 250;

/// Which answers one kind of request may be retried after.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryRules {
    /// Whether a 401 gets one new token and one more request.
    pub refresh_on_401: bool,
    /// How many 429 and 503 answers are waited out and retried.
    pub max_retries: u32,
}

impl RetryRules {
    /// `getBalance`'s GET: one refresh after a 401, [`MAX_RETRIES`] retries after a 429 or 503.
    pub const BALANCE: RetryRules = RetryRules {
        refresh_on_401: true,
        max_retries: MAX_RETRIES,
    };

    /// The authorized `fetch(path, init)`: one refresh after a 401 when the request can be sent
    /// again unchanged (an idempotent `method`, upper case, and a body that can be read twice:
    /// not a stream); never a retry after a 429 or 503 (the caller gets that `Response`).
    pub fn fetch(method: &str, replayable_body: bool) -> RetryRules {
        RetryRules {
            refresh_on_401: is_idempotent(method) && replayable_body,
            max_retries: 0,
        }
    }
}

/// Whether sending a request with this (upper-case) method twice is the same as sending it once
/// (RFC 9110 §9.2.2).
pub fn is_idempotent(method: &str) -> bool {
    matches!(method, "GET" | "HEAD" | "OPTIONS" | "PUT" | "DELETE")
}

/// What the edge does with an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// A success (2xx): hand it back.
    Done,
    /// Drop the token this request carried (only if it is still the cached one), get a token,
    /// and send the request again.
    Refresh,
    /// Wait this many milliseconds (never more than [`MAX_RETRY_WAIT_MS`]), get a token, and
    /// send the request again.
    Wait(u64),
    /// Final, and not a success: the answer becomes the caller's error.
    GiveUp,
}

/// One API call's retry state: the refresh and the retries it has spent. See the
/// [module docs](self).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiRetry {
    rules: RetryRules,
    refreshed: bool,
    retries: u32,
}

impl ApiRetry {
    /// A call that has sent nothing yet.
    pub const fn new(rules: RetryRules) -> Self {
        ApiRetry {
            rules,
            refreshed: false,
            retries: 0,
        }
    }

    /// What to do with the answer to the request just sent: its `status`, its `Retry-After`
    /// header if any, and `now`, when it arrived. The header is only read for a 429 or 503 that
    /// still has a retry left.
    pub fn answer(&mut self, status: u16, retry_after: Option<&str>, now: Millis) -> Next {
        match status {
            200..=299 => Next::Done,
            401 if self.rules.refresh_on_401 && !self.refreshed => {
                self.refreshed = true;
                Next::Refresh
            }
            429 | 503 if self.retries < self.rules.max_retries => {
                let wait = retry_after
                    .and_then(|v| parse_retry_after(v, now))
                    .unwrap_or_else(|| backoff_ms(self.retries));
                if wait > MAX_RETRY_WAIT_MS {
                    return Next::GiveUp;
                }
                self.retries += 1;
                Next::Wait(wait)
            }
            _ => Next::GiveUp,
        }
    }
}

/// The wait before retry number `retries + 1` when the server named none: [`RETRY_BASE_MS`]
/// doubled per retry already made, saturating (then over the cap: not waited for).
fn backoff_ms(retries: u32) -> u64 {
    1u64.checked_shl(retries)
        .map_or(u64::MAX, |f| RETRY_BASE_MS.saturating_mul(f))
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests;
