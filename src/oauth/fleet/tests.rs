//! A simulated fleet: many [`Fleet`] instances sharing a model store (entry, lease with TTL,
//! compare-and-delete) and a model token endpoint that counts requests, in simulated time, with
//! a step limit so every run ends.

use super::*;
use crate::oauth::policy::RefreshPolicy;
use proptest::prelude::*;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

const S: u64 = 1_000;
const T0: Millis = 1_700_000_000_000;
const LIFETIME: u64 = 300 * S;
const STEP_LIMIT: usize = 500_000;

/// How the model store behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Healthy,
    /// Every operation fails at once.
    Down,
    /// Every answer comes after three store timeouts.
    Slow,
    /// Reads answer an unreadable entry whenever there is one.
    Garbage,
    /// No leases.
    NoLease,
    /// Lease requests answer after three store timeouts; the rest is healthy.
    SlowLease,
    /// Writes fail; the rest is healthy.
    ReadOnly,
}

#[derive(Clone, Debug)]
enum Delivery {
    Call,
    Unauthorized(String),
    Wake,
    StoreOp(Action),
    Token(FlightId, u64),
}

struct Instance {
    fleet: Fleet,
    alive: bool,
    /// Callers waiting, per flight: when each called.
    waiting: BTreeMap<FlightId, Vec<Millis>>,
    wake_at: Option<Millis>,
}

#[derive(Default)]
struct Store {
    entry: Option<StoredToken>,
    lease: Option<(u64, Millis)>,
    ops: u64,
    deletes: u64,
}

struct Sim {
    now: Millis,
    mode: Mode,
    /// Per-operation failure chance in ‰ (proptest), on top of `mode`.
    store_fail_permille: u64,
    rng: SplitMix64,
    store: Store,
    store_latency: u64,
    endpoint_latency: u64,
    endpoint_requests: u64,
    /// When each token request was sent.
    request_times: Vec<Millis>,
    /// The `expires_in` of every token.
    lifetime: u64,
    /// The first token request fails (HTTP 503).
    fail_first_request: bool,
    /// Kill the instance that sends the first token request, right after it sends it.
    kill_first_fetcher: bool,
    instances: Vec<Instance>,
    queue: BinaryHeap<Reverse<(Millis, u64, usize)>>,
    deliveries: BTreeMap<u64, Delivery>,
    seq: u64,
    /// Every action and status seen, as `Debug` text (to check that none shows a token).
    seen: Vec<String>,
    events: Vec<(usize, Event)>,
    served: Vec<(usize, Source, String)>,
    failures: u64,
    max_wait: u64,
    steps: usize,
}

fn fleet_policy() -> FleetPolicy {
    FleetPolicy::default()
}

impl Sim {
    fn new(n: usize, mode: Mode, seed: u64) -> Self {
        let instances = (0..n)
            .map(|i| {
                let i = i as u64;
                let cache = TokenCache::new(RefreshPolicy::default(), seed ^ (i * 7919));
                Instance {
                    fleet: Fleet::new(cache, fleet_policy(), 1000 + i, seed.wrapping_add(i)),
                    alive: true,
                    waiting: BTreeMap::new(),
                    wake_at: None,
                }
            })
            .collect();
        Sim {
            now: T0,
            mode,
            store_fail_permille: 0,
            rng: SplitMix64::new(seed),
            store: Store::default(),
            store_latency: 5,
            endpoint_latency: 200,
            endpoint_requests: 0,
            request_times: Vec::new(),
            lifetime: LIFETIME,
            fail_first_request: false,
            kill_first_fetcher: false,
            instances,
            queue: BinaryHeap::new(),
            deliveries: BTreeMap::new(),
            seq: 0,
            seen: Vec::new(),
            events: Vec::new(),
            served: Vec::new(),
            failures: 0,
            max_wait: 0,
            steps: 0,
        }
    }

    fn at(&mut self, t: Millis, inst: usize, what: Delivery) {
        self.seq += 1;
        self.deliveries.insert(self.seq, what);
        self.queue.push(Reverse((t, self.seq, inst)));
    }

    fn calls(&mut self, t: Millis, inst: usize, n: usize) {
        for _ in 0..n {
            self.at(t, inst, Delivery::Call);
        }
    }

    /// Runs every delivery up to `until` (inclusive).
    fn run(&mut self, until: Millis) {
        while let Some(&Reverse((t, seq, inst))) = self.queue.peek() {
            if t > until {
                break;
            }
            self.queue.pop();
            self.steps += 1;
            assert!(self.steps < STEP_LIMIT, "step limit reached at {t}");
            self.now = t;
            let Some(what) = self.deliveries.remove(&seq) else {
                continue;
            };
            if self.instances[inst].alive {
                self.deliver(inst, what);
            }
        }
        self.now = until;
    }

    fn deliver(&mut self, inst: usize, what: Delivery) {
        let now = self.now;
        let fleet = &mut self.instances[inst].fleet;
        match what {
            Delivery::Call => {
                let answer = fleet.get_token(now, false);
                self.take_answer(inst, answer);
            }
            Delivery::Unauthorized(token) => {
                let answer = fleet.after_unauthorized(now, &token);
                self.take_answer(inst, answer);
            }
            Delivery::Wake => fleet.wake(now),
            Delivery::StoreOp(action) => self.store_op(inst, action),
            Delivery::Token(flight, n) => {
                let mut token = String::from("tok-");
                token.push_str(&n.to_string());
                let answer = TokenResponse {
                    access_token: Secret::new(token),
                    scope: None,
                    expires_in_ms: Some(self.lifetime),
                    jwt_exp_ms: None,
                };
                let result = if n == 1 && self.fail_first_request {
                    Err(
                        Error::new(crate::oauth::ErrorCode::TokenEndpointError, "503")
                            .with_status(503),
                    )
                } else {
                    Ok(answer)
                };
                let _ = fleet.token_answer(flight, now, result);
            }
        }
        self.drain(inst);
    }

    fn take_answer(&mut self, inst: usize, answer: Answer) {
        self.seen.push(format!("{answer:?}"));
        match answer {
            Answer::Ready(served) => self.served.push((
                inst,
                served.source,
                served.token.access_token.expose().into(),
            )),
            Answer::Wait(flight) => self.instances[inst]
                .waiting
                .entry(flight)
                .or_default()
                .push(self.now),
            Answer::Fail(_) => self.failures += 1,
        }
    }

