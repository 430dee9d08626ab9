//! `keyward`: verify and inspect JWTs from the command line.
//!
//! ```text
//! keyward verify --jwks <FILE> [--issuer ISS]... [--audience AUD]... [--alg ALG]...
//!                [--leeway SECONDS] [--now UNIX_SECONDS] [--typ TYP]
//!                [--max-age SECONDS] [--require CLAIM]... [--json] <TOKEN|->
//! keyward inspect <TOKEN|->
//! keyward jwks fetch <ISSUER_OR_JWKS_URL>
//! ```
//!
//! `--jwks` takes a file or an `http(s)://` JWKS URL; `--issuer-discovery`
//! discovers the JWKS from the (first) `--issuer` instead.
//!
//! Exit codes (a contract other tooling relies on): 0 the token is valid,
//! 1 the token is invalid, 2 usage or configuration error.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

use keyward_core::{
    Algorithm, Error, FixedClock, KeySet, KeySource, SystemClock, Validation, Verifier,
};
use keyward_keys::RemoteKeySource;
use lexopt::prelude::*;
use serde_json::{json, Value as Json};
use std::ffi::OsString;
use std::io::{Read, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

const USAGE: &str = "\
usage:
  keyward verify --jwks <FILE> [--issuer ISS]... [--audience AUD]... [--alg ALG]...
                 [--leeway SECONDS] [--now UNIX_SECONDS] [--typ TYP]
                 [--max-age SECONDS] [--require CLAIM]... [--json] <TOKEN|->
               [--issuer-discovery]
  keyward inspect <TOKEN|->
  keyward jwks fetch <ISSUER_OR_JWKS_URL>

--jwks takes a JWKS file or an http(s):// JWKS URL; --issuer-discovery finds
the JWKS from the first --issuer's OpenID configuration instead. verify exits 0 when the token is valid, 1 when it is invalid, 2 on a usage or
configuration error. Without --alg, every asymmetric algorithm the key
supports is allowed (an RSA key without its own alg member is tried with
all six RSA algorithms, where the library's default is RS256 only; --alg
RS256 shows what a default Authenticator does); HMAC algorithms must be
named with --alg. A token that
names an audience is rejected unless one of them is given with --audience.
inspect decodes a token WITHOUT verifying it. jwks fetch prints the public
members of a JWKS (from its URL, or discovered from an issuer) for baking
into configuration.";

/// A usage or configuration error: exit 2, message on stderr.
struct UsageError(String);

impl From<lexopt::Error> for UsageError {
    fn from(e: lexopt::Error) -> Self {
        UsageError(e.to_string())
    }
}

fn main() -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    match run(&mut stdout) {
        Ok(code) => ExitCode::from(code),
        Err(UsageError(message)) => {
            eprintln!("keyward: {message}");
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn run(out: &mut impl Write) -> Result<u8, UsageError> {
    let mut parser = lexopt::Parser::from_env();
    match parser.next()? {
        Some(Value(command)) if command == "verify" => verify(parser, out),
        Some(Value(command)) if command == "inspect" => inspect(parser, out),
        Some(Value(command)) if command == "jwks" => jwks(parser, out),
        Some(Long("help") | Short('h')) => {
            let _ = writeln!(out, "{USAGE}");
            Ok(0)
        }
        Some(Long("version") | Short('V')) => {
            let _ = writeln!(out, "keyward {}", env!("CARGO_PKG_VERSION"));
            Ok(0)
        }
        Some(Value(other)) => Err(UsageError(format!("unknown command {other:?}"))),
        Some(other) => Err(other.unexpected().into()),
        None => Err(UsageError("a command is required".into())),
    }
}

/// The options of `keyward verify`.
#[derive(Default)]
struct VerifyArgs {
    jwks: Option<OsString>,
    issuers: Vec<String>,
    audiences: Vec<String>,
    algorithms: Vec<Algorithm>,
    leeway: Option<u64>,
    now: Option<u64>,
    typ: Option<String>,
    max_age: Option<u64>,
    required: Vec<String>,
    issuer_discovery: bool,
    json: bool,
    token: Option<String>,
}

fn string(parser: &mut lexopt::Parser, name: &str) -> Result<String, UsageError> {
    parser
        .value()?
        .into_string()
        .map_err(|_| UsageError(format!("--{name} must be valid UTF-8")))
}

fn seconds(parser: &mut lexopt::Parser, name: &str) -> Result<u64, UsageError> {
    let text = string(parser, name)?;
    text.parse::<u64>().map_err(|_| {
        UsageError(format!(
            "--{name} takes a whole number of seconds, not {text:?}"
        ))
    })
}

fn once<T>(slot: &mut Option<T>, value: T, name: &str) -> Result<(), UsageError> {
    if slot.replace(value).is_some() {
        return Err(UsageError(format!("--{name} is given more than once")));
    }
    Ok(())
}

fn token_argument(slot: &mut Option<String>, value: OsString) -> Result<(), UsageError> {
    let value = value
        .into_string()
        .map_err(|_| UsageError("the token must be valid UTF-8".into()))?;
    once(slot, value, "token").map_err(|_| UsageError("only one token may be given".into()))
}

fn parse_verify(mut parser: lexopt::Parser) -> Result<VerifyArgs, UsageError> {
    let mut args = VerifyArgs::default();
    while let Some(arg) = parser.next()? {
        match arg {
            Long("jwks") => once(&mut args.jwks, parser.value()?, "jwks")?,
            Long("issuer") => args.issuers.push(string(&mut parser, "issuer")?),
            Long("audience") => args.audiences.push(string(&mut parser, "audience")?),
            Long("alg") => {
                let text = string(&mut parser, "alg")?;
                let alg = Algorithm::parse(&text)
                    .map_err(|e| UsageError(format!("--alg: {}", e.message())))?;
                args.algorithms.push(alg);
            }
            Long("leeway") => {
                let v = seconds(&mut parser, "leeway")?;
                once(&mut args.leeway, v, "leeway")?;
            }
            Long("now") => {
                let v = seconds(&mut parser, "now")?;
                once(&mut args.now, v, "now")?;
            }
            Long("max-age") => {
                let v = seconds(&mut parser, "max-age")?;
                once(&mut args.max_age, v, "max-age")?;
            }
            Long("typ") => {
                let v = string(&mut parser, "typ")?;
                once(&mut args.typ, v, "typ")?;
            }
            Long("require") => args.required.push(string(&mut parser, "require")?),
            Long("json") => args.json = true,
            Long("issuer-discovery") => args.issuer_discovery = true,
            Value(value) => token_argument(&mut args.token, value)?,
            // lexopt reports a lone "-" as a value; anything else is unknown
            other => return Err(other.unexpected().into()),
        }
    }
    match (&args.jwks, args.issuer_discovery) {
        (None, false) => {
            return Err(UsageError(
                "--jwks <FILE|URL> or --issuer-discovery is required".into(),
            ))
        }
        (Some(_), true) => {
            return Err(UsageError(
                "--jwks and --issuer-discovery exclude each other".into(),
            ))
        }
        (None, true) if args.issuers.is_empty() => {
            return Err(UsageError(
                "--issuer-discovery needs an --issuer to discover from".into(),
            ))
        }
        _ => {}
    }
    if args.token.is_none() {
        return Err(UsageError(
            "a token (or - to read it from stdin) is required".into(),
        ));
    }
    Ok(args)
}

/// The token argument, or standard input for `-`, without surrounding
/// white space.
fn read_token(argument: String) -> Result<String, UsageError> {
    if argument != "-" {
        return Ok(argument);
    }
    let mut text = String::new();
    std::io::stdin()
        .take(1024 * 1024)
        .read_to_string(&mut text)
        .map_err(|e| UsageError(format!("cannot read the token from stdin: {e}")))?;
    Ok(text.trim().to_owned())
}

/// A tokio runtime for the commands that fetch.
fn runtime() -> Result<tokio::runtime::Runtime, UsageError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| UsageError(format!("cannot start the async runtime: {e}")))
}

/// The keys for `verify`: a file, a JWKS URL, or discovery from the issuer.
/// Remote keys are fetched before verifying, so an unreachable or invalid
/// JWKS is a configuration error (exit 2), like an unreadable file.
fn key_source(
    args: &VerifyArgs,
    rt: &tokio::runtime::Runtime,
) -> Result<Arc<dyn KeySource>, UsageError> {
    let remote = match (&args.jwks, args.issuer_discovery) {
        (Some(jwks), false) => match jwks.to_str() {
            Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
                RemoteKeySource::from_jwks_url(url)
                    .map_err(|e| UsageError(format!("--jwks: {}", e.message())))?
            }
            _ => return Ok(Arc::new(load_jwks(jwks)?)),
        },
        _ => {
            let issuer = args.issuers.first().map(String::as_str).unwrap_or_default();
            RemoteKeySource::from_issuer(issuer)
                .map_err(|e| UsageError(format!("--issuer-discovery: {}", e.message())))?
        }
    };
    let keys = rt
        .block_on(remote.refresh())
        .map_err(|e| UsageError(format!("cannot load keys: {}", e.message())))?;
    report_skipped(&keys);
    Ok(Arc::new(remote))
}

