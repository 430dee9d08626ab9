//! Single-flight refreshes across replicas, coordinated on Redis.
//!
//! The protocol, per refresh token (all key names derive from the token with
//! HKDF; the token itself never reaches Redis):
//!
//! 1. **Look**: an outcome stored for this token (another replica refreshed
//!    it within the late-arrival window) answers at once.
//! 2. **Lease**: `SET {id}:lease <owner> NX PX <ttl>`. The winner alone may
//!    send the grant. Before sending it checks for a stored outcome again and
//!    for an *in-doubt* marker, then — only while its lease is still its own
//!    (a Lua compare) — writes the marker `{id}:sent`: "a grant is on the
//!    wire and its outcome is not yet recorded".
//! 3. **Grant**: while the request is in flight the winner renews its lease
//!    every third of the TTL (compare-and-`PEXPIRE`), so a slow token
//!    endpoint never lets a second replica in.
//! 4. **Store**: one Lua script stores the sealed outcome (see [`seal`]) for
//!    the late-arrival window (a transient failure only briefly), deletes the
//!    in-doubt marker and publishes on `{id}:done`; then the lease is released
//!    (compare-and-delete: never someone else's).
//! 5. **Wait**: a replica that lost the lease subscribes to `{id}:done`, and
//!    polls as a fallback, until the outcome appears, the lease disappears, or
//!    its deadline passes.
//!
//! A winner that dies: its lease lapses after the TTL and a waiter takes the
//! lease. If the in-doubt marker is absent, the dead winner never sent its
//! grant, and the new winner sends it (a safe takeover). If the marker is
//! present, the grant may have reached the provider, whose rotation has then
//! consumed the token: sending it again would make the provider revoke the
//! whole token family (and flag theft). The coordinator does not: it ends the
//! refresh with `invalid_grant` (the session must sign in again) and records
//! that outcome for the window, so every replica answers the same. See
//! `docs/refresh.md` for the reasoning and the other failure modes.

mod seal;

use crate::coordinator::{
    is_final, CoordinatorStats, InProcessCoordinator, Outcome, OutcomeFuture, RefreshCoordinator,
};
use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{AsyncCommands, Client, RedisError, Script};
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
#[derive(Clone, Debug)]
pub struct RedisCoordinatorBuilder {
    url: String,
    prefix: String,
    lease_ttl: Duration,
    wait_timeout: Duration,
    poll_interval: Duration,
    window: Duration,
    failure_ttl: Duration,
    command_timeout: Duration,
    memo_capacity: u64,
    unavailable: WhenRedisUnavailable,
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