    fn drain(&mut self, inst: usize) {
        while let Some(action) = self.instances[inst].fleet.poll_action() {
            self.seen.push(format!("{action:?}"));
            match action {
                Action::Resolve { flight, result } => {
                    let callers = self.instances[inst]
                        .waiting
                        .remove(&flight)
                        .unwrap_or_default();
                    for called in callers {
                        self.max_wait = self.max_wait.max(self.now - called);
                        match &result {
                            Ok(served) => self.served.push((
                                inst,
                                served.source,
                                served.token.access_token.expose().into(),
                            )),
                            Err(_) => self.failures += 1,
                        }
                    }
                }
                Action::Event(event) => self.events.push((inst, event)),
                Action::FetchToken { flight } => {
                    self.endpoint_requests += 1;
                    self.request_times.push(self.now);
                    let t = self.now + self.endpoint_latency;
                    self.at(t, inst, Delivery::Token(flight, self.endpoint_requests));
                    if self.kill_first_fetcher {
                        self.kill_first_fetcher = false;
                        self.instances[inst].alive = false;
                        return;
                    }
                }
                store => {
                    let slow = self.mode == Mode::Slow
                        || (self.mode == Mode::SlowLease
                            && matches!(store, Action::TryLease { .. }));
                    let latency = if slow {
                        3 * fleet_policy().store_timeout_ms
                    } else {
                        self.store_latency
                    };
                    self.at(self.now + latency, inst, Delivery::StoreOp(store));
                }
            }
        }
        let status = self.instances[inst].fleet.status(self.now);
        self.seen.push(format!("{status:?}"));
        let next = self.instances[inst].fleet.next_wakeup(self.now);
        if next.is_some() && next != self.instances[inst].wake_at {
            self.instances[inst].wake_at = next;
            if let Some(t) = next {
                self.at(t, inst, Delivery::Wake);
            }
        }
    }

    /// Applies one store operation to the model when its answer arrives, and feeds the answer.
    fn store_op(&mut self, inst: usize, action: Action) {
        let now = self.now;
        self.store.ops += 1;
        let fails = self.mode == Mode::Down
            || (self.mode == Mode::ReadOnly && matches!(action, Action::WriteStore { .. }))
            || (self.store_fail_permille > 0
                && self.rng.next_u64() % 1000 < self.store_fail_permille);
        let fleet = &mut self.instances[inst].fleet;
        match action {
            Action::ReadStore { ticket } => {
                let read = if fails {
                    StoreRead::Failed(StoreFailure::Error)
                } else {
                    match (&self.store.entry, self.mode) {
                        (None, _) => StoreRead::NotFound,
                        (Some(_), Mode::Garbage) => StoreRead::Garbage,
                        (Some(e), _) => StoreRead::Found(e.clone()),
                    }
                };
                fleet.store_read(ticket, now, read);
            }
            Action::TryLease {
                ticket,
                owner,
                ttl_ms,
            } => {
                let answer = if fails {
                    LeaseAnswer::Failed(StoreFailure::Error)
                } else if self.mode == Mode::NoLease {
                    LeaseAnswer::Unsupported
                } else if self.store.lease.is_some_and(|(_, until)| now < until) {
                    LeaseAnswer::HeldByOther
                } else {
                    self.store.lease = Some((owner, now + ttl_ms));
                    LeaseAnswer::Acquired
                };
                fleet.lease_answer(ticket, now, answer);
            }
            Action::WriteStore { entry } if !fails => self.store.entry = Some(entry),
            Action::ReleaseLease { owner } if !fails => {
                if self.store.lease.is_some_and(|(o, _)| o == owner) {
                    self.store.lease = None;
                }
            }
            Action::DeleteIfStamp { stamp } if !fails => {
                if self.store.entry.as_ref().is_some_and(|e| e.stamp == stamp) {
                    self.store.entry = None;
                    self.store.deletes += 1;
                }
            }
            _ => fleet.store_failed(StoreFailure::Error),
        }
    }

    fn waiting(&self) -> usize {
        self.instances
            .iter()
            .filter(|i| i.alive)
            .map(|i| i.waiting.values().map(Vec::len).sum::<usize>())
            .sum()
    }

    fn count_events(&self, want: impl Fn(&Event) -> bool) -> usize {
        self.events.iter().filter(|(_, e)| want(e)).count()
    }

    fn sources(&self, source: Source) -> usize {
        self.served.iter().filter(|(_, s, _)| *s == source).count()
    }

    /// Every caller got a token, none failed, nobody is left waiting.
    fn assert_everyone_served(&self, callers: usize) {
        assert_eq!(self.failures, 0, "failed callers");
        assert_eq!(self.waiting(), 0, "callers left waiting");
        assert_eq!(self.served.len(), callers, "callers served");
    }

    fn assert_no_token_shown(&self) {
        for text in &self.seen {
            assert!(!text.contains("tok-"), "a token in {text}");
        }
    }
}

/// `n` instances × `m` cold calls each, within the first 10 ms.
fn cold_start(n: usize, m: usize, mode: Mode, seed: u64) -> Sim {
    let mut sim = Sim::new(n, mode, seed);
    for i in 0..n {
        let offset = sim.rng.next_u64() % 10;
        sim.calls(T0 + offset, i, m);
    }
    sim.run(T0 + 60 * S);
    sim
}

#[test]
fn many_instances_many_cold_calls_make_exactly_one_token_request() {
    for seed in 0..20 {
        let sim = cold_start(20, 10, Mode::Healthy, seed);
        assert_eq!(sim.endpoint_requests, 1, "seed {seed}");
        sim.assert_everyone_served(200);
        // Ten callers of the one instance that fetched; everyone else's came from the store.
        assert_eq!(sim.sources(Source::Endpoint), 10);
        assert_eq!(sim.sources(Source::Store), 190);
        assert!(sim.served.iter().all(|(_, _, t)| t == "tok-1"));
        // A waiter may take the lease the holder just released; it reads the store again first.
        assert!(sim.count_events(|e| *e == Event::LeaseTaken) >= 1);
        sim.assert_no_token_shown();
    }
}

#[test]
fn a_new_instance_answers_its_first_call_from_the_store_without_a_token_request() {
    let mut sim = cold_start(2, 1, Mode::Healthy, 3);
    sim.instances.push({
        let cache = TokenCache::new(RefreshPolicy::default(), 99);
        Instance {
            fleet: Fleet::new(cache, fleet_policy(), 77, 77),
            alive: true,
            waiting: BTreeMap::new(),
            wake_at: None,
        }
    });
    let t = sim.now + S;
    for k in 0..3 {
        sim.calls(t + k * S, 2, 1);
    }
    sim.run(t + 10 * S);
    assert_eq!(sim.endpoint_requests, 1);
    sim.assert_everyone_served(5);
    let newcomer: Vec<_> = sim.served.iter().filter(|(i, _, _)| *i == 2).collect();
    // First call from the store (one read), the next two from memory.
    assert_eq!(newcomer.len(), 3);
    assert_eq!(newcomer[0].1, Source::Store);
    assert_eq!(newcomer[1].1, Source::Memory);
    let status = sim.instances[2].fleet.status(sim.now);
    assert_eq!(status.token_source, Some(Source::Store));
    assert_eq!((status.endpoint_requests, status.store_tokens), (0, 1));
    assert_eq!(status.leases_taken, 0);
}

