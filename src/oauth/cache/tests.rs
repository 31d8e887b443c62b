use super::*;
use crate::oauth::policy::BackoffJitter;
use proptest::prelude::*;

const S: u64 = 1_000;
const T0: Millis = 1_700_000_000_000;

/// No jitter anywhere, so every instant can be asserted exactly.
fn exact_policy() -> RefreshPolicy {
    RefreshPolicy {
        refresh_jitter_permille: 0,
        backoff_jitter: BackoffJitter::None,
        ..RefreshPolicy::default()
    }
}

fn cache() -> TokenCache {
    TokenCache::new(exact_policy(), 7)
}

fn answer(token: &str, expires_in_s: u64) -> TokenResponse {
    TokenResponse {
        access_token: Secret::new(token),
        scope: Some(vec!["balances.read".into()]),
        expires_in_ms: Some(expires_in_s * S),
        jwt_exp_ms: None,
    }
}

fn failure(code: ErrorCode) -> Error {
    Error::new(code, "token request failed").with_status(503)
}

fn fetch(cache: &mut TokenCache, now: Millis) -> Flight {
    match cache.poll(now, false) {
        Poll::Fetch(flight) => flight,
        other => panic!("expected Fetch at {now}, got {other:?}"),
    }
}

fn ready(poll: Poll) -> CachedToken {
    match poll {
        Poll::Ready(token) => token,
        other => panic!("expected Ready, got {other:?}"),
    }
}

fn refresh(poll: Poll) -> (CachedToken, Flight) {
    match poll {
        Poll::ReadyAndRefresh(token, flight) => (token, flight),
        other => panic!("expected ReadyAndRefresh, got {other:?}"),
    }
}

fn fail(poll: Poll) -> Error {
    match poll {
        Poll::Fail(error) => error,
        other => panic!("expected Fail, got {other:?}"),
    }
}

/// Fetches `token` at `now` (answer arriving 100 ms later) and returns it.
fn warm(cache: &mut TokenCache, now: Millis, token: &str, expires_in_s: u64) -> CachedToken {
    let flight = fetch(cache, now);
    let got = cache
        .complete(flight.id, now + 100, Ok(answer(token, expires_in_s)))
        .expect("token");
    assert_eq!(got.access_token.expose(), token);
    got
}

/// Polls `n` callers at `now` and counts (fetch, refresh, ready, wait, fail) answers.
fn burst(cache: &mut TokenCache, now: Millis, n: usize) -> [usize; 5] {
    let mut counts = [0; 5];
    for _ in 0..n {
        let slot = match cache.poll(now, false) {
            Poll::Fetch(_) => 0,
            Poll::ReadyAndRefresh(..) => 1,
            Poll::Ready(_) => 2,
            Poll::Wait(_) => 3,
            Poll::Fail(_) => 4,
        };
        counts[slot] += 1;
    }
    counts
}

// ---- single flight ----

/// 1,000 concurrent `getToken()` calls at `now`: exactly one is told to fetch and the other
/// 999 to wait on that same flight. Returns the flight.
fn thousand_callers_share_one_flight(cache: &mut TokenCache, now: Millis) -> Flight {
    let Poll::Fetch(flight) = cache.poll(now, false) else {
        panic!("the first caller should fetch")
    };
    let polls: Vec<Poll> = (1..1_000).map(|_| cache.poll(now, false)).collect();
    assert_eq!(polls.len(), 999);
    assert!(
        polls.iter().all(|p| *p == Poll::Wait(flight.id)),
        "every other caller waits on the one flight"
    );
    flight
}

#[test]
fn cold_cache_1000_callers_make_one_request_and_all_get_its_token() {
    let mut c = cache();
    let flight = thousand_callers_share_one_flight(&mut c, T0);
    assert_eq!(c.status(T0).token_requests, 1);
    // The edge hands this one result to the fetching caller and the 999 waiting on it.
    let token = c
        .complete(flight.id, T0 + 100, Ok(answer("tok-1", 300)))
        .unwrap();
    assert_eq!(token.access_token.expose(), "tok-1");
    // And the same 1,000 callers a moment later get it from the cache, with no new request.
    for _ in 0..1_000 {
        assert_eq!(ready(c.poll(T0 + 200, false)), token);
    }
    assert_eq!(c.status(T0 + 200).token_requests, 1);
}

#[test]
fn right_after_expiry_1000_callers_make_one_request_and_all_get_the_new_token() {
    let mut c = cache();
    let old = warm(&mut c, T0, "tok-1", 300);
    let expiry = old.expires_at;
    let flight = thousand_callers_share_one_flight(&mut c, expiry);
    assert_eq!(c.status(expiry).token_requests, 2);
    let fresh = c
        .complete(flight.id, expiry + 100, Ok(answer("tok-2", 300)))
        .unwrap();
    assert_eq!(fresh.access_token.expose(), "tok-2");
    assert_eq!(fresh.expires_at, expiry + 300 * S);
    for _ in 0..1_000 {
        assert_eq!(ready(c.poll(expiry + 200, false)), fresh);
    }
    assert_eq!(c.status(expiry + 200).token_requests, 2);
}

#[test]
fn failed_request_reaches_all_1000_callers_and_the_next_poll_tries_again() {
    let mut c = cache();
    let old = warm(&mut c, T0, "tok-1", 300);
    let expiry = old.expires_at;
    let flight = thousand_callers_share_one_flight(&mut c, expiry);
    // No valid token is left, so the one error is what all 1,000 callers get.
    let error = c
        .complete(flight.id, expiry + 100, Err(failure(ErrorCode::Network)))
        .unwrap_err();
    assert_eq!(error.code, ErrorCode::Network);
    assert_eq!(error.retry_after_ms, None, "one failure is not backed off");
    // Not cached: the next caller starts a new request, and the crowd after it waits on that.
    let again = thousand_callers_share_one_flight(&mut c, expiry + 101);
    assert_ne!(again.id, flight.id);
    assert_eq!(c.status(expiry + 101).token_requests, 3);
}

#[test]
fn waiters_all_wait_on_the_one_flight_and_then_get_its_token() {
    let mut c = cache();
    let flight = fetch(&mut c, T0);
    for _ in 0..10 {
        assert_eq!(c.poll(T0 + 5, false), Poll::Wait(flight.id));
    }
    let token = c
        .complete(flight.id, T0 + 200, Ok(answer("tok-1", 3600)))
        .unwrap();
    assert_eq!(token.expires_at, T0 + 3600 * S);
    assert_eq!(token.acquired_at, T0 + 200);
    assert_eq!(ready(c.poll(T0 + 300, false)), token);
}

