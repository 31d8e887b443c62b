use super::*;
use proptest::prelude::*;

/// Tue, 14 Nov 2023 22:13:20 GMT.
const T0: Millis = 1_700_000_000_000;
/// How long each simulated request takes, from send to answer.
const LATENCY_MS: u64 = 40;
/// Far more steps than any call may take: a run that reaches it never ended.
const STEP_LIMIT: usize = 100;

/// One simulated call, driven exactly as the edge drives it: send with the cache's token, feed
/// the answer to the machine, do what it says. The clock only moves by request latency and by
/// the waits the machine asks for.
#[derive(Debug, Default, PartialEq, Eq)]
struct Run {
    /// What the machine answered, one per request.
    steps: Vec<Next>,
    /// (when it was sent, which token it carried) per request.
    sent: Vec<(Millis, u32)>,
    /// When the call ended.
    ended_at: Millis,
    /// How many tokens were dropped (each `Refresh`).
    dropped: u32,
}

/// Drives `rules` against a server that answers `answers` in turn (status, `Retry-After`), then
/// 200 once they run out.
fn simulate(rules: RetryRules, answers: &[(u16, Option<&str>)]) -> Run {
    let mut retry = ApiRetry::new(rules);
    let mut run = Run::default();
    let mut now = T0;
    let mut token = 1;
    for i in 0..STEP_LIMIT {
        run.sent.push((now, token));
        now += LATENCY_MS;
        let (status, header) = answers.get(i).copied().unwrap_or((200, None));
        let next = retry.answer(status, header, now);
        run.steps.push(next);
        match next {
            Next::Done | Next::GiveUp => {
                run.ended_at = now;
                return run;
            }
            Next::Refresh => {
                run.dropped += 1;
                token += 1;
            }
            Next::Wait(ms) => now += ms,
        }
    }
    panic!("no end after {STEP_LIMIT} requests: {run:?}");
}

fn balance(answers: &[(u16, Option<&str>)]) -> Run {
    simulate(RetryRules::BALANCE, answers)
}

// ---- getBalance's rules ----

#[test]
fn a_2xx_is_done_at_once() {
    for status in [200, 201, 204, 299] {
        let run = balance(&[(status, None)]);
        assert_eq!(run.steps, [Next::Done], "{status}");
        assert_eq!(run.sent, [(T0, 1)]);
    }
}

#[test]
fn a_401_gets_one_new_token_and_one_retry() {
    let run = balance(&[(401, None)]);
    assert_eq!(run.steps, [Next::Refresh, Next::Done]);
    assert_eq!(
        run.sent,
        [(T0, 1), (T0 + LATENCY_MS, 2)],
        "no wait, a new token"
    );
    assert_eq!(run.dropped, 1);
}

#[test]
fn a_second_401_gives_up_after_one_refresh_only() {
    let run = balance(&[(401, None), (401, None), (401, None)]);
    assert_eq!(run.steps, [Next::Refresh, Next::GiveUp]);
    assert_eq!(run.dropped, 1);
}

#[test]
fn a_401_never_waits_even_with_retry_after() {
    let run = balance(&[(401, Some("5"))]);
    assert_eq!(run.steps, [Next::Refresh, Next::Done]);
    assert_eq!(run.ended_at, T0 + 2 * LATENCY_MS);
}

#[test]
fn a_429_or_503_with_retry_after_in_seconds_waits_that_long() {
    for status in [429, 503] {
        let run = balance(&[(status, Some("0"))]);
        assert_eq!(run.steps, [Next::Wait(0), Next::Done], "{status}");
        let run = balance(&[(status, Some(" 3 "))]);
        assert_eq!(run.steps, [Next::Wait(3_000), Next::Done], "{status}");
        assert_eq!(run.sent, [(T0, 1), (T0 + LATENCY_MS + 3_000, 1)]);
    }
}