#[test]
fn inside_the_refresh_window_one_instance_refreshes_and_the_others_keep_serving() {
    let n = 10;
    let mut sim = cold_start(n, 1, Mode::Healthy, 11);
    // Every instance gets a call every second for 400 s: one refresh falls in (at about 222 s).
    for k in 1..400 {
        for i in 0..n {
            sim.calls(T0 + k * S + i as u64, i, 1);
        }
    }
    sim.run(T0 + 400 * S);
    assert_eq!(sim.endpoint_requests, 2);
    sim.assert_everyone_served(n * 400);
    // Nobody waited after the cold start: the refresh happened while the old token was served.
    assert!(sim.max_wait < S, "someone waited {} ms", sim.max_wait);
    let after_start = sim.served.iter().skip(n);
    assert!(after_start.clone().all(|(_, s, _)| *s == Source::Memory));
    let fresh = sim
        .events
        .iter()
        .filter(|(_, e)| matches!(e, Event::TokenObtained { .. }))
        .count();
    // Twice per instance: at the start and after the refresh (once from the endpoint each time).
    assert_eq!(fresh, 2 * n);
    assert_eq!(sim.count_events(|e| *e == Event::LeaseTaken), 2);
    let refreshed: Vec<_> = sim.served.iter().filter(|(_, _, t)| t == "tok-2").collect();
    assert!(
        refreshed.len() > n * 100,
        "the new token is in use everywhere"
    );
    sim.assert_no_token_shown();
}

#[test]
fn an_instance_that_takes_the_lease_just_after_the_holder_released_it_reads_the_store_again() {
    // A: read at +5, lease at +10, read again at +15, token at +215, write and release at +220.
    // B: calls at +212, reads at +217 (nothing yet), takes the free lease at +222.
    let mut sim = Sim::new(2, Mode::Healthy, 1);
    sim.calls(T0, 0, 1);
    sim.calls(T0 + 212, 1, 1);
    sim.run(T0 + 10 * S);
    assert_eq!(sim.count_events(|e| *e == Event::LeaseTaken), 2);
    assert_eq!(sim.endpoint_requests, 1);
    sim.assert_everyone_served(2);
    assert_eq!(sim.served[1].1, Source::Store);
}

#[test]
fn a_lease_holder_that_dies_delays_the_others_by_at_most_the_lease_ttl() {
    for seed in 0..10 {
        let mut sim = Sim::new(8, Mode::Healthy, seed);
        sim.kill_first_fetcher = true;
        for i in 0..8 {
            sim.calls(T0 + i as u64, i, 3);
        }
        sim.run(T0 + 120 * S);
        // The dead holder's request and the one after its lease ran out.
        assert_eq!(sim.endpoint_requests, 2, "seed {seed}");
        assert_eq!(sim.failures, 0);
        assert_eq!(sim.waiting(), 0);
        assert_eq!(sim.served.len(), 7 * 3);
        let ttl = fleet_policy().lease_ttl_ms;
        // The wait, then the new holder's round trip R (lease, read, token, write), then one
        // pause between store reads: a pause is at most three times the one before, which
        // began after the lease was found held, so the token waits at most about 3 R for it.
        let round_trip = sim.endpoint_latency + 4 * sim.store_latency;
        let bound = ttl + 4 * round_trip + fleet_policy().store_poll_base_ms;
        assert!(sim.max_wait <= bound, "waited {} > {bound}", sim.max_wait);
        assert!(
            sim.max_wait >= ttl - 10,
            "the others did wait for the holder"
        );
    }
}

#[test]
fn when_the_holder_s_request_fails_the_next_waiter_takes_the_lease_at_its_next_poll() {
    let mut sim = Sim::new(6, Mode::Healthy, 9);
    sim.fail_first_request = true;
    for i in 0..6 {
        sim.calls(T0 + i as u64, i, 2);
    }
    sim.run(T0 + 60 * S);
    assert_eq!(sim.endpoint_requests, 2);
    // The holder's own two callers get its error (a first failure is not retried for them).
    assert_eq!(sim.failures, 2);
    assert_eq!(sim.waiting(), 0);
    assert_eq!(sim.served.len(), 10);
    assert!(sim.max_wait < 2 * S, "waited {} ms", sim.max_wait);
}

#[test]
fn a_token_already_inside_its_margin_is_handed_over_but_never_shared() {
    // 1 s tokens, answered after 950 ms: past their wait point (900 ms) on arrival.
    let mut sim = Sim::new(1, Mode::Healthy, 4);
    sim.lifetime = S;
    sim.endpoint_latency = 950;
    sim.calls(T0, 0, 2);
    sim.run(T0 + 2 * S);
    sim.assert_everyone_served(2);
    assert!(sim.served.iter().all(|(_, s, _)| *s == Source::Endpoint));
    assert!(sim.store.entry.is_none(), "written to the store");
    assert_eq!(
        sim.count_events(|e| matches!(e, Event::TokenObtained { .. })),
        0
    );
}

#[test]
fn a_401_storm_makes_one_new_token_request_and_deletes_only_the_rejected_entry() {
    let n = 12;
    let mut sim = cold_start(n, 1, Mode::Healthy, 5);
    assert_eq!(sim.endpoint_requests, 1);
    let t = sim.now;
    for i in 0..n {
        for k in 0..2 {
            let at = t + (i as u64) * 3 + k;
            sim.at(at, i, Delivery::Unauthorized("tok-1".into()));
        }
    }
    sim.run(t + 60 * S);
    assert_eq!(sim.endpoint_requests, 2);
    assert_eq!(sim.store.deletes, 1, "only the rejected entry was deleted");
    let entry = sim.store.entry.as_ref().expect("the new token is stored");
    assert_eq!(entry.access_token.expose(), "tok-2");
    sim.assert_everyone_served(n + 2 * n);
    assert!(sim.served.iter().skip(n).all(|(_, _, tok)| tok == "tok-2"));
    sim.assert_no_token_shown();
}