    /// How long a transient failure is kept for the callers waiting at that
    /// moment (default 2 s); afterwards a new call tries again.
    pub fn failure_ttl(mut self, ttl: Duration) -> Self {
        self.failure_ttl = ttl;
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
    /// service can start while Redis is down.
    pub fn build(self) -> Result<RedisCoordinator, Error> {
        let config_error = |m: String| Error::new(ErrorKind::RefreshFailed, m);
        if self.lease_ttl < Duration::from_millis(30) {
            return Err(config_error("the lease TTL must be at least 30 ms".into()));
        }
        let client = Client::open(self.url.as_str())
            // The URL may carry a password: the error does not repeat it.
            .map_err(|_| config_error("the Redis URL is not valid".into()))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.command_timeout))
            .set_response_timeout(Some(self.command_timeout))
            .set_number_of_retries(1)
            .set_max_delay(self.command_timeout);
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), config)
            .map_err(|e| config_error(format!("Redis connection: {}", describe(&e))))?;
        Ok(RedisCoordinator {
            local: InProcessCoordinator::new(self.window, self.memo_capacity),
            shared: Arc::new(Shared {
                client,
                conn,
                counters: Counters::default(),
                settings: self,
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
    takeovers: AtomicU64,
    in_doubt: AtomicU64,
    fallbacks: AtomicU64,
    redis_errors: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

struct Shared {
    client: Client,
    conn: ConnectionManager,
    counters: Counters,
    settings: RedisCoordinatorBuilder,
}

/// Coordinates refreshes across every replica that shares a Redis: one grant
/// per refresh token, whichever replica the requests reach.
///
/// Concurrent callers within one process are first collapsed by an
/// [`InProcessCoordinator`]; the one that remains runs the Redis protocol
/// described in the [module documentation](self). Whoever can read Redis
/// learns no token: outcomes are sealed with a key derived from the old
/// refresh token.
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
            command_timeout: Duration::from_secs(1),
            memo_capacity: 10_000,
            unavailable: WhenRedisUnavailable::default(),
        }
    }
}

impl RefreshCoordinator for RedisCoordinator {
    fn coordinate(&self, refresh_token: &str, grant: OutcomeFuture) -> OutcomeFuture {
        let shared = self.shared.clone();
        let secrets = TokenSecrets::derive(refresh_token);
        let across_replicas: OutcomeFuture =
            Box::pin(async move { shared.across_replicas(&secrets, grant).await });
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
            takeovers: get(&c.takeovers),
            in_doubt: get(&c.in_doubt),
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
    /// Short non-secret label for logs.
    label: String,
}

impl Keys {
    fn new(prefix: &str, secrets: &TokenSecrets) -> Keys {
        let base = format!("{prefix}{{{}}}", secrets.id);
        Keys {
            lease: format!("{base}:lease"),
            sent: format!("{base}:sent"),
            result: format!("{base}:result"),
            channel: format!("{base}:done"),
            label: secrets.id.chars().take(8).collect(),
        }
    }
}

/// `KEYS[1]` = lease, `ARGV[1]` = owner: delete only our own lease.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0";
/// `KEYS[1]` = lease, `ARGV[1]` = owner, `ARGV[2]` = TTL ms: renew only our own.
const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0";
/// `KEYS[1]` = lease, `KEYS[2]` = sent marker, `ARGV[1]` = owner, `ARGV[2]` =
/// marker TTL ms: mark the grant as sent only while holding the lease (the
/// fence that keeps a replica whose lease lapsed from sending).
const MARK_SENT: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
return 1";
/// `KEYS[1]` = result, `KEYS[2]` = sent marker, `ARGV[1]` = sealed outcome,
/// `ARGV[2]` = TTL ms, `ARGV[3]` = channel: store, clear the marker, notify.
const STORE: &str = r"
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('DEL', KEYS[2])
redis.call('PUBLISH', ARGV[3], '1')
return 1";

/// Why a wait for another replica ended.
enum Waited {
    Outcome(Outcome),
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

fn refresh_failed(message: String) -> Error {
    Error::new(ErrorKind::RefreshFailed, message)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

fn unreadable() -> Error {
    refresh_failed("the outcome another replica stored for this refresh token cannot be opened (tampered with, or written by an incompatible version); not sending the token again".to_owned())
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

    async fn across_replicas(&self, secrets: &TokenSecrets, grant: OutcomeFuture) -> Outcome {
        let keys = Keys::new(&self.settings.prefix, secrets);
        let deadline = Instant::now() + self.settings.wait_timeout;
        let mut conn = self.conn.clone();

        // 1. Another replica may have refreshed this token already.
        match self.run(conn.get::<_, Option<Vec<u8>>>(&keys.result)).await {
            Ok(Some(record)) => {
                bump(&self.counters.waits_satisfied);
                tracing::debug!(token = %keys.label, "refresh answered by another replica's stored outcome");
                return secrets.open(&record).unwrap_or_else(|| Err(unreadable()));
            }
            Ok(None) => {}
            Err(e) => return self.unavailable(&keys, grant, e).await,
        }

        let owner = owner_id();
        let mut waited = false;
        loop {
            // 2. Try to win the lease.
            let won = self
                .run(
                    ::redis::cmd("SET")
                        .arg(&keys.lease)
                        .arg(&owner)
                        .arg("NX")
                        .arg("PX")
                        .arg(millis(self.settings.lease_ttl))
                        .query_async::<Option<String>>(&mut conn),
                )
                .await;
            match won {
                Ok(Some(_)) => {
                    bump(&self.counters.lease_wins);
                    return self.lead(&keys, secrets, &owner, grant, waited).await;
                }
                Ok(None) => {}
                Err(e) if !waited => return self.unavailable(&keys, grant, e).await,
                Err(e) => return Err(self.lost_contact(&keys, e)),
            }
            // 5. Another replica holds it: wait for its outcome.
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
                    return Err(refresh_failed(format!(
                        "another replica is still refreshing this token after {:?}; not sending it a second time",
                        self.settings.wait_timeout
                    )));
                }
                Waited::Redis(e) => return Err(self.lost_contact(&keys, e)),
            }
        }
    }

    /// This replica holds the lease: decide whether it may send the grant,
    /// send it, and publish the outcome.
    async fn lead(
        &self,
        keys: &Keys,
        secrets: &TokenSecrets,
        owner: &str,
        grant: OutcomeFuture,
        took_over: bool,
    ) -> Outcome {
        let mut conn = self.conn.clone();
        let outcome = self
            .decide_and_grant(keys, secrets, owner, grant, took_over)
            .await;
        let released = self
            .run(
                Script::new(RELEASE)
                    .key(&keys.lease)
                    .arg(owner)
                    .invoke_async::<i64>(&mut conn),
            )
            .await;
        if let Err(e) = released {
            tracing::warn!(token = %keys.label, error = %e, "could not release the refresh lease; it lapses after its TTL");
        }
        outcome
    }

    async fn decide_and_grant(
        &self,
        keys: &Keys,
        secrets: &TokenSecrets,
        owner: &str,
        mut grant: OutcomeFuture,
        took_over: bool,
    ) -> Outcome {
        let mut conn = self.conn.clone();
        let window = millis(self.settings.window);
        // Between the first look and winning the lease, a previous holder may
        // have finished, or died after sending its grant.
        let (stored, sent): (Option<Vec<u8>>, Option<String>) = match self
            .run(
                ::redis::pipe()
                    .get(&keys.result)
                    .get(&keys.sent)
                    .query_async(&mut conn),
            )
            .await
        {
            Ok(found) => found,
            Err(e) => return Err(self.lost_contact(keys, e)),
        };
        if let Some(record) = stored {
            bump(&self.counters.waits_satisfied);
            return secrets.open(&record).unwrap_or_else(|| Err(unreadable()));
        }
        if sent.is_some() {
            bump(&self.counters.in_doubt);
            tracing::warn!(token = %keys.label, "a replica sent this refresh token's grant and stopped before recording the outcome; not replaying it");
            let outcome: Outcome = Err(Error::new(
                ErrorKind::InvalidGrant,
                "the refresh of this token was sent by a replica that stopped before recording the outcome; the provider may have consumed the token, and sending it again would revoke the whole session family, so this session must sign in again",
            ));
            let recorded = self
                .run(
                    ::redis::cmd("SET")
                        .arg(&keys.result)
                        .arg(secrets.seal(&outcome))
                        .arg("NX")
                        .arg("PX")
                        .arg(window)
                        .query_async::<Option<String>>(&mut conn),
                )
                .await;
            if let Err(e) = recorded {
                tracing::warn!(token = %keys.label, error = %e, "could not record the in-doubt outcome");
            }
            return outcome;
        }
        // The fence: mark the grant as sent only while the lease is ours.
        let marked = self
            .run(
                Script::new(MARK_SENT)
                    .key(&keys.lease)
                    .key(&keys.sent)
                    .arg(owner)
                    .arg(window)
                    .invoke_async::<i64>(&mut conn),
            )
            .await;
        match marked {
            Ok(1) => {}
            Ok(_) => {
                return Err(refresh_failed(
                    "this replica's refresh lease lapsed before it could send the grant; not sending it".to_owned(),
                ))
            }
            Err(e) => return Err(self.lost_contact(keys, e)),
        }
        if took_over {
            bump(&self.counters.takeovers);
            tracing::info!(token = %keys.label, "took over a refresh whose replica stopped before sending it");
        }
        tracing::debug!(token = %keys.label, "won the refresh lease; sending the grant");

        // 3. The grant, with the lease renewed while it is in flight.
        let outcome = tokio::select! {
            outcome = &mut grant => outcome,
            never = self.renew(keys, owner) => match never {},
        };

        // 4. Store (sealed), clear the in-doubt marker, notify.
        let ttl = if is_final(&outcome) {
            window
        } else {
            millis(self.settings.failure_ttl)
        };
        let stored = self
            .run(
                Script::new(STORE)
                    .key(&keys.result)
                    .key(&keys.sent)
                    .arg(secrets.seal(&outcome))
                    .arg(ttl)
                    .arg(&keys.channel)
                    .invoke_async::<i64>(&mut conn),
            )
            .await;
        if let Err(e) = stored {
            tracing::warn!(token = %keys.label, error = %e, "could not store the refresh outcome for the other replicas");
        }
        outcome
    }

    /// Renews the lease every third of its TTL, forever (the caller stops
    /// polling this future when the grant completes).
    async fn renew(&self, keys: &Keys, owner: &str) -> Infallible {
        let mut conn = self.conn.clone();
        let ttl = self.settings.lease_ttl;
        loop {
            tokio::time::sleep(ttl / 3).await;
            let renewed = self
                .run(
                    Script::new(RENEW)
                        .key(&keys.lease)
                        .arg(owner)
                        .arg(millis(ttl))
                        .invoke_async::<i64>(&mut conn),
                )
                .await;
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
        let mut conn = self.conn.clone();
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
                    return Waited::Outcome(
                        secrets.open(&record).unwrap_or_else(|| Err(unreadable())),
                    )
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
    async fn unavailable(&self, keys: &Keys, grant: OutcomeFuture, e: String) -> Outcome {
        match self.settings.unavailable {
            WhenRedisUnavailable::FallBackToInProcess => {
                bump(&self.counters.fallbacks);
                tracing::warn!(token = %keys.label, error = %e, "Redis unavailable: refreshing with in-process single-flight only");
                grant.await
            }
            WhenRedisUnavailable::Fail => Err(refresh_failed(format!(
                "Redis is unavailable ({e}) and refreshing without cross-replica coordination is disabled"
            ))),
        }
    }

    /// Redis failed after another replica may have started this refresh: the
    /// token is not sent from here, whatever the policy, because that replica
    /// may be exchanging it right now.
    fn lost_contact(&self, keys: &Keys, e: String) -> Error {
        tracing::warn!(token = %keys.label, error = %e, "lost Redis in the middle of a coordinated refresh");
        refresh_failed(format!(
            "Redis failed during a coordinated refresh ({e}); another replica may be refreshing this token, so it is not sent from here"
        ))
    }
}

/// A fresh random lease owner id (128 bits, hex).
fn owner_id() -> String {
    let mut bytes = [0u8; 16];
    OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