#[test]
fn in_refresh_ahead_window_one_caller_refreshes_and_999_get_the_token() {
    let mut c = cache();
    warm(&mut c, T0, "tok-1", 300);
    assert_eq!(burst(&mut c, T0 + 225 * S, 1_000), [0, 1, 999, 0, 0]);
    assert_eq!(c.status(T0 + 225 * S).token_requests, 2);
}

#[test]
fn qpay_300s_token_is_served_until_270s_then_callers_wait() {
    let mut c = cache();
    let token = warm(&mut c, T0, "tok-1", 300);
    assert_eq!(ready(c.poll(T0 + 225 * S - 1, false)), token);
    let (same, flight) = refresh(c.poll(T0 + 225 * S, false));
    assert_eq!(same, token);
    // Background refresh still in flight at the wait point: callers now wait for it.
    assert_eq!(ready(c.poll(T0 + 270 * S - 1, false)), token);
    assert_eq!(c.poll(T0 + 270 * S, false), Poll::Wait(flight.id));
    let fresh = c
        .complete(flight.id, T0 + 270 * S + 50, Ok(answer("tok-2", 300)))
        .unwrap();
    assert_eq!(fresh.expires_at, T0 + 225 * S + 300 * S);
    assert_eq!(ready(c.poll(T0 + 271 * S, false)), fresh);
}

#[test]
fn force_refresh_starts_a_flight_or_waits_for_the_running_one() {
    let mut c = cache();
    let token = warm(&mut c, T0, "tok-1", 3600);
    let Poll::Fetch(flight) = c.poll(T0 + S, true) else {
        panic!("force_refresh should fetch")
    };
    assert_eq!(c.poll(T0 + S, true), Poll::Wait(flight.id));
    // Other callers keep the current token while the forced request runs.
    assert_eq!(ready(c.poll(T0 + S, false)), token);
    assert_eq!(c.status(T0 + S).token_requests, 2);
}

// ---- lifetimes ----

#[test]
fn token_whose_jwt_exp_is_in_the_past_is_used_once_not_cached() {
    let mut c = cache();
    let flight = fetch(&mut c, T0);
    let past = TokenResponse {
        expires_in_ms: None,
        jwt_exp_ms: Some(T0 - S),
        ..answer("once", 0)
    };
    let got = c.complete(flight.id, T0 + 100, Ok(past)).unwrap();
    assert_eq!(got.access_token.expose(), "once");
    assert_eq!(c.status(T0 + 100).state, CacheState::Empty);
    fetch(&mut c, T0 + 100);
}

#[test]
fn token_arriving_after_its_wait_point_is_used_once_not_cached() {
    let mut c = cache();
    let flight = fetch(&mut c, T0);
    // 10 s lifetime, wait point at 9 s; the answer took 9.5 s.
    let got = c
        .complete(flight.id, T0 + 9_500, Ok(answer("slow", 10)))
        .unwrap();
    assert_eq!(got.expires_at, T0 + 10 * S);
    assert_eq!(burst(&mut c, T0 + 9_500, 3), [1, 0, 0, 2, 0]);
}

// ---- tokens already inside their expiry margin on arrival ----

/// Polls every `step` ms from `from` until `to`; every token request it is told to start is
/// answered at once by `answer_at(sent_at)` (received `delay` ms after the send, before the next
/// poll). Returns when the requests were sent, and the codes of the polls that failed fast.
fn poll_every(
    c: &mut TokenCache,
    (from, to, step): (Millis, Millis, u64),
    delay: u64,
    answer_at: impl Fn(Millis) -> TokenResponse,
) -> (Vec<Millis>, Vec<ErrorCode>) {
    let (mut sends, mut fails) = (Vec::new(), Vec::new());
    let mut now = from;
    while now < to {
        match c.poll(now, false) {
            Poll::Fetch(f) | Poll::ReadyAndRefresh(_, f) => {
                sends.push(now);
                c.complete(f.id, now + delay, Ok(answer_at(now)))
                    .expect("the waiters get the token");
            }
            Poll::Fail(e) => fails.push(e.code),
            Poll::Ready(_) => {}
            Poll::Wait(id) => panic!("{id:?} was completed"),
        }
        now += step;
    }
    (sends, fails)
}

/// Gaps between request sends, in whole seconds.
fn gaps_s(sends: &[Millis]) -> Vec<u64> {
    sends.windows(2).map(|w| (w[1] - w[0]) / S).collect()
}

#[test]
fn tokens_already_expired_on_arrival_make_one_request_per_backoff_step_not_per_poll() {
    let mut c = cache();
    // expires_in 0 on every answer: each token is inside its margin (expired, even) on arrival.
    // One caller polls every 100 ms for ten minutes: 6,000 polls.
    let (sends, fails) = poll_every(&mut c, (T0, T0 + 600 * S, 100), 0, |_| answer("dud", 0));
    // As after failures: the first one is retried by the next poll, then the backoff doubles
    // (2, 4, 8, 16, 32 s) up to the cap (60 s). Not one request per poll.
    assert_eq!(sends[..2], [T0, T0 + 100]);
    assert_eq!(
        gaps_s(&sends[1..]),
        [2, 4, 8, 16, 32, 60, 60, 60, 60, 60, 60, 60, 60]
    );
    assert_eq!(c.status(T0 + 600 * S).token_requests, 15);
    // Every other poll failed fast, with the code a useless answer counts as.
    assert_eq!(fails.len(), 6_000 - 15);
    assert!(fails.iter().all(|&code| code == ErrorCode::InvalidResponse));
    let status = c.status(T0 + 600 * S);
    assert_eq!(status.consecutive_failures, 15);
    assert!(status.retry_at.is_some_and(|at| at > T0 + 600 * S));
    let error = c.backoff_error().expect("backing off");
    assert_eq!(error.code, ErrorCode::InvalidResponse);
    assert!(error.may_have_reached_server);
    let fast = fail(c.poll(T0 + 600 * S, false));
    assert_eq!(
        fast.retry_after_ms,
        Some(status.retry_at.unwrap() - (T0 + 600 * S))
    );
}

