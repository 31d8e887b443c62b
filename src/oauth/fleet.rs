//! Many instances, one token: the fleet's state machine, sans-IO, over a shared store.
//!
//! A [`TokenCache`] makes one token request per token lifetime inside one process or isolate. A
//! [`Fleet`] wraps one such cache per instance and adds a store shared by every instance (a KV
//! namespace, Redis, a database row, written by the user or by us), so that a whole fleet makes
//! one token request per lifetime per credential set, and a new instance answers its first call
//! from the store without a token round trip. The cache keeps doing what it did: the in-memory
//! token, single flight inside the instance, the refresh schedule ([`RefreshPolicy`]) and the
//! backoff after failures. The fleet only decides where a new token comes from.
//!
//! Nothing here reads a clock or does I/O: time is an argument, the store and the token endpoint
//! are reached through [`Action`]s the edge performs and answers the edge feeds back.
//!
//! # The order of checks
//!
//! 1. **Memory.** [`Fleet::get_token`] asks the cache first. A token before its refresh point is
//!    served at once, and the store is never touched: only a missing token, or one past its
//!    refresh point, starts an *acquisition* (the cache's single flight: one per instance).
//! 2. **Store.** The acquisition reads the entry. An entry that is valid (before its wait point)
//!    and newer than the token in memory is adopted: cached with its own schedule, handed to the
//!    waiters, source [`Source::Store`].
//! 3. **Lease.** Otherwise the instance tries the lease (acquire if free, with an owner and a
//!    TTL). Acquired: it reads the store once more (another instance may have written and
//!    released in between), then fetches. Held by another: it polls the store with backoff
//!    (from [`FleetPolicy::store_poll_base_ms`] to [`FleetPolicy::store_poll_cap_ms`], the cache
//!    policy's backoff schedule and jitter) for up to the lease TTL, then tries the lease again
//!    (the holder may have died: its lease has run out by then), and after a second TTL fetches
//!    itself whatever happens.
//! 4. **Token endpoint.** The answer goes through the cache (lifetime, backoff, static
//!    stability exactly as without a store); a token is written to the store, then the lease is
//!    released.
//!
//! A caller's forced refresh ([`Fleet::get_token`] with `force`) skips the store and the lease:
//! the entry holds the token being refused, or an older one. Its token is written as any other.
//!
//! # Without a store
//!
//! [`Fleet::local`] is the same machine with the store's steps left out: every acquisition is
//! one token request, and it behaves exactly as its [`TokenCache`] alone (a host test drives the
//! two in lockstep). The edge drives both kinds the same way, so there is one path for a manager
//! with a store and one without.
//!
//! # The timeline of a refresh
//!
//! ```text
//! issued ──────────── refresh_at (jittered per instance) ──── wait_at ──── expires_at
//!  serve from memory  │ first instance past its refresh_at:     │ no token left in memory:
//!                     │   store (same token) → lease taken      │   callers wait for the
//!                     │   → store again → fetch → write, release│   acquisition
//!                     │ every other instance, at its own        │
//!                     │ refresh_at: store has the new token →   │
//!                     │ adopt (no lease, no fetch)              │
//!                     │ meanwhile every caller is served the    │
//!                     │ current token                           │
//! ```
//!
//! # A 401
//!
//! [`Fleet::after_unauthorized`] with the token that got the 401: if memory holds a newer token
//! it is served. Otherwise the acquisition remembers the rejected token: an entry holding it is
//! deleted with a compare-and-delete on its stamp (never a newer entry another instance wrote in
//! the meantime), and a different valid entry is adopted. A revoked token across the fleet thus
//! leads to one new token request, not one per instance.
//!
//! # Static stability
//!
//! The store is an optimisation, never a new way to fail. A store that errs or does not answer
//! within [`FleetPolicy::store_timeout_ms`] (the edge reports the timeout, and this machine also
//! gives up by itself at that deadline) ends the store's part in that acquisition: the instance
//! fetches on its own, with its own single flight, and says so in [`Event::StoreFailed`]. An
//! entry that cannot be read or does not make sense is refused ([`Event::StoreEntryRefused`])
//! and counts as missing. A lease holder that dies delays the others by at most the lease TTL
//! (plus the new holder's token round trip); a store without leases answers
//! [`LeaseAnswer::Unsupported`] and the fleet is then a shared cache with single flight inside
//! each instance.
//!
//! # A coordinator
//!
//! With [`FleetPolicy::coordinated`] the store is a coordinator that makes the token requests
//! itself (a Durable Object): its read answers with the coordinator's current token, its lease
//! is always granted (the coordinator is the single flight), and an instance whose token is
//! still usable (before its wait point) and that finds nothing newer there keeps its token and
//! asks again after the cache policy's backoff ([`TokenCache::postpone`]) instead of asking the
//! token endpoint: while the coordinator refreshes or backs off (its `Retry-After` included),
//! the fleet waits with it. Only a token at its wait point, a 401, or a coordinator that fails
//! or cannot be reached sends the instance to the endpoint itself.
//!
//! # What the edge does for each action
//!
//! After every call into the [`Fleet`] the edge drains [`Fleet::poll_action`] and performs, in
//! order:
//! - [`Action::ReadStore`]: read the entry (name: HMAC of [`identity::CacheIdentity::encode`]);
//!   decrypt and parse it; answer [`Fleet::store_read`] with the same ticket, within the store
//!   timeout.
//! - [`Action::TryLease`]: acquire the lease if free (owner, TTL); answer
//!   [`Fleet::lease_answer`]. A store without leases answers `Unsupported` at once.
//! - [`Action::FetchToken`]: send the token request; answer [`Fleet::token_answer`].
//! - [`Action::WriteStore`]: encrypt and write the entry (its own expiry may be the token's);
//!   on failure call [`Fleet::store_failed`]. Fire and forget (callers do not wait for it; the
//!   edge's `close()` does, see [`Fleet::close`]), but in order with a following
//!   [`Action::ReleaseLease`].
//! - [`Action::ReleaseLease`]: release the lease if (and only if) `owner` still holds it.
//! - [`Action::DeleteIfStamp`]: delete the entry if (and only if) it still carries `stamp`.
//! - [`Action::Resolve`]: settle every caller waiting on `flight`.
//! - [`Action::Event`]: emit it.
//!
//! It also keeps one timer at [`Fleet::next_wakeup`] and calls [`Fleet::wake`] when it fires.
//! No action, event or status carries an entry name, and only [`Served`] and
//! [`StoredToken`] carry a token (as a [`Secret`]: their `Debug` redacts it).

