//! Discover an issuer's JWKS and verify tokens read from stdin, one per line.
//!
//! `cargo run --example remote_jwks -- <ISSUER_URL> <AUDIENCE> < tokens.txt`
//!
//! The issuer must be `https` (or loopback `http`). Prints each token's
//! outcome and, at the end, what the key source did.

use keyward::{AuthenticateOptions, Authenticator, RemoteKeySource};
use std::io::BufRead;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(issuer), Some(audience)) = (args.next(), args.next()) else {
        return Err("usage: remote_jwks <ISSUER_URL> <AUDIENCE> < tokens.txt".into());
    };
    let keys = RemoteKeySource::from_issuer(&issuer)?;
    let set = keys.refresh().await?; // fail fast if the issuer is unreachable
    println!(
        "{issuer}: {} keys ({} skipped)",
        set.len(),
        set.skipped().len()
    );
    let auth = Authenticator::builder()
        .issuer(issuer)
        .audience(audience)
        .keys(keys.clone())
        .build()?;
    for line in std::io::stdin().lock().lines() {
        let token = line?;
        let token = token.trim();
        if token.is_empty() {
            continue;
        }
        match auth
            .authenticate_token(token, AuthenticateOptions::default())
            .await
        {
            Ok(session) => println!("valid: {:?} ({:?})", session.user_id(), session.principal()),
            Err(e) => println!("invalid: {}", e.kind().as_str()),
        }
    }
    println!("{:?}", keys.stats());
    Ok(())
}