#[test]
fn a_token_inside_its_margin_is_served_in_the_backoff_while_it_has_not_expired() {
    let mut c = cache();
    // A 10 s token whose answer takes 9.5 s: its wait point (9 s) is behind it when it arrives.
    let first = fetch(&mut c, T0);
    let got = c
        .complete(first.id, T0 + 9_500, Ok(answer("slow-1", 10)))
        .unwrap();
    assert_eq!(got.access_token.expose(), "slow-1", "its waiters get it");
    assert_eq!(c.status(T0 + 9_500).consecutive_failures, 1);
    // One useless answer is retried by the next caller, like one failure.
    let second = fetch(&mut c, T0 + 9_500);
    let got = c
        .complete(second.id, T0 + 19_000, Ok(answer("slow-2", 10)))
        .unwrap();
    // Two in a row: backing off until 19 s + 2 s. slow-2 lives until 9.5 s + 10 s = 19.5 s.
    assert_eq!(c.status(T0 + 19_000).retry_at, Some(T0 + 21 * S));
    assert_eq!(c.status(T0 + 19_000).state, CacheState::Valid);
    assert_eq!(burst(&mut c, T0 + 19_499, 50), [0, 0, 50, 0, 0]);
    assert_eq!(ready(c.poll(T0 + 19_499, false)), got);
    // Expired, still backing off: fail fast (no request) until the retry time.
    assert_eq!(burst(&mut c, T0 + 19_500, 50), [0, 0, 0, 0, 50]);
    assert_eq!(burst(&mut c, T0 + 21 * S - 1, 50), [0, 0, 0, 0, 50]);
    assert_eq!(burst(&mut c, T0 + 21 * S, 50), [1, 0, 0, 49, 0]);
    assert_eq!(c.status(T0 + 21 * S).token_requests, 3);
}

#[test]
fn a_good_token_resets_the_backoff_after_tokens_inside_their_margin() {
    let mut c = cache();
    let (sends, _) = poll_every(&mut c, (T0, T0 + 10 * S, 100), 0, |_| answer("dud", 0));
    assert_eq!(sends.len(), 4, "0, 0.1, 2.1 and 6.1 s");
    assert_eq!(c.status(T0 + 10 * S).consecutive_failures, 4);
    let retry_at = c.status(T0 + 10 * S).retry_at.unwrap();
    let good = warm(&mut c, retry_at, "good", 300);
    let status = c.status(retry_at + S);
    assert_eq!((status.consecutive_failures, status.retry_at), (0, None));
    assert_eq!(c.backoff_error(), None);
    assert_eq!(ready(c.poll(retry_at + S, false)), good);
    // The next useless token starts the schedule from the beginning again.
    let expiry = good.expires_at;
    let (sends, _) = poll_every(&mut c, (expiry, expiry + 10 * S, 100), 0, |_| {
        answer("dud", 0)
    });
    assert_eq!(
        sends,
        [expiry, expiry + 100, expiry + 2_100, expiry + 6_100]
    );
}

#[test]
fn a_background_refresh_answered_inside_the_margin_keeps_the_old_token_and_backs_off() {
    let mut c = cache();
    let old = warm(&mut c, T0, "old", 3600);
    let refresh_at = T0 + 55 * 60 * S;
    // From the refresh point on, every refresh gets a token born expired; the caller polls every
    // 100 ms for two minutes, and the old token (valid until 60 min) is what it is served.
    let (sends, fails) = poll_every(&mut c, (refresh_at, refresh_at + 120 * S, 100), 0, |_| {
        answer("dud", 0)
    });
    assert!(fails.is_empty(), "the old token is still valid");
    // Background refreshes wait for the backoff as after failures (1, 2, 4, …, 60 s).
    assert_eq!(gaps_s(&sends), [1, 2, 4, 8, 16, 32]);
    assert_eq!(ready(c.poll(refresh_at + 120 * S, false)), old);
    assert_eq!(
        c.status(refresh_at + 120 * S).expires_at,
        Some(old.expires_at)
    );
    assert_eq!(
        c.next_wakeup(refresh_at + 120 * S),
        c.status(refresh_at + 120 * S).retry_at,
        "the timer waits for the backoff too"
    );
}

#[test]
fn tokens_inside_their_margin_get_the_jittered_capped_backoff_of_failures() {
    // The default policy: decorrelated jitter, base 1 s, cap 60 s.
    let policy = RefreshPolicy::default();
    let mut c = TokenCache::new(policy, 11);
    let (sends, _) = poll_every(&mut c, (T0, T0 + 3_600 * S, 100), 0, |sent| TokenResponse {
        expires_in_ms: None,
        // A JWT exp a minute behind our clock (a server clock that disagrees).
        jwt_exp_ms: Some(sent - 60 * S),
        ..answer("skewed", 0)
    });
    let delays: Vec<u64> = sends[1..].windows(2).map(|w| w[1] - w[0]).collect();
    assert!(delays.len() > 60, "about one request a minute at most");
    let mut previous = 0;
    for &d in &delays {
        // Whole polls of 100 ms: the request goes out at the first poll at or after retry_at.
        let top = (previous.max(policy.backoff_base_ms) * 3).min(policy.backoff_cap_ms);
        assert!(
            d >= policy.backoff_base_ms && d <= top + 100,
            "{d} after {previous}"
        );
        previous = d;
    }
    assert!(delays.iter().any(|&d| d != delays[0]), "jittered");
    assert!(
        delays.iter().all(|&d| d <= policy.backoff_cap_ms + 100),
        "capped"
    );
}

#[test]
fn lifetime_shorter_than_the_margin_is_cached_for_nine_tenths_of_it() {
    let mut c = cache();
    let token = warm(&mut c, T0, "short", 20);
    // Margin min(30 s, 20 s / 10) = 2 s; refresh-ahead min(300 s, 5 s) = 5 s.
    assert_eq!(ready(c.poll(T0 + 15 * S - 1, false)), token);
    let (_, flight) = refresh(c.poll(T0 + 15 * S, false));
    assert_eq!(c.poll(T0 + 18 * S, false), Poll::Wait(flight.id));
}