fn report_skipped(keys: &KeySet) {
    for skipped in keys.skipped() {
        eprintln!(
            "keyward: warning: JWKS key #{} {}skipped: {}",
            skipped.index,
            skipped
                .kid
                .as_deref()
                .map(|k| format!("({}) ", Error::quote(k)))
                .unwrap_or_default(),
            skipped.reason
        );
    }
}

fn load_jwks(path: &OsString) -> Result<KeySet, UsageError> {
    let shown = std::path::Path::new(path).display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| UsageError(format!("cannot read JWKS file {shown}: {e}")))?;
    let keys = KeySet::from_jwks(&text)
        .map_err(|e| UsageError(format!("JWKS file {shown}: {}", e.message())))?;
    report_skipped(&keys);
    Ok(keys)
}

fn validation(args: &VerifyArgs) -> Validation {
    let mut v = Validation::new();
    for iss in &args.issuers {
        v = v.issuer(iss.clone());
    }
    for aud in &args.audiences {
        v = v.audience(aud.clone());
    }
    // The CLI answers "does this key verify this token?": without --alg it
    // names every asymmetric algorithm explicitly, so a key's own binding
    // (its JWK "alg", its curve) is the only limit. The library's default
    // for an RSA key without "alg" is RS256 only.
    if args.algorithms.is_empty() {
        v = v.algorithms(
            Algorithm::ALL
                .iter()
                .copied()
                .filter(|alg| !alg.is_symmetric()),
        );
    } else {
        v = v.algorithms(args.algorithms.iter().copied());
    }
    if let Some(leeway) = args.leeway {
        v = v.leeway(Duration::from_secs(leeway));
    }
    if let Some(typ) = &args.typ {
        v = v.typ(typ);
    }
    if let Some(max_age) = args.max_age {
        v = v.max_age(Duration::from_secs(max_age));
    }
    for claim in &args.required {
        v = v.require_claim(claim.clone());
    }
    v
}

