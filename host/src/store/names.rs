//! What the store holds, and the key each thing is stored under.
//!
//! Keys are built so that two different things never share one: a named secret lives at
//! `secret/<name>` (names cannot contain `/`), a credential at
//! `oauth/<server>/<issuer host>/<hash>`. The readable parts are only there for people looking at
//! their keyring; the hash covers the exact server, issuer and client id, each length-prefixed, so
//! `("a/b", "c")` and `("a", "b/c")`, or issuers that differ by a trailing slash, get different
//! keys. (Docker's gateway concatenated unescaped names and could alias two servers.)

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The longest secret name accepted; keyrings limit their attribute lengths.
const MAX_NAME_LEN: usize = 128;
/// How much of a server name or issuer a credential key shows.
const READABLE_LEN: usize = 40;

/// Check that `name` can name a secret: 1 to 128 of `A-Z a-z 0-9 . _ -`.
pub fn validate_secret_name(name: &str) -> anyhow::Result<()> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if name.is_empty() || name.len() > MAX_NAME_LEN || !name.chars().all(allowed) {
        anyhow::bail!(
            "`{name}` is not a valid secret name: use 1 to {MAX_NAME_LEN} letters, digits, '.', '_' or '-' \
             (for example gmail.client_secret)"
        );
    }
    Ok(())
}

/// The longest account name.
const MAX_ACCOUNT_LEN: usize = 64;

/// Check that `name` can name an account (`work`, `jane@example.com`): 1 to 64 of
/// `A-Z a-z 0-9 . _ - + @`.
pub fn validate_account_name(name: &str) -> anyhow::Result<()> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+' | '@');
    if name.is_empty() || name.len() > MAX_ACCOUNT_LEN || !name.chars().all(allowed) {
        anyhow::bail!(
            "`{name}` is not a valid account name: use 1 to {MAX_ACCOUNT_LEN} letters, digits, '.', '_', '-', '+' or '@' (for \
             example work, or the account's e-mail address)"
        );
    }
    Ok(())
}

/// Which OAuth credential: one per MCP server, authorization server, client and account.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CredentialId {
    /// The catalog's server name (`gmail`).
    pub server: String,
    /// The authorization server's issuer (`https://accounts.google.com`).
    pub issuer: String,
    pub client_id: String,
    /// The user's name for one of several accounts (`oauth authorize --account work`); `None` is
    /// the account every credential had before there were several, so their keys stay the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
}

impl CredentialId {
    pub fn new(server: impl Into<String>, issuer: impl Into<String>, client_id: impl Into<String>) -> CredentialId {
        CredentialId { server: server.into(), issuer: issuer.into(), client_id: client_id.into(), account: None }
    }

    pub fn with_account(self, account: Option<String>) -> CredentialId {
        CredentialId { account, ..self }
    }

    /// The store key: a readable prefix and a hash of the exact components.
    pub fn key(&self) -> String {
        let mut hash = Sha256::new();
        for part in [&self.server, &self.issuer, &self.client_id].into_iter().chain(&self.account) {
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part.as_bytes());
        }
        let digest = hash.finalize();
        let host = self.issuer.split_once("://").map_or(self.issuer.as_str(), |(_, rest)| rest);
        let server = match &self.account {
            Some(account) => readable(&format!("{}@{account}", self.server)),
            None => readable(&self.server),
        };
        format!("oauth/{server}/{}/{}", readable(host), hex::encode(&digest[..16]))
    }
}

impl fmt::Display for CredentialId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.account {
            Some(account) => write!(f, "server {} (account {account}, issuer {}, client {})", self.server, self.issuer, self.client_id),
            None => write!(f, "server {} (issuer {}, client {})", self.server, self.issuer, self.client_id),
        }
    }
}

/// `text` cut to the characters that read well in a key; never the part that keeps keys apart.
fn readable(text: &str) -> String {
    let cleaned: String =
        text.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '_' }).take(READABLE_LEN).collect();
    let cleaned = cleaned.trim_matches('_');
    if cleaned.is_empty() { "_".to_string() } else { cleaned.to_string() }
}

/// An entry's name as the store records it next to the value (file store) or in the names-only
/// index (keyring store), so that entries can be listed without reading any value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum Name {
    Secret { name: String },
    Credential(CredentialId),
}

impl Name {
    pub(crate) fn secret(name: &str) -> anyhow::Result<Name> {
        validate_secret_name(name)?;
        Ok(Name::Secret { name: name.to_string() })
    }