pub mod identity;

use crate::oauth::cache::{CachedToken, Flight, FlightId, Poll, Status, TokenCache};
use crate::oauth::policy::RefreshPolicy;
use crate::oauth::token::{is_b64token, MAX_EXPIRES_IN_SECS};
use crate::oauth::{Error, Secret, TokenResponse};
use crate::prelude::*;
use crate::util::rng::SplitMix64;
use crate::util::Millis;

/// Where a token came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// This instance's memory: no I/O at all.
    Memory,
    /// The shared store: another instance (or an earlier life of this one) fetched it.
    Store,
    /// The token endpoint, by this instance.
    Endpoint,
}

/// The knobs of the shared store. All durations in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FleetPolicy {
    /// How long a lease lasts unless released: the longest a dead holder can delay the others.
    /// Longer than a token request normally takes, and (twice, plus a few store timeouts)
    /// shorter than the cache's [`RefreshPolicy::flight_timeout_ms`], after which the cache gives
    /// the acquisition up and the next caller starts another. Default 10 s.
    pub lease_ttl_ms: u64,
    /// The longest any one store operation may take before it counts as failed. Default 1 s.
    pub store_timeout_ms: u64,
    /// The first delay between store reads while another instance holds the lease.
    /// Default 100 ms.
    pub store_poll_base_ms: u64,
    /// The longest delay between those reads. Default 2 s.
    pub store_poll_cap_ms: u64,
    /// The store is a coordinator that makes the token requests itself (a Durable Object): an
    /// instance whose token is still usable and that finds nothing newer there keeps its token
    /// and asks the coordinator again after a backoff ([`TokenCache::postpone`]), rather than
    /// the token endpoint: the coordinator's own backoff and `Retry-After` hold for the whole
    /// fleet. Default false.
    pub coordinated: bool,
}

impl Default for FleetPolicy {
    fn default() -> Self {
        FleetPolicy {
            lease_ttl_ms: 10_000,
            store_timeout_ms: 1_000,
            store_poll_base_ms: 100,
            store_poll_cap_ms: 2_000,
            coordinated: false,
        }
    }
}

/// A token as kept in the store (the edge encrypts it at rest). `Debug` redacts the token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredToken {
    /// The bearer token.
    pub access_token: Secret,
    /// The scope the server granted, if it said.
    pub scope: Option<Vec<String>>,
    /// When the request that got it was sent (its lifetime counts from here), epoch ms.
    pub issued_at: Millis,
    /// When it expires, epoch ms.
    pub expires_at: Millis,
    /// A random value set by the writer: what a compare-and-delete compares.
    pub stamp: u64,
}

/// Names one pending store or lease operation, so a late answer is told apart from the current
/// one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ticket(u64);

impl Ticket {
    /// Rebuilds a ticket from [`Ticket::as_u64`] (for an edge that keeps it in JavaScript).
    pub const fn from_u64(raw: u64) -> Self {
        Ticket(raw)
    }

    /// The ticket as a number.
    pub const fn as_u64(self) -> u64 {
        self.0
    }
}