#[test]
fn retry_after_as_an_http_date_counts_from_when_the_answer_arrived() {
    // Three seconds after T0, in each of the three forms; the answer arrives at T0 + latency.
    for date in [
        "Tue, 14 Nov 2023 22:13:23 GMT",
        "Tuesday, 14-Nov-23 22:13:23 GMT",
        "Tue Nov 14 22:13:23 2023",
    ] {
        let run = balance(&[(429, Some(date))]);
        assert_eq!(
            run.steps,
            [Next::Wait(3_000 - LATENCY_MS), Next::Done],
            "{date}"
        );
    }
    // A date already past: retry at once.
    let run = balance(&[(503, Some("Tue, 14 Nov 2023 22:12:00 GMT"))]);
    assert_eq!(run.steps, [Next::Wait(0), Next::Done]);
}

#[test]
fn without_a_readable_retry_after_the_wait_doubles_from_the_base() {
    for header in [None, Some(""), Some("soon"), Some("-1"), Some("1.5")] {
        let run = balance(&[(429, header), (503, header), (429, header)]);
        assert_eq!(
            run.steps,
            [
                Next::Wait(RETRY_BASE_MS),
                Next::Wait(2 * RETRY_BASE_MS),
                Next::GiveUp
            ],
            "{header:?}"
        );
    }
}

#[test]
fn retries_are_exhausted_after_max_retries() {
    for status in [429, 503] {
        let run = balance(&[(status, Some("0")); 20]);
        let mut expected = vec![Next::Wait(0); MAX_RETRIES as usize];
        expected.push(Next::GiveUp);
        assert_eq!(run.steps, expected, "{status}");
        assert_eq!(run.sent.len(), 1 + MAX_RETRIES as usize);
    }
}

#[test]
fn a_wait_over_the_cap_is_not_waited_for() {
    // At the cap exactly: waited.
    let run = balance(&[(429, Some("10"))]);
    assert_eq!(run.steps, [Next::Wait(MAX_RETRY_WAIT_MS), Next::Done]);
    // Past it, in seconds or as a date an hour ahead: given up at once, nothing sent again.
    for header in [
        "11",
        "120",
        "99999999999999999999",
        "Tue, 14 Nov 2023 23:13:20 GMT",
    ] {
        let run = balance(&[(429, Some(header))]);
        assert_eq!(run.steps, [Next::GiveUp], "{header}");
        assert_eq!(run.ended_at, T0 + LATENCY_MS);
    }
    // Over the cap on the second retry, after a first one that was waited.
    let run = balance(&[(503, Some("1")), (503, Some("60"))]);
    assert_eq!(run.steps, [Next::Wait(1_000), Next::GiveUp]);
}

#[test]
fn the_refresh_and_the_retries_are_spent_separately() {
    // A 401 after the retries, and retries after the 401: at most 2 + MAX_RETRIES requests.
    let run = balance(&[
        (429, Some("0")),
        (503, Some("0")),
        (401, None),
        (429, Some("0")),
    ]);
    assert_eq!(
        run.steps,
        [Next::Wait(0), Next::Wait(0), Next::Refresh, Next::GiveUp]
    );
    let run = balance(&[(401, None), (429, None), (429, None), (401, None)]);
    assert_eq!(
        run.steps,
        [
            Next::Refresh,
            Next::Wait(RETRY_BASE_MS),
            Next::Wait(2 * RETRY_BASE_MS),
            Next::GiveUp
        ]
    );
    assert_eq!(run.sent.last(), Some(&(T0 + 3 * LATENCY_MS + 750, 2)));
}

#[test]
fn every_other_status_gives_up_at_once_whatever_its_retry_after() {
    for status in [
        0, 100, 199, 300, 302, 304, 400, 403, 404, 409, 422, 500, 502, 504, 599, 999,
    ] {
        for header in [None, Some("0")] {
            let run = balance(&[(status, header)]);
            assert_eq!(run.steps, [Next::GiveUp], "{status} {header:?}");
        }
    }
}

// ---- the authorized fetch's rules ----

#[test]
fn fetch_refreshes_once_after_a_401_for_idempotent_replayable_requests() {
    for method in ["GET", "HEAD", "OPTIONS", "PUT", "DELETE"] {
        let rules = RetryRules::fetch(method, true);
        let run = simulate(rules, &[(401, None)]);
        assert_eq!(run.steps, [Next::Refresh, Next::Done], "{method}");
        let run = simulate(rules, &[(401, None), (401, None)]);
        assert_eq!(run.steps, [Next::Refresh, Next::GiveUp], "{method}");
    }
}

