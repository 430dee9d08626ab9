//! `authenticate` end to end with the real oidc-provider's access tokens,
//! which carry `email` and `orgs` claims.

use keyward::{AuthenticateOptions, Authenticator, Principal};
use keyward_testkit::OidcProvider;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authenticate_oidc_provider_access_tokens() {
    let provider = OidcProvider::start().await;
    let auth = Authenticator::builder()
        .issuer(provider.issuer.clone())
        .audience("https://api.example")
        .discovered_jwks()
        .validation(|v| v.typ("at+jwt"))
        .build()
        .unwrap();
    for alg in ["RS256", "ES256", "EdDSA"] {
        let token = provider.access_token(alg).await;
        let request = http::Request::builder()
            .header("authorization", format!("Bearer {token}"))
            .body(())
            .unwrap();
        let session = auth
            .authenticate(
                &request,
                AuthenticateOptions {
                    include_user_info: false,
                },
            )
            .await
            .unwrap();
        assert_eq!(session.email(), Some("service@example.com"), "{alg}");
        assert!(session.is_member("org_1") && !session.is_member("acme"));
        assert_eq!(session.organization_by_slug("acme").unwrap().id, "org_1");
        assert_eq!(session.email_verified(), Some(true));
        assert_eq!(
            session.sole_organization().unwrap().name.as_deref(),
            Some("Acme Inc")
        );
        assert!(session.has_scope("read"));
        assert_eq!(session.client_id(), Some("keyward-test"));
        assert_eq!(
            session.principal(),
            Principal::Client,
            "client-credentials token"
        );
        assert!(session.expires_at().is_some());
    }
}