/// How a store operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreFailure {
    /// The store answered with an error (or threw).
    Error,
    /// No answer within [`FleetPolicy::store_timeout_ms`].
    Timeout,
}

/// Which store operation an event is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreStep {
    /// Reading the entry.
    Read,
    /// Acquiring the lease.
    Lease,
    /// Writing the entry, releasing the lease, or a compare-and-delete.
    Write,
}

/// Why an entry read from the store was not used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// It could not be decrypted or parsed (the edge said so).
    Unreadable,
    /// It parsed, but does not make sense: not a `b64token`, expiring before it was issued, or
    /// living longer than any token may.
    Malformed,
}

/// What the store answered to [`Action::ReadStore`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreRead {
    /// An entry, decrypted and parsed.
    Found(StoredToken),
    /// No entry.
    NotFound,
    /// An entry that could not be decrypted or parsed.
    Garbage,
    /// The read failed.
    Failed(StoreFailure),
}

/// What the store answered to [`Action::TryLease`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseAnswer {
    /// The lease is ours for its TTL.
    Acquired,
    /// Another owner holds it.
    HeldByOther,
    /// This store has no leases.
    Unsupported,
    /// The lease operation failed.
    Failed(StoreFailure),
}

/// What happened, for logs and metrics. Never carries a token, a secret or an entry name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// A new token is in memory, from the store or the endpoint.
    TokenObtained {
        /// Where it came from.
        source: Source,
        /// When it expires.
        expires_at: Millis,
    },
    /// This instance took the lease and will fetch.
    LeaseTaken,
    /// Another instance holds the lease: waiting for its token in the store.
    LeaseBusy,
    /// This instance's lease ran out before its token arrived (another may have fetched too).
    LeaseLost,
    /// Waited two lease TTLs for another instance's token: fetching without the lease.
    LeaseWaitOver,
    /// The store failed or was too slow; this instance went on without it (its own single
    /// flight).
    StoreFailed {
        /// Which operation.
        step: StoreStep,
        /// How.
        failure: StoreFailure,
    },
    /// An entry was read but not used; it counts as missing.
    StoreEntryRefused {
        /// Why.
        reason: Refusal,
    },
    /// The entry holding a token that got a 401 is being deleted (compare-and-delete).
    RejectedEntryDeleted,
}

/// A token handed to callers, and where it came from. `Debug` redacts the token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Served {
    /// The token.
    pub token: CachedToken,
    /// Where it came from.
    pub source: Source,
}

/// What one caller gets at once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Use this token.
    Ready(Served),
    /// Wait for [`Action::Resolve`] of this flight.
    Wait(FlightId),
    /// Backing off after repeated failures and no valid token left.
    Fail(Error),
}

/// Something the edge must do. See the [module docs](self) for each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Read the entry; answer [`Fleet::store_read`].
    ReadStore {
        /// Pass back with the answer.
        ticket: Ticket,
    },
    /// Acquire the lease if free; answer [`Fleet::lease_answer`].
    TryLease {
        /// Pass back with the answer.
        ticket: Ticket,
        /// Who asks (this instance).
        owner: u64,
        /// How long the lease lasts unless released.
        ttl_ms: u64,
    },
    /// Send the token request; answer [`Fleet::token_answer`].
    FetchToken {
        /// Pass back with the answer.
        flight: FlightId,
    },
    /// Write this entry (replacing any).
    WriteStore {
        /// The entry.
        entry: StoredToken,
    },
    /// Release the lease if `owner` holds it.
    ReleaseLease {
        /// This instance.
        owner: u64,
    },
    /// Delete the entry if it still carries `stamp`.
    DeleteIfStamp {
        /// The stamp of the entry holding the rejected token.
        stamp: u64,
    },
    /// Settle the callers waiting on `flight`.
    Resolve {
        /// The flight they wait on.
        flight: FlightId,
        /// What they get.
        result: Result<Served, Error>,
    },
    /// Emit this event.
    Event(Event),
}

/// A snapshot of one instance, for diagnostics and tests. Holds no token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FleetStatus {
    /// The token cache's own status (its `token_requests` counts acquisitions).
    pub cache: Status,
    /// Where the token in memory came from, if there is one.
    pub token_source: Option<Source>,
    /// Token requests sent to the endpoint by this instance.
    pub endpoint_requests: u64,
    /// Tokens adopted from the store.
    pub store_tokens: u64,
    /// Store reads asked for.
    pub store_reads: u64,
    /// Store failures and timeouts seen (each one an [`Event::StoreFailed`]).
    pub store_failures: u64,
    /// Leases taken.
    pub leases_taken: u64,
    /// Whether an acquisition is waiting for another instance's token.
    pub waiting_for_lease_holder: bool,
}

