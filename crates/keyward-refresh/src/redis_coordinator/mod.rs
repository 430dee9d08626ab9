//! Single-flight refreshes across replicas, coordinated on Redis: the
//! protocol is documented on [`RedisCoordinator`].

mod seal;

use crate::coordinator::{
    key_of, label, CoordinatorStats, InProcessCoordinator, RefreshCoordinator, DEFAULT_QUARANTINE,
    DEFAULT_QUARANTINE_CAPACITY,
};
use crate::outcome::{GrantFuture, GrantOutcome, Retention};
use crate::secret::Secret;
use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{Client, RedisError, Script};
use aes_gcm::aead::rand_core::RngCore;
use aes_gcm::aead::OsRng;
use futures_util::StreamExt;
use keyward_core::{Error, ErrorKind};
use seal::TokenSecrets;
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{timeout, Instant};

/// What a [`RedisCoordinator`] does when Redis cannot be reached at the start
/// of a refresh.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WhenRedisUnavailable {
    /// Refresh with in-process single-flight only, and log a warning
    /// (default). Replicas may then race each other for this token, as they
    /// would without Redis; requests of one process still share one grant.
    #[default]
    FallBackToInProcess,
    /// Fail the refresh with `refresh_failed`: never risk a cross-replica
    /// race. A valid access token still serves the request; an expired one
    /// gets a 503 until Redis is back.
    Fail,
}

/// Settings of a [`RedisCoordinator`]; see [`RedisCoordinator::builder`].
#[derive(Clone)]
pub struct RedisCoordinatorBuilder {
    url: String,
    prefix: String,
    lease_ttl: Duration,
    wait_timeout: Duration,
    poll_interval: Duration,
    window: Duration,
    failure_ttl: Duration,
    quarantine: Duration,
    quarantine_capacity: usize,
    command_timeout: Duration,
    memo_capacity: u64,
    unavailable: WhenRedisUnavailable,
}

impl fmt::Debug for RedisCoordinatorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the URL: it may carry the Redis password.
        f.debug_struct("RedisCoordinatorBuilder")
            .field("key_prefix", &self.prefix)
            .field("lease_ttl", &self.lease_ttl)
            .field("wait_timeout", &self.wait_timeout)
            .field("poll_interval", &self.poll_interval)
            .field("late_arrival_window", &self.window)
            .field("failure_ttl", &self.failure_ttl)
            .field("quarantine", &self.quarantine)
            .field("command_timeout", &self.command_timeout)
            .field("when_unavailable", &self.unavailable)
            .finish_non_exhaustive()
    }
}

impl RedisCoordinatorBuilder {
    /// Prefix of every key and channel (default `keyward:refresh:`). Replicas
    /// that refresh the same tokens must share it.
    pub fn key_prefix(mut self, prefix: &str) -> Self {
        self.prefix = prefix.to_owned();
        self
    }