#[test]
fn missing_expires_in_falls_back_to_the_jwt_exp_then_the_default_lifetime() {
    let mut c = cache();
    let flight = fetch(&mut c, T0);
    let jwt = TokenResponse {
        expires_in_ms: None,
        jwt_exp_ms: Some(T0 + 600 * S),
        ..answer("jwt", 0)
    };
    assert_eq!(
        c.complete(flight.id, T0, Ok(jwt)).unwrap().expires_at,
        T0 + 600 * S
    );
    c.invalidate(None);
    let flight = fetch(&mut c, T0);
    let bare = TokenResponse {
        expires_in_ms: None,
        ..answer("bare", 0)
    };
    assert_eq!(
        c.complete(flight.id, T0 + 100, Ok(bare))
            .unwrap()
            .expires_at,
        T0 + 3600 * S
    );
}

// ---- invalidate ----

#[test]
fn late_401_for_an_old_token_does_not_drop_the_newer_one() {
    let mut c = cache();
    warm(&mut c, T0, "old", 300);
    let (_, flight) = refresh(c.poll(T0 + 230 * S, false));
    let new = c
        .complete(flight.id, T0 + 231 * S, Ok(answer("new", 300)))
        .unwrap();
    assert!(!c.invalidate(Some("old")));
    assert_eq!(ready(c.poll(T0 + 232 * S, false)), new);
}

#[test]
fn invalidate_drops_the_current_token_once_and_the_next_poll_fetches() {
    let mut c = cache();
    warm(&mut c, T0, "tok-1", 3600);
    assert!(c.invalidate(Some("tok-1")));
    assert!(!c.invalidate(Some("tok-1")));
    assert!(!c.invalidate(None));
    assert_eq!(burst(&mut c, T0 + S, 10), [1, 0, 0, 9, 0]);
}

#[test]
fn invalidate_none_drops_whatever_is_cached() {
    let mut c = cache();
    warm(&mut c, T0, "tok-1", 3600);
    assert!(c.invalidate(None));
    assert_eq!(c.status(T0).state, CacheState::Empty);
}

// ---- failures and backoff ----

#[test]
fn failure_goes_to_the_waiters_and_is_not_cached() {
    let mut c = cache();
    let flight = fetch(&mut c, T0);
    let error = c
        .complete(flight.id, T0 + 100, Err(failure(ErrorCode::Network)))
        .unwrap_err();
    assert_eq!(error.code, ErrorCode::Network);
    assert_eq!(error.retry_after_ms, None);
    // The very next caller tries again.
    fetch(&mut c, T0 + 101);
}

#[test]
fn second_failure_in_a_row_fails_fast_until_the_backoff_time() {
    let mut c = cache();
    let flight = fetch(&mut c, T0);
    c.complete(flight.id, T0, Err(failure(ErrorCode::TokenEndpointError)))
        .unwrap_err();
    let flight = fetch(&mut c, T0);
    let error = c
        .complete(flight.id, T0, Err(failure(ErrorCode::TokenEndpointError)))
        .unwrap_err();
    assert_eq!(error.retry_after_ms, Some(2 * S));
    let fast = fail(c.poll(T0 + 500, false));
    assert_eq!(fast.code, ErrorCode::TokenEndpointError);
    assert_eq!(fast.retry_after_ms, Some(1_500));
    assert_eq!(burst(&mut c, T0 + 2 * S - 1, 100), [0, 0, 0, 0, 100]);
    assert_eq!(c.status(T0).token_requests, 2);
    fetch(&mut c, T0 + 2 * S);
}

#[test]
fn backoff_doubles_with_each_failure_up_to_the_cap() {
    let mut c = cache();
    let mut now = T0;
    let mut delays = Vec::new();
    for _ in 0..9 {
        let flight = fetch(&mut c, now);
        c.complete(flight.id, now, Err(failure(ErrorCode::Timeout)))
            .unwrap_err();
        let retry_at = c.status(now).retry_at.unwrap();
        delays.push((retry_at - now) / S);
        now = retry_at;
    }
    assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
    assert_eq!(c.status(now).consecutive_failures, 9);
}

#[test]
fn retry_after_is_honoured_even_on_the_first_failure() {
    let mut c = cache();
    let flight = fetch(&mut c, T0);
    let limited = failure(ErrorCode::RateLimited).with_retry_after(Some(30 * S));
    let error = c.complete(flight.id, T0, Err(limited)).unwrap_err();
    assert_eq!(error.retry_after_ms, Some(30 * S));
    assert_eq!(
        fail(c.poll(T0 + 10 * S, false)).retry_after_ms,
        Some(20 * S)
    );
    fetch(&mut c, T0 + 30 * S);
}

#[test]
fn success_resets_the_backoff() {
    let mut c = cache();
    let mut now = T0;
    for _ in 0..2 {
        let flight = fetch(&mut c, now);
        c.complete(flight.id, now, Err(failure(ErrorCode::Network)))
            .unwrap_err();
        now = c.status(now).retry_at.unwrap();
    }
    assert_eq!(c.status(now).consecutive_failures, 2);
    warm(&mut c, now, "tok", 3600);
    let status = c.status(now + S);
    assert_eq!((status.consecutive_failures, status.retry_at), (0, None));
}

// ---- static stability ----

#[test]
fn failed_background_refresh_keeps_serving_the_valid_token_and_retries_after_backoff() {
    let mut c = cache();
    let token = warm(&mut c, T0, "tok-1", 3600);
    let refresh_at = T0 + 55 * 60 * S;
    assert_eq!(c.next_wakeup(T0 + S), Some(refresh_at));
    let (_, flight) = refresh(c.poll(refresh_at, false));
    assert_eq!(c.next_wakeup(refresh_at), None, "no timer while in flight");
    let limited = failure(ErrorCode::RateLimited).with_retry_after(Some(45 * S));
    // Nobody waits on a background flight, but if someone did, they would get the valid token.
    assert_eq!(
        c.complete(flight.id, refresh_at, Err(limited)),
        Ok(token.clone())
    );
    // The timer is re-armed for Retry-After, not for the base backoff delay (1 s).
    assert_eq!(c.next_wakeup(refresh_at + S), Some(refresh_at + 45 * S));
    // Served at once, and no new refresh before Retry-After.
    assert_eq!(burst(&mut c, refresh_at + 44 * S, 100), [0, 0, 100, 0, 0]);
    assert_eq!(
        c.next_wakeup(refresh_at + 44 * S),
        Some(refresh_at + 45 * S)
    );
    // Recovery.
    let (_, flight) = refresh(c.poll(refresh_at + 45 * S, false));
    let fresh = c
        .complete(flight.id, refresh_at + 46 * S, Ok(answer("tok-2", 3600)))
        .unwrap();
    assert_eq!(ready(c.poll(refresh_at + 47 * S, false)), fresh);
    assert_eq!(c.status(refresh_at + 47 * S).consecutive_failures, 0);
}

