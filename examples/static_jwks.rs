//! Verify a token with keys baked into configuration: no network at all.
//!
//! `cargo run --example static_jwks -- <JWKS_FILE> <ISSUER> <AUDIENCE> <TOKEN>`
//!
//! Without arguments it uses the bundled test fixtures (minted for the fixed
//! time 1700000000, which it uses as "now").

use keyward::{AuthenticateOptions, Authenticator, FixedClock, StaticKeySource, SystemClock};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let fixtures = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../keyward-core/tests/fixtures"
    );
    let (jwks_file, issuer, audience, token, fixed_now) = match args.as_slice() {
        [jwks, iss, aud, token] => (jwks.clone(), iss.clone(), aud.clone(), token.clone(), None),
        [] => (
            format!("{fixtures}/jwks.json"),
            "https://issuer.example".to_owned(),
            "https://api.example".to_owned(),
            std::fs::read_to_string(format!("{fixtures}/valid/EdDSA.jwt"))?
                .trim()
                .to_owned(),
            Some(1_700_000_000),
        ),
        _ => return Err("usage: static_jwks <JWKS_FILE> <ISSUER> <AUDIENCE> <TOKEN>".into()),
    };
    let builder = Authenticator::builder()
        .issuer(issuer)
        .audience(audience)
        .keys(StaticKeySource::from_file(&jwks_file)?);
    let auth = match fixed_now {
        Some(now) => builder.clock(FixedClock(now)),
        None => builder.clock(SystemClock),
    }
    .build()?;
    match auth
        .authenticate_token(&token, AuthenticateOptions::default())
        .await
    {
        Ok(session) => println!(
            "valid: user {:?}, email {:?}, organizations {:?}, scopes {:?}",
            session.user_id(),
            session.email(),
            session
                .organizations()
                .iter()
                .map(|o| &o.id)
                .collect::<Vec<_>>(),
            session.scopes().iter().collect::<Vec<_>>()
        ),
        Err(e) => println!("invalid: {} ({})", e.kind().as_str(), e.message()),
    }
    Ok(())
}