#[test]
fn a_401_during_a_background_refresh_never_adopts_the_rejected_token_from_the_store() {
    let mut sim = cold_start(1, 1, Mode::Healthy, 2);
    let refresh_at = sim.instances[0]
        .fleet
        .next_wakeup(sim.now)
        .expect("a refresh is scheduled");
    // The timer starts the refresh (a store read, answered 5 ms later); the 401 comes 1 ms in.
    sim.at(refresh_at + 1, 0, Delivery::Unauthorized("tok-1".into()));
    sim.run(refresh_at + 10 * S);
    assert_eq!(sim.endpoint_requests, 2);
    assert_eq!(sim.store.deletes, 1);
    let last = sim.served.last().expect("the 401 caller is served");
    assert_eq!((last.1, last.2.as_str()), (Source::Endpoint, "tok-2"));
}

#[test]
fn a_late_401_for_an_old_token_keeps_the_newer_one() {
    let mut sim = cold_start(1, 1, Mode::Healthy, 1);
    let t = sim.now;
    sim.at(t, 0, Delivery::Unauthorized("tok-0-older".into()));
    sim.run(t + S);
    assert_eq!(sim.endpoint_requests, 1);
    assert_eq!(sim.served.last().map(|s| s.1), Some(Source::Memory));
    assert_eq!(sim.store.deletes, 0);
}

/// Cold calls, then a call every 5 s per instance (instance `i` `i` seconds after the first)
/// for two lifetimes: whatever the store does.
fn degraded(mode: Mode) -> Sim {
    let n = 5;
    let mut sim = cold_start(n, 4, mode, 21);
    for k in 1..120 {
        for i in 0..n {
            sim.calls(T0 + 60 * S + k * 5 * S + i as u64 * S, i, 1);
        }
    }
    sim.run(T0 + 60 * S + 700 * S);
    sim.assert_everyone_served(n * 4 + n * 119);
    sim.assert_no_token_shown();
    sim
}

fn failed(sim: &Sim, step: StoreStep, failure: StoreFailure) -> usize {
    sim.count_events(|e| *e == Event::StoreFailed { step, failure })
}

#[test]
fn a_store_that_is_down_costs_nothing_but_events() {
    let sim = degraded(Mode::Down);
    assert!(failed(&sim, StoreStep::Read, StoreFailure::Error) >= 5);
    // After a failed read the acquisition goes on without the store: no write is tried.
    assert_eq!(failed(&sim, StoreStep::Write, StoreFailure::Error), 0);
    assert_eq!(sim.sources(Source::Store), 0);
    // Single flight in each instance still holds: a start and about two refreshes each.
    assert!(sim.endpoint_requests <= 5 * 4, "{}", sim.endpoint_requests);
}

/// Each instance gives the slow `step` up at the store timeout, then fetches: nobody waits
/// longer than that and one token round trip.
fn assert_given_up_at_the_timeout(mode: Mode, step: StoreStep) {
    let sim = degraded(mode);
    assert!(failed(&sim, step, StoreFailure::Timeout) >= 5);
    let bound = fleet_policy().store_timeout_ms + sim.endpoint_latency + 10;
    assert!(sim.max_wait <= bound, "waited {} > {bound}", sim.max_wait);
}

#[test]
fn a_slow_store_is_given_up_at_its_timeout() {
    assert_given_up_at_the_timeout(Mode::Slow, StoreStep::Read);
}

#[test]
fn a_lease_that_does_not_answer_is_given_up_at_the_store_timeout() {
    assert_given_up_at_the_timeout(Mode::SlowLease, StoreStep::Lease);
}

#[test]
fn a_store_that_refuses_writes_says_so_and_serves_everyone() {
    let sim = degraded(Mode::ReadOnly);
    assert!(failed(&sim, StoreStep::Write, StoreFailure::Error) >= 1);
    assert_eq!(sim.sources(Source::Store), 0);
}

#[test]
fn a_holder_whose_request_outlives_its_lease_says_it_lost_the_lease() {
    let mut sim = Sim::new(3, Mode::Healthy, 6);
    sim.endpoint_latency = fleet_policy().lease_ttl_ms + 2 * S;
    for i in 0..3 {
        sim.calls(T0 + i as u64, i, 1);
    }
    sim.run(T0 + 60 * S);
    // The first holder's lease ran out at 10 s; the next one took it and fetched too, and its
    // request outlived its lease as well. The third adopted the first token from the store.
    assert_eq!(sim.count_events(|e| *e == Event::LeaseLost), 2);
    assert_eq!(sim.endpoint_requests, 2);
    sim.assert_everyone_served(3);
}

#[test]
fn a_store_answering_garbage_is_refused_and_read_around() {
    let sim = degraded(Mode::Garbage);
    let refused = sim.count_events(|e| {
        *e == Event::StoreEntryRefused {
            reason: Refusal::Unreadable,
        }
    });
    assert!(refused >= 4);
    assert_eq!(sim.sources(Source::Store), 0);
    assert!(sim.max_wait < 2 * S, "waited {}", sim.max_wait);
}

#[test]
fn a_store_without_leases_is_a_shared_cache_with_single_flight_per_instance() {
    let sim = degraded(Mode::NoLease);
    assert_eq!(
        sim.count_events(|e| matches!(e, Event::StoreFailed { .. })),
        0
    );
    assert_eq!(sim.count_events(|e| *e == Event::LeaseTaken), 0);
    // One request per instance at most, at the start and per refresh; the instances that
    // refresh after another find its token in the store.
    assert!(sim.endpoint_requests <= 5 * 3, "{}", sim.endpoint_requests);
    let from_store = sim.count_events(|e| {
        matches!(
            e,
            Event::TokenObtained {
                source: Source::Store,
                ..
            }
        )
    });
    assert!(from_store > 0);
}

#[test]
fn a_cached_token_never_touches_the_store() {
    let mut sim = cold_start(3, 1, Mode::Healthy, 8);
    let ops = sim.store.ops;
    let t = sim.now;
    for k in 0..1_000 {
        sim.calls(t + k * 100, (k % 3) as usize, 1);
    }
    sim.run(t + 100 * S);
    assert_eq!(
        sim.store.ops, ops,
        "a call served from memory read the store"
    );
    assert_eq!(sim.sources(Source::Memory), 1_000);
    let reads: u64 = sim
        .instances
        .iter()
        .map(|i| i.fleet.status(sim.now).store_reads)
        .sum();
    assert!(reads > 0 && reads <= 3 * 3);
}

