//! The `keyward` command-line contract: exit codes, `--json` output, stdin.

use serde_json::Value;
use std::io::Write;
use std::process::{Command, Output, Stdio};

const NOW: &str = "1700000000";
const ISS: &str = "https://issuer.example";
const AUD: &str = "https://api.example";

fn fixtures() -> String {
    format!(
        "{}/../keyward-core/tests/fixtures",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn jwks() -> String {
    format!("{}/jwks.json", fixtures())
}

fn token(alg: &str) -> String {
    std::fs::read_to_string(format!("{}/valid/{alg}.jwt", fixtures()))
        .unwrap()
        .trim()
        .to_owned()
}

fn keyward(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn verify(extra: &[&str], token: &str) -> Output {
    let jwks = jwks();
    let mut args = vec![
        "verify",
        "--jwks",
        &jwks,
        "--issuer",
        ISS,
        "--audience",
        AUD,
        "--now",
        NOW,
    ];
    args.extend_from_slice(extra);
    args.push(token);
    keyward(&args, None)
}

fn json_stdout(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn error_kind(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = json_stdout(out);
    assert_eq!(report["valid"], false);
    assert!(report["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
    report["error"]["kind"].as_str().unwrap().to_owned()
}

#[test]
fn valid_token_json_report() {
    let out = verify(&["--json"], &token("ES256"));
    assert_eq!(out.status.code(), Some(0));
    let report = json_stdout(&out);
    assert_eq!(report["valid"], true);
    assert_eq!(report["header"]["kid"], "ec-p256");
    assert_eq!(report["header"]["alg"], "ES256");
    assert_eq!(report["claims"]["sub"], "user-123");
    assert_eq!(report["claims"]["orgs"][0]["slug"], "acme");
    assert_eq!(report.as_object().unwrap().len(), 3);
}

#[test]
fn every_asymmetric_algorithm_without_alg_option() {
    for alg in [
        "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
    ] {
        let out = verify(&["--json"], &token(alg));
        assert_eq!(
            out.status.code(),
            Some(0),
            "{alg}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

#[test]
fn hmac_needs_alg_option() {
    assert_eq!(
        error_kind(&verify(&["--json"], &token("HS256"))),
        "algorithm_not_allowed"
    );
    let out = verify(&["--json", "--alg", "HS256"], &token("HS256"));
    assert_eq!(out.status.code(), Some(0));
    // --alg restricts asymmetric algorithms too
    assert_eq!(
        error_kind(&verify(&["--json", "--alg", "ES384"], &token("ES256"))),
        "algorithm_not_allowed"
    );
}

#[test]
fn invalid_token_json_report_and_exit_1() {
    let jwks = jwks();
    let later = keyward(
        &[
            "verify",
            "--jwks",
            &jwks,
            "--issuer",
            ISS,
            "--audience",
            AUD,
            "--now",
            "1800000000",
            "--json",
            &token("EdDSA"),
        ],
        None,
    );
    assert_eq!(error_kind(&later), "expired");
    let out = keyward(
        &[
            "verify",
            "--jwks",
            &jwks,
            "--issuer",
            "https://other",
            "--audience",
            AUD,
            "--now",
            NOW,
            "--json",
            &token("EdDSA"),
        ],
        None,
    );
    assert_eq!(error_kind(&out), "invalid_issuer");
    assert_eq!(
        error_kind(&verify(&["--json", "--typ", "JWT"], &token("ES256"))),
        "invalid_type"
    );
    assert_eq!(
        error_kind(&verify(&["--json", "--max-age", "60"], &token("ES256"))),
        "too_old"
    );
    assert_eq!(
        error_kind(&verify(&["--json", "--require", "tenant"], &token("ES256"))),
        "missing_claim"
    );
    assert_eq!(error_kind(&verify(&["--json"], "not.a.token")), "malformed");
    let mut forged = token("RS256");
    forged.replace_range(forged.len() - 2.., "AA");
    assert_eq!(
        error_kind(&verify(&["--json"], &forged)),
        "invalid_signature"
    );
    // leeway widens the window
    let out = keyward(
        &[
            "verify",
            "--jwks",
            &jwks,
            "--issuer",
            ISS,
            "--audience",
            AUD,
            "--now",
            "1700003010",
            "--leeway",
            "0",
            "--json",
            &token("EdDSA"),
        ],
        None,
    );
    assert_eq!(error_kind(&out), "expired");
    let out = keyward(
        &[
            "verify",
            "--jwks",
            &jwks,
            "--issuer",
            ISS,
            "--audience",
            AUD,
            "--now",
            "1700003010",
            "--leeway",
            "30",
            &token("EdDSA"),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn plain_output() {
    let out = verify(&[], &token("PS256"));
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("valid\n"));
    let out = verify(&["--typ", "JWT"], &token("PS256"));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("invalid: invalid_type: "));
}

#[test]
fn token_from_stdin() {
    let jwks = jwks();
    let input = format!("{}\n", token("ES512"));
    let out = keyward(
        &[
            "verify",
            "--jwks",
            &jwks,
            "--issuer",
            ISS,
            "--audience",
            AUD,
            "--now",
            NOW,
            "--json",
            "-",
        ],
        Some(&input),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(json_stdout(&out)["header"]["kid"], "ec-p521");
}

#[test]
fn usage_and_configuration_errors_exit_2() {
    let dir = std::env::temp_dir().join(format!("keyward-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let not_json = dir.join("not-json.json");
    std::fs::write(&not_json, "this is not json").unwrap();
    let no_keys = dir.join("no-keys.json");
    std::fs::write(&no_keys, r#"{"kty":"RSA"}"#).unwrap();
    let jwks = jwks();
    let t = token("ES256");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec![], "a command is required"),
        (vec!["frobnicate"], "unknown command"),
        (vec!["verify", &t], "--jwks"),
        (vec!["verify", "--jwks", &jwks], "token"),
        (vec!["verify", "--jwks", &jwks, "--bogus", &t], "--bogus"),
        (
            vec!["verify", "--jwks", &jwks, "--leeway", "soon", &t],
            "--leeway",
        ),
        (vec!["verify", "--jwks", &jwks, "--now", "-5", &t], "--now"),
        (
            vec!["verify", "--jwks", &jwks, "--alg", "none", &t],
            "--alg",
        ),
        (
            vec![
                "verify", "--jwks", &jwks, "--leeway", "1", "--leeway", "2", &t,
            ],
            "more than once",
        ),
        (vec!["verify", "--jwks", &jwks, &t, &t], "only one token"),
        (
            vec!["verify", "--jwks", "/nonexistent/jwks.json", &t],
            "cannot read JWKS",
        ),
        (
            vec!["verify", "--jwks", not_json.to_str().unwrap(), &t],
            "JWKS file",
        ),
        (
            vec!["verify", "--jwks", no_keys.to_str().unwrap(), &t],
            "keys",
        ),
        (vec!["inspect"], "token"),
    ];
    for (args, expected) in cases {
        let out = keyward(&args, None);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn inspect_decodes_without_verifying() {
    // a token signed by nobody we know still inspects, with a warning
    let mut forged = token("RS256");
    forged.replace_range(forged.len() - 2.., "AA");
    let out = keyward(&["inspect", &forged], None);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("NOT VERIFIED"));
    let report = json_stdout(&out);
    assert_eq!(report["header"]["alg"], "RS256");
    assert_eq!(report["claims"]["email"], "alice@example.com");
    let out = keyward(&["inspect", "-"], Some(&token("HS512")));
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(json_stdout(&out)["header"]["alg"], "HS512");
    let out = keyward(&["inspect", "garbage"], None);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn skipped_keys_are_reported_on_stderr() {
    let out = verify(&["--json"], &token("ES256"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("\"rsa-weak\") skipped: weak_key"),
        "{stderr}"
    );
}
