//! Four separate OS processes ("replicas"), sixteen concurrent refreshes of
//! one refresh token in each, coordinated only through a real Redis:
//! exactly one grant reaches the provider and all 64 callers get the same
//! tokens. Run against the counting token endpoint and against the real
//! oidc-provider with refresh-token rotation and reuse detection.
//!
//! This file has its own `main` (`harness = false`): the test binary is also
//! the replica. The parent starts copies of itself with `--replica`, hands
//! each the refresh token on stdin (never on the command line), waits until
//! all four are ready, then says `go` to all of them at once.

use keyward_refresh::{ClientAuth, RedisCoordinator, RefreshClient};
use keyward_testkit::oidc::{WEB_CLIENT_ID, WEB_CLIENT_SECRET};
use keyward_testkit::{shared_redis_url, OidcProvider, TestServer, TokenEndpoint};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PROCESSES: usize = 4;
const PER_PROCESS: usize = 16;

type Scenario = fn(&tokio::runtime::Runtime);

/// `[(name, function), ..]` from function names.
macro_rules! named {
    ($($f:ident),* $(,)?) => { [$((stringify!($f), $f as Scenario)),*] };
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--replica") {
        replica(&args[1..]);
        return;
    }
    // Like libtest: a plain argument filters the scenarios by name; flags
    // (e.g. --nocapture) are accepted and ignored.
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let selected = |name: &str| filters.is_empty() || filters.iter().any(|f| name.contains(*f));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let scenarios: [(&str, Scenario); 3] = named![
        four_processes_share_one_grant_at_the_counting_endpoint,
        four_processes_keep_the_oidc_provider_family_alive,
        control_four_processes_without_redis_revoke_the_family,
    ];
    let mut ran = 0;
    for (name, scenario) in scenarios {
        if selected(name) {
            println!("test {name} ...");
            scenario(&runtime);
            println!("test {name} ... ok");
            ran += 1;
        }
    }
    println!("\ntest result: ok. {ran} passed; 0 failed");
}

/// What the replicas reported.
struct Reports {
    results: Vec<Value>,
    grants: u64,
    stats: Vec<Value>,
}