#[test]
fn entries_that_make_no_sense_are_refused() {
    let good = StoredToken {
        access_token: Secret::new("abc"),
        scope: None,
        issued_at: T0,
        expires_at: T0 + LIFETIME,
        stamp: 1,
    };
    assert_eq!(check_entry(&good), Ok(()));
    let mut bad = good.clone();
    bad.access_token = Secret::new("a b");
    assert_eq!(check_entry(&bad), Err(Refusal::Malformed));
    let mut bad = good.clone();
    bad.expires_at = T0;
    assert_eq!(check_entry(&bad), Err(Refusal::Malformed));
    let mut bad = good;
    bad.expires_at = T0 + (MAX_EXPIRES_IN_SECS + 1) * S;
    assert_eq!(check_entry(&bad), Err(Refusal::Malformed));
}

#[test]
fn status_and_events_say_where_each_token_came_from_and_show_no_token() {
    let sim = cold_start(3, 2, Mode::Healthy, 4);
    let sources: Vec<_> = (0..3)
        .map(|i| sim.instances[i].fleet.status(sim.now).token_source)
        .collect();
    assert_eq!(
        sources
            .iter()
            .filter(|s| **s == Some(Source::Endpoint))
            .count(),
        1
    );
    assert_eq!(
        sources
            .iter()
            .filter(|s| **s == Some(Source::Store))
            .count(),
        2
    );
    for (i, event) in &sim.events {
        if let Event::TokenObtained { source, .. } = event {
            assert_eq!(Some(*source), sources[*i]);
        }
    }
    let shown = format!("{:?}", sim.instances[0].fleet);
    assert!(!shown.contains("tok-"), "{shown}");
    sim.assert_no_token_shown();
    assert!(sim.seen.iter().any(|s| s.contains("[redacted]")));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// A healthy store and nobody dying: one token request per lifetime, whatever the schedule.
    /// Refresh-ahead renews a 300 s token at 221.25 to 225 s (75 % of its life, less at most 5 %
    /// jitter of the 75 s window) after its request started, so two requests of the fleet are
    /// never closer than that (less the three store round trips before a request is sent).
    #[test]
    fn one_request_per_lifetime_with_a_healthy_store(
        seed in any::<u64>(),
        n in 1usize..8,
        calls in proptest::collection::vec((0u64..900_000, 0usize..8), 1..120),
        store_latency in 0u64..300,
        endpoint_latency in 1u64..3_000,
    ) {
        let mut sim = Sim::new(n, Mode::Healthy, seed);
        sim.store_latency = store_latency;
        sim.endpoint_latency = endpoint_latency;
        for (t, i) in &calls {
            sim.calls(T0 + t, i % n, 1);
        }
        sim.run(T0 + 1_000 * S);
        prop_assert!(sim.endpoint_requests >= 1);
        for pair in sim.request_times.windows(2) {
            let gap = pair[1] - pair[0];
            prop_assert!(gap >= 221_250 - 3 * store_latency, "requests {} ms apart", gap);
        }
        prop_assert_eq!(sim.failures, 0);
        prop_assert_eq!(sim.waiting(), 0);
        prop_assert_eq!(sim.served.len(), calls.len());
    }

    /// Whatever the store does (fails, is slow, answers garbage, has no leases, fails at random)
    /// and whoever dies, a healthy endpoint means no caller of a living instance fails.
    #[test]
    fn no_caller_fails_with_a_healthy_endpoint_whatever_the_store_does(
        seed in any::<u64>(),
        n in 1usize..6,
        mode in prop_oneof![
            Just(Mode::Healthy), Just(Mode::Down), Just(Mode::Slow),
            Just(Mode::Garbage), Just(Mode::NoLease), Just(Mode::SlowLease),
            Just(Mode::ReadOnly)
        ],
        fail_permille in prop_oneof![Just(0u64), 1u64..1000],
        kill in any::<bool>(),
        calls in proptest::collection::vec((0u64..600_000, 0usize..6), 1..80),
        revoked in proptest::collection::vec((0u64..600_000, 0usize..6), 0..6),
    ) {
        let mut sim = Sim::new(n, mode, seed);
        sim.store_fail_permille = fail_permille;
        sim.kill_first_fetcher = kill;
        for (t, i) in &calls {
            sim.calls(T0 + t, i % n, 1);
        }
        for (t, i) in &revoked {
            sim.at(T0 + t, i % n, Delivery::Unauthorized("tok-1".into()));
        }
        sim.run(T0 + 700 * S);
        prop_assert_eq!(sim.failures, 0);
        prop_assert_eq!(sim.waiting(), 0);
        let dead: Vec<usize> = (0..n).filter(|&i| !sim.instances[i].alive).collect();
        prop_assert!(dead.len() <= 1);
        sim.assert_no_token_shown();
    }
}

// ---- without a store (Fleet::local): exactly the token cache, driven by the same edge ----

/// One step of a caller, a timer, a token answer or the clock, for the lockstep check below.
#[derive(Clone, Debug)]
enum Step {
    Call {
        force: bool,
    },
    Advance(u64),
    /// Answers the oldest open request: a token living this many seconds, or a failure.
    Answer(Option<u64>),
    Invalidate,
    Timer,
}

fn op_strategy() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => any::<bool>().prop_map(|force| Step::Call { force }),
        3 => (0u64..400_000).prop_map(Step::Advance),
        3 => prop_oneof![Just(None), (1u64..900).prop_map(Some)].prop_map(Step::Answer),
        1 => Just(Step::Invalidate),
        2 => Just(Step::Timer),
    ]
}

fn token_response(n: usize, lifetime_s: u64) -> TokenResponse {
    TokenResponse {
        access_token: Secret::new(format!("tok-{n}")),
        scope: None,
        expires_in_ms: Some(lifetime_s * S),
        jwt_exp_ms: None,
    }
}

/// The flights a no-store fleet asked to fetch, and that it asked for nothing else yet.
fn fetches_only(
    fleet: &mut Fleet,
    resolves: &mut Vec<(FlightId, Result<Served, Error>)>,
) -> Vec<FlightId> {
    let mut out = Vec::new();
    while let Some(action) = fleet.poll_action() {
        match action {
            Action::FetchToken { flight } => out.push(flight),
            Action::Resolve { flight, result } => resolves.push((flight, result)),
            Action::Event(Event::TokenObtained {
                source: Source::Endpoint,
                ..
            }) => {}
            other => panic!("a fleet without a store asked for {other:?}"),
        }
    }
    out
}