    /// How long a lease lives without renewal (default 5 s). It bounds how
    /// long a dead winner blocks the others; renewal keeps it alive however
    /// slow the token endpoint is.
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl;
        self
    }

    /// Longest a caller waits for another replica's grant (default 15 s,
    /// above the client's default 10 s request timeout). At the deadline it
    /// gets `refresh_failed`; it never sends the token itself while another
    /// replica holds the lease.
    pub fn wait_timeout(mut self, timeout: Duration) -> Self {
        self.wait_timeout = timeout;
        self
    }

    /// How often a waiter checks Redis when no notification arrives (default
    /// 100 ms). Notifications (pub/sub) normally answer sooner.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// How long a final outcome (new tokens or `invalid_grant`) answers late
    /// arrivals on every replica (default 60 s); also this process's memo.
    pub fn late_arrival_window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// How long an outcome that is not remembered — *not sent*, or a
    /// non-rotating provider's grant — is kept for the callers waiting at
    /// that moment (default 2 s); afterwards a new call tries again.
    pub fn failure_ttl(mut self, ttl: Duration) -> Self {
        self.failure_ttl = ttl;
        self
    }

    /// How long a token whose grant ended in doubt is not sent again by any
    /// replica (default 24 h), and how many such tokens this process also
    /// remembers locally (default 100 000). The sent marker and the in-doubt
    /// outcome live in Redis for this long. See
    /// [`InProcessCoordinator::with_quarantine`] for the trade-off.
    pub fn in_doubt_quarantine(mut self, quarantine: Duration, capacity: usize) -> Self {
        self.quarantine = quarantine;
        self.quarantine_capacity = capacity;
        self
    }

    /// Timeout of each Redis command and of connecting (default 1 s).
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// Most outcomes kept in this process's memo (default 10 000).
    pub fn late_arrival_capacity(mut self, entries: u64) -> Self {
        self.memo_capacity = entries;
        self
    }

    /// What to do when Redis is unavailable (default: fall back to
    /// in-process single-flight with a warning).
    pub fn when_unavailable(mut self, policy: WhenRedisUnavailable) -> Self {
        self.unavailable = policy;
        self
    }

    /// Builds the coordinator. It connects lazily, on the first refresh, so a
    /// service can start while Redis is down, and `build` needs no Tokio
    /// runtime.
    pub fn build(self) -> Result<RedisCoordinator, Error> {
        let config_error = |m: String| Error::new(ErrorKind::RefreshFailed, m);
        if self.lease_ttl < Duration::from_millis(30) {
            return Err(config_error("the lease TTL must be at least 30 ms".into()));
        }
        let client = Client::open(self.url.as_str())
            // The URL may carry a password: the error does not repeat it.
            .map_err(|_| config_error("the Redis URL is not valid".into()))?;
        Ok(RedisCoordinator {
            local: InProcessCoordinator::with_quarantine(
                self.window,
                self.memo_capacity,
                self.quarantine,
                self.quarantine_capacity,
            ),
            shared: Arc::new(Shared {
                client,
                conn: tokio::sync::OnceCell::new(),
                counters: Counters::default(),
                settings: self,
                acquire: Script::new(ACQUIRE),
                renew: Script::new(RENEW),
                finish: Script::new(FINISH),
            }),
        })
    }
}