#[test]
fn waiters_of_a_failed_flight_get_the_old_token_while_it_is_valid_then_the_error() {
    let mut c = cache();
    let token = warm(&mut c, T0, "tok-1", 300);
    // Past the wait point: callers wait for a new token.
    let flight = fetch(&mut c, T0 + 280 * S);
    let got = c.complete(
        flight.id,
        T0 + 281 * S,
        Err(failure(ErrorCode::ServerError)),
    );
    assert_eq!(got, Ok(token.clone()));
    // Second failure, after expiry: no valid token left, the error goes out.
    let flight = fetch(&mut c, T0 + 300 * S);
    let got = c.complete(
        flight.id,
        T0 + 300 * S,
        Err(failure(ErrorCode::ServerError)),
    );
    assert_eq!(got.unwrap_err().code, ErrorCode::ServerError);
}

#[test]
fn in_backoff_past_the_wait_point_the_still_valid_token_is_served_until_expiry() {
    let mut c = cache();
    let token = warm(&mut c, T0, "tok-1", 300);
    for at in [T0 + 271 * S, T0 + 272 * S] {
        let flight = fetch(&mut c, at);
        assert_eq!(
            c.complete(flight.id, at, Err(failure(ErrorCode::Network))),
            Ok(token.clone())
        );
    }
    // Backing off until 272 s + 2 s; the token is still valid until 300 s.
    assert_eq!(ready(c.poll(T0 + 273 * S, false)), token);
    fetch(&mut c, T0 + 274 * S);
    let flight_fails_at = T0 + 299 * S;
    let Poll::Wait(id) = c.poll(flight_fails_at, false) else {
        panic!("in flight")
    };
    assert_eq!(
        c.complete(id, flight_fails_at, Err(failure(ErrorCode::Network))),
        Ok(token)
    );
    // Expired and backing off: fail fast now.
    assert_eq!(fail(c.poll(T0 + 300 * S, false)).code, ErrorCode::Network);
}

// ---- invalid_client ----

#[test]
fn invalid_client_stops_background_refresh_but_a_caller_may_try_again() {
    let mut c = cache();
    let token = warm(&mut c, T0, "tok-1", 300);
    let (_, flight) = refresh(c.poll(T0 + 225 * S, false));
    let denied = failure(ErrorCode::InvalidClient).with_status(401);
    assert_eq!(
        c.complete(flight.id, T0 + 225 * S, Err(denied)),
        Ok(token.clone())
    );
    // Long after the backoff: still no background refresh and no timer.
    assert_eq!(ready(c.poll(T0 + 260 * S, false)), token);
    assert_eq!(c.next_wakeup(T0 + 260 * S), None);
    // Past the wait point a caller's poll does start a new attempt.
    let flight = fetch(&mut c, T0 + 270 * S);
    c.complete(flight.id, T0 + 270 * S, Ok(answer("tok-2", 300)))
        .unwrap();
    assert!(
        c.next_wakeup(T0 + 271 * S).is_some(),
        "success re-arms the timer"
    );
}

#[test]
fn invalid_client_on_a_cold_cache_fails_waiters_and_schedules_nothing() {
    let mut c = cache();
    let flight = fetch(&mut c, T0);
    let denied = failure(ErrorCode::InvalidClient).with_status(401);
    assert_eq!(
        c.complete(flight.id, T0, Err(denied.clone()))
            .unwrap_err()
            .code,
        ErrorCode::InvalidClient
    );
    assert_eq!(c.next_wakeup(T0), None);
    let flight = fetch(&mut c, T0 + 1);
    c.complete(flight.id, T0 + 1, Err(denied)).unwrap_err();
    assert_eq!(fail(c.poll(T0 + 2, false)).code, ErrorCode::InvalidClient);
}

// ---- clock jumps ----

#[test]
fn clock_jumping_back_does_not_extend_a_tokens_life() {
    let mut c = cache();
    let token = warm(&mut c, T0, "tok-1", 300);
    ready(c.poll(T0 + 100 * S, false));
    // One hour back: the token keeps the 200 s it had left, no more.
    let back = T0 - 3600 * S;
    let shifted = ready(c.poll(back, false));
    assert_eq!(shifted.access_token, token.access_token);
    assert_eq!(shifted.expires_at, back + 200 * S);
    assert_eq!(c.next_wakeup(back), Some(back + 125 * S));
    assert_eq!(
        c.poll(back + 170 * S, false),
        Poll::Fetch(Flight {
            id: FlightId(2),
            sent_at: back + 170 * S,
        })
    );
}

#[test]
fn clock_jumping_back_keeps_an_expired_token_expired() {
    let mut c = cache();
    warm(&mut c, T0, "tok-1", 300);
    assert_eq!(c.status(T0 + 301 * S).state, CacheState::Expired);
    let flight = fetch(&mut c, T0 + 301 * S);
    c.complete(flight.id, T0 + 301 * S, Err(failure(ErrorCode::Network)))
        .unwrap_err();
    // Back to a time when the token was young: it must not come back to life.
    let back = T0 + 10 * S;
    assert_eq!(c.status(back).state, CacheState::Expired);
    fetch(&mut c, back);
}

#[test]
fn clock_jumping_back_during_a_flight_still_measures_the_lifetime_from_the_send() {
    let mut c = cache();
    let flight = fetch(&mut c, T0);
    // The clock jumps 10 min back while the request is out; a waiter's poll sees it.
    let jumped = T0 - 600 * S;
    assert_eq!(c.poll(jumped, false), Poll::Wait(flight.id));
    // The answer arrives 1 s later: the token counts from the send (now `jumped`), so it keeps
    // 300 s from there, neither the 10 min of the jump nor the 1 s in flight more.
    let arrived = jumped + S;
    let token = c
        .complete(flight.id, arrived, Ok(answer("tok-1", 300)))
        .unwrap();
    assert_eq!(token.acquired_at, arrived);
    assert_eq!(token.expires_at, jumped + 300 * S);
    assert_eq!(ready(c.poll(arrived, false)), token);
    assert_eq!(c.next_wakeup(arrived), Some(jumped + 225 * S));
}

