//! The token state machine: one cached token, at most one token request in flight.
//!
//! The edge drives it like a sans-IO protocol: each caller asks [`TokenCache::poll`] what to do,
//! the edge sends the one token request it is told to start, and feeds the answer back with
//! [`TokenCache::complete`], which says what the callers waiting on that request get. Time is
//! always an argument; nothing here reads a clock or does I/O.
//!
//! ```
//! use qbank_connect::oauth::cache::{Poll, TokenCache};
//! use qbank_connect::oauth::policy::RefreshPolicy;
//! use qbank_connect::oauth::{Secret, TokenResponse};
//!
//! let mut cache = TokenCache::new(RefreshPolicy::default(), 42);
//! let now = 1_700_000_000_000;
//! let Poll::Fetch(flight) = cache.poll(now, false) else { unreachable!() };
//! // Everyone else waits for that one request.
//! assert_eq!(cache.poll(now, false), Poll::Wait(flight.id));
//! // … the edge sends the token request, then:
//! let answer = TokenResponse {
//!     access_token: Secret::new("tok-1"),
//!     scope: None,
//!     expires_in_ms: Some(300_000),
//!     jwt_exp_ms: None,
//! };
//! let token = cache.complete(flight.id, now + 120, Ok(answer)).unwrap();
//! assert_eq!(token.expires_at, now + 300_000);
//! assert_eq!(cache.poll(now + 1_000, false), Poll::Ready(token));
//! ```
//!
//! Rules, in short:
//! - Single flight: a request is started by at most one [`Poll::Fetch`] or
//!   [`Poll::ReadyAndRefresh`] until it completes (or is given up after
//!   [`RefreshPolicy::flight_timeout_ms`]).
//! - Failures are handed to the waiters of that request and not cached, except that after two
//!   failures in a row (or a server's `Retry-After`) callers without a valid token fail fast
//!   until the backoff time.
//! - A token already inside its expiry margin when it arrives goes to the waiters of its request
//!   and counts as a failure for the backoff (code `invalid_response`), so the endpoint is not
//!   asked again on every poll; while it has not expired it is served in that backoff, like a
//!   valid token after failures. Only a token whose margin is still ahead resets the backoff.
//! - Static stability: while the current token is still valid, a failed refresh never fails a
//!   caller; the token keeps being served and the refresh is retried after a backoff.
//! - `invalid_client` is never retried in the background; only a caller's poll tries again.
//! - Clock jumps: when `now` goes backwards, every stored time moves back by the same amount, so
//!   a token keeps exactly the life it had left (an expired token stays expired); when `now`
//!   jumps forward past expiry, the token is expired. A `now` passed to [`TokenCache::status`] or
//!   [`TokenCache::next_wakeup`] that is earlier than one seen before counts as such a jump too.
//!   Only what is seen can be undone: a jump back seen first by a request's answer cannot be told
//!   apart from time spent in flight, so that token counts from the answer, up to the request's
//!   duration later than its true send (the expiry margin is there for such transit time).

use super::policy::{RefreshPolicy, Schedule};
use super::{Error, ErrorCode, Secret, TokenResponse};
use crate::prelude::*;
use crate::util::rng::SplitMix64;
use crate::util::Millis;

/// Names one token request, so its answer can be matched to the callers waiting for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlightId(u64);

impl FlightId {
    /// Rebuilds an id from [`FlightId::as_u64`] (for an edge that keeps ids in JavaScript).
    pub const fn from_u64(raw: u64) -> Self {
        FlightId(raw)
    }

    /// The id as a number.
    pub const fn as_u64(self) -> u64 {
        self.0
    }
}

/// A token request the edge must start now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flight {
    /// Pass this back to [`TokenCache::complete`].
    pub id: FlightId,
    /// When the request was started (the `now` of the poll): the token's lifetime counts from here.
    pub sent_at: Millis,
}

/// A token ready to use. `Debug` never shows the token itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CachedToken {
    /// The bearer token.
    pub access_token: Secret,
    /// The scope the server granted, if it said.
    pub scope: Option<Vec<String>>,
    /// When the token expires, in epoch milliseconds (measured from when its request was sent).
    pub expires_at: Millis,
    /// When the answer carrying the token arrived, in epoch milliseconds.
    pub acquired_at: Millis,
}