#[derive(Default)]
struct Counters {
    lease_wins: AtomicU64,
    lease_waits: AtomicU64,
    waits_satisfied: AtomicU64,
    lease_renewals: AtomicU64,
    fallbacks: AtomicU64,
    redis_errors: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

struct Shared {
    client: Client,
    /// Made on first use, inside the runtime (a `ConnectionManager` spawns).
    conn: tokio::sync::OnceCell<ConnectionManager>,
    counters: Counters,
    settings: RedisCoordinatorBuilder,
    /// The protocol's scripts, hashed once (run by `EVALSHA`).
    acquire: Script,
    renew: Script,
    finish: Script,
}

/// Coordinates refreshes across every replica that shares a Redis: one grant
/// per refresh token, whichever replica the requests reach.
///
/// Concurrent callers within one process are first collapsed by an
/// [`InProcessCoordinator`]; the one that remains runs the Redis protocol
/// below.
///
/// # The protocol
///
/// Per refresh token. Every key name derives from the token with HKDF (see
/// *What Redis holds*); the token itself never reaches Redis. Each step is one
/// Lua script, so each is atomic and costs one round trip.
///
/// 1. **Acquire**: if an outcome is stored for this token (another
///    replica refreshed it within the late-arrival window), it is the answer.
///    Otherwise `SET {id}:lease <owner> NX PX <ttl>`. The replica that wins
///    the lease, in the same script, writes the *sent marker* `{id}:sent`: "a
///    grant for this token may be on the wire and its outcome is not
///    recorded"; it lives for the in-doubt quarantine. If the marker is
///    already there, a previous lease holder stopped without recording an
///    outcome: the token is *in doubt*.
/// 2. **Grant**: the winner sends the refresh grant and, while it is in
///    flight, renews its lease every third of the TTL (compare-and-`PEXPIRE`,
///    only its own lease; the sent marker with it), so a slow token endpoint
///    never lets a second replica in.
/// 3. **Finish**: store the sealed [`GrantOutcome`] (a granted rotation or
///    a rejection for the late-arrival window; an in-doubt outcome for the
///    quarantine, keeping the sent marker; anything else only briefly),
///    publish on `{id}:done`, and release the lease if it is still this
///    replica's (compare-and-delete).
/// 4. **Wait**: a replica that found the lease taken subscribes to
///    `{id}:done` and polls as a fallback until the outcome appears (its
///    answer), the lease disappears without one (back to step 1), or its
///    deadline passes (`refresh_failed`; it never sends the token itself).
///
/// # A winner that dies
///
/// A winner that dies mid-grant: its lease lapses after the TTL, and the next
/// replica to acquire it finds the sent marker. The dead replica may or may
/// not have reached the provider; if it did, the provider's rotation has
/// consumed the token, and sending it again would make the provider revoke the
/// whole token family (and flag theft). So there is no takeover: the refresh
/// ends [in doubt](GrantOutcome::InDoubt), recorded for the quarantine so that
/// no replica sends the token; the session continues on its access token
/// until it expires. See `docs/refresh.md` for the reasoning and the other
/// failure modes.
///
/// # What Redis holds
///
/// Whoever can read Redis learns no token. The outcome is sealed with
/// AES-256-GCM under a key derived with HKDF-SHA256 from the *old* refresh
/// token, which Redis never sees; key names come from the same HKDF under
/// another label. A record that does not open is refused, never trusted.
///
/// ```no_run
/// # fn example() -> Result<(), keyward_core::Error> {
/// use keyward_refresh::{RedisCoordinator, RefreshClient};
/// let coordinator = RedisCoordinator::builder("redis://127.0.0.1:6379/").build()?;
/// let client = RefreshClient::builder()
///     .token_endpoint("https://issuer.example/token")?
///     .coordinator(coordinator)
///     .build()?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisCoordinator {
    local: InProcessCoordinator,
    shared: Arc<Shared>,
}

impl fmt::Debug for RedisCoordinator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may carry a password: only the prefix and the stats.
        f.debug_struct("RedisCoordinator")
            .field("key_prefix", &self.shared.settings.prefix)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl RedisCoordinator {
    /// Starts configuring a coordinator on the Redis at `url`
    /// (`redis://[:password@]host:port[/db]`).
    pub fn builder(url: &str) -> RedisCoordinatorBuilder {
        RedisCoordinatorBuilder {
            url: url.to_owned(),
            prefix: "keyward:refresh:".to_owned(),
            lease_ttl: Duration::from_secs(5),
            wait_timeout: Duration::from_secs(15),
            poll_interval: Duration::from_millis(100),
            window: Duration::from_secs(60),
            failure_ttl: Duration::from_secs(2),
            quarantine: DEFAULT_QUARANTINE,
            quarantine_capacity: DEFAULT_QUARANTINE_CAPACITY,
            command_timeout: Duration::from_secs(1),
            memo_capacity: 10_000,
            unavailable: WhenRedisUnavailable::default(),
        }
    }
}

impl RefreshCoordinator for RedisCoordinator {
    fn coordinate(&self, refresh_token: &str, grant: GrantFuture) -> GrantFuture {
        let shared = self.shared.clone();
        let token = Secret::new(refresh_token.to_owned());
        // Runs only for the caller that leads the local flight: joiners and
        // memo hits derive nothing.
        let across_replicas: GrantFuture = Box::pin(async move {
            let secrets = TokenSecrets::derive(token.expose());
            let label = label(&key_of(token.expose()));
            drop(token);
            shared.across_replicas(&secrets, label, grant).await
        });
        self.local.coordinate(refresh_token, across_replicas)
    }