#[derive(Clone, Copy, Debug)]
enum Step {
    /// Waiting for the answer to a store read sent at `since`.
    Read { since: Millis },
    /// Waiting for the answer to a lease request sent at `since`.
    Lease { since: Millis },
    /// Waiting until `until` before reading the store again.
    Sleep { until: Millis },
    /// Waiting for the token endpoint.
    Fetch,
}

#[derive(Clone, Debug)]
struct Op {
    flight: FlightId,
    /// When the cache started the flight: a fetched token's lifetime counts from here.
    sent_at: Millis,
    /// Flights the cache gave up (after its flight timeout) whose callers this op answers too.
    also: Vec<FlightId>,
    step: Step,
    ticket: Ticket,
    /// The token that got a 401: never adopted from the store.
    rejected: Option<Secret>,
    /// The stamp of the entry holding it that a compare-and-delete was sent for.
    deleted: Option<u64>,
    /// When this instance took the lease, if it holds it.
    lease_at: Option<Millis>,
    /// Until when to wait for the lease holder's token, once the lease was found held.
    wait_until: Option<Millis>,
    /// How many times the lease was found held (a second time: fetch at the next deadline).
    busy_rounds: u8,
    polls: u32,
    last_delay_ms: u64,
    /// False after a store failure: the rest of this acquisition goes without the store.
    use_store: bool,
}

/// One instance of a fleet sharing a store. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct Fleet {
    cache: TokenCache,
    policy: FleetPolicy,
    owner: u64,
    rng: SplitMix64,
    op: Option<Op>,
    next_ticket: u64,
    lease_supported: bool,
    /// False for an instance without a store ([`Fleet::local`]): every acquisition fetches.
    store: bool,
    /// Set by [`Fleet::close`].
    closed: bool,
    token_source: Option<Source>,
    /// What the edge must do, oldest first (a few at a time: a Vec, not a VecDeque, which costs
    /// its own code in the .wasm).
    actions: Vec<Action>,
    endpoint_requests: u64,
    store_tokens: u64,
    store_reads: u64,
    store_failures: u64,
    leases_taken: u64,
    /// Acquisitions postponed in a row ([`FleetPolicy::coordinated`]) and the last delay.
    postponed: (u32, u64),
}

impl Fleet {
    /// One instance: `cache` holds its in-memory token (usually empty), `owner` names it for the
    /// lease (random and distinct per instance), `seed` drives the jitter.
    pub fn new(cache: TokenCache, policy: FleetPolicy, owner: u64, seed: u64) -> Self {
        Fleet {
            cache,
            policy,
            owner,
            rng: SplitMix64::new(seed),
            op: None,
            next_ticket: 1,
            lease_supported: true,
            store: true,
            closed: false,
            token_source: None,
            actions: Vec::new(),
            endpoint_requests: 0,
            store_tokens: 0,
            store_reads: 0,
            store_failures: 0,
            leases_taken: 0,
            postponed: (0, 0),
        }
    }

    /// An instance without a store: the same state machine with the store's steps left out, so
    /// it behaves exactly as its [`TokenCache`] alone (the same polls, token requests and
    /// answers) and never asks for a store action ([`Action::ReadStore`], [`Action::TryLease`],
    /// [`Action::WriteStore`], [`Action::ReleaseLease`], [`Action::DeleteIfStamp`]). One edge
    /// drives both kinds.
    pub fn local(cache: TokenCache, seed: u64) -> Self {
        Fleet {
            store: false,
            ..Fleet::new(cache, FleetPolicy::default(), 0, seed)
        }
    }

    /// The in-memory cache (its [`TokenCache::serve_until`], [`TokenCache::backoff_error`]).
    pub fn cache(&self) -> &TokenCache {
        &self.cache
    }

    /// The cache's flight the current acquisition serves, if one is running.
    pub fn acquiring(&self) -> Option<FlightId> {
        self.op.as_ref().map(|op| op.flight)
    }

    /// Drops the token in memory if it is `token` (or whatever is there when `None`), as
    /// [`TokenCache::invalidate`]; the store is not touched. Returns whether something was dropped.
    pub fn invalidate(&mut self, token: Option<&str>) -> bool {
        let dropped = self.cache.invalidate(token);
        if dropped {
            self.token_source = None;
        }
        dropped
    }

    /// Gives up `flight`, whose completion the edge decided will never come (lost with the
    /// Worker request that started it): the cache records `error` as that request's failure,
    /// and the acquisition serving it ends (releasing a lease it holds) without settling anyone:
    /// the edge's waiters give it up themselves. A late answer for it changes nothing more.
    pub fn abandon(&mut self, flight: FlightId, now: Millis, error: Error) {
        let _ = self.cache.complete(flight, now, Err(error));
        if let Some(op) = self.op.take_if(|op| op.flight == flight) {
            self.release(now, &op);
        }
    }