/// What one caller should do now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Poll {
    /// Use this token.
    Ready(CachedToken),
    /// Use this token, and start the background token request for this flight (its result only
    /// refreshes the cache; no caller waits for it).
    ReadyAndRefresh(CachedToken, Flight),
    /// No usable token: start the token request for this flight, and wait for its completion.
    Fetch(Flight),
    /// A token request is in flight: wait for its completion.
    Wait(FlightId),
    /// Backing off after repeated failures and no valid token left: fail at once.
    /// `retry_after_ms` says how long until the next attempt is allowed.
    Fail(Error),
}

/// The coarse state of the cache, for diagnostics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheState {
    /// No token and no request in flight.
    Empty,
    /// A token that has not expired yet, no request in flight.
    Valid,
    /// A token request is in flight.
    Refreshing,
    /// The token has expired and no request is in flight.
    Expired,
}

/// A snapshot of the cache, for diagnostics and tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status {
    /// The coarse state.
    pub state: CacheState,
    /// When the cached token expires, if there is one.
    pub expires_at: Option<Millis>,
    /// How many token requests were started (every [`Poll::Fetch`] and [`Poll::ReadyAndRefresh`]).
    pub token_requests: u64,
    /// Failed token requests since the last success (a token already inside its expiry margin
    /// when it arrived counts as a failure).
    pub consecutive_failures: u32,
    /// When the next token request is allowed after a failure, if backing off.
    pub retry_at: Option<Millis>,
}

#[derive(Clone, Debug)]
struct Current {
    token: CachedToken,
    refresh_at: Millis,
    wait_at: Millis,
}