/// What today's edge does with a bare cache, step by step, against a `Fleet::local` with the
/// same seed: the same answers, the same token requests, the same results and status.
fn lockstep(seed: u64, ops: &[Step]) {
    let policy = RefreshPolicy {
        flight_timeout_ms: 50 * S,
        ..RefreshPolicy::default()
    };
    let mut cache = TokenCache::new(policy, seed);
    let mut fleet = Fleet::local(TokenCache::new(policy, seed), seed ^ 1);
    let mut now = T0;
    let mut open: Vec<FlightId> = Vec::new();
    let mut answered = 0usize;
    let mut resolves = Vec::new();
    // Today's edge arms its refresh timer when a request completes (and again when it fires
    // early), and disarms it when a request starts or the token is dropped.
    let mut armed: Option<Millis> = None;
    for op in ops {
        match op {
            Step::Call { force } => {
                let poll = cache.poll(now, *force);
                let answer = fleet.get_token(now, *force);
                let fetched = fetches_only(&mut fleet, &mut resolves);
                let (want, started) = match poll {
                    Poll::Ready(t) => (
                        Answer::Ready(Served {
                            token: t,
                            source: Source::Memory,
                        }),
                        None,
                    ),
                    Poll::ReadyAndRefresh(t, f) => (
                        Answer::Ready(Served {
                            token: t,
                            source: Source::Memory,
                        }),
                        Some(f.id),
                    ),
                    Poll::Fetch(f) => (Answer::Wait(f.id), Some(f.id)),
                    Poll::Wait(id) => (Answer::Wait(id), None),
                    Poll::Fail(e) => (Answer::Fail(e), None),
                };
                assert_eq!(answer, want);
                if started.is_some() {
                    armed = None;
                }
                assert_eq!(fetched, started.into_iter().collect::<Vec<_>>());
                open.extend(started);
            }
            Step::Advance(ms) => now += ms,
            Step::Answer(lifetime) => {
                if open.is_empty() {
                    continue;
                }
                let flight = open.remove(0);
                answered += 1;
                let result = match lifetime {
                    Some(s) => Ok(token_response(answered, *s)),
                    None => Err(Error::new(
                        crate::oauth::ErrorCode::TokenEndpointError,
                        "503",
                    )),
                };
                let want = cache.complete(flight, now, result.clone());
                armed = cache.next_wakeup(now);
                let got = fleet.token_answer(flight, now, result);
                assert_eq!(got.as_ref().map(|s| &s.token), want.as_ref());
                assert!(fetches_only(&mut fleet, &mut resolves).is_empty());
                let (id, resolved) = resolves.pop().expect("the flight's callers are settled");
                assert_eq!(id, flight);
                assert_eq!(resolved, got);
                // Flights the cache gave up (flight timeout) while this one ran: their callers
                // get this answer too (the fleet's `also`), instead of waiting for their own.
                for (older, result) in resolves.drain(..) {
                    assert!(older < flight);
                    assert_eq!(result, got);
                }
            }
            Step::Invalidate => {
                let dropped = cache.invalidate(None);
                assert_eq!(fleet.invalidate(None), dropped);
                if dropped {
                    armed = None;
                }
            }
            Step::Timer => {
                // Today's edge: at its timer, a cache with a valid token polls and starts a
                // background refresh if told to.
                if !armed.is_some_and(|at| now >= at) {
                    continue;
                }
                armed = None;
                let mut started = None;
                if cache.status(now).state == crate::oauth::cache::CacheState::Valid {
                    match cache.poll(now, false) {
                        Poll::ReadyAndRefresh(_, f) | Poll::Fetch(f) => started = Some(f.id),
                        Poll::Ready(_) => armed = cache.next_wakeup(now),
                        _ => {}
                    }
                }
                // The fleet's edge arms its timer at next_wakeup (compared below).
                fleet.wake(now);
                let fetched = fetches_only(&mut fleet, &mut resolves);
                assert_eq!(fetched, started.into_iter().collect::<Vec<_>>());
                open.extend(started);
            }
        }
        let status = fleet.status(now);
        assert_eq!(status.cache, cache.status(now));
        assert_eq!(status.endpoint_requests, cache.status(now).token_requests);
        assert_eq!(
            (status.store_reads, status.store_tokens, status.leases_taken),
            (0, 0, 0)
        );
        if fleet.acquiring().is_none() {
            assert_eq!(fleet.next_wakeup(now), cache.next_wakeup(now));
        } else {
            assert_eq!(
                fleet.next_wakeup(now),
                None,
                "nothing to wake for without a store"
            );
        }
        assert_eq!(fleet.cache().serve_until(now), cache.serve_until(now));
        assert!(resolves.is_empty(), "a settlement no answer caused");
    }
}

#[test]
fn without_a_store_a_fleet_is_its_token_cache() {
    use self::Step::*;
    let day = [
        Call { force: false },
        Call { force: false },
        Answer(Some(300)),
        Call { force: false },
        Advance(250 * S),
        Timer,
        Call { force: false },
        Answer(None),
        Advance(20 * S),
        Timer,
        Call { force: true },
        Answer(Some(300)),
        Invalidate,
        Call { force: false },
        Answer(Some(1)),
        Call { force: false },
        Advance(60 * S),
        Call { force: false },
        Call { force: false },
    ];
    lockstep(7, &day);
}

#[test]
fn forced_refresh_with_a_store_goes_to_the_endpoint_and_shares_its_token() {
    let mut sim = cold_start(2, 1, Mode::Healthy, 11);
    assert_eq!(sim.endpoint_requests, 1);
    let t = sim.now;
    // Instance 1 adopted tok-1 from the store; a forced refresh fetches without reading it.
    let reads = sim.instances[1].fleet.status(t).store_reads;
    let answer = sim.instances[1].fleet.get_token(t, true);
    sim.take_answer(1, answer);
    sim.drain(1);
    assert_eq!(sim.instances[1].fleet.status(t).store_reads, reads);
    sim.run(t + 5 * S);
    assert_eq!(sim.endpoint_requests, 2);
    assert_eq!(
        sim.served.last().map(|s| (s.1, s.2.as_str())),
        Some((Source::Endpoint, "tok-2"))
    );
    assert_eq!(
        sim.store.entry.as_ref().map(|e| e.access_token.expose()),
        Some("tok-2")
    );
    sim.assert_everyone_served(3);
}

#[test]
fn an_abandoned_acquisition_releases_its_lease_and_settles_nobody() {
    let mut sim = Sim::new(1, Mode::Healthy, 5);
    sim.endpoint_latency = 100 * S;
    sim.calls(T0, 0, 1);
    sim.run(T0 + 50);
    let fleet = &mut sim.instances[0].fleet;
    let flight = fleet.acquiring().expect("an acquisition is running");
    let lost = Error::new(crate::oauth::ErrorCode::Timeout, "lost");
    fleet.abandon(flight, T0 + 50, lost);
    assert_eq!(fleet.acquiring(), None);
    let actions: Vec<Action> = std::iter::from_fn(|| fleet.poll_action()).collect();
    assert!(
        matches!(actions[..], [Action::ReleaseLease { owner: 1000 }]),
        "{actions:?}"
    );
    assert_eq!(fleet.status(T0 + 50).cache.consecutive_failures, 1);
}