    /// The instance is closing (the edge's `close()`, after which it makes no more calls but
    /// still feeds back the answers of what it started). A lease it holds is released at once,
    /// after the writes before it ([`Action::ReleaseLease`]). A token request in flight goes on,
    /// and its callers are settled when it ends, as before, but its token is not written to the
    /// store (the closing process may exit before it comes; meanwhile another instance may have
    /// taken the released lease and written a newer token, which it must not overwrite). An
    /// acquisition still in its store steps ends now, its callers getting `error`. A lease
    /// request in flight that is then granted, or that does not answer in time (it may still be
    /// granted), is released when its answer comes ([`Fleet::lease_answer`]). Nothing else is
    /// asked of the store.
    pub fn close(&mut self, now: Millis, error: Error) {
        self.closed = true;
        let Some(op) = &mut self.op else { return };
        if matches!(op.step, Step::Fetch) {
            op.use_store = false;
            if op.lease_at.take().is_some() {
                self.actions
                    .push(Action::ReleaseLease { owner: self.owner });
            }
        } else {
            let (flight, also) = (op.flight, op.also.clone());
            self.abandon(flight, now, error.clone());
            self.resolve(flight, &also, Err(error));
        }
    }

    /// The next thing the edge must do, in order; `None` when there is nothing left.
    pub fn poll_action(&mut self) -> Option<Action> {
        (!self.actions.is_empty()).then(|| self.actions.remove(0))
    }

    /// What one caller gets now: the token in memory, or a flight to wait on. `force` refuses
    /// the token in memory (a caller's forceRefresh): a new acquisition starts unless one is
    /// running, and it goes to the token endpoint without reading the store (whose entry is the
    /// token being refused, or older); its token is written to the store as any other.
    pub fn get_token(&mut self, now: Millis, force: bool) -> Answer {
        self.tick(now);
        self.answer(now, None, force)
    }

    /// What a caller whose request got a 401 with `token` gets: a newer token in memory, or a
    /// flight to wait on whose acquisition never adopts `token` from the store and deletes the
    /// entry holding it.
    pub fn after_unauthorized(&mut self, now: Millis, token: &str) -> Answer {
        self.tick(now);
        self.invalidate(Some(token));
        self.answer(now, Some(Secret::new(token)), false)
    }

    /// Feeds back the answer to [`Action::ReadStore`] with `ticket`.
    pub fn store_read(&mut self, ticket: Ticket, now: Millis, read: StoreRead) {
        self.tick(now);
        if !self.pending(ticket, |s| matches!(s, Step::Read { .. })) {
            return;
        }
        let entry = match read {
            StoreRead::Found(entry) => check_entry(&entry).map(|()| Some(entry)),
            StoreRead::NotFound => Ok(None),
            StoreRead::Garbage => Err(Refusal::Unreadable),
            StoreRead::Failed(failure) => return self.store_down(StoreStep::Read, failure),
        };
        match entry {
            Ok(Some(entry)) => {
                if !self.take_entry(now, entry) {
                    self.after_miss(now);
                }
            }
            Ok(None) => self.after_miss(now),
            Err(reason) => {
                self.event(Event::StoreEntryRefused { reason });
                // Refused while waiting for the lease holder: its token is being written where
                // this instance cannot read it (another key, a broken store). Stop waiting.
                if self.op.as_ref().is_some_and(|op| op.wait_until.is_some()) {
                    self.fetch();
                } else {
                    self.after_miss(now);
                }
            }
        }
    }

    /// Feeds back the answer to [`Action::TryLease`] with `ticket`.
    pub fn lease_answer(&mut self, ticket: Ticket, now: Millis, answer: LeaseAnswer) {
        self.tick(now);
        if !self.pending(ticket, |s| matches!(s, Step::Lease { .. })) {
            // Granted after close(): nobody will use it (see Fleet::close).
            if self.closed
                && matches!(
                    answer,
                    LeaseAnswer::Acquired | LeaseAnswer::Failed(StoreFailure::Timeout)
                )
            {
                self.actions
                    .push(Action::ReleaseLease { owner: self.owner });
            }
            return;
        }
        match answer {
            LeaseAnswer::Acquired => {
                self.leases_taken = self.leases_taken.saturating_add(1);
                self.event(Event::LeaseTaken);
                if let Some(op) = &mut self.op {
                    op.lease_at = Some(now);
                }
                // Another instance may have written and released between our read and now.
                self.read(now);
            }
            LeaseAnswer::HeldByOther => self.lease_busy(now),
            LeaseAnswer::Unsupported => {
                self.lease_supported = false;
                self.fetch();
            }
            LeaseAnswer::Failed(failure) => self.store_down(StoreStep::Lease, failure),
        }
    }

