//! What one grant attempt ended in.
//!
//! A rotating provider consumes a refresh token the moment it *processes* a
//! grant, whether or not its answer reaches us. So the question that decides
//! whether a token may be sent again is not "did we get tokens?" but "could
//! the provider have processed the request?". Each attempt therefore ends in
//! exactly one of four outcomes, and the coordinators decide from the
//! outcome alone what to remember and for how long:
//!
//! | outcome | when | may the token be sent again? | remembered |
//! |---|---|---|---|
//! | [`NotSent`](GrantOutcome::NotSent) | nothing of the request was written (no connection, endpoint unknown), or the provider answered a non-`invalid_grant` 4xx (it refused to process the grant) | yes | no |
//! | [`Granted`](GrantOutcome::Granted) | a 2xx with a usable access token | no: the rotated token replaces it | for the late-arrival window (rotating providers only) |
//! | [`Rejected`](GrantOutcome::Rejected) | `invalid_grant` | pointless: the session is over | for the late-arrival window |
//! | [`InDoubt`](GrantOutcome::InDoubt) | the request was written and no usable answer came: timeout, reset, 5xx, a 2xx without a usable access token, a grant that panicked | **no**: the provider may have consumed it | for the quarantine (default 24 h) |
//!
//! The invariant the table implements: *a refresh token is never sent while
//! an earlier grant with it may still complete at the provider, and a grant
//! that completed is never lost.*

use crate::token_set::TokenSet;
use keyward_core::{Error, ErrorKind};
use std::future::Future;
use std::pin::Pin;

/// The outcome of one refresh grant attempt; see the module table.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum GrantOutcome {
    /// Nothing reached the provider that it could have processed: safe to
    /// retry. The error's kind is `refresh_failed`.
    NotSent(Error),
    /// The provider granted new tokens.
    Granted(TokenSet),
    /// The provider rejected the refresh token (`invalid_grant`): the
    /// session is over.
    Rejected(Error),
    /// The request was written but no usable answer came: the provider may
    /// have consumed the token, so it is quarantined (never sent again for
    /// the quarantine). The error's kind is `refresh_failed`.
    InDoubt(Error),
}

/// A boxed, owned future producing a [`GrantOutcome`]. The grant a
/// [`RefreshClient`](crate::RefreshClient) hands to its coordinator is one;
/// it is `'static` so that a coordinator can run it to completion on its own
/// task even when every caller waiting for it goes away (a request the
/// browser aborted must not cancel a grant the provider may already have
/// received).
pub type GrantFuture = Pin<Box<dyn Future<Output = GrantOutcome> + Send + 'static>>;

impl GrantOutcome {
    /// The new tokens, or the error (`invalid_grant` for
    /// [`Rejected`](Self::Rejected), `refresh_failed` otherwise).
    pub fn into_result(self) -> Result<TokenSet, Error> {
        match self {
            GrantOutcome::Granted(tokens) => Ok(tokens),
            GrantOutcome::NotSent(e) | GrantOutcome::Rejected(e) | GrantOutcome::InDoubt(e) => {
                Err(e)
            }
        }
    }

    /// Whether the token may be sent again after this outcome.
    pub fn may_resend(&self) -> bool {
        matches!(self, GrantOutcome::NotSent(_))
    }

    /// A short name for logs and metrics: `not_sent`, `granted`, `rejected`,
    /// `in_doubt`.
    pub fn as_str(&self) -> &'static str {
        match self {
            GrantOutcome::NotSent(_) => "not_sent",
            GrantOutcome::Granted(_) => "granted",
            GrantOutcome::Rejected(_) => "rejected",
            GrantOutcome::InDoubt(_) => "in_doubt",
        }
    }

    /// What a coordinator keeps of this outcome for later callers with the
    /// same token.
    pub(crate) fn retention(&self) -> Retention {
        match self {
            GrantOutcome::NotSent(_) => Retention::Forget,
            // A non-rotating provider's token stays valid: sending it again
            // is safe, and an explicit refresh must reach the provider (new
            // claims), so its result is not memoised.
            GrantOutcome::Granted(tokens) if !tokens.rotated => Retention::Forget,
            GrantOutcome::Granted(_) | GrantOutcome::Rejected(_) => Retention::LateArrivalWindow,
            GrantOutcome::InDoubt(_) => Retention::Quarantine,
        }
    }

    pub(crate) fn not_sent(message: impl Into<String>) -> GrantOutcome {
        GrantOutcome::NotSent(Error::new(ErrorKind::RefreshFailed, message.into()))
    }

    pub(crate) fn in_doubt(message: impl Into<String>) -> GrantOutcome {
        GrantOutcome::InDoubt(Error::new(
            ErrorKind::RefreshFailed,
            format!(
                "{}; the provider may have consumed the refresh token, so it is quarantined and not sent again",
                message.into()
            ),
        ))
    }
}

/// How long a coordinator remembers an outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Retention {
    /// Not at all: the next caller sends a new grant.
    Forget,
    /// For the late-arrival window (default 60 s).
    LateArrivalWindow,
    /// For the quarantine (default 24 h).
    Quarantine,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(rotated: bool) -> TokenSet {
        TokenSet::from_response(
            if rotated {
                br#"{"access_token":"a","refresh_token":"new"}"#
            } else {
                br#"{"access_token":"a"}"#
            },
            "old",
            0,
        )
        .unwrap()
    }

    #[test]
    fn retention_follows_the_table() {
        let e = || Error::new(ErrorKind::RefreshFailed, "x");
        let table = [
            (GrantOutcome::NotSent(e()), Retention::Forget, true),
            (
                GrantOutcome::Granted(tokens(true)),
                Retention::LateArrivalWindow,
                false,
            ),
            (
                GrantOutcome::Granted(tokens(false)),
                Retention::Forget,
                false,
            ),
            (
                GrantOutcome::Rejected(Error::new(ErrorKind::InvalidGrant, "x")),
                Retention::LateArrivalWindow,
                false,
            ),
            (GrantOutcome::InDoubt(e()), Retention::Quarantine, false),
        ];
        for (outcome, retention, resend) in table {
            assert_eq!(outcome.retention(), retention, "{}", outcome.as_str());
            assert_eq!(outcome.may_resend(), resend, "{}", outcome.as_str());
        }
    }
}