proptest! {
    #[test]
    fn without_a_store_any_sequence_matches_the_token_cache(
        seed in any::<u64>(),
        ops in proptest::collection::vec(op_strategy(), 1..80),
    ) {
        lockstep(seed, &ops);
    }
}

/// The actions `fleet` asks for now.
fn actions_of(fleet: &mut Fleet) -> Vec<Action> {
    std::iter::from_fn(|| fleet.poll_action()).collect()
}

fn closed() -> Error {
    Error::new(crate::oauth::ErrorCode::Closed, "closed")
}

#[test]
fn close_while_holding_the_lease_releases_it_at_once_and_never_writes_the_late_token() {
    let mut sim = Sim::new(2, Mode::Healthy, 8);
    sim.endpoint_latency = 5 * S;
    sim.calls(T0, 0, 3);
    sim.run(T0 + 50);
    assert_eq!(
        sim.endpoint_requests, 1,
        "instance 0 holds the lease and fetches"
    );
    assert_eq!(sim.store.lease.map(|(owner, _)| owner), Some(1000));
    sim.instances[0].fleet.close(T0 + 50, closed());
    sim.drain(0);
    sim.run(T0 + 100);
    assert_eq!(sim.store.lease, None, "released, not left for its TTL");
    assert_eq!(
        sim.waiting(),
        3,
        "its callers wait for the request in flight, as before"
    );
    // The next instance fetches at once (no lease_busy, no wait for the TTL)...
    sim.calls(T0 + 100, 1, 1);
    sim.run(T0 + 200);
    assert_eq!(sim.endpoint_requests, 2);
    // ... and the closed instance's late token settles its callers but is never written.
    sim.run(T0 + 5 * S + 60);
    assert_eq!(sim.waiting(), 1, "instance 0's callers settled");
    assert_eq!(sim.store.entry, None);
    sim.run(T0 + 20 * S);
    assert_eq!(sim.count_events(|e| *e == Event::LeaseBusy), 0);
    assert_eq!(
        sim.store.entry.as_ref().map(|e| e.access_token.expose()),
        Some("tok-2")
    );
    assert!(sim.served.iter().any(|(i, _, t)| *i == 1 && t == "tok-2"));
    assert!(sim.instances[0].fleet.acquiring().is_none());
    assert_eq!(sim.instances[0].fleet.next_wakeup(sim.now), None);
}

#[test]
fn a_lease_granted_or_unanswered_after_close_is_released_and_nothing_else_is_asked() {
    for (answer, released) in [
        (LeaseAnswer::Acquired, true),
        (LeaseAnswer::Failed(StoreFailure::Timeout), true),
        (LeaseAnswer::Failed(StoreFailure::Error), false),
        (LeaseAnswer::HeldByOther, false),
        (LeaseAnswer::Unsupported, false),
    ] {
        let cache = TokenCache::new(RefreshPolicy::default(), 1);
        let mut fleet = Fleet::new(cache, fleet_policy(), 42, 1);
        let Answer::Wait(flight) = fleet.get_token(T0, false) else {
            panic!("a cold call waits")
        };
        let Some(Action::ReadStore { ticket }) = fleet.poll_action() else {
            panic!("it reads the store first")
        };
        fleet.store_read(ticket, T0 + 5, StoreRead::NotFound);
        let Some(Action::TryLease { ticket, .. }) = fleet.poll_action() else {
            panic!("then tries the lease")
        };
        fleet.close(T0 + 6, closed());
        let actions = actions_of(&mut fleet);
        assert!(
            matches!(&actions[..], [Action::Resolve { flight: f, result: Err(_) }] if *f == flight),
            "{actions:?}"
        );
        fleet.lease_answer(ticket, T0 + 10, answer);
        let actions = actions_of(&mut fleet);
        let want: &[Action] = if released {
            &[Action::ReleaseLease { owner: 42 }]
        } else {
            &[]
        };
        assert_eq!(actions, want, "{answer:?}");
        assert_eq!(fleet.next_wakeup(T0 + 10), None);
        fleet.wake(T0 + 60 * S);
        assert_eq!(actions_of(&mut fleet), []);
    }
}

#[test]
fn close_while_waiting_for_another_holder_ends_the_wait_and_without_an_acquisition_does_nothing() {
    let mut sim = Sim::new(2, Mode::Healthy, 9);
    sim.endpoint_latency = 5 * S;
    sim.calls(T0, 0, 1);
    sim.calls(T0 + 20, 1, 2);
    sim.run(T0 + 500);
    assert!(
        sim.instances[1]
            .fleet
            .status(sim.now)
            .waiting_for_lease_holder
    );
    let before = sim.instances[1].fleet.status(sim.now);
    sim.instances[1].fleet.close(sim.now, closed());
    sim.drain(1);
    assert_eq!(sim.failures, 2, "both callers got the close error at once");
    assert_eq!(sim.instances[1].fleet.next_wakeup(sim.now), None);
    sim.run(T0 + 20 * S);
    let after = sim.instances[1].fleet.status(sim.now);
    assert_eq!(
        (
            after.store_reads,
            after.leases_taken,
            after.endpoint_requests
        ),
        (before.store_reads, before.leases_taken, 0),
        "nothing asked of the store or the endpoint after close"
    );
    assert!(!after.waiting_for_lease_holder);
    // Instance 0, idle: closing asks for nothing.
    sim.instances[0].fleet.close(sim.now, closed());
    assert_eq!(actions_of(&mut sim.instances[0].fleet), []);
    assert_eq!(sim.served.len(), 1, "instance 0's caller");
}

/// The actions `f` asks for now, oldest first.
fn take_actions(f: &mut Fleet) -> Vec<Action> {
    let mut out = Vec::new();
    while let Some(a) = f.poll_action() {
        out.push(a);
    }
    out
}

/// The ticket of the one read (or lease) among `actions`.
fn ticket_of(actions: &[Action], lease: bool) -> Ticket {
    let found = actions.iter().find_map(|a| match a {
        Action::ReadStore { ticket } if !lease => Some(*ticket),
        Action::TryLease { ticket, .. } if lease => Some(*ticket),
        _ => None,
    });
    found.expect("the step asked for")
}

fn fetches(actions: &[Action]) -> usize {
    actions
        .iter()
        .filter(|a| matches!(a, Action::FetchToken { .. }))
        .count()
}

fn coordinated_entry(token: &str, issued_at: Millis) -> StoredToken {
    StoredToken {
        access_token: Secret::new(token),
        scope: None,
        issued_at,
        expires_at: issued_at + LIFETIME,
        stamp: 42,
    }
}