    /// Feeds back the answer to [`Action::FetchToken`] for `flight`. Returns what that flight's
    /// callers get (also in its [`Action::Resolve`]), for the edge's own account of the request.
    pub fn token_answer(
        &mut self,
        flight: FlightId,
        now: Millis,
        result: Result<TokenResponse, Error>,
    ) -> Result<Served, Error> {
        self.tick(now);
        let fetched = result.is_ok();
        let result = self.cache.complete(flight, now, result);
        let ours = self
            .op
            .take_if(|op| op.flight == flight && matches!(op.step, Step::Fetch));
        let served = result.map(|token| {
            let source = if fetched {
                Source::Endpoint
            } else {
                Source::Memory
            };
            Served { token, source }
        });
        let Some(op) = ours else {
            self.resolve(flight, &[], served.clone());
            return served;
        };
        if let Ok(Served {
            token,
            source: Source::Endpoint,
        }) = &served
        {
            // Before its wait point, so cached: worth sharing. One already inside its expiry
            // margin is only handed to this flight's callers (the cache backs off after it).
            let wait_at = self
                .cache
                .policy()
                .schedule(op.sent_at, token.expires_at, 0)
                .wait_at;
            if now < wait_at {
                self.token_source = Some(Source::Endpoint);
                self.postponed = (0, 0);
                self.event(Event::TokenObtained {
                    source: Source::Endpoint,
                    expires_at: token.expires_at,
                });
                if op.use_store {
                    let entry = StoredToken {
                        access_token: token.access_token.clone(),
                        scope: token.scope.clone(),
                        issued_at: op.sent_at,
                        expires_at: token.expires_at,
                        stamp: self.rng.next_u64(),
                    };
                    self.actions.push(Action::WriteStore { entry });
                }
            }
        }
        self.release(now, &op);
        self.resolve(op.flight, &op.also, served.clone());
        served
    }

    /// Tells that a [`Action::WriteStore`], [`Action::ReleaseLease`] or
    /// [`Action::DeleteIfStamp`] failed: only an event (nobody waits on these).
    pub fn store_failed(&mut self, failure: StoreFailure) {
        self.store_failures = self.store_failures.saturating_add(1);
        self.event(Event::StoreFailed {
            step: StoreStep::Write,
            failure,
        });
    }

    /// The timer set at [`Fleet::next_wakeup`] fired: gives up a store operation past its
    /// timeout, reads the store again after a pause, or starts a background refresh that is due.
    pub fn wake(&mut self, now: Millis) {
        self.tick(now);
        if self.op.is_none() && self.next_wakeup(now).is_some_and(|at| at <= now) {
            match self.cache.poll(now, false) {
                Poll::ReadyAndRefresh(_, flight) | Poll::Fetch(flight) => {
                    self.begin(now, flight, None, false)
                }
                _ => {}
            }
        }
    }

    /// When the edge should call [`Fleet::wake`]: a store deadline, the end of a pause between
    /// store reads, or the cache's next background refresh. `None` when nothing is scheduled.
    pub fn next_wakeup(&self, now: Millis) -> Option<Millis> {
        let timeout = self.policy.store_timeout_ms;
        match self.op.as_ref().map(|op| op.step) {
            Some(Step::Read { since } | Step::Lease { since }) => {
                Some(since.saturating_add(timeout).max(now))
            }
            Some(Step::Sleep { until }) => Some(until.max(now)),
            Some(Step::Fetch) => None,
            // Closed: no more background refreshes.
            None => self.cache.next_wakeup(now).filter(|_| !self.closed),
        }
    }

    /// A snapshot at `now`.
    pub fn status(&self, now: Millis) -> FleetStatus {
        FleetStatus {
            cache: self.cache.status(now),
            token_source: self.token_source,
            endpoint_requests: self.endpoint_requests,
            store_tokens: self.store_tokens,
            store_reads: self.store_reads,
            store_failures: self.store_failures,
            leases_taken: self.leases_taken,
            waiting_for_lease_holder: self
                .op
                .as_ref()
                .is_some_and(|op| op.wait_until.is_some() && op.lease_at.is_none()),
        }
    }

    fn answer(&mut self, now: Millis, rejected: Option<Secret>, force: bool) -> Answer {
        match self.cache.poll(now, force) {
            Poll::Ready(token) => Answer::Ready(Served {
                token,
                source: Source::Memory,
            }),
            Poll::ReadyAndRefresh(token, flight) => {
                self.begin(now, flight, rejected, false);
                Answer::Ready(Served {
                    token,
                    source: Source::Memory,
                })
            }
            Poll::Fetch(flight) => {
                self.begin(now, flight, rejected, force);
                Answer::Wait(flight.id)
            }
            Poll::Wait(flight) => {
                if let Some(op) = self.op.as_mut().filter(|op| op.rejected.is_none()) {
                    op.rejected = rejected;
                }
                Answer::Wait(flight)
            }
            Poll::Fail(error) => Answer::Fail(error),
        }
    }