/// Starts the replicas, releases them together, collects their reports.
fn run_replicas(
    token_endpoint: &str,
    auth: &str,
    coordination: &str,
    refresh_token: &str,
) -> Reports {
    let redis_url = shared_redis_url();
    let prefix = format!(
        "keyward-test:multi:{}-{}:",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let exe = std::env::current_exe().unwrap();
    let mut children: Vec<_> = (0..PROCESSES)
        .map(|_| {
            let mut child = Command::new(&exe)
                .args([
                    "--replica",
                    redis_url,
                    &prefix,
                    token_endpoint,
                    auth,
                    coordination,
                ])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            writeln!(child.stdin.as_mut().unwrap(), "{refresh_token}").unwrap();
            let stdout = BufReader::new(child.stdout.take().unwrap());
            (child, stdout.lines())
        })
        .collect();
    for (_, lines) in &mut children {
        assert_eq!(lines.next().unwrap().unwrap(), "ready");
    }
    for (child, _) in &mut children {
        writeln!(child.stdin.as_mut().unwrap(), "go").unwrap();
    }
    let started = Instant::now();
    let mut reports = Reports {
        results: Vec::new(),
        grants: 0,
        stats: Vec::new(),
    };
    for (mut child, lines) in children {
        for line in lines {
            let value: Value = serde_json::from_str(&line.unwrap()).unwrap();
            if let Some(stats) = value.get("stats") {
                reports.grants += stats["grants"].as_u64().unwrap();
                reports.stats.push(stats.clone());
            } else {
                reports.results.push(value);
            }
        }
        assert!(child.wait().unwrap().success(), "a replica failed");
    }
    eprintln!(
        "{PROCESSES} processes x {PER_PROCESS}: {} results in {:?}; per-process stats: {}",
        reports.results.len(),
        started.elapsed(),
        Value::from(reports.stats.clone())
    );
    assert_eq!(reports.results.len(), PROCESSES * PER_PROCESS);
    reports
}

fn assert_identical_successes(reports: &Reports) -> String {
    let first = &reports.results[0];
    assert_eq!(first["ok"], true, "{first}");
    assert!(
        reports.results.iter().all(|r| r == first),
        "all 64 callers get the same tokens"
    );
    assert_eq!(first["rotated"], true);
    first["refresh_token"].as_str().unwrap().to_owned()
}

fn start_counting_endpoint(runtime: &tokio::runtime::Runtime) -> (TestServer, TokenEndpoint) {
    runtime.block_on(async {
        let server = TestServer::start().await;
        let endpoint = TokenEndpoint::new();
        server.set("/token", endpoint.route().delay(Duration::from_millis(300)));
        (server, endpoint)
    })
}

fn four_processes_share_one_grant_at_the_counting_endpoint(runtime: &tokio::runtime::Runtime) {
    let (server, endpoint) = start_counting_endpoint(runtime);
    let old = endpoint.new_family();
    let reports = run_replicas(&server.url("/token"), "post", "redis", &old);
    let new = assert_identical_successes(&reports);
    assert_eq!(endpoint.grants(), 1, "one grant request for 64 callers");
    assert_eq!(reports.grants, 1);
    assert_eq!(endpoint.reuse_detected(), 0);
    assert!(endpoint.family_alive(&new));
    let waited = reports
        .stats
        .iter()
        .filter(|s| s["lease_waits"] == 1 || s["waits_satisfied"] == 1)
        .count();
    assert_eq!(
        waited,
        PROCESSES - 1,
        "the other three used the winner's outcome"
    );
}

fn four_processes_keep_the_oidc_provider_family_alive(runtime: &tokio::runtime::Runtime) {
    let mut provider = runtime.block_on(OidcProvider::start());
    let old = runtime.block_on(provider.refresh_token());
    let token_endpoint = format!("{}/token", provider.issuer);
    let reports = run_replicas(&token_endpoint, "basic", "redis", &old);
    let new = assert_identical_successes(&reports);
    assert_eq!(reports.grants, 1, "one grant for 64 callers in 4 processes");
    // the family is alive: the rotated token refreshes again
    runtime.block_on(async {
        let client = RefreshClient::builder()
            .token_endpoint(&token_endpoint)
            .unwrap()
            .client_auth(ClientAuth::ClientSecretBasic {
                client_id: WEB_CLIENT_ID.into(),
                client_secret: WEB_CLIENT_SECRET.into(),
            })
            .build()
            .unwrap();
        let next = client.refresh(&new).await.expect("the family is alive");
        assert!(next.rotated);
    });
    drop(provider);
}

/// The same processes with in-process single-flight only: each process sends
/// its own grant and the provider revokes the family. Shows that the main
/// scenarios can fail.
fn control_four_processes_without_redis_revoke_the_family(runtime: &tokio::runtime::Runtime) {
    let (server, endpoint) = start_counting_endpoint(runtime);
    let old = endpoint.new_family();
    let reports = run_replicas(&server.url("/token"), "post", "in-process", &old);
    assert_eq!(reports.grants, PROCESSES as u64, "one grant per process");
    // the first replay is flagged as reuse and revokes the family; later
    // replays find it revoked
    assert_eq!(endpoint.reuse_detected(), 1);
    let ok = reports.results.iter().filter(|r| r["ok"] == true).count();
    assert_eq!(ok, PER_PROCESS, "only one process's callers got tokens");
    let new = reports.results.iter().find(|r| r["ok"] == true).unwrap();
    assert!(!endpoint.family_alive(new["refresh_token"].as_str().unwrap()));
}

/// The child: `--replica <redis-url> <key-prefix> <token-endpoint>
/// <post|basic> <redis|in-process>`, the refresh token on the first stdin
/// line, `go` on the second.
fn replica(args: &[String]) {
    let [redis_url, prefix, token_endpoint, auth, coordination] = args else {
        panic!("usage: --replica <redis-url> <key-prefix> <token-endpoint> <post|basic> <redis|in-process>");
    };
    let mut stdin = std::io::stdin().lines();
    let refresh_token = stdin.next().unwrap().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let auth = match auth.as_str() {
            "basic" => ClientAuth::ClientSecretBasic {
                client_id: WEB_CLIENT_ID.into(),
                client_secret: WEB_CLIENT_SECRET.into(),
            },
            _ => ClientAuth::ClientSecretPost {
                client_id: "web".into(),
                client_secret: "secret".into(),
            },
        };
        let mut builder = RefreshClient::builder()
            .token_endpoint(token_endpoint)
            .unwrap()
            .client_auth(auth);
        if coordination == "redis" {
            builder = builder.coordinator(
                RedisCoordinator::builder(redis_url)
                    .key_prefix(prefix)
                    .poll_interval(Duration::from_millis(50))
                    .build()
                    .unwrap(),
            );
        }
        let client = builder.build().unwrap();
        println!("ready");
        assert_eq!(stdin.next().unwrap().unwrap(), "go");
        let tasks: Vec<_> = (0..PER_PROCESS)
            .map(|_| {
                let (client, token) = (client.clone(), refresh_token.clone());
                tokio::spawn(async move { client.refresh(&token).await })
            })
            .collect();
        for task in tasks {
            let line = match task.await.unwrap() {
                Ok(t) => json!({
                    "ok": true,
                    "access_token": t.access_token.expose(),
                    "refresh_token": t.refresh_token.expose(),
                    "rotated": t.rotated,
                    "expires_at": t.expires_at,
                }),
                Err(e) => json!({"ok": false, "kind": e.kind().as_str(), "message": e.message()}),
            };
            println!("{line}");
        }
        let s = client.stats();
        let c = s.coordinator;
        println!(
            "{}",
            json!({"stats": {
                "grants": s.grants, "joined": c.joined, "lease_wins": c.lease_wins,
                "lease_waits": c.lease_waits, "waits_satisfied": c.waits_satisfied,
                "fallbacks": c.fallbacks, "redis_errors": c.redis_errors,
            }})
        );
    });
}