/// Parses JSON text known to be valid (it was just verified or decoded).
fn json_value(text: &str) -> Json {
    serde_json::from_str(text).unwrap_or(Json::Null)
}

fn verify(parser: lexopt::Parser, out: &mut impl Write) -> Result<u8, UsageError> {
    let mut args = parse_verify(parser)?;
    let rt = runtime()?;
    let keys = key_source(&args, &rt)?;
    let token = read_token(args.token.take().unwrap_or_default())?;
    let verifier = Verifier::new(keys, validation(&args));
    let verifier = match args.now {
        Some(now) => verifier.with_clock(FixedClock(now)),
        None => verifier.with_clock(SystemClock),
    };
    match rt.block_on(verifier.verify::<Json>(&token)) {
        Ok(verified) => {
            let header = json_value(verified.header().json());
            if args.json {
                let report =
                    json!({ "valid": true, "header": header, "claims": verified.claims() });
                let _ = writeln!(out, "{report}");
            } else {
                let _ = writeln!(
                    out,
                    "valid\nheader: {header}\nclaims: {}",
                    pretty(verified.claims())
                );
            }
            Ok(0)
        }
        Err(e) => {
            if args.json {
                let report = json!({
                    "valid": false,
                    "error": { "kind": e.kind().as_str(), "message": e.message() },
                });
                let _ = writeln!(out, "{report}");
            } else {
                let _ = writeln!(out, "invalid: {e}");
            }
            Ok(1)
        }
    }
}

fn pretty(value: &Json) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

fn inspect(mut parser: lexopt::Parser, out: &mut impl Write) -> Result<u8, UsageError> {
    let mut token = None;
    while let Some(arg) = parser.next()? {
        match arg {
            Value(value) => token_argument(&mut token, value)?,
            other => return Err(other.unexpected().into()),
        }
    }
    let token = read_token(token.ok_or_else(|| UsageError("a token (or -) is required".into()))?)?;
    match keyward_core::decode_unverified(&token) {
        Ok((header, payload)) => {
            eprintln!(
                "keyward: NOT VERIFIED: the signature and claims of this token were not checked"
            );
            let claims = serde_json::from_str::<Json>(&payload).unwrap_or(Json::String(payload));
            let report = json!({ "header": json_value(header.json()), "claims": claims });
            let _ = writeln!(out, "{}", pretty(&report));
            Ok(0)
        }
        Err(e) => {
            eprintln!("keyward: cannot decode the token: {e}");
            Ok(1)
        }
    }
}

fn jwks(mut parser: lexopt::Parser, out: &mut impl Write) -> Result<u8, UsageError> {
    match parser.next()? {
        Some(Value(sub)) if sub == "fetch" => {}
        Some(Value(other)) => return Err(UsageError(format!("unknown jwks command {other:?}"))),
        Some(other) => return Err(other.unexpected().into()),
        None => return Err(UsageError("jwks needs a command: fetch".into())),
    }
    let mut location = None;
    while let Some(arg) = parser.next()? {
        match arg {
            Value(value) => token_argument(&mut location, value)
                .map_err(|_| UsageError("jwks fetch takes one issuer or JWKS URL".into()))?,
            other => return Err(other.unexpected().into()),
        }
    }
    let location =
        location.ok_or_else(|| UsageError("jwks fetch needs an issuer or JWKS URL".into()))?;
    let rt = runtime()?;
    match rt.block_on(keyward_keys::fetch_jwks(&location)) {
        Ok(fetched) => match keyward_keys::public_jwks(&fetched.document) {
            Ok(public) => {
                eprintln!("keyward: JWKS from {}", fetched.url);
                let _ = writeln!(out, "{public}");
                Ok(0)
            }
            Err(e) => {
                eprintln!("keyward: {e}");
                Ok(1)
            }
        },
        Err(e) => {
            eprintln!("keyward: cannot fetch the JWKS: {}", e.message());
            Ok(1)
        }
    }
}
