//! What a verified token must also satisfy: algorithms, times, issuer,
//! audience, type and required claims — with safe defaults.
//!
//! Defaults: every asymmetric algorithm the key supports (HMAC only when
//! listed explicitly); `exp` required; `nbf` checked when present; 60 s
//! leeway; a token with an `aud` is rejected unless an accepted audience is
//! configured (RFC 7519 §4.1.3) or any audience is accepted explicitly;
//! tokens up to 32 KiB; objects of at most 512 members; sender-constrained
//! tokens (`cnf`) refused.

use crate::algorithm::Algorithm;
use crate::claims::{Found, Scanned};
use crate::error::{Error, ErrorKind};
use crate::header::Header;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Default maximum token size in bytes.
pub const DEFAULT_MAX_TOKEN_SIZE: usize = 32 * 1024;
/// Default clock-skew allowance.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);
/// Default number of keys tried for a token without `kid`.
pub const DEFAULT_MAX_KIDLESS_CANDIDATES: usize = 4;

/// What to do with a token bound to a key by its `cnf` claim (RFC 7800):
/// a DPoP-bound token (`cnf.jkt`, RFC 9449) or a certificate-bound one
/// (`cnf["x5t#S256"]`, RFC 8705).
///
/// Threat addressed: downgrade. A sender-constrained token is worthless to
/// a thief only if every resource server insists on the proof of possession
/// (a DPoP proof, the TLS client certificate). A verifier that accepts it as
/// a plain bearer token turns a stolen bound token back into a usable one.
/// The verifier sees only the token, not the proof, so by default it
/// refuses bound tokens with `sender_constrained_token`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum BoundTokens {
    /// Refuse tokens carrying `cnf` (the default).
    #[default]
    Reject,
    /// Accept them: the caller checks the proof of possession against the
    /// token's `cnf` itself, before acting on the token. (keyward's own
    /// DPoP and mutual-TLS checks will plug in here.)
    CallerChecksBinding,
}

/// The source of "now" for time-claim checks.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Seconds since the Unix epoch.
    fn now(&self) -> u64;
}

impl<C: Clock + ?Sized> Clock for std::sync::Arc<C> {
    fn now(&self) -> u64 {
        (**self).now()
    }
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }
}

/// A clock that always says the same time (tests, the CLI's `--now`).
#[derive(Clone, Copy, Debug)]
pub struct FixedClock(pub u64);

impl Clock for FixedClock {
    fn now(&self) -> u64 {
        self.0
    }
}

/// Validation rules applied after the signature verifies.
///
/// Built with chained setters named after the RFC terms:
///
/// ```
/// use keyward_core::Validation;
/// use std::time::Duration;
/// let v = Validation::new()
///     .issuer("https://issuer.example")
///     .audience("https://api.example")
///     .typ("at+jwt")
///     .leeway(Duration::from_secs(30));
/// # let _ = v;
/// ```
#[derive(Clone, Debug)]
pub struct Validation {
    algorithms: Option<Vec<Algorithm>>,
    leeway: u64,
    require_exp: bool,
    issuers: Vec<String>,
    audiences: Vec<String>,
    any_audience: bool,
    typ: Option<String>,
    max_age: Option<u64>,
    required: Vec<String>,
    require_sub: bool,
    client_ids: Vec<String>,
    max_token_size: usize,
    max_kidless_candidates: usize,
    max_object_members: usize,
    bound_tokens: BoundTokens,
}

impl Default for Validation {
    fn default() -> Self {
        Validation {
            algorithms: None,
            leeway: DEFAULT_LEEWAY.as_secs(),
            require_exp: true,
            issuers: Vec::new(),
            audiences: Vec::new(),
            any_audience: false,
            typ: None,
            max_age: None,
            required: Vec::new(),
            require_sub: false,
            client_ids: Vec::new(),
            max_token_size: DEFAULT_MAX_TOKEN_SIZE,
            max_kidless_candidates: DEFAULT_MAX_KIDLESS_CANDIDATES,
            max_object_members: crate::json::DEFAULT_MAX_OBJECT_MEMBERS,
            bound_tokens: BoundTokens::Reject,
        }
    }
}

