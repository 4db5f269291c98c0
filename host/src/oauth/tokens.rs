//! Between the provider's token set (relative lifetimes, as the wire has them) and the stored one
//! (absolute times, secrets wrapped so they never print).

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use secrecy::{ExposeSecret, SecretString};

use crate::plugins;
use crate::store::{self, expiry_after};

/// The stored form of `tokens`, received at `now`.
pub fn to_stored(tokens: &plugins::TokenSet, now: SystemTime) -> store::TokenSet {
    // Lifetimes come from the provider (and the authorization server behind it): any u64, so the
    // arithmetic saturates instead of overflowing the clock.
    let expires_at =
        tokens.expires_at.map(|at| expiry_after(UNIX_EPOCH, at)).or_else(|| tokens.expires_in.map(|seconds| expiry_after(now, seconds)));
    store::TokenSet {
        access_token: SecretString::from(tokens.access_token.clone()),
        token_type: tokens.token_type.clone(),
        refresh_token: tokens.refresh_token.clone().map(SecretString::from),
        expires_at,
        refresh_token_expires_at: tokens.refresh_token_expires_in.map(|seconds| expiry_after(now, seconds)),
        scopes: tokens.scopes.clone(),
        id_token: tokens.id_token.clone().map(SecretString::from),
        extra: tokens.extra.iter().map(|(key, value)| (key.clone(), SecretString::from(value.clone()))).collect::<BTreeMap<_, _>>(),
    }
}

/// The provider's view of stored tokens, as of `now` (for `merge-refreshed`).
pub fn to_provider(tokens: &store::TokenSet, now: SystemTime) -> plugins::TokenSet {
    let remaining = |at: Option<SystemTime>| at.map(|at| at.duration_since(now).unwrap_or_default().as_secs());
    plugins::TokenSet {
        access_token: tokens.access_token.expose_secret().to_string(),
        token_type: tokens.token_type.clone(),
        expires_in: remaining(tokens.expires_at),
        expires_at: None,
        refresh_token: tokens.refresh_token.as_ref().map(|t| t.expose_secret().to_string()),
        refresh_token_expires_in: remaining(tokens.refresh_token_expires_at),
        scopes: tokens.scopes.clone(),
        id_token: tokens.id_token.as_ref().map(|t| t.expose_secret().to_string()),
        extra: tokens.extra.iter().map(|(key, value)| (key.clone(), value.expose_secret().to_string())).collect(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn lifetimes_become_absolute_and_back() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let tokens = plugins::TokenSet {
            access_token: "at".into(),
            token_type: "Bearer".into(),
            expires_in: Some(3600),
            expires_at: None,
            refresh_token: Some("rt".into()),
            refresh_token_expires_in: Some(86400),
            scopes: vec!["a".into()],
            id_token: None,
            extra: vec![("team".into(), "T1".into())],
        };
        let stored = to_stored(&tokens, now);
        assert_eq!(stored.expires_at, Some(now + Duration::from_secs(3600)));
        let later = now + Duration::from_secs(600);
        let back = to_provider(&stored, later);
        assert_eq!(back.expires_in, Some(3000));
        assert_eq!(back.refresh_token.as_deref(), Some("rt"));
        assert_eq!(back.extra, vec![("team".to_string(), "T1".to_string())]);
        let absolute = plugins::TokenSet { expires_at: Some(2_000_000), ..tokens.clone() };
        assert_eq!(to_stored(&absolute, now).expires_at, Some(UNIX_EPOCH + Duration::from_secs(2_000_000)));

        // Whatever a provider hands over, the clock does not overflow.
        let latest = Some(UNIX_EPOCH + Duration::from_secs(store::LATEST_EXPIRY));
        let endless = plugins::TokenSet { expires_in: Some(u64::MAX), refresh_token_expires_in: Some(u64::MAX), ..tokens.clone() };
        let stored = to_stored(&endless, now);
        assert_eq!((stored.expires_at, stored.refresh_token_expires_at), (latest, latest));
        assert_eq!(to_stored(&plugins::TokenSet { expires_at: Some(u64::MAX), ..tokens }, now).expires_at, latest);
    }
}