    fn stats(&self) -> CoordinatorStats {
        let c = &self.shared.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        CoordinatorStats {
            lease_wins: get(&c.lease_wins),
            lease_waits: get(&c.lease_waits),
            waits_satisfied: get(&c.waits_satisfied),
            lease_renewals: get(&c.lease_renewals),
            fallbacks: get(&c.fallbacks),
            redis_errors: get(&c.redis_errors),
            ..self.local.stats()
        }
    }
}

/// The Redis names of one token's coordination state. The `{id}` hash tag
/// keeps them in one Redis Cluster slot.
struct Keys {
    lease: String,
    sent: String,
    result: String,
    channel: String,
    /// Short non-secret label for logs, the same as the in-process one.
    label: String,
}

impl Keys {
    fn new(prefix: &str, secrets: &TokenSecrets, label: String) -> Keys {
        let base = format!("{prefix}{{{}}}", secrets.id);
        Keys {
            lease: format!("{base}:lease"),
            sent: format!("{base}:sent"),
            result: format!("{base}:result"),
            channel: format!("{base}:done"),
            label,
        }
    }
}

/// Step 1. `KEYS` = result, lease, sent marker; `ARGV` = owner, lease TTL ms,
/// marker TTL ms (the quarantine). Returns `{"outcome", record}`, `{"won"}`, `{"in_doubt"}`
/// (the lease is ours, the marker was already there) or `{"busy"}`.
const ACQUIRE: &str = r"
local stored = redis.call('GET', KEYS[1])
if stored then return {'outcome', stored} end
if not redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return {'busy'} end
if redis.call('EXISTS', KEYS[3]) == 1 then return {'in_doubt'} end
redis.call('SET', KEYS[3], ARGV[1], 'PX', ARGV[3])
return {'won'}";
/// Step 2. `KEYS` = lease, sent marker; `ARGV` = owner, lease TTL ms, marker
/// TTL ms: renew only our own lease, and the marker with it.
const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0";
/// Step 3. `KEYS` = result, sent marker, lease; `ARGV` = sealed outcome, TTL
/// ms, channel, owner, keep marker (`1` for an in-doubt outcome): store,
/// clear the marker unless in doubt, notify, release our lease.
const FINISH: &str = r"
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if ARGV[5] ~= '1' then redis.call('DEL', KEYS[2]) end
redis.call('PUBLISH', ARGV[3], '1')
if redis.call('GET', KEYS[3]) == ARGV[4] then redis.call('DEL', KEYS[3]) end
return 1";

/// What step 1 found.
enum Acquired {
    Outcome(Vec<u8>),
    Won,
    InDoubt,
    Busy,
}

/// Why a wait for another replica ended.
enum Waited {
    Outcome(GrantOutcome),
    /// The lease is gone without an outcome: try to take it.
    LeaseGone,
    Deadline,
    Redis(String),
}