#[test]
fn clock_jump_back_seen_only_by_the_answer_counts_the_lifetime_from_the_answer() {
    let mut c = cache();
    let flight = fetch(&mut c, T0);
    // Nothing polls during the flight: a 600 s jump plus 1 s in flight reads exactly like a
    // 599 s jump. The send moves back by the 599 s seen, so it lands on the answer's time: the
    // token gets at most the flight's duration more than its true life, never the jump.
    let arrived = T0 - 600 * S + S;
    let token = c
        .complete(flight.id, arrived, Ok(answer("tok-1", 300)))
        .unwrap();
    assert_eq!(token.acquired_at, arrived);
    assert_eq!(token.expires_at, arrived + 300 * S);
    assert_eq!(c.next_wakeup(arrived), Some(arrived + 225 * S));
    assert_eq!(ready(c.poll(arrived + 225 * S - 1, false)), token);
    let (_, refreshing) = refresh(c.poll(arrived + 225 * S, false));
    assert_eq!(ready(c.poll(arrived + 270 * S - 1, false)), token);
    assert_eq!(c.poll(arrived + 270 * S, false), Poll::Wait(refreshing.id));
}

#[test]
fn clock_jumping_forward_past_expiry_fetches_and_nothing_overflows() {
    let mut c = cache();
    warm(&mut c, T0, "tok-1", 300);
    let far = u64::MAX - 10;
    let flight = fetch(&mut c, far);
    let token = c
        .complete(flight.id, u64::MAX, Ok(answer("tok-2", 300)))
        .unwrap();
    assert_eq!(token.expires_at, u64::MAX);
    assert_eq!(c.next_wakeup(u64::MAX), None);
    let flight = fetch(&mut c, u64::MAX);
    c.complete(flight.id, u64::MAX, Err(failure(ErrorCode::Network)))
        .unwrap_err();
    assert_eq!(c.status(u64::MAX).retry_at, Some(u64::MAX));
    // And all the way back to zero.
    assert_eq!(burst(&mut c, 0, 2), [1, 0, 0, 1, 0]);
}

// ---- stale completions, lost flights ----

#[test]
fn completing_a_flight_twice_is_ignored() {
    let mut c = cache();
    let token = warm(&mut c, T0, "tok-1", 3600);
    let again = c.complete(FlightId(1), T0 + S, Ok(answer("evil-twin", 3600)));
    assert_eq!(again, Ok(token.clone()), "waiters get the current token");
    assert_eq!(ready(c.poll(T0 + S, false)), token);
    assert_eq!(c.status(T0 + S).token_requests, 1);
}

#[test]
fn completion_for_an_unknown_flight_changes_nothing() {
    let mut c = cache();
    let flight = fetch(&mut c, T0);
    let stray = c.complete(FlightId::from_u64(99), T0, Err(failure(ErrorCode::Network)));
    assert_eq!(stray.unwrap_err().code, ErrorCode::Network);
    assert_eq!(c.poll(T0, false), Poll::Wait(flight.id));
    let stray = c.complete(FlightId(99), T0, Ok(answer("stray", 3600)));
    assert_eq!(stray.unwrap_err().code, ErrorCode::InvalidArgument);
    assert_eq!(c.status(T0).consecutive_failures, 0);
    assert_eq!(c.status(T0).state, CacheState::Refreshing);
}

#[test]
fn lost_flight_is_given_up_after_the_flight_timeout_and_its_late_answer_is_not_cached() {
    let mut c = cache();
    let lost = fetch(&mut c, T0);
    assert_eq!(c.poll(T0 + 120 * S - 1, false), Poll::Wait(lost.id));
    let second = fetch(&mut c, T0 + 120 * S);
    assert_ne!(second.id, lost.id);
    let late = c
        .complete(lost.id, T0 + 121 * S, Ok(answer("late", 3600)))
        .unwrap();
    assert_eq!(late.expires_at, T0 + 3600 * S, "measured from its own send");
    assert_eq!(c.poll(T0 + 121 * S, false), Poll::Wait(second.id));
}

// ---- schedule, status, debug ----

#[test]
fn next_wakeup_is_the_refresh_point_and_none_without_a_token() {
    let mut c = cache();
    assert_eq!(c.next_wakeup(T0), None);
    fetch(&mut c, T0);
    assert_eq!(c.next_wakeup(T0), None);
    let mut c = cache();
    warm(&mut c, T0, "tok", 300);
    assert_eq!(c.next_wakeup(T0 + S), Some(T0 + 225 * S));
    assert_eq!(
        c.next_wakeup(T0 + 250 * S),
        Some(T0 + 250 * S),
        "overdue: now"
    );
    assert_eq!(c.next_wakeup(T0 + 300 * S), None, "expired");
}

#[test]
fn status_reports_each_state_and_counts_token_requests() {
    let mut c = cache();
    let at = |s: u64| T0 + s * S;
    assert_eq!(c.status(at(0)).state, CacheState::Empty);
    let flight = fetch(&mut c, at(0));
    assert_eq!(c.status(at(0)).state, CacheState::Refreshing);
    c.complete(flight.id, at(0), Ok(answer("tok", 300)))
        .unwrap();
    let status = c.status(at(1));
    assert_eq!(status.state, CacheState::Valid);
    assert_eq!(status.expires_at, Some(at(300)));
    assert_eq!(c.status(at(300)).state, CacheState::Expired);
    assert_eq!(c.status(at(300)).token_requests, 1);
}

#[test]
fn debug_output_never_shows_the_token() {
    let mut c = cache();
    let token = warm(&mut c, T0, "super-secret-token", 300);
    let printed = [
        format!("{token:?}"),
        format!("{c:?}"),
        format!("{:?}", c.poll(T0 + S, false)),
    ];
    for text in printed {
        assert!(!text.contains("super-secret-token"), "{text}");
        assert!(text.contains("[redacted]"));
    }
}

#[test]
fn jitter_is_deterministic_per_seed_and_moves_refresh_earlier() {
    let refresh_point = |seed: u64| {
        let mut c = TokenCache::new(RefreshPolicy::default(), seed);
        warm(&mut c, T0, "tok", 3600);
        c.next_wakeup(T0 + S).unwrap()
    };
    assert_eq!(refresh_point(1), refresh_point(1));
    let points: Vec<Millis> = (0..20).map(refresh_point).collect();
    assert!(points
        .iter()
        .all(|&p| (T0 + 3285 * S..=T0 + 3300 * S).contains(&p)));
    assert!(
        points.iter().any(|&p| p != points[0]),
        "seeds spread refreshes"
    );
}

