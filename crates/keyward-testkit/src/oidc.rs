//! The real `oidc-provider` from `tests/oidc`, on 127.0.0.1.

use serde_json::Value;
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// A running provider; it stops when this is dropped.
pub struct OidcProvider {
    /// The issuer URL (`http://127.0.0.1:PORT`).
    pub issuer: String,
    /// The kids of the current signing keys (RS256, ES256, EdDSA).
    pub kids: Vec<String>,
    _child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    http: reqwest::Client,
}

/// The client the provider knows.
pub const CLIENT_ID: &str = "keyward-test";
/// Its secret.
pub const CLIENT_SECRET: &str = "keyward-secret";
/// The client allowed to use the refresh_token grant.
pub const WEB_CLIENT_ID: &str = "keyward-web";
/// Its secret.
pub const WEB_CLIENT_SECRET: &str = "keyward-web-secret";
/// The audience of its access tokens.
pub const AUDIENCE: &str = "https://api.example";

fn harness_dir() -> String {
    format!("{}/../../tests/oidc", env!("CARGO_MANIFEST_DIR"))
}

fn kids(line: &Value) -> Vec<String> {
    line["kids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect()
}

impl OidcProvider {
    /// Starts the provider. Fails (never skips) when Node.js or the npm
    /// packages are missing, saying how to install them.
    pub async fn start() -> Self {
        let dir = harness_dir();
        assert!(
            std::path::Path::new(&format!("{dir}/node_modules/oidc-provider")).exists(),
            "oidc-provider is not installed: run `npm ci --prefix tests/oidc` (scripts/test does)"
        );
        let mut child = Command::new("node")
            .arg("provider.mjs")
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("cannot run `node`: install Node.js 20.19 or later");
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = tokio::time::timeout(std::time::Duration::from_secs(30), stdout.next_line())
            .await
            .expect("oidc-provider did not start within 30 s")
            .unwrap()
            .expect("oidc-provider exited at start");
        let line: Value = serde_json::from_str(&first).unwrap();
        OidcProvider {
            issuer: line["issuer"].as_str().unwrap().to_owned(),
            kids: kids(&line),
            _child: child,
            stdin,
            stdout,
            http: reqwest::Client::new(),
        }
    }

    /// A JWT access token (RFC 9068) signed with `alg` (RS256, ES256 or
    /// EdDSA), from the client-credentials grant.
    pub async fn access_token(&self, alg: &str) -> String {
        let response = self
            .http
            .post(format!("{}/token", self.issuer))
            .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
            .form(&[
                ("grant_type", "client_credentials"),
                ("resource", &format!("{AUDIENCE}/{alg}")),
                ("scope", "read"),
            ])
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
        assert!(status.is_success(), "token endpoint: {status} {body}");
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// A refresh token for user `user-1` and client [`WEB_CLIENT_ID`], as a
    /// completed login with `offline_access` would leave behind.
    pub async fn refresh_token(&mut self) -> String {
        self.stdin.write_all(b"refresh-token\n").await.unwrap();
        self.stdin.flush().await.unwrap();
        let line = self.stdout.next_line().await.unwrap().unwrap();
        let line: Value = serde_json::from_str(&line).unwrap();
        line["refresh_token"]
            .as_str()
            .unwrap_or_else(|| panic!("{line}"))
            .to_owned()
    }

    /// Replaces every signing key (new kids); the old keys are removed from
    /// the provider's JWKS. Returns the new kids.
    pub async fn rotate(&mut self) -> Vec<String> {
        self.stdin.write_all(b"rotate\n").await.unwrap();
        self.stdin.flush().await.unwrap();
        let line = self.stdout.next_line().await.unwrap().unwrap();
        let line: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(line["rotated"], true, "{line}");
        self.kids = kids(&line);
        self.kids.clone()
    }
}