    pub(crate) fn key(&self) -> String {
        match self {
            Name::Secret { name } => format!("secret/{name}"),
            Name::Credential(id) => id.key(),
        }
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Name::Secret { name } => write!(f, "secret {name}"),
            Name::Credential(id) => write!(f, "OAuth credential for {id}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn secret_names_are_checked() {
        for good in ["gmail.client_secret", "a", "A-b_c.9", &"x".repeat(MAX_NAME_LEN)] {
            assert!(validate_secret_name(good).is_ok(), "{good} should be valid");
        }
        for bad in ["", "a/b", "a b", "gmail:secret", "ä", "a\n", &"x".repeat(MAX_NAME_LEN + 1)] {
            let error = validate_secret_name(bad).unwrap_err().to_string();
            assert!(error.contains("not a valid secret name"), "{bad:?}: {error}");
        }
    }

    #[test]
    fn credential_keys_never_collide() {
        let long = "s".repeat(READABLE_LEN);
        let ids = [
            CredentialId::new("gmail", "https://accounts.google.com", "1234.apps"),
            CredentialId::new("gmail", "https://accounts.google.com/", "1234.apps"),
            CredentialId::new("gmail", "http://accounts.google.com", "1234.apps"),
            CredentialId::new("gmail", "https://accounts.google.com", "1234.apps2"),
            CredentialId::new("gmail2", "https://accounts.google.com", "1234.apps"),
            // Components that would alias if they were joined with a separator.
            CredentialId::new("a/b", "c", "d"),
            CredentialId::new("a", "b/c", "d"),
            CredentialId::new("a", "b", "c/d"),
            CredentialId::new("a", "", "bcd"),
            CredentialId::new("", "a", "bcd"),
            // Same readable part after cleaning and cutting.
            CredentialId::new("my server", "https://x", "c"),
            CredentialId::new("my_server", "https://x", "c"),
            CredentialId::new(format!("{long}a"), "https://x", "c"),
            CredentialId::new(format!("{long}b"), "https://x", "c"),
            // Accounts: each its own, and none the same as the default.
            CredentialId::new("gmail", "https://accounts.google.com", "1234.apps").with_account(Some("work".into())),
            CredentialId::new("gmail", "https://accounts.google.com", "1234.apps").with_account(Some("home".into())),
            CredentialId::new("gmail", "https://accounts.google.com", "1234.apps").with_account(Some(String::new())),
            CredentialId::new("gmail", "https://accounts.google.com", "1234").with_account(Some(".apps".into())),
        ];
        let keys: HashSet<String> = ids.iter().map(CredentialId::key).collect();
        assert_eq!(keys.len(), ids.len(), "{keys:#?}");
        // The same id always gives the same key.
        assert_eq!(ids[0].key(), ids[0].clone().key());
    }

    #[test]
    fn credential_keys_are_readable_and_bounded() {
        let key = CredentialId::new("gmail", "https://accounts.google.com", "1234.apps.googleusercontent.com").key();
        assert!(key.starts_with("oauth/gmail/accounts.google.com/"), "{key}");
        let huge = CredentialId::new("s".repeat(5000), format!("https://{}", "i".repeat(5000)), "c".repeat(5000)).key();
        assert!(huge.len() < 6 + 2 * READABLE_LEN + 2 + 32 + 1, "{} characters", huge.len());
        let odd = CredentialId::new("", "://", "").key();
        assert!(odd.starts_with("oauth/_/_/"), "{odd}");
        let work = CredentialId::new("gmail", "https://accounts.google.com", "1234.apps").with_account(Some("work".into())).key();
        assert!(work.starts_with("oauth/gmail_work/accounts.google.com/"), "{work}");
    }

    #[test]
    fn a_credential_without_an_account_keeps_the_key_it_had_before_accounts() {
        // The key of this id before `account` existed: stored credentials are found with no migration.
        let key = CredentialId::new("gmail", "https://accounts.google.com", "1234.apps").key();
        assert_eq!(key, "oauth/gmail/accounts.google.com/352dfaba38da719ff9f81c3466de4843");
    }

    #[test]
    fn account_names_are_short_and_plain() {
        for good in ["work", "jane@example.com", "jane+lists@example.com", "a.b_c-d"] {
            validate_account_name(good).unwrap();
        }
        for bad in ["", "two words", "work/home", "a\u{1b}b", &"a".repeat(65)] {
            let error = validate_account_name(bad).unwrap_err().to_string();
            assert!(error.contains("not a valid account name"), "{bad:?}: {error}");
        }
    }

    #[test]
    fn secret_and_credential_keys_live_apart() {
        let secret = Name::secret("oauth.gmail").unwrap().key();
        assert_eq!(secret, "secret/oauth.gmail");
        assert!(CredentialId::new("x", "y", "z").key().starts_with("oauth/"));
    }
}