/// A Redis failure, described without anything secret: Redis errors name
/// the failure (connection refused, timeout, server error), never a value
/// sent, and key names are HKDF outputs.
fn describe(e: &RedisError) -> String {
    e.to_string()
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// A stored outcome that does not open: someone recorded an outcome for this
/// token, so it may be consumed. Never trusted, never resent.
fn unreadable() -> GrantOutcome {
    GrantOutcome::in_doubt("the outcome another replica stored for this refresh token cannot be opened (tampered with, or written by an incompatible version)")
}

impl Shared {
    /// Runs one Redis command with the command timeout.
    async fn run<T>(
        &self,
        command: impl Future<Output = Result<T, RedisError>>,
    ) -> Result<T, String> {
        let outcome = match timeout(self.settings.command_timeout, command).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(describe(&e)),
            Err(_) => Err(format!(
                "no answer within {:?}",
                self.settings.command_timeout
            )),
        };
        if outcome.is_err() {
            bump(&self.counters.redis_errors);
        }
        outcome
    }

    async fn across_replicas(
        &self,
        secrets: &TokenSecrets,
        label: String,
        grant: GrantFuture,
    ) -> GrantOutcome {
        let keys = Keys::new(&self.settings.prefix, secrets, label);
        let deadline = Instant::now() + self.settings.wait_timeout;
        let owner = owner_id();
        let mut waited = false;
        loop {
            match self.acquire(&keys, &owner).await {
                Ok(Acquired::Outcome(record)) => {
                    bump(&self.counters.waits_satisfied);
                    tracing::debug!(token = %keys.label, "refresh answered by another replica's outcome");
                    return secrets.open(&record).unwrap_or_else(unreadable);
                }
                Ok(Acquired::Won) => {
                    bump(&self.counters.lease_wins);
                    tracing::debug!(token = %keys.label, "won the refresh lease; sending the grant");
                    return self.lead(&keys, secrets, &owner, grant).await;
                }
                Ok(Acquired::InDoubt) => return self.in_doubt(&keys, secrets, &owner).await,
                Ok(Acquired::Busy) => {}
                Err(e) if !waited => return self.unavailable(&keys, grant, e).await,
                Err(e) => return self.lost_contact(&keys, e),
            }
            // Another replica holds the lease: wait for its outcome.
            if !waited {
                bump(&self.counters.lease_waits);
                tracing::debug!(token = %keys.label, "another replica is refreshing this token; waiting");
            }
            waited = true;
            match self.wait(&keys, secrets, deadline).await {
                Waited::Outcome(outcome) => {
                    bump(&self.counters.waits_satisfied);
                    return outcome;
                }
                Waited::LeaseGone => continue,
                Waited::Deadline => {
                    tracing::warn!(token = %keys.label, "gave up waiting for another replica's refresh");
                    return GrantOutcome::not_sent(format!(
                        "another replica is still refreshing this token after {:?}; not sending it a second time",
                        self.settings.wait_timeout
                    ));
                }
                Waited::Redis(e) => return self.lost_contact(&keys, e),
            }
        }
    }

    /// Step 1: the stored outcome, or the lease (with the sent marker).
    async fn acquire(&self, keys: &Keys, owner: &str) -> Result<Acquired, String> {
        let mut conn = self.connection().await?;
        let reply: Vec<::redis::Value> = self
            .run(
                self.acquire
                    .key(&keys.result)
                    .key(&keys.lease)
                    .key(&keys.sent)
                    .arg(owner)
                    .arg(millis(self.settings.lease_ttl))
                    .arg(millis(self.settings.quarantine))
                    .invoke_async(&mut conn),
            )
            .await?;
        match reply.as_slice() {
            [::redis::Value::BulkString(status), ::redis::Value::BulkString(record)]
                if status == b"outcome" =>
            {
                Ok(Acquired::Outcome(record.clone()))
            }
            [::redis::Value::BulkString(status)] => match status.as_slice() {
                b"won" => Ok(Acquired::Won),
                b"in_doubt" => Ok(Acquired::InDoubt),
                b"busy" => Ok(Acquired::Busy),
                _ => Err("unexpected reply from the acquire script".to_owned()),
            },
            _ => Err("unexpected reply from the acquire script".to_owned()),
        }
    }

    /// Steps 2 and 3: this replica holds the lease and has set the sent
    /// marker. Send the grant (renewing the lease), then record the outcome.
    async fn lead(
        &self,
        keys: &Keys,
        secrets: &TokenSecrets,
        owner: &str,
        mut grant: GrantFuture,
    ) -> GrantOutcome {
        let outcome = tokio::select! {
            outcome = &mut grant => outcome,
            never = self.renew(keys, owner) => match never {},
        };
        self.finish(keys, secrets, owner, &outcome).await;
        outcome
    }

    /// The lease is ours, but a previous holder left the sent marker: it may
    /// have reached the provider, so the token is not sent again.
    async fn in_doubt(&self, keys: &Keys, secrets: &TokenSecrets, owner: &str) -> GrantOutcome {
        tracing::warn!(token = %keys.label, "a replica stopped after it may have sent this refresh token's grant; not replaying it");
        let outcome = GrantOutcome::in_doubt(
            "the refresh of this token was started by a replica that stopped before recording the outcome",
        );
        self.finish(keys, secrets, owner, &outcome).await;
        outcome
    }

    /// Step 3: store the sealed outcome, clear the marker, notify, release.
    async fn finish(
        &self,
        keys: &Keys,
        secrets: &TokenSecrets,
        owner: &str,
        outcome: &GrantOutcome,
    ) {
        let (ttl, keep_marker) = match outcome.retention() {
            Retention::Forget => (self.settings.failure_ttl, false),
            Retention::LateArrivalWindow => (self.settings.window, false),
            Retention::Quarantine => (self.settings.quarantine, true),
        };
        let mut conn = match self.connection().await {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!(token = %keys.label, error = %e, "could not record the refresh outcome for the other replicas");
                return;
            }
        };
        let finished = self
            .run(
                self.finish
                    .key(&keys.result)
                    .key(&keys.sent)
                    .key(&keys.lease)
                    .arg(secrets.seal(outcome))
                    .arg(millis(ttl))
                    .arg(&keys.channel)
                    .arg(owner)
                    .arg(if keep_marker { "1" } else { "0" })
                    .invoke_async::<i64>(&mut conn),
            )
            .await;
        if let Err(e) = finished {
            // The others find the lease lapsed with the marker set: in doubt.
            tracing::warn!(token = %keys.label, error = %e, "could not record the refresh outcome for the other replicas");
        }
    }

    /// Renews the lease every third of its TTL, forever (the caller stops
    /// polling this future when the grant completes).
    async fn renew(&self, keys: &Keys, owner: &str) -> Infallible {
        let ttl = self.settings.lease_ttl;
        loop {
            tokio::time::sleep(ttl / 3).await;
            let renewed = match self.connection().await {
                Ok(mut conn) => {
                    self.run(
                        self.renew
                            .key(&keys.lease)
                            .key(&keys.sent)
                            .arg(owner)
                            .arg(millis(ttl))
                            .arg(millis(self.settings.quarantine))
                            .invoke_async::<i64>(&mut conn),
                    )
                    .await
                }
                Err(e) => Err(e),
            };
            match renewed {
                Ok(1) => bump(&self.counters.lease_renewals),
                Ok(_) => {
                    tracing::warn!(token = %keys.label, "the refresh lease was lost while the grant is in flight")
                }
                Err(e) => {
                    tracing::warn!(token = %keys.label, error = %e, "could not renew the refresh lease")
                }
            }
        }
    }

    /// Waits for the lease holder's outcome: notified by pub/sub, checked by
    /// polling in any case.
    async fn wait(&self, keys: &Keys, secrets: &TokenSecrets, deadline: Instant) -> Waited {
        let mut conn = match self.connection().await {
            Ok(conn) => conn,
            Err(e) => return Waited::Redis(e),
        };
        // Subscribe before looking, so a notification sent in between is not
        // lost. Without a subscription, polling alone still works.
        let mut messages = match self.subscribe(&keys.channel).await {
            Ok(stream) => Some(stream),
            Err(e) => {
                tracing::debug!(token = %keys.label, error = %e, "no pub/sub subscription; polling");
                None
            }
        };
        loop {
            let look = self
                .run(
                    ::redis::pipe()
                        .get(&keys.result)
                        .exists(&keys.lease)
                        .query_async::<(Option<Vec<u8>>, bool)>(&mut conn),
                )
                .await;
            match look {
                Ok((Some(record), _)) => {
                    return Waited::Outcome(secrets.open(&record).unwrap_or_else(unreadable))
                }
                Ok((None, false)) => return Waited::LeaseGone,
                Ok((None, true)) => {}
                Err(e) => return Waited::Redis(e),
            }
            let now = Instant::now();
            if now >= deadline {
                return Waited::Deadline;
            }
            let nap = self.settings.poll_interval.min(deadline - now);
            match messages.as_mut() {
                Some(stream) => {
                    if let Ok(None) = timeout(nap, stream.next()).await {
                        // The subscription's connection closed: poll from now on.
                        messages = None;
                    }
                }
                None => tokio::time::sleep(nap).await,
            }
        }
    }

    async fn subscribe(&self, channel: &str) -> Result<::redis::aio::PubSubStream, String> {
        let mut pubsub = self.run(self.client.get_async_pubsub()).await?;
        self.run(pubsub.subscribe(channel)).await?;
        Ok(pubsub.into_on_message())
    }

    /// Redis failed at the start of a refresh: apply the configured policy.
    async fn unavailable(&self, keys: &Keys, grant: GrantFuture, e: String) -> GrantOutcome {
        match self.settings.unavailable {
            WhenRedisUnavailable::FallBackToInProcess => {
                bump(&self.counters.fallbacks);
                tracing::warn!(token = %keys.label, error = %e, "Redis unavailable: refreshing with in-process single-flight only");
                grant.await
            }
            WhenRedisUnavailable::Fail => GrantOutcome::not_sent(format!(
                "Redis is unavailable ({e}) and refreshing without cross-replica coordination is disabled"
            )),
        }
    }

    /// Redis failed after another replica may have started this refresh: the
    /// token is not sent from here, whatever the policy, because that replica
    /// may be exchanging it right now.
    fn lost_contact(&self, keys: &Keys, e: String) -> GrantOutcome {
        tracing::warn!(token = %keys.label, error = %e, "lost Redis in the middle of a coordinated refresh");
        GrantOutcome::not_sent(format!(
            "Redis failed during a coordinated refresh ({e}); another replica may be refreshing this token, so it is not sent from here"
        ))
    }

    /// The shared connection, made on first use (it reconnects by itself).
    async fn connection(&self) -> Result<ConnectionManager, String> {
        let settings = &self.settings;
        self.conn
            .get_or_try_init(|| async {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(settings.command_timeout))
                    .set_response_timeout(Some(settings.command_timeout))
                    .set_number_of_retries(1)
                    .set_max_delay(settings.command_timeout);
                ConnectionManager::new_lazy_with_config(self.client.clone(), config)
                    .map_err(|e| describe(&e))
            })
            .await
            .cloned()
    }
}

/// A fresh random lease owner id (128 bits, hex).
fn owner_id() -> String {
    let mut bytes = [0u8; 16];
    OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn debug_output_never_shows_the_redis_url_or_its_password() {
        let builder = RedisCoordinator::builder("redis://:hunter2-SECRET@127.0.0.1:1/");
        let shown = format!("{builder:?}");
        assert!(
            !shown.contains("SECRET") && !shown.contains("redis://"),
            "{shown}"
        );
        let coordinator = builder.build().unwrap();
        let shown = format!("{coordinator:?}");
        assert!(
            !shown.contains("SECRET") && !shown.contains("redis://"),
            "{shown}"
        );
    }

    #[test]
    fn build_needs_no_runtime() {
        // Outside any Tokio runtime: building must not panic (it connects on
        // first use).
        let coordinator = RedisCoordinator::builder("redis://127.0.0.1:1/")
            .build()
            .unwrap();
        assert_eq!(coordinator.stats(), CoordinatorStats::default());
    }

    #[test]
    fn a_bad_url_is_refused_without_echoing_it() {
        let err = RedisCoordinator::builder("nonsense://SECRET@@")
            .build()
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::RefreshFailed);
        assert!(!err.message().contains("SECRET"), "{err}");
    }
}