    /// Starts an acquisition for the cache's new `flight`. An older one still running belongs
    /// to a flight the cache gave up: its callers are answered with this one's result.
    /// `fetch_now` (a forced refresh) skips the store read and the lease; without a store every
    /// acquisition does.
    fn begin(&mut self, now: Millis, flight: Flight, rejected: Option<Secret>, fetch_now: bool) {
        let mut also = Vec::new();
        if let Some(old) = self.op.take() {
            self.release(now, &old);
            also = old.also;
            also.push(old.flight);
        }
        self.op = Some(Op {
            flight: flight.id,
            sent_at: flight.sent_at,
            also,
            step: Step::Fetch,
            ticket: Ticket(0),
            rejected,
            deleted: None,
            lease_at: None,
            wait_until: None,
            busy_rounds: 0,
            polls: 0,
            last_delay_ms: 0,
            use_store: self.store,
        });
        if self.store && !fetch_now {
            self.read(now);
        } else {
            self.fetch();
        }
    }

    /// Whether `ticket` is the operation the current acquisition waits for.
    fn pending(&self, ticket: Ticket, step: impl Fn(&Step) -> bool) -> bool {
        self.op
            .as_ref()
            .is_some_and(|op| op.ticket == ticket && step(&op.step))
    }

    fn ticket(&mut self) -> Ticket {
        let ticket = Ticket(self.next_ticket);
        self.next_ticket = self.next_ticket.saturating_add(1);
        ticket
    }

    fn read(&mut self, now: Millis) {
        let ticket = self.ticket();
        if let Some(op) = &mut self.op {
            op.step = Step::Read { since: now };
            op.ticket = ticket;
            self.store_reads = self.store_reads.saturating_add(1);
            self.actions.push(Action::ReadStore { ticket });
        }
    }

    fn try_lease(&mut self, now: Millis) {
        if !self.lease_supported {
            return self.fetch();
        }
        let ticket = self.ticket();
        if let Some(op) = &mut self.op {
            op.step = Step::Lease { since: now };
            op.ticket = ticket;
            self.actions.push(Action::TryLease {
                ticket,
                owner: self.owner,
                ttl_ms: self.policy.lease_ttl_ms,
            });
        }
    }

    fn fetch(&mut self) {
        if let Some(op) = &mut self.op {
            op.step = Step::Fetch;
            self.endpoint_requests = self.endpoint_requests.saturating_add(1);
            self.actions.push(Action::FetchToken { flight: op.flight });
        }
    }

    /// Pauses before the next store read, with the cache policy's backoff between
    /// `store_poll_base_ms` and `store_poll_cap_ms`, never past the wait's deadline.
    fn sleep(&mut self, now: Millis) {
        let polling = RefreshPolicy {
            backoff_base_ms: self.policy.store_poll_base_ms,
            backoff_cap_ms: self.policy.store_poll_cap_ms,
            ..*self.cache.policy()
        };
        let random = self.rng.next_u64();
        if let Some(op) = &mut self.op {
            op.polls = op.polls.saturating_add(1);
            let delay = polling
                .backoff_ms(op.polls, op.last_delay_ms, random, None)
                .max(1);
            op.last_delay_ms = delay;
            let until = now.saturating_add(delay);
            op.step = Step::Sleep {
                until: op.wait_until.map_or(until, |deadline| until.min(deadline)),
            };
        }
    }

    /// Nothing usable in the store: fetch if this instance holds the lease, else try to take it.
    fn after_miss(&mut self, now: Millis) {
        if self.policy.coordinated && self.postpone(now) {
            return;
        }
        if self.op.as_ref().is_some_and(|op| op.lease_at.is_some()) {
            self.fetch();
        } else {
            self.try_lease(now);
        }
    }

    /// Another instance holds the lease: wait for its token, reading the store and trying the
    /// lease again after each pause (a holder whose request failed releases it), for up to a
    /// TTL. A holder found after that is a new one (the first one's lease has run out): wait for
    /// it one more TTL, then fetch whatever happens.
    fn lease_busy(&mut self, now: Millis) {
        let ttl = self.policy.lease_ttl_ms;
        let Some(op) = &mut self.op else { return };
        match op.wait_until {
            Some(deadline) if now < deadline => {}
            Some(_) if op.busy_rounds >= 2 => {
                self.event(Event::LeaseWaitOver);
                return self.fetch();
            }
            _ => {
                op.busy_rounds = op.busy_rounds.saturating_add(1);
                op.wait_until = Some(now.saturating_add(ttl));
                // A new holder: its token is due within a round trip, so poll from the base.
                op.polls = 0;
                op.last_delay_ms = 0;
                self.event(Event::LeaseBusy);
            }
        }
        self.sleep(now);
    }

