//! A token endpoint that behaves like real providers with refresh-token
//! rotation and reuse detection: each refresh token works once; presenting
//! an already-used one revokes its whole family (every token descended from
//! the same grant), as oidc-provider does.

use crate::issuer::{unix_now, TestIssuer};
use crate::server::{Received, Route};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How the endpoint answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Rotate, detect reuse.
    Normal,
    /// Answer every request with `500` without processing it.
    Fail,
    /// Refuse every request with `401 invalid_client` without processing
    /// it (the token is not consumed).
    InvalidClient,
    /// Rotate (the presented token is consumed), then answer after this
    /// delay: a client that gives up first loses the rotated token unless
    /// it remembers the grant as in doubt.
    RotateThenDelay(Duration),
    /// Rotate, then answer with this status and no body (a 5xx after the
    /// provider processed the grant).
    RotateThenStatus(u16),
    /// Rotate, then close the connection without answering.
    RotateThenReset,
    /// Rotate, answer with this exact body instead of the usual JSON
    /// (`{access}` and `{refresh}` are replaced by the minted tokens): odd
    /// but valid, or malformed, answers.
    RotateThenBody(&'static str),
    /// Never rotate: answer with a new access token and no `refresh_token`;
    /// the presented token stays valid (a non-rotating provider).
    NonRotating,
}

#[derive(Default)]
struct State {
    family_of: HashMap<String, u64>,
    consumed: HashSet<String>,
    revoked: HashSet<u64>,
    next: u64,
    grants: usize,
    reuse_detected: usize,
    last: Option<Received>,
}

/// The endpoint's state; [`TokenEndpoint::route`] serves it.
#[derive(Clone)]
pub struct TokenEndpoint {
    state: Arc<Mutex<State>>,
    mode: Arc<Mutex<Mode>>,
    issuer: Option<(Arc<TestIssuer>, String)>,
    access_ttl: u64,
    kid: Arc<Mutex<String>>,
}

impl Default for TokenEndpoint {
    fn default() -> Self {
        TokenEndpoint::new()
    }
}

impl TokenEndpoint {
    /// Opaque access tokens, valid 600 s.
    pub fn new() -> Self {
        TokenEndpoint {
            state: Arc::default(),
            mode: Arc::new(Mutex::new(Mode::Normal)),
            issuer: None,
            access_ttl: 600,
            kid: Arc::new(Mutex::new("key-1".into())),
        }
    }

    /// Access tokens are JWTs minted by `issuer` for `audience`, valid for
    /// `access_ttl` seconds, `sub` = the family's user.
    pub fn with_issuer(mut self, issuer: Arc<TestIssuer>, audience: &str, access_ttl: u64) -> Self {
        self.issuer = Some((issuer, audience.to_owned()));
        self.access_ttl = access_ttl;
        self
    }

    /// Starts a new grant (family) and returns its first refresh token.
    pub fn new_family(&self) -> String {
        let mut s = self.state.lock().unwrap();
        s.next += 1;
        let token = format!("rt-{}-0-{}", s.next, s.next * 7919);
        let family = s.next;
        s.family_of.insert(token.clone(), family);
        token
    }

    /// Whether the family of `refresh_token` is still alive.
    pub fn family_alive(&self, refresh_token: &str) -> bool {
        let s = self.state.lock().unwrap();
        s.family_of
            .get(refresh_token)
            .is_some_and(|f| !s.revoked.contains(f))
    }

    /// Refresh requests received.
    pub fn grants(&self) -> usize {
        self.state.lock().unwrap().grants
    }

    /// Reuses of an already-rotated refresh token seen (each revoked a family).
    pub fn reuse_detected(&self) -> usize {
        self.state.lock().unwrap().reuse_detected
    }

    /// The last request received.
    pub fn last_request(&self) -> Option<Received> {
        self.state.lock().unwrap().last.clone()
    }

    /// Changes how the endpoint answers.
    pub fn set_mode(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    /// The route to mount (e.g. at `/token`).
    pub fn route(&self) -> Route {
        let this = self.clone();
        Route::dynamic(move |request| this.answer(request))
    }

    fn answer(&self, request: &Received) -> Route {
        let mut s = self.state.lock().unwrap();
        s.grants += 1;
        s.last = Some(request.clone());
        let mode = *self.mode.lock().unwrap();
        match mode {
            Mode::Fail => return Route::status_only(500),
            Mode::InvalidClient => return Route::json(r#"{"error":"invalid_client"}"#).status(401),
            _ => {}
        }
        let form: HashMap<String, String> = request.form().into_iter().collect();
        let invalid_grant = || {
            Route::json(
                r#"{"error":"invalid_grant","error_description":"grant request is invalid"}"#,
            )
            .status(400)
        };
        if form.get("grant_type").map(String::as_str) != Some("refresh_token") {
            return Route::json(r#"{"error":"unsupported_grant_type"}"#).status(400);
        }
        let Some(presented) = form.get("refresh_token") else {
            return Route::json(r#"{"error":"invalid_request"}"#).status(400);
        };
        let Some(&family) = s.family_of.get(presented) else {
            return invalid_grant();
        };
        if s.revoked.contains(&family) {
            return invalid_grant();
        }
        if mode == Mode::NonRotating {
            if s.consumed.contains(presented) {
                return invalid_grant();
            }
            s.next += 1;
            let access_token = self.access_token(&mut s, family);
            return Route::json(
                json!({
                    "access_token": access_token,
                    "token_type": "Bearer",
                    "expires_in": self.access_ttl,
                })
                .to_string(),
            );
        }
        if !s.consumed.insert(presented.clone()) {
            // reuse of a rotated token: treat as theft, kill the family
            s.revoked.insert(family);
            s.reuse_detected += 1;
            return invalid_grant();
        }
        s.next += 1;
        let rotated = format!("rt-{family}-{}-{}", s.next, s.next * 104_729);
        s.family_of.insert(rotated.clone(), family);
        let access_token = self.access_token(&mut s, family);
        let answer = Route::json(
            json!({
                "access_token": access_token,
                "token_type": "Bearer",
                "expires_in": self.access_ttl,
                "refresh_token": rotated,
                "scope": "openid offline_access",
            })
            .to_string(),
        );
        match mode {
            Mode::RotateThenDelay(delay) => answer.delay(delay),
            Mode::RotateThenStatus(status) => Route::status_only(status),
            Mode::RotateThenReset => Route::reset(),
            Mode::RotateThenBody(body) => Route::json(
                body.replace("{access}", &access_token)
                    .replace("{refresh}", &rotated),
            ),
            _ => answer,
        }
    }

    fn access_token(&self, s: &mut State, family: u64) -> String {
        match &self.issuer {
            Some((issuer, audience)) => {
                let mut claims = issuer.claims(&format!("user-{family}"), audience);
                claims["exp"] = json!(unix_now() + self.access_ttl);
                claims["jti"] = json!(format!("at-{}", s.next));
                issuer.mint(&self.kid.lock().unwrap(), &claims)
            }
            None => format!("at-{family}-{}", s.next),
        }
    }

    /// The `kid` new access tokens are signed with (default `key-1`): a kid
    /// the verifier does not know yet simulates a key rotation at the
    /// provider between two grants.
    pub fn set_signing_kid(&self, kid: &str) {
        *self.kid.lock().unwrap() = kid.to_owned();
    }
}