/// `typ` values compare as media types: case-insensitive, and a value
/// without `/` means `application/<value>` (RFC 7515 §4.1.9).
fn normalize_media_type(typ: &str) -> String {
    let lower = typ.to_ascii_lowercase();
    if lower.contains('/') {
        lower
    } else {
        format!("application/{lower}")
    }
}

impl Validation {
    /// The defaults (see the module documentation).
    pub fn new() -> Self {
        Validation::default()
    }

    /// Allows exactly these algorithms (still only with keys of their own
    /// family). Listing an HS algorithm is the only way to allow HMAC.
    pub fn algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = Some(algorithms.into_iter().collect());
        self
    }

    /// Clock-skew allowance for `exp`, `nbf` and `iat` (default 60 s).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway.as_secs();
        self
    }

    /// Whether `exp` must be present (default `true`).
    pub fn require_exp(mut self, required: bool) -> Self {
        self.require_exp = required;
        self
    }

    /// Accepts tokens from this issuer (`iss`). May be called repeatedly;
    /// once any issuer is set, `iss` is required and must be one of them.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuers.push(issuer.into());
        self
    }

    /// Accepts tokens for this audience (`aud`). May be called repeatedly;
    /// a token is accepted when any of its audiences is any of these.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Accepts tokens whatever their `aud`. Without this (and without an
    /// [`audience`](Self::audience)), a token that has an `aud` is rejected,
    /// as RFC 7519 §4.1.3 requires of a recipient that is not named in it.
    pub fn accept_any_audience(mut self) -> Self {
        self.any_audience = true;
        self
    }

    /// Requires the `typ` header to be this media type, e.g. `"at+jwt"`
    /// for RFC 9068 access tokens (matches `application/at+jwt` too).
    pub fn typ(mut self, typ: &str) -> Self {
        self.typ = Some(normalize_media_type(typ));
        self
    }

    /// Rejects tokens issued (`iat`) longer ago than `max_age` (`too_old`);
    /// `iat` becomes required, and one in the future beyond the leeway is
    /// rejected (`not_yet_valid`).
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = Some(max_age.as_secs());
        self
    }

    /// Requires a claim to be present and not `null`.
    pub fn require_claim(mut self, claim: impl Into<String>) -> Self {
        self.required.push(claim.into());
        self
    }

    /// Whether `sub` must be present (default `false`).
    pub fn require_sub(mut self, required: bool) -> Self {
        self.require_sub = required;
        self
    }

    /// Accepts tokens issued to this client (`azp` / `client_id`). Once any
    /// is set, at least one of the two claims is required, and each that is
    /// present must be an accepted client.
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_ids.push(client_id.into());
        self
    }

    /// Largest accepted token, in bytes (default 32 KiB). Checked before
    /// anything is decoded.
    pub fn max_token_size(mut self, bytes: usize) -> Self {
        self.max_token_size = bytes;
        self
    }

    /// How many keys are tried for a token without `kid` (default 4).
    pub fn max_kidless_candidates(mut self, keys: usize) -> Self {
        self.max_kidless_candidates = keys;
        self
    }

    /// Most members one JSON object of the token may have — the header,
    /// the payload and every object nested in them (default 512). A token
    /// with a larger object is `malformed`. Duplicate detection is linear
    /// in any case; the cap bounds the memory it takes.
    pub fn max_object_members(mut self, members: usize) -> Self {
        self.max_object_members = members;
        self
    }

    /// What to do with sender-constrained tokens (`cnf`); default
    /// [`BoundTokens::Reject`].
    pub fn bound_tokens(mut self, policy: BoundTokens) -> Self {
        self.bound_tokens = policy;
        self
    }

    /// The algorithms listed with [`Validation::algorithms`], if any.
    pub(crate) fn explicit_algorithms(&self) -> Option<&[Algorithm]> {
        self.algorithms.as_deref()
    }

    pub(crate) fn object_members(&self) -> usize {
        self.max_object_members
    }

    /// The largest accepted token, in bytes (see
    /// [`Validation::max_token_size`]). Caches of verified tokens check it
    /// before they look a token up, so an oversized token costs no more with
    /// a cache than without.
    pub fn max_token_bytes(&self) -> usize {
        self.max_token_size
    }

    pub(crate) fn kidless_candidates(&self) -> usize {
        self.max_kidless_candidates
    }

    /// Checks the header: algorithm allowlist and `typ`.
    pub(crate) fn check_header(&self, header: &Header) -> Result<(), Error> {
        let alg = header.alg();
        match &self.algorithms {
            Some(allowed) if !allowed.contains(&alg) => {
                return Err(Error::new(
                    ErrorKind::AlgorithmNotAllowed,
                    format!("algorithm {alg} is not in the allowed list"),
                ))
            }
            None if alg.is_symmetric() => {
                return Err(Error::new(
                    ErrorKind::AlgorithmNotAllowed,
                    format!("{alg} is an HMAC algorithm; HMAC must be allowed explicitly"),
                ))
            }
            _ => {}
        }
        if let Some(expected) = &self.typ {
            match header.typ() {
                Some(typ) if normalize_media_type(typ) == *expected => {}
                Some(typ) => {
                    return Err(Error::new(
                        ErrorKind::InvalidType,
                        format!("typ {} is not the expected {expected}", Error::quote(typ)),
                    ))
                }
                None => {
                    return Err(Error::new(
                        ErrorKind::InvalidType,
                        format!("the token has no typ; expected {expected}"),
                    ))
                }
            }
        }
        Ok(())
    }

    /// Checks the claims of a token whose signature has verified.
    pub(crate) fn check_claims(&self, claims: &Scanned<'_>, now: u64) -> Result<(), Error> {
        let exp = number(&claims.exp, "exp")?;
        if exp.is_none() && self.require_exp {
            return Err(Error::missing_claim("exp"));
        }
        let iat = number(&claims.iat, "iat")?;
        self.check_time_claims(exp, number(&claims.nbf, "nbf")?, iat, now)?;

        let iss = string(&claims.iss, "iss")?;
        if !self.issuers.is_empty() {
            let iss = iss.ok_or_else(|| Error::missing_claim("iss"))?;
            if !self.issuers.iter().any(|accepted| accepted == iss) {
                return Err(Error::new(
                    ErrorKind::InvalidIssuer,
                    format!("issuer {} is not accepted", Error::quote(iss)),
                ));
            }
        }

        self.check_audience(&claims.aud)?;

        if string(&claims.sub, "sub")?.is_none() && self.require_sub {
            return Err(Error::missing_claim("sub"));
        }

        let azp = string(&claims.azp, "azp")?;
        let client_id = string(&claims.client_id, "client_id")?;
        if !self.client_ids.is_empty() {
            if azp.is_none() && client_id.is_none() {
                return Err(Error::missing_claim("client_id"));
            }
            for (name, value) in [("azp", azp), ("client_id", client_id)] {
                if let Some(value) = value {
                    if !self.client_ids.iter().any(|c| c == value) {
                        return Err(Error::invalid_claim(format!(
                            "{name} {} is not an accepted client",
                            Error::quote(value)
                        )));
                    }
                }
            }
        }

        for claim in &self.required {
            if !claims.present.contains(claim) {
                return Err(Error::missing_claim(claim));
            }
        }
        if claims.cnf && self.bound_tokens == BoundTokens::Reject {
            return Err(Error::new(
                ErrorKind::SenderConstrainedToken,
                "the token is bound to a key (cnf) and must be presented with its proof of \
                 possession (DPoP or a client certificate), not as a bearer token",
            ));
        }
        Ok(())
    }

    /// Checks `exp` and `nbf` (as found in a token) against `now` with this
    /// validation's leeway: `exp == now` is expired, `nbf == now` is valid.
    /// Used for every verification, and by caches of verified tokens on
    /// every hit.
    pub fn check_time_window(
        &self,
        exp: Option<f64>,
        nbf: Option<f64>,
        now: u64,
    ) -> Result<(), Error> {
        let now = now as f64;
        let leeway = self.leeway as f64;
        if let Some(exp) = exp {
            if now >= exp + leeway {
                return Err(Error::new(
                    ErrorKind::Expired,
                    format!("the token expired {} s ago", (now - exp).floor()),
                ));
            }
        }
        if let Some(nbf) = nbf {
            if now + leeway < nbf {
                return Err(Error::new(
                    ErrorKind::NotYetValid,
                    format!(
                        "the token is not valid for another {} s",
                        (nbf - now).ceil()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Checks every time rule — `exp`, `nbf`, and with a maximum age `iat`
    /// (present, not in the future, not older than the maximum age) —
    /// against `now`, with this validation's leeway. The same function
    /// serves verification and the hits of caches of verified tokens, so a
    /// cached token is never accepted where a fresh one would not be.
    pub fn check_time_claims(
        &self,
        exp: Option<f64>,
        nbf: Option<f64>,
        iat: Option<f64>,
        now: u64,
    ) -> Result<(), Error> {
        self.check_time_window(exp, nbf, now)?;
        let Some(max_age) = self.max_age else {
            return Ok(());
        };
        let now = now as f64;
        let leeway = self.leeway as f64;
        let iat = iat.ok_or_else(|| Error::missing_claim("iat"))?;
        if iat > now + leeway {
            return Err(Error::new(
                ErrorKind::NotYetValid,
                "the token was issued in the future",
            ));
        }
        if now - iat > max_age as f64 + leeway {
            return Err(Error::new(
                ErrorKind::TooOld,
                format!(
                    "the token was issued {} s ago, more than the maximum age of {max_age} s",
                    (now - iat).floor()
                ),
            ));
        }
        Ok(())
    }

    /// The last instant (seconds since the epoch) at which a token with
    /// these `exp` and `iat` can still pass [`Validation::check_time_claims`]:
    /// the earliest of `exp` and `iat` + maximum age, plus the leeway;
    /// `None` when neither bounds it (no `exp` required and none given, no
    /// maximum age).
    pub fn valid_until(&self, exp: Option<f64>, iat: Option<f64>) -> Option<f64> {
        let leeway = self.leeway as f64;
        let by_exp = exp.map(|exp| exp + leeway);
        let by_age = match (self.max_age, iat) {
            (Some(max_age), Some(iat)) => Some(iat + max_age as f64 + leeway),
            _ => None,
        };
        match (by_exp, by_age) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The clock-skew allowance.
    pub fn clock_leeway(&self) -> Duration {
        Duration::from_secs(self.leeway)
    }

    fn check_audience(&self, aud: &Found<'_>) -> Result<(), Error> {
        let audiences: &[_] = match aud {
            Found::Absent => &[],
            Found::Str(one) => std::slice::from_ref(one),
            Found::StrList(many) => many,
            Found::Number(_) | Found::Other => {
                return Err(Error::invalid_claim(
                    "aud must be a string or an array of strings",
                ))
            }
        };
        if !self.audiences.is_empty() {
            if aud.is_absent() {
                return Err(Error::missing_claim("aud"));
            }
            if !audiences
                .iter()
                .any(|a| self.audiences.iter().any(|accepted| accepted == a))
            {
                return Err(Error::new(
                    ErrorKind::InvalidAudience,
                    "none of the token's audiences is accepted",
                ));
            }
        } else if !self.any_audience && !audiences.is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidAudience,
                "the token names an audience but no accepted audience is configured \
                 (configure one, or accept any audience explicitly)",
            ));
        }
        Ok(())
    }
}

fn number(found: &Found<'_>, name: &str) -> Result<Option<f64>, Error> {
    match found {
        Found::Absent => Ok(None),
        Found::Number(n) => Ok(Some(*n)),
        _ => Err(Error::invalid_claim(format!(
            "{name} must be a number (NumericDate)"
        ))),
    }
}

fn string<'s>(found: &'s Found<'_>, name: &str) -> Result<Option<&'s str>, Error> {
    match found {
        Found::Absent => Ok(None),
        Found::Str(s) => Ok(Some(s)),
        _ => Err(Error::invalid_claim(format!("{name} must be a string"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claims::scan;

    const NOW: u64 = 1_700_000_000;

    fn check(v: &Validation, payload: &str) -> Result<(), ErrorKind> {
        let s = scan(payload, 512).unwrap();
        v.check_claims(&s, NOW).map_err(|e| e.kind())
    }

    fn leeway0() -> Validation {
        Validation::new().leeway(Duration::ZERO)
    }

    #[test]
    fn exp_boundaries() {
        let v = leeway0();
        assert_eq!(
            check(&v, &format!(r#"{{"exp":{NOW}}}"#)),
            Err(ErrorKind::Expired)
        );
        assert_eq!(check(&v, &format!(r#"{{"exp":{}}}"#, NOW + 1)), Ok(()));
        assert_eq!(check(&v, &format!(r#"{{"exp":{}.5}}"#, NOW)), Ok(()));
        assert_eq!(
            check(&v, &format!(r#"{{"exp":{}.5}}"#, NOW - 1)),
            Err(ErrorKind::Expired)
        );
        assert_eq!(check(&v, "{}"), Err(ErrorKind::MissingClaim));
        assert_eq!(check(&v.clone().require_exp(false), "{}"), Ok(()));
        // leeway
        let v = Validation::new();
        assert_eq!(check(&v, &format!(r#"{{"exp":{}}}"#, NOW - 59)), Ok(()));
        assert_eq!(
            check(&v, &format!(r#"{{"exp":{}}}"#, NOW - 60)),
            Err(ErrorKind::Expired)
        );
    }

    #[test]
    fn nbf_boundaries() {
        let v = leeway0().require_exp(false);
        assert_eq!(check(&v, &format!(r#"{{"nbf":{NOW}}}"#)), Ok(()));
        assert_eq!(
            check(&v, &format!(r#"{{"nbf":{}}}"#, NOW + 1)),
            Err(ErrorKind::NotYetValid)
        );
        let v = Validation::new().require_exp(false);
        assert_eq!(check(&v, &format!(r#"{{"nbf":{}}}"#, NOW + 60)), Ok(()));
        assert_eq!(
            check(&v, &format!(r#"{{"nbf":{}}}"#, NOW + 61)),
            Err(ErrorKind::NotYetValid)
        );
    }

    #[test]
    fn wrong_types_are_invalid_never_absent() {
        let v = leeway0().require_exp(false);
        for payload in [
            r#"{"exp":"99999999999"}"#,
            r#"{"exp":null}"#,
            r#"{"exp":true}"#,
            r#"{"exp":[1]}"#,
            r#"{"nbf":{}}"#,
            r#"{"iat":"1"}"#,
            r#"{"iss":1}"#,
            r#"{"sub":null}"#,
            r#"{"aud":5}"#,
            r#"{"aud":["a",null]}"#,
            r#"{"azp":[]}"#,
            r#"{"client_id":false}"#,
        ] {
            assert_eq!(
                check(&v, payload),
                Err(ErrorKind::InvalidClaim),
                "{payload}"
            );
        }
    }

    #[test]
    fn issuer_rules() {
        let v = Validation::new().require_exp(false).issuer("a").issuer("b");
        assert_eq!(check(&v, r#"{"iss":"b"}"#), Ok(()));
        assert_eq!(check(&v, r#"{"iss":"c"}"#), Err(ErrorKind::InvalidIssuer));
        assert_eq!(check(&v, r#"{"iss":"B"}"#), Err(ErrorKind::InvalidIssuer));
        assert_eq!(check(&v, r#"{}"#), Err(ErrorKind::MissingClaim));
    }

    #[test]
    fn audience_rules() {
        let v = Validation::new().require_exp(false).audience("api");
        assert_eq!(check(&v, r#"{"aud":"api"}"#), Ok(()));
        assert_eq!(check(&v, r#"{"aud":["x","api"]}"#), Ok(()));
        assert_eq!(
            check(&v, r#"{"aud":["x"]}"#),
            Err(ErrorKind::InvalidAudience)
        );
        assert_eq!(check(&v, r#"{"aud":[]}"#), Err(ErrorKind::InvalidAudience));
        assert_eq!(check(&v, r#"{}"#), Err(ErrorKind::MissingClaim));
        // nothing configured: a token naming an audience is not for us
        let v = Validation::new().require_exp(false);
        assert_eq!(
            check(&v, r#"{"aud":"api"}"#),
            Err(ErrorKind::InvalidAudience)
        );
        assert_eq!(check(&v, r#"{}"#), Ok(()));
        assert_eq!(check(&v.accept_any_audience(), r#"{"aud":"api"}"#), Ok(()));
    }

    #[test]
    fn max_age_rules() {
        let v = leeway0()
            .require_exp(false)
            .max_age(Duration::from_secs(100));
        assert_eq!(check(&v, &format!(r#"{{"iat":{}}}"#, NOW - 100)), Ok(()));
        assert_eq!(
            check(&v, &format!(r#"{{"iat":{}}}"#, NOW - 101)),
            Err(ErrorKind::TooOld)
        );
        assert_eq!(
            check(&v, &format!(r#"{{"iat":{}}}"#, NOW + 1)),
            Err(ErrorKind::NotYetValid)
        );
        assert_eq!(check(&v, "{}"), Err(ErrorKind::MissingClaim));
        // without max_age a future iat is fine
        let v = leeway0().require_exp(false);
        assert_eq!(check(&v, &format!(r#"{{"iat":{}}}"#, NOW + 1000)), Ok(()));
    }

    #[test]
    fn sub_client_and_required_claims() {
        let v = Validation::new().require_exp(false).require_sub(true);
        assert_eq!(check(&v, r#"{"sub":"u"}"#), Ok(()));
        assert_eq!(check(&v, r#"{}"#), Err(ErrorKind::MissingClaim));

        let v = Validation::new().require_exp(false).client_id("web");
        assert_eq!(check(&v, r#"{"azp":"web"}"#), Ok(()));
        assert_eq!(check(&v, r#"{"client_id":"web"}"#), Ok(()));
        assert_eq!(
            check(&v, r#"{"client_id":"web","azp":"evil"}"#),
            Err(ErrorKind::InvalidClaim)
        );
        assert_eq!(check(&v, r#"{}"#), Err(ErrorKind::MissingClaim));

        let v = Validation::new().require_exp(false).require_claim("email");
        assert_eq!(check(&v, r#"{"email":"a@b"}"#), Ok(()));
        assert_eq!(check(&v, r#"{"email":null}"#), Err(ErrorKind::MissingClaim));
        assert_eq!(check(&v, r#"{"other":1}"#), Err(ErrorKind::MissingClaim));
    }

    #[test]
    fn typ_compares_as_media_type() {
        let h =
            |typ: &str| Header::parse(format!(r#"{{"alg":"ES256","typ":"{typ}"}}"#), 512).unwrap();
        let v = Validation::new().typ("at+jwt");
        assert!(v.check_header(&h("at+jwt")).is_ok());
        assert!(v.check_header(&h("AT+JWT")).is_ok());
        assert!(v.check_header(&h("application/at+jwt")).is_ok());
        assert!(v.check_header(&h("Application/AT+JWT")).is_ok());
        assert_eq!(
            v.check_header(&h("JWT")).unwrap_err().kind(),
            ErrorKind::InvalidType
        );
        assert_eq!(
            v.check_header(&h("text/at+jwt")).unwrap_err().kind(),
            ErrorKind::InvalidType
        );
        let none = Header::parse(r#"{"alg":"ES256"}"#.to_owned(), 512).unwrap();
        assert_eq!(
            v.check_header(&none).unwrap_err().kind(),
            ErrorKind::InvalidType
        );
    }

    #[test]
    fn algorithm_allowlist() {
        let h = |alg: &str| Header::parse(format!(r#"{{"alg":"{alg}"}}"#), 512).unwrap();
        let v = Validation::new();
        assert!(v.check_header(&h("RS256")).is_ok());
        assert!(v.check_header(&h("EdDSA")).is_ok());
        assert_eq!(
            v.check_header(&h("HS256")).unwrap_err().kind(),
            ErrorKind::AlgorithmNotAllowed
        );
        let v = Validation::new().algorithms([Algorithm::ES256, Algorithm::HS256]);
        assert!(v.check_header(&h("HS256")).is_ok());
        assert_eq!(
            v.check_header(&h("RS256")).unwrap_err().kind(),
            ErrorKind::AlgorithmNotAllowed
        );
    }
}