/// A coordinated instance: cold, it asks the coordinator, then (nothing there) the endpoint;
/// with a token in memory it keeps it while the coordinator has nothing newer, asking again
/// after a growing backoff, and asks the endpoint only at the token's wait point; a newer token
/// from the coordinator is adopted and ends the backoff.
#[test]
fn a_coordinated_instance_keeps_its_token_while_the_coordinator_has_nothing_newer() {
    let policy = FleetPolicy {
        coordinated: true,
        ..fleet_policy()
    };
    let mut f = Fleet::new(TokenCache::new(RefreshPolicy::default(), 3), policy, 7, 11);
    // Cold: nothing to keep. Read, lease (the coordinator's is always granted), read, fetch.
    let Answer::Wait(flight) = f.get_token(T0, false) else {
        panic!("a cold instance waits")
    };
    let a = take_actions(&mut f);
    f.store_read(ticket_of(&a, false), T0, StoreRead::NotFound);
    let a = take_actions(&mut f);
    f.lease_answer(ticket_of(&a, true), T0, LeaseAnswer::Acquired);
    let a = take_actions(&mut f);
    f.store_read(ticket_of(&a, false), T0, StoreRead::NotFound);
    assert_eq!(fetches(&take_actions(&mut f)), 1);
    let first = TokenResponse {
        access_token: Secret::new("tok-1"),
        scope: None,
        expires_in_ms: Some(LIFETIME),
        jwt_exp_ms: None,
    };
    assert!(f.token_answer(flight, T0 + 100, Ok(first)).is_ok());
    let _ = take_actions(&mut f);
    let same = coordinated_entry("tok-1", T0);

    // At its refresh point the coordinator has nothing newer: postponed, again and again.
    let mut now = f.next_wakeup(T0 + 100).expect("a refresh is scheduled");
    let wait_at = T0 + LIFETIME - 30 * S;
    let mut delays = Vec::new();
    while now < wait_at {
        let Answer::Ready(served) = f.get_token(now, false) else {
            panic!("the caller is served at once")
        };
        assert_eq!(served.token.access_token.expose(), "tok-1");
        let a = take_actions(&mut f);
        f.store_read(ticket_of(&a, false), now, StoreRead::Found(same.clone()));
        let a = take_actions(&mut f);
        assert_eq!(fetches(&a), 0, "postponed, not fetched");
        assert!(!a.iter().any(|a| matches!(a, Action::TryLease { .. })));
        assert!(f.acquiring().is_none(), "the acquisition ended");
        let next = f.next_wakeup(now).expect("asked again later");
        delays.push(next - now);
        now = next;
    }
    let base = RefreshPolicy::default().backoff_base_ms;
    assert!(delays.len() >= 3, "{delays:?}");
    assert!(delays.iter().all(|&d| d >= base), "{delays:?}");
    assert!(
        delays.iter().max() > delays.first(),
        "the backoff grows: {delays:?}"
    );
    assert_eq!(f.status(now).endpoint_requests, 1);

    // At the wait point there is nothing left to keep: the instance asks for itself.
    let Answer::Wait(_) = f.get_token(wait_at, false) else {
        panic!("past the wait point callers wait")
    };
    let a = take_actions(&mut f);
    f.store_read(
        ticket_of(&a, false),
        wait_at,
        StoreRead::Found(same.clone()),
    );
    let a = take_actions(&mut f);
    f.lease_answer(ticket_of(&a, true), wait_at, LeaseAnswer::Acquired);
    let a = take_actions(&mut f);
    f.store_read(ticket_of(&a, false), wait_at, StoreRead::Found(same));
    assert_eq!(fetches(&take_actions(&mut f)), 1, "the fallback");
}

#[test]
fn a_coordinated_instance_adopts_the_coordinator_s_newer_token_and_a_401_is_never_postponed() {
    let policy = FleetPolicy {
        coordinated: true,
        ..fleet_policy()
    };
    let mut f = Fleet::new(TokenCache::new(RefreshPolicy::default(), 5), policy, 7, 13);
    let Answer::Wait(_) = f.get_token(T0, false) else {
        panic!()
    };
    let a = take_actions(&mut f);
    f.store_read(
        ticket_of(&a, false),
        T0,
        StoreRead::Found(coordinated_entry("tok-1", T0)),
    );
    let _ = take_actions(&mut f);
    let refresh = f.next_wakeup(T0).expect("scheduled");
    // Nothing newer once: postponed.
    let _ = f.get_token(refresh, false);
    let a = take_actions(&mut f);
    f.store_read(
        ticket_of(&a, false),
        refresh,
        StoreRead::Found(coordinated_entry("tok-1", T0)),
    );
    let _ = take_actions(&mut f);
    let retry = f.next_wakeup(refresh).expect("asked again later");
    // Then the coordinator's new token: adopted, the next refresh is the new token's own.
    let _ = f.get_token(retry, false);
    let a = take_actions(&mut f);
    f.store_read(
        ticket_of(&a, false),
        retry,
        StoreRead::Found(coordinated_entry("tok-2", retry - 500)),
    );
    let _ = take_actions(&mut f);
    let Answer::Ready(served) = f.get_token(retry + 1, false) else {
        panic!()
    };
    assert_eq!(served.token.access_token.expose(), "tok-2");
    assert!(
        f.next_wakeup(retry + 1) > Some(T0 + LIFETIME),
        "the new token's schedule"
    );
    assert_eq!(f.status(retry).endpoint_requests, 0);
    // A 401 for tok-2: never kept. Read (the rejected entry is deleted), lease, read again.
    let Answer::Wait(_) = f.after_unauthorized(retry + 2, "tok-2") else {
        panic!("the refused token is not served")
    };
    let a = take_actions(&mut f);
    f.store_read(
        ticket_of(&a, false),
        retry + 2,
        StoreRead::Found(coordinated_entry("tok-2", retry - 500)),
    );
    let a = take_actions(&mut f);
    assert!(a
        .iter()
        .any(|a| matches!(a, Action::DeleteIfStamp { stamp: 42 })));
    f.lease_answer(ticket_of(&a, true), retry + 2, LeaseAnswer::Acquired);
    let a = take_actions(&mut f);
    f.store_read(
        ticket_of(&a, false),
        retry + 3,
        StoreRead::Found(coordinated_entry("tok-3", retry + 2)),
    );
    let a = take_actions(&mut f);
    assert_eq!(fetches(&a), 0);
    let Answer::Ready(served) = f.get_token(retry + 4, false) else {
        panic!()
    };
    assert_eq!(served.token.access_token.expose(), "tok-3");
}