#[test]
fn fetch_never_sends_a_non_idempotent_method_again() {
    for method in ["POST", "PATCH", "CONNECT", "TRACE", "QUERY", "get", ""] {
        let run = simulate(RetryRules::fetch(method, true), &[(401, None)]);
        assert_eq!(run.steps, [Next::GiveUp], "{method:?}");
    }
}

#[test]
fn fetch_never_sends_a_body_that_cannot_be_replayed_again() {
    for method in ["GET", "PUT", "DELETE"] {
        let run = simulate(RetryRules::fetch(method, false), &[(401, None)]);
        assert_eq!(run.steps, [Next::GiveUp], "{method}");
    }
}

#[test]
fn fetch_hands_back_429_and_503_without_waiting() {
    for status in [429, 503] {
        for header in [None, Some("0")] {
            let run = simulate(RetryRules::fetch("GET", true), &[(status, header)]);
            assert_eq!(run.steps, [Next::GiveUp], "{status} {header:?}");
        }
    }
}

#[test]
fn the_default_backoff_saturates_instead_of_overflowing() {
    let rules = RetryRules {
        refresh_on_401: false,
        max_retries: u32::MAX,
    };
    let mut expected: Vec<Next> = (0..6).map(|i| Next::Wait(RETRY_BASE_MS << i)).collect();
    expected.push(Next::GiveUp); // 16 s: over the cap
    assert_eq!(simulate(rules, &[(503, None); 20]).steps, expected);
    for retries in [6, 63, 64, 65, u32::MAX] {
        assert!(backoff_ms(retries) > MAX_RETRY_WAIT_MS, "{retries}");
    }
}

// ---- every run ends, within bounds ----

fn header() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        (0..15u64).prop_map(|s| Some(s.to_string())),
        any::<u64>().prop_map(|s| Some(s.to_string())),
        // Dates from 22:12:00 to 22:15:59 around T0 (22:13:20), so past, near and over the cap.
        (12..16u32, 0..60u32)
            .prop_map(|(m, s)| Some(format!("Tue, 14 Nov 2023 22:{m:02}:{s:02} GMT"))),
        "[ -~]{0,12}".prop_map(Some),
    ]
}

fn status() -> impl Strategy<Value = u16> {
    prop_oneof![
        3 => prop::sample::select(vec![200u16, 204, 401, 403, 404, 429, 500, 503]),
        1 => any::<u16>(),
    ]
}

proptest! {
    #[test]
    fn every_call_ends_within_its_bound_and_never_waits_past_the_cap(
        refresh_on_401 in any::<bool>(),
        max_retries in 0..12u32,
        answers in prop::collection::vec((status(), header(), 0..30_000u64), 0..40),
    ) {
        let rules = RetryRules { refresh_on_401, max_retries };
        let mut retry = ApiRetry::new(rules);
        let mut now = T0;
        let (mut refreshes, mut waits) = (0u32, 0u32);
        let mut ended = false;
        for (step, (status, header, latency)) in answers.iter().chain(core::iter::repeat(&(200, None, 0))).enumerate() {
            prop_assert!(step < 2 + max_retries as usize, "request {} of a call", step + 1);
            now += latency;
            let next = retry.answer(*status, header.as_deref(), now);
            prop_assert_eq!(next == Next::Done, (200..300).contains(status));
            match next {
                Next::Done | Next::GiveUp => {
                    ended = true;
                    break;
                }
                Next::Refresh => {
                    prop_assert!(refresh_on_401 && *status == 401);
                    refreshes += 1;
                }
                Next::Wait(ms) => {
                    prop_assert!(*status == 429 || *status == 503);
                    prop_assert!(ms <= MAX_RETRY_WAIT_MS, "asked to wait {} ms", ms);
                    waits += 1;
                    now += ms;
                }
            }
        }
        prop_assert!(ended);
        prop_assert!(refreshes <= 1);
        prop_assert!(waits <= max_retries);
    }
}
