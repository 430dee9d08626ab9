//! The single-flight refresh client against a real provider.
//!
//! ```sh
//! cargo run --example refresh -- <ISSUER_URL> <CLIENT_ID> <CLIENT_SECRET> <REFRESH_TOKEN>
//! ```
//!
//! Discovers the token endpoint, then refreshes the same token from 8
//! concurrent tasks (as a page's parallel requests would) and shows that the
//! provider saw one request and every task got the same tokens. It then
//! refreshes once more with the rotated token, proving the family is alive.
//! Tokens are never printed.

use keyward::{ClientAuth, RefreshClient};
use std::sync::Arc;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [issuer, client_id, client_secret, refresh_token] = args.as_slice() else {
        return Err(
            "usage: refresh <ISSUER_URL> <CLIENT_ID> <CLIENT_SECRET> <REFRESH_TOKEN>".into(),
        );
    };
    let client = RefreshClient::builder()
        .discover(issuer)
        .client_auth(ClientAuth::ClientSecretBasic {
            client_id: client_id.clone(),
            client_secret: client_secret.clone(),
        })
        .build()?;
    let token = Arc::new(refresh_token.clone());
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (client, token) = (client.clone(), token.clone());
            tokio::spawn(async move { client.refresh(&token).await })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await??);
    }
    let same = results.iter().all(|r| *r == results[0]);
    println!(
        "8 concurrent refreshes: {} request(s) to the token endpoint, identical results: {same}, rotated: {}, expires at: {:?}",
        client.stats().grants,
        results[0].rotated,
        results[0].expires_at
    );
    let next = client.refresh(results[0].refresh_token.expose()).await?;
    println!(
        "refresh with the rotated token: ok (rotated again: {}); {:?}",
        next.rotated,
        client.stats()
    );
    Ok(())
}