    /// Uses a checked entry if it is the answer: valid and newer than memory. Deletes it if it
    /// holds the rejected token. Returns whether the acquisition is over.
    fn take_entry(&mut self, now: Millis, entry: StoredToken) -> bool {
        let Some(op) = &mut self.op else { return false };
        if op.rejected.as_ref() == Some(&entry.access_token) {
            // Kept for the whole acquisition: the entry may still be there on the next read.
            if op.deleted != Some(entry.stamp) {
                op.deleted = Some(entry.stamp);
                self.event(Event::RejectedEntryDeleted);
                self.actions
                    .push(Action::DeleteIfStamp { stamp: entry.stamp });
            }
            return false;
        }
        let newer = self
            .cache
            .status(now)
            .expires_at
            .map_or(true, |mine| entry.expires_at > mine);
        let token = CachedToken {
            access_token: entry.access_token,
            scope: entry.scope,
            expires_at: entry.expires_at,
            acquired_at: now,
        };
        let flight = op.flight;
        if !newer || !self.cache.adopt(flight, now, &token, entry.issued_at) {
            return false;
        }
        let Some(op) = self.op.take() else {
            return false;
        };
        self.store_tokens = self.store_tokens.saturating_add(1);
        self.token_source = Some(Source::Store);
        self.postponed = (0, 0);
        self.event(Event::TokenObtained {
            source: Source::Store,
            expires_at: token.expires_at,
        });
        self.release(now, &op);
        self.resolve(
            op.flight,
            &op.also,
            Ok(Served {
                token,
                source: Source::Store,
            }),
        );
        true
    }

    /// The store failed: this acquisition goes on alone.
    fn store_down(&mut self, step: StoreStep, failure: StoreFailure) {
        self.store_failures = self.store_failures.saturating_add(1);
        self.event(Event::StoreFailed { step, failure });
        if let Some(op) = &mut self.op {
            op.use_store = false;
        }
        self.fetch();
    }

    /// Gives up a store operation past its timeout; ends a pause that is over.
    fn tick(&mut self, now: Millis) {
        let timeout = self.policy.store_timeout_ms;
        match self.op.as_ref().map(|op| op.step) {
            Some(Step::Read { since }) if now.saturating_sub(since) >= timeout => {
                self.store_down(StoreStep::Read, StoreFailure::Timeout)
            }
            Some(Step::Lease { since }) if now.saturating_sub(since) >= timeout => {
                self.store_down(StoreStep::Lease, StoreFailure::Timeout)
            }
            Some(Step::Sleep { until }) if now >= until => self.read(now),
            _ => {}
        }
    }

    fn release(&mut self, now: Millis, op: &Op) {
        if let Some(taken) = op.lease_at {
            if now.saturating_sub(taken) >= self.policy.lease_ttl_ms {
                self.event(Event::LeaseLost);
            }
            self.actions
                .push(Action::ReleaseLease { owner: self.owner });
        }
    }

    /// [`FleetPolicy::coordinated`]: the coordinator had nothing newer and the token in memory is
    /// still usable: keep it, and ask again after the cache policy's backoff (growing while the
    /// coordinator stays behind). Not after a 401 (that token is refused), nor once the lease
    /// step ran (the instance is then fetching for itself).
    fn postpone(&mut self, now: Millis) -> bool {
        let Some(op) = self
            .op
            .take_if(|op| op.rejected.is_none() && op.lease_at.is_none())
        else {
            return false;
        };
        let (count, last) = self.postponed;
        let count = count.saturating_add(1);
        let delay = self
            .cache
            .policy()
            .backoff_ms(count, last, self.rng.next_u64(), None);
        let Some(token) = self.cache.postpone(op.flight, now, delay) else {
            self.op = Some(op);
            return false;
        };
        self.postponed = (count, delay);
        let served = Served {
            token,
            source: Source::Memory,
        };
        self.resolve(op.flight, &op.also, Ok(served));
        true
    }

    fn resolve(&mut self, flight: FlightId, also: &[FlightId], result: Result<Served, Error>) {
        for &f in also {
            self.actions.push(Action::Resolve {
                flight: f,
                result: result.clone(),
            });
        }
        self.actions.push(Action::Resolve { flight, result });
    }

    fn event(&mut self, event: Event) {
        self.actions.push(Action::Event(event));
    }
}

/// Whether an entry makes sense; the edge has already decrypted and parsed it.
fn check_entry(entry: &StoredToken) -> Result<(), Refusal> {
    let lifetime = entry.expires_at.checked_sub(entry.issued_at);
    let longest = MAX_EXPIRES_IN_SECS.saturating_mul(1_000);
    match lifetime {
        Some(life) if life > 0 && life <= longest && is_b64token(entry.access_token.expose()) => {
            Ok(())
        }
        _ => Err(Refusal::Malformed),
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests;