// ---- random interleavings ----

#[derive(Clone, Debug)]
enum Op {
    Polls { n: u8, force: bool },
    Complete { pick: u8, outcome: Outcome },
    Advance(u32),
    JumpBack(u32),
    Invalidate(u8),
    Timer,
}

#[derive(Clone, Debug)]
enum Outcome {
    Token {
        expires_in_s: Option<u16>,
        jwt_offset_s: Option<i16>,
    },
    Failure {
        invalid_client: bool,
        retry_after_s: Option<u8>,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let outcome = prop_oneof![
        (
            proptest::option::of(0..4000u16),
            proptest::option::of(-100..4000i16)
        )
            .prop_map(|(expires_in_s, jwt_offset_s)| Outcome::Token {
                expires_in_s,
                jwt_offset_s
            }),
        (any::<bool>(), proptest::option::of(0..120u8)).prop_map(
            |(invalid_client, retry_after_s)| Outcome::Failure {
                invalid_client,
                retry_after_s
            }
        ),
    ];
    prop_oneof![
        4 => (1..40u8, proptest::bool::weighted(0.1)).prop_map(|(n, force)| Op::Polls { n, force }),
        3 => (any::<u8>(), outcome).prop_map(|(pick, outcome)| Op::Complete { pick, outcome }),
        3 => (0..400_000u32).prop_map(Op::Advance),
        1 => (0..4_000_000u32).prop_map(Op::JumpBack),
        1 => any::<u8>().prop_map(Op::Invalidate),
        1 => Just(Op::Timer),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_interleavings_keep_the_invariants(
        seed in any::<u64>(),
        jitter in 0..3u8,
        ops in proptest::collection::vec(op(), 1..200),
    ) {
        let policy = RefreshPolicy {
            // A lost flight is never given up here, so "one flight at most" holds strictly.
            flight_timeout_ms: 0,
            backoff_jitter: [BackoffJitter::None, BackoffJitter::Full, BackoffJitter::Decorrelated]
                [usize::from(jitter)],
            ..RefreshPolicy::default()
        };
        let mut c = TokenCache::new(policy, seed);
        let mut now: Millis = T0;
        let mut outstanding: Option<Flight> = None;
        let mut done: Vec<FlightId> = Vec::new();
        let mut issued: u64 = 0;
        let mut names: u64 = 0;
        for op in ops {
            match op {
                Op::Polls { n, force } => {
                    for _ in 0..n {
                        let in_flight = outstanding.is_some();
                        match c.poll(now, force) {
                            Poll::Ready(t) => {
                                prop_assert!(now < t.expires_at, "Ready token past expiry");
                                prop_assert!(!force || in_flight, "force_refresh got the cached token");
                            }
                            Poll::ReadyAndRefresh(t, f) => {
                                prop_assert!(now < t.expires_at);
                                prop_assert!(!in_flight, "second flight while one is outstanding");
                                prop_assert_eq!(f.sent_at, now);
                                outstanding = Some(f);
                                issued += 1;
                            }
                            Poll::Fetch(f) => {
                                prop_assert!(!in_flight, "second flight while one is outstanding");
                                outstanding = Some(f);
                                issued += 1;
                            }
                            Poll::Wait(id) => {
                                prop_assert_eq!(Some(id), outstanding.map(|f| f.id));
                            }
                            Poll::Fail(e) => {
                                prop_assert!(!in_flight);
                                prop_assert!(e.retry_after_ms.is_some_and(|ms| ms > 0));
                                if !force {
                                    let valid = c.status(now).expires_at.is_some_and(|e| now < e);
                                    prop_assert!(!valid, "failed a caller while a valid token exists");
                                }
                            }
                        }
                    }
                }
                Op::Complete { pick, outcome } => {
                    let stale = pick % 4 == 0 && !done.is_empty();
                    let id = match (stale, outstanding) {
                        (false, Some(f)) => f.id,
                        _ if !done.is_empty() => done[usize::from(pick) % done.len()],
                        _ => FlightId(u64::from(pick) + 1_000),
                    };
                    let before = c.status(now);
                    let result = match outcome {
                        Outcome::Token { expires_in_s, jwt_offset_s } => {
                            names += 1;
                            Ok(TokenResponse {
                                access_token: Secret::new(["tok-", &names.to_string()].concat()),
                                scope: None,
                                expires_in_ms: expires_in_s.map(|s| u64::from(s) * S),
                                jwt_exp_ms: jwt_offset_s
                                    .map(|s| now.saturating_add_signed(i64::from(s) * 1_000)),
                            })
                        }
                        Outcome::Failure { invalid_client, retry_after_s } => {
                            let code = if invalid_client { ErrorCode::InvalidClient } else { ErrorCode::ServerError };
                            Err(failure(code).with_retry_after(retry_after_s.map(|s| u64::from(s) * S)))
                        }
                    };
                    let was_error = result.is_err();
                    let got = c.complete(id, now, result);
                    if outstanding.is_some_and(|f| f.id == id) {
                        outstanding = None;
                        done.push(id);
                        if was_error {
                            if let Ok(t) = &got {
                                prop_assert!(now < t.expires_at, "failed flight handed an expired token");
                            }
                        }
                    } else {
                        // A stale completion changes nothing.
                        prop_assert_eq!(c.status(now), before);
                    }
                }
                Op::Advance(ms) => now = now.saturating_add(u64::from(ms)),
                Op::JumpBack(ms) => now = now.saturating_sub(u64::from(ms)),
                Op::Invalidate(k) => {
                    let name = ["tok-", &(u64::from(k) % (names + 1)).to_string()].concat();
                    if k % 3 == 0 { c.invalidate(None); } else { c.invalidate(Some(&name)); }
                }
                Op::Timer => {
                    if let Some(at) = c.next_wakeup(now) {
                        prop_assert!(at >= now);
                        prop_assert!(outstanding.is_none(), "timer armed while in flight");
                        now = at;
                    }
                }
            }
            let status = c.status(now);
            prop_assert_eq!(status.token_requests, issued);
            prop_assert_eq!(status.state == CacheState::Refreshing, outstanding.is_some());
        }
    }
}

/// `serve_until` promises that plain polls before it answer `Ready` with the same token and
/// change nothing; checked here on every millisecond-scale step of a token's life, cold and in
/// flight, backing off and halted.
fn assert_serve_until_holds(c: &TokenCache, now: Millis) {
    let Some(until) = c.serve_until(now) else {
        return;
    };
    assert!(until > now);
    for t in [now, now + (until - now) / 2, until - 1] {
        let mut probe = c.clone();
        let before = probe.status(t);
        let Poll::Ready(tok) = probe.poll(t, false) else {
            panic!("serve_until({now}) = {until} but poll({t}) was not Ready");
        };
        assert_eq!(probe.status(t), before, "poll({t}) changed the cache");
        assert!(t < tok.expires_at);
    }
}

#[test]
fn serve_until_is_a_promise_the_poll_keeps() {
    let mut c = cache();
    assert_eq!(c.serve_until(T0), None, "cold");
    let flight = fetch(&mut c, T0);
    assert_eq!(c.serve_until(T0), None, "in flight, no token");
    c.complete(flight.id, T0 + 100, Ok(answer("tok-1", 300)))
        .unwrap();
    let s = c.serve_until(T0 + 100).unwrap();
    assert!(s <= T0 + 225_000, "never past the refresh point");
    for step in (0..300_000).step_by(7_919) {
        assert_serve_until_holds(&c, T0 + 100 + step);
    }
    // In the refresh-ahead window a poll starts a refresh: not a plain Ready.
    let (_, bg) = refresh(c.poll(T0 + 226_000, false));
    let during = c.serve_until(T0 + 226_000).unwrap();
    assert_eq!(
        during,
        T0 + 270_000,
        "served until the wait point while the refresh runs"
    );
    assert_serve_until_holds(&c, T0 + 226_000);
    // The refresh fails while the token is valid: served until the backoff ends, at most.
    c.complete(
        bg.id,
        T0 + 226_100,
        Err(failure(ErrorCode::TokenEndpointError)),
    )
    .unwrap();
    let backing_off = c.serve_until(T0 + 226_100).unwrap();
    assert!(backing_off > T0 + 226_100 && backing_off <= T0 + 270_000);
    assert_serve_until_holds(&c, T0 + 226_100);
    // A clock that went backwards must come to the cache.
    let _ = c.poll(T0 + 230_000, false);
    assert_eq!(c.serve_until(T0 + 229_000), None);
    // invalidate drops the promise.
    assert!(c.invalidate(None));
    assert_eq!(c.serve_until(T0 + 230_000), None);
}

#[test]
fn serve_until_after_invalid_client_is_the_wait_point() {
    let mut c = cache();
    warm(&mut c, T0, "tok-1", 300);
    let (_, bg) = refresh(c.poll(T0 + 226_000, false));
    c.complete(bg.id, T0 + 226_100, Err(failure(ErrorCode::InvalidClient)))
        .unwrap();
    assert_eq!(c.serve_until(T0 + 226_100), Some(T0 + 270_000));
    assert_serve_until_holds(&c, T0 + 226_100);
}

fn stored(token: &str, expires_at: Millis) -> CachedToken {
    CachedToken {
        access_token: Secret::new(token),
        scope: None,
        expires_at,
        acquired_at: T0,
    }
}

#[test]
fn an_adopted_token_gets_the_schedule_of_its_own_issue_time() {
    let mut c = cache();
    let flight = fetch(&mut c, T0 + 100 * S);
    // Issued at T0 elsewhere, 300 s: refresh at 225 s, wait from 270 s, as if fetched here.
    let token = stored("tok-elsewhere", T0 + 300 * S);
    assert!(c.adopt(flight.id, T0 + 100 * S, &token, T0));
    assert_eq!(c.poll(T0 + 200 * S, false), Poll::Ready(token.clone()));
    assert_eq!(c.next_wakeup(T0 + 200 * S), Some(T0 + 225 * S));
    let (served, _) = refresh(c.poll(T0 + 225 * S, false));
    assert_eq!(served, token);
    assert_eq!(c.status(T0 + 225 * S).consecutive_failures, 0);
}

#[test]
fn adopt_refuses_a_token_at_its_wait_point_and_a_flight_not_in_flight() {
    let mut c = cache();
    let flight = fetch(&mut c, T0 + 280 * S);
    // Issued at T0, 300 s: its wait point (270 s) is past.
    assert!(!c.adopt(flight.id, T0 + 280 * S, &stored("old", T0 + 300 * S), T0));
    assert_eq!(c.poll(T0 + 280 * S, false), Poll::Wait(flight.id));
    let other = FlightId::from_u64(flight.id.as_u64() + 1);
    let fresh = stored("fresh", T0 + 600 * S);
    assert!(!c.adopt(other, T0 + 280 * S, &fresh, T0 + 280 * S));
    assert_eq!(c.poll(T0 + 280 * S, false), Poll::Wait(flight.id));
    assert!(c.adopt(flight.id, T0 + 280 * S, &fresh, T0 + 280 * S));
    assert_eq!(c.poll(T0 + 281 * S, false), Poll::Ready(fresh));
}

#[test]
fn adopting_ends_a_backoff() {
    let mut c = cache();
    let first = fetch(&mut c, T0);
    c.complete(
        first.id,
        T0 + 100,
        Err(failure(ErrorCode::TokenEndpointError)),
    )
    .unwrap_err();
    let second = fetch(&mut c, T0 + 2 * S);
    c.complete(
        second.id,
        T0 + 2 * S,
        Err(failure(ErrorCode::TokenEndpointError)),
    )
    .unwrap_err();
    let _ = fail(c.poll(T0 + 2 * S + 1, false));
    // Backing off, no flight: a flight is needed to adopt into, so nothing is taken.
    let none = FlightId::from_u64(99);
    assert!(!c.adopt(none, T0 + 3 * S, &stored("s", T0 + 300 * S), T0 + 3 * S));
    let retry = c.status(T0 + 3 * S).retry_at.expect("backing off");
    let third = fetch(&mut c, retry);
    assert!(c.adopt(third.id, retry, &stored("s", retry + 300 * S), retry));
    assert_eq!(c.status(retry).consecutive_failures, 0);
    assert_eq!(c.status(retry).retry_at, None);
}
