//! Claims JSON into the typed model and the Session (organisations,
//! projects, namespaced email): errors, never panics.
#![no_main]
use keyward_claims::{AccessTokenClaims, ClaimMapping, Session};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(claims) = serde_json::from_slice::<AccessTokenClaims>(data) else { return };
    let mapping = ClaimMapping::default().with_namespace("https://example.com/");
    if let Ok(session) = Session::from_claims(claims, &mapping) {
        let _ = session.sole_organization();
        let _ = session.is_member("acme");
        let _ = session.claim::<serde_json::Value>("tenant");
    }
});