impl Current {
    /// `token` with the refresh and wait points of its `schedule`.
    fn new(token: &CachedToken, schedule: &Schedule) -> Self {
        Current {
            token: token.clone(),
            refresh_at: schedule.refresh_at,
            wait_at: schedule.wait_at,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct InFlight {
    id: FlightId,
    sent_at: Millis,
}

#[derive(Clone, Debug)]
struct Backoff {
    failures: u32,
    /// No token request before this (background refreshes always; callers when `fail_fast`).
    retry_at: Millis,
    last_delay_ms: u64,
    /// Callers without a valid token fail at once until `retry_at`.
    fail_fast: bool,
    error: Error,
}

/// The token cache: one token, at most one request in flight, refresh ahead of expiry,
/// backoff after failures. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct TokenCache {
    policy: RefreshPolicy,
    rng: SplitMix64,
    current: Option<Current>,
    flight: Option<InFlight>,
    /// The last flight given up after `flight_timeout_ms`, so its late answer can still serve
    /// its own waiters.
    abandoned: Option<InFlight>,
    backoff: Option<Backoff>,
    /// After `invalid_client`: no background refreshes until a request succeeds.
    halted: bool,
    next_id: u64,
    token_requests: u64,
    /// The latest `now` seen, to notice the clock going backwards.
    last_now: Millis,
}

impl TokenCache {
    /// An empty cache. `seed` drives the jitter (use a random value in production, a constant in
    /// tests).
    pub fn new(policy: RefreshPolicy, seed: u64) -> Self {
        TokenCache {
            policy,
            rng: SplitMix64::new(seed),
            current: None,
            flight: None,
            abandoned: None,
            backoff: None,
            halted: false,
            next_id: 1,
            token_requests: 0,
            last_now: 0,
        }
    }

    /// The policy this cache was built with.
    pub fn policy(&self) -> &RefreshPolicy {
        &self.policy
    }

    /// What one caller should do now. `force_refresh` refuses the cached token: a new request
    /// starts unless one is already in flight (then [`Poll::Wait`]).
    pub fn poll(&mut self, now: Millis, force_refresh: bool) -> Poll {
        self.observe(now);
        self.give_up_lost_flight(now);
        let usable = self.current.as_ref().filter(|c| now < c.wait_at);
        if let Some(flight) = self.flight {
            return match usable {
                Some(c) if !force_refresh => Poll::Ready(c.token.clone()),
                _ => Poll::Wait(flight.id),
            };
        }
        if !force_refresh {
            if let Some(c) = usable {
                let token = c.token.clone();
                let due = now >= c.refresh_at;
                let allowed =
                    !self.halted && self.backoff.as_ref().map_or(true, |b| now >= b.retry_at);
                if due && allowed {
                    return Poll::ReadyAndRefresh(token, self.start_flight(now));
                }
                return Poll::Ready(token);
            }
        }
        if let Some(b) = self
            .backoff
            .as_ref()
            .filter(|b| b.fail_fast && now < b.retry_at)
        {
            // Static stability: a token past its wait point but not expired beats an error.
            if let Some(c) = self.current.as_ref().filter(|c| now < c.token.expires_at) {
                if !force_refresh {
                    return Poll::Ready(c.token.clone());
                }
            }
            let mut error = b.error.clone();
            error.retry_after_ms = Some(b.retry_at.saturating_sub(now));
            return Poll::Fail(error);
        }
        Poll::Fetch(self.start_flight(now))
    }

    /// Feeds back the result of the request started for `flight`, received at `now`.
    ///
    /// Returns what the callers waiting on that flight get: the new token (cached unless it is
    /// already at its wait point: then it is "use once", handed over, kept only to be served in
    /// the backoff it starts, see the [module docs](self)), or, when the request failed, the
    /// still-valid current token (static stability), or the error.
    ///
    /// A completion for an unknown or already completed flight changes nothing; its waiters get
    /// the still-valid current token, the answer itself if the flight was given up after
    /// [`RefreshPolicy::flight_timeout_ms`], or an error.
    pub fn complete(
        &mut self,
        flight: FlightId,
        now: Millis,
        result: Result<TokenResponse, Error>,
    ) -> Result<CachedToken, Error> {
        self.observe(now);
        let Some(sent) = self.flight.filter(|f| f.id == flight) else {
            return self.complete_stale(flight, now, result);
        };
        self.flight = None;
        match result {
            Ok(answer) => {
                let token = self.token_from(answer, sent.sent_at, now);
                let schedule =
                    self.policy
                        .schedule(sent.sent_at, token.expires_at, self.rng.next_u64());
                self.halted = false;
                let current = Current::new(&token, &schedule);
                if now < schedule.wait_at {
                    self.backoff = None;
                    self.current = Some(current);
                } else {
                    // Already inside its expiry margin on arrival: asking again at once would
                    // likely get the same, on every poll. Back off as after a failure; kept only
                    // for static stability (served in the backoff while valid, as after failures).
                    let keep_old = self
                        .current
                        .as_ref()
                        .is_some_and(|c| now < c.wait_at || token.expires_at <= c.token.expires_at);
                    if now < token.expires_at && !keep_old {
                        self.current = Some(current);
                    }
                    self.back_off(now, expiring_on_arrival());
                }
                Ok(token)
            }
            Err(error) => self.record_failure(now, error),
        }
    }

    /// Completes `flight` with a token obtained elsewhere instead of by its request (another
    /// instance's, read from a shared store by [`super::fleet`]). `issued_at` is when that token's
    /// request was sent: the token gets the same schedule as if this cache had fetched it (with its
    /// own jitter), clears the backoff, and is cached if it is still before its wait point at `now`.
    ///
    /// Returns whether it was taken: `false`, changing nothing, when `flight` is not the request
    /// in flight or the token is already at its wait point.
    pub fn adopt(
        &mut self,
        flight: FlightId,
        now: Millis,
        token: &CachedToken,
        issued_at: Millis,
    ) -> bool {
        self.observe(now);
        if !matches!(self.flight, Some(f) if f.id == flight) {
            return false;
        }
        let schedule = self
            .policy
            .schedule(issued_at, token.expires_at, self.rng.next_u64());
        if now >= schedule.wait_at {
            return false;
        }
        self.flight = None;
        self.backoff = None;
        self.halted = false;
        self.current = Some(Current::new(token, &schedule));
        true
    }

    /// Ends the request started for `flight` without sending it, and moves the current token's
    /// next background refresh to `now + delay_ms` (no later than its wait point): for a fleet
    /// whose coordinator had no newer token (it is refreshing, or backing off), so that this
    /// instance keeps its token and asks again later instead of asking the token endpoint
    /// itself. Returns the token for the flight's waiters; `None` (nothing changes) when
    /// `flight` is not the one in flight or no token is usable (before its wait point).
    pub fn postpone(
        &mut self,
        flight: FlightId,
        now: Millis,
        delay_ms: u64,
    ) -> Option<CachedToken> {
        self.observe(now);
        if !matches!(self.flight, Some(f) if f.id == flight) {
            return None;
        }
        let current = self.current.as_mut().filter(|c| now < c.wait_at)?;
        current.refresh_at = now.saturating_add(delay_ms).min(current.wait_at);
        self.flight = None;
        Some(current.token.clone())
    }

    /// Drops the cached token if (and only if) it is `token`, or whatever is cached when `None`.
    /// A late 401 for an older token must not drop a newer one. Returns whether something was
    /// dropped.
    pub fn invalidate(&mut self, token: Option<&str>) -> bool {
        let matches = self
            .current
            .as_ref()
            .is_some_and(|c| token.map_or(true, |t| t == c.token.access_token.expose()));
        if matches {
            self.current = None;
        }
        matches
    }

    /// When the edge should wake a timer and poll, to start a background refresh: the refresh
    /// point, or the backoff retry time while a valid token remains. Never earlier than `now`.
    /// `None` when nothing is scheduled: no token, a request in flight, the token expires first,
    /// or after `invalid_client`.
    pub fn next_wakeup(&self, now: Millis) -> Option<Millis> {
        if self.flight.is_some() || self.halted {
            return None;
        }
        let (t, back) = self.view(now);
        let current = self.current.as_ref()?;
        let mut at = current.refresh_at;
        if let Some(b) = &self.backoff {
            at = at.max(b.retry_at);
        }
        if at >= current.token.expires_at || t >= current.token.expires_at {
            return None;
        }
        Some(at.max(t).saturating_sub(back))
    }

    /// Until when (exclusive) a plain [`poll`](Self::poll) (no `force_refresh`) keeps answering
    /// `Ready` with the current token and changing nothing, if no other call intervenes. An edge
    /// may answer callers itself until then (a JavaScript fast path), as long as it forgets that
    /// answer on every other call (`complete`, `invalidate`, a forced or failing poll) and on a
    /// clock that went backwards. `None` when the next poll must come here.
    pub fn serve_until(&self, now: Millis) -> Option<Millis> {
        if now < self.last_now {
            return None;
        }
        let current = self.current.as_ref().filter(|c| now < c.wait_at)?;
        let until = match (&self.flight, &self.backoff) {
            (Some(f), _) => {
                let timeout = self.policy.flight_timeout_ms;
                let given_up = if timeout > 0 {
                    f.sent_at.saturating_add(timeout)
                } else {
                    Millis::MAX
                };
                current.wait_at.min(given_up)
            }
            (None, _) if self.halted => current.wait_at,
            (None, Some(b)) => current.wait_at.min(current.refresh_at.max(b.retry_at)),
            (None, None) => current.wait_at.min(current.refresh_at),
        };
        (until > now).then_some(until)
    }

    /// The error the cache is backing off after, if it is: the last failure, or the
    /// `invalid_response` recorded for a token that arrived already inside its expiry margin.
    pub fn backoff_error(&self) -> Option<&Error> {
        self.backoff.as_ref().map(|b| &b.error)
    }

    /// A snapshot of the cache at `now`.
    pub fn status(&self, now: Millis) -> Status {
        let (t, back) = self.view(now);
        let state = match (&self.flight, &self.current) {
            (Some(_), _) => CacheState::Refreshing,
            (None, Some(c)) if t < c.token.expires_at => CacheState::Valid,
            (None, Some(_)) => CacheState::Expired,
            (None, None) => CacheState::Empty,
        };
        Status {
            state,
            expires_at: self
                .current
                .as_ref()
                .map(|c| c.token.expires_at.saturating_sub(back)),
            token_requests: self.token_requests,
            consecutive_failures: self.backoff.as_ref().map_or(0, |b| b.failures),
            retry_at: self
                .backoff
                .as_ref()
                .map(|b| b.retry_at.saturating_sub(back)),
        }
    }

    fn start_flight(&mut self, now: Millis) -> Flight {
        let id = FlightId(self.next_id);
        self.next_id = self.next_id.saturating_add(1);
        self.token_requests = self.token_requests.saturating_add(1);
        self.flight = Some(InFlight { id, sent_at: now });
        Flight { id, sent_at: now }
    }

    fn token_from(&self, answer: TokenResponse, sent_at: Millis, now: Millis) -> CachedToken {
        CachedToken {
            expires_at: self
                .policy
                .expires_at(sent_at, answer.expires_in_ms, answer.jwt_exp_ms),
            access_token: answer.access_token,
            scope: answer.scope,
            acquired_at: now,
        }
    }

    /// The still-valid current token, for the waiters of a failed request.
    fn valid_token(&self, now: Millis) -> Option<CachedToken> {
        self.current
            .as_ref()
            .filter(|c| now < c.token.expires_at)
            .map(|c| c.token.clone())
    }

    fn record_failure(&mut self, now: Millis, mut error: Error) -> Result<CachedToken, Error> {
        if error.code == ErrorCode::InvalidClient {
            self.halted = true;
        }
        let (delay, fail_fast) = self.back_off(now, error.clone());
        if let Some(token) = self.valid_token(now) {
            return Ok(token);
        }
        if fail_fast {
            error.retry_after_ms = Some(delay);
        }
        Err(error)
    }

    /// Counts one more failure in a row and sets the next retry time (the backoff schedule of
    /// [`RefreshPolicy::backoff_ms`]). Returns the delay and whether callers without a valid token
    /// now fail fast.
    fn back_off(&mut self, now: Millis, error: Error) -> (u64, bool) {
        let (failures, previous) = self
            .backoff
            .as_ref()
            .map_or((0, 0), |b| (b.failures, b.last_delay_ms));
        let failures = failures.saturating_add(1);
        let delay = self.policy.backoff_ms(
            failures,
            previous,
            self.rng.next_u64(),
            error.retry_after_ms,
        );
        let server_asked = error.retry_after_ms.is_some_and(|ms| ms > 0);
        let fail_fast = failures >= 2 || server_asked;
        self.backoff = Some(Backoff {
            failures,
            retry_at: now.saturating_add(delay),
            last_delay_ms: delay,
            fail_fast,
            error,
        });
        (delay, fail_fast)
    }

    fn complete_stale(
        &mut self,
        flight: FlightId,
        now: Millis,
        result: Result<TokenResponse, Error>,
    ) -> Result<CachedToken, Error> {
        let given_up = self.abandoned.filter(|f| f.id == flight);
        if let (Some(sent), Ok(answer)) = (given_up, &result) {
            self.abandoned = None;
            return Ok(self.token_from(answer.clone(), sent.sent_at, now));
        }
        if let Some(token) = self.valid_token(now) {
            return Ok(token);
        }
        match result {
            Err(error) => Err(error),
            Ok(_) => Err(Error::new(
                ErrorCode::InvalidArgument,
                "a token request completed twice or was never started; the answer was ignored",
            )),
        }
    }

    /// A request whose answer never came is given up after `flight_timeout_ms` (0 = never), so a
    /// lost completion cannot block every caller forever.
    fn give_up_lost_flight(&mut self, now: Millis) {
        let timeout = self.policy.flight_timeout_ms;
        if let Some(f) = self.flight {
            if timeout > 0 && now.saturating_sub(f.sent_at) >= timeout {
                self.abandoned = Some(f);
                self.flight = None;
            }
        }
    }

    /// Notices the clock going backwards and moves every stored time back by the same amount:
    /// elapsed time since each event is kept, so no token gains life and the schedule holds.
    fn observe(&mut self, now: Millis) {
        let back = self.last_now.saturating_sub(now);
        self.last_now = now;
        if back == 0 {
            return;
        }
        if let Some(c) = &mut self.current {
            c.token.expires_at = c.token.expires_at.saturating_sub(back);
            c.token.acquired_at = c.token.acquired_at.saturating_sub(back);
            c.refresh_at = c.refresh_at.saturating_sub(back);
            c.wait_at = c.wait_at.saturating_sub(back);
        }
        for f in [&mut self.flight, &mut self.abandoned]
            .into_iter()
            .flatten()
        {
            f.sent_at = f.sent_at.saturating_sub(back);
        }
        if let Some(b) = &mut self.backoff {
            b.retry_at = b.retry_at.saturating_sub(back);
        }
    }

    /// For `&self` queries: the time to compare stored times with, and how far the clock went
    /// back since the last mutation (to shift answers into `now`'s frame).
    fn view(&self, now: Millis) -> (Millis, Millis) {
        (now.max(self.last_now), self.last_now.saturating_sub(now))
    }
}

/// What a token that arrived already inside its expiry margin counts as, for the backoff (and for
/// callers failing fast in it once it has expired too).
fn expiring_on_arrival() -> Error {
    Error::new(
        ErrorCode::InvalidResponse,
        "the token endpoint answered a token that was already inside its expiry margin when it \
         arrived (an expires_in shorter than the round trip, a JWT exp in the past, or clocks \
         that disagree); the next token request waits for the backoff",
    )
    .reached(true)
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests;
