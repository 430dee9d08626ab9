//! `keyward jwks fetch`, `verify --jwks URL` and `--issuer-discovery`
//! against the real oidc-provider on loopback.

use keyward_testkit::OidcProvider;
use serde_json::Value;
use std::process::Output;

async fn keyward(args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args(args)
        .output()
        .await
        .unwrap()
}

fn stdout_json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {} / {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_fetch_and_verify_against_oidc_provider() {
    let provider = OidcProvider::start().await;
    let issuer = provider.issuer.clone();
    let jwks_url = format!("{issuer}/jwks");

    // jwks fetch: from the issuer (discovery) and from the JWKS URL
    for location in [issuer.as_str(), jwks_url.as_str()] {
        let out = keyward(&["jwks", "fetch", location]).await;
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let jwks = stdout_json(&out);
        let kids: Vec<&str> = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap())
            .collect();
        assert_eq!(
            kids,
            provider.kids.iter().map(String::as_str).collect::<Vec<_>>()
        );
        for key in jwks["keys"].as_array().unwrap() {
            assert!(key.get("d").is_none(), "private member printed: {key}");
        }
    }

    // the baking recipe: fetch once, verify from the file with no network
    let dir = std::env::temp_dir().join(format!("keyward-cli-oidc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let baked = dir.join("jwks.json");
    std::fs::write(&baked, keyward(&["jwks", "fetch", &issuer]).await.stdout).unwrap();

    for alg in ["RS256", "ES256", "EdDSA"] {
        let token = provider.access_token(alg).await;
        let common = [
            "--issuer",
            issuer.as_str(),
            "--audience",
            "https://api.example",
            "--typ",
            "at+jwt",
            "--json",
        ];
        for source in [
            vec!["--jwks", jwks_url.as_str()],
            vec!["--issuer-discovery"],
            vec!["--jwks", baked.to_str().unwrap()],
        ] {
            let mut args = vec!["verify"];
            args.extend(&source);
            args.extend(common);
            args.push(&token);
            let out = keyward(&args).await;
            assert_eq!(
                out.status.code(),
                Some(0),
                "{alg} {source:?}: {}",
                String::from_utf8_lossy(&out.stdout)
            );
            assert_eq!(stdout_json(&out)["claims"]["client_id"], "keyward-test");
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn unreachable_keys_are_configuration_errors() {
    let out = keyward(&["verify", "--jwks", "http://127.0.0.1:9/jwks", "x.y.z"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot load keys"));
    let out = keyward(&["verify", "--jwks", "http://issuer.example/jwks", "x.y.z"]).await;
    assert_eq!(
        out.status.code(),
        Some(2),
        "plain http to a non-loopback host is refused"
    );
    let out = keyward(&["verify", "--issuer-discovery", "x.y.z"]).await;
    assert_eq!(out.status.code(), Some(2));
    let out = keyward(&["jwks", "fetch", "http://127.0.0.1:9/"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot fetch the JWKS"));
    let out = keyward(&["jwks", "list"]).await;
    assert_eq!(out.status.code(), Some(2));
}
