//! The OAuth credential record: the token set, the provider that issued it, and whether it still
//! works.
//!
//! Tokens are [`SecretString`]s, so `{:?}` on a record prints `[REDACTED]` in their place. The
//! record is stored as a JSON envelope that names its format and carries its own
//! [`CredentialId`]; loading checks both, so an entry written for something else (another
//! credential, a plain secret, another program's item) is reported, never used. (Docker's gateway
//! decoded whichever envelope it found first.)

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::names::CredentialId;

/// The envelope's format name; a new layout gets a new name.
const FORMAT: &str = "latchkey.oauth-credential/1";

/// An OAuth credential as stored.
///
/// Serializing it writes the tokens in plain text: only the store does that. To show a credential,
/// build a view of the fields to show.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Credential {
    #[serde(flatten)]
    pub id: CredentialId,
    /// The provider plugin's id (`google`).
    pub provider: String,
    pub tokens: TokenSet,
    pub status: Status,
    /// How the first token was obtained, which says how the next one is: by the refresh token,
    /// or (client credentials) by asking again.
    #[serde(default, skip_serializing_if = "Grant::is_authorization_code")]
    pub grant: Grant,
    /// Who signed in, when the authorization server or the provider's calls after the token
    /// said (an OpenID Connect ID token, the userinfo endpoint, contract 0.3's `post-token`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<Identity>,
    /// What the provider's calls after the token learned for the servers (Atlassian's
    /// `cloud_id`); the catalog maps names to environment variables. Not secret.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub context: BTreeMap<String, String>,
    /// The site the user chose, when the token reaches several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<ChosenSite>,
    /// Why the last refresh failed, kept until one succeeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_refresh_error: Option<String>,
}

/// What the authorization server issued, with absolute times.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TokenSet {
    #[serde(with = "plain")]
    pub access_token: SecretString,
    pub token_type: String,
    #[serde(default, with = "plain_option", skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<SecretString>,
    /// When the access token expires; `None` when the server did not say.
    #[serde(default, with = "unix_seconds", skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<SystemTime>,
    #[serde(default, with = "unix_seconds", skip_serializing_if = "Option::is_none")]
    pub refresh_token_expires_at: Option<SystemTime>,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default, with = "plain_option", skip_serializing_if = "Option::is_none")]
    pub id_token: Option<SecretString>,
    /// Context the provider asked to keep (`instance_url`, Slack's team or user token…). Treated
    /// as secret, since some of it is.
    #[serde(default, with = "plain_map", skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, SecretString>,
}

impl TokenSet {
    /// A bearer token with what the authorization server said of it, and nothing else.
    pub fn bearer(access_token: SecretString, refresh_token: Option<SecretString>, expires_at: Option<SystemTime>) -> TokenSet {
        TokenSet {
            access_token,
            token_type: "Bearer".into(),
            refresh_token,
            expires_at,
            refresh_token_expires_at: None,
            scopes: Vec::new(),
            id_token: None,
            extra: BTreeMap::new(),
        }
    }
}

/// Who a credential belongs to, as the authorization server named them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// `sub`: stable at the issuer, not always readable (Google's is a number).
    pub subject: String,
    /// For people: the e-mail address, else the user name, else the name, else the subject.
    pub label: String,
}

/// One of the sites a token reaches, as chosen after sign-in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChosenSite {
    pub id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// The OAuth grant a credential came from. Absent from records written before latchkey had other
/// grants, which all came from the authorization-code flow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Grant {
    /// A person signed in with a browser (RFC 6749 §4.1).
    #[default]
    AuthorizationCode,
    /// A person signed in on another device with a user code (RFC 8628).
    DeviceCode,
    /// The client itself, with no person (RFC 6749 §4.4): a new token is asked for when one ends.
    ClientCredentials,
}

impl Grant {
    fn is_authorization_code(&self) -> bool {
        *self == Grant::AuthorizationCode
    }

    /// Its name in `--json` and the catalog's `grant`.
    pub fn name(self) -> &'static str {
        match self {
            Grant::AuthorizationCode => "authorization_code",
            Grant::DeviceCode => "device_code",
            Grant::ClientCredentials => "client_credentials",
        }
    }
}

/// Whether the credential can be used, or needs the user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Status {
    Authorized,
    /// The refresh token was refused (revoked, expired, scopes changed…): run `oauth authorize`
    /// again. `reason` says what the server answered.
    NeedsReauthorization {
        reason: String,
    },
}

#[derive(Serialize)]
struct EnvelopeOut<'a> {
    format: &'static str,
    credential: &'a Credential,
}

#[derive(Deserialize)]
struct EnvelopeIn {
    format: String,
    credential: serde_json::Value,
}

impl Credential {
    /// A working credential of `provider` for `id`, as a grant just issued `tokens`, with nothing
    /// else known yet.
    pub fn authorized(id: CredentialId, provider: impl Into<String>, tokens: TokenSet) -> Credential {
        Credential {
            id,
            provider: provider.into(),
            tokens,
            status: Status::Authorized,
            grant: Grant::default(),
            identity: None,
            context: BTreeMap::new(),
            site: None,
            last_refresh_error: None,
        }
    }

    /// The stored form. The result holds the tokens, hence the secret wrapper.
    pub(crate) fn encode(&self) -> SecretString {
        let json =
            serde_json::to_string(&EnvelopeOut { format: FORMAT, credential: self }).expect("a credential always serializes to JSON");
        SecretString::from(json)
    }

    /// Read back what [`Credential::encode`] wrote for `id`.
    pub(crate) fn decode(id: &CredentialId, stored: &SecretString) -> anyhow::Result<Credential> {
        // serde_json's messages can quote the offending value, which may be a token: not passed on.
        let problem =
            || anyhow::anyhow!("the stored OAuth credential for {id} is damaged; run `latchkey oauth authorize {}` again", id.server);
        let envelope: EnvelopeIn = serde_json::from_str(stored.expose_secret()).map_err(|_| problem())?;
        if envelope.format != FORMAT {
            anyhow::bail!(
                "the stored OAuth credential for {id} has format `{}`, which this latchkey does not read (it reads `{FORMAT}`); \
                 upgrade latchkey, or replace it with `latchkey oauth authorize {}`",
                envelope.format,
                id.server
            );
        }
        let credential: Credential = serde_json::from_value(envelope.credential).map_err(|_| problem())?;
        if credential.id != *id {
            anyhow::bail!(
                "the entry stored for {id} holds the credential of {}; replace it with `latchkey oauth authorize {}`",
                credential.id,
                id.server
            );
        }
        Ok(credential)
    }
}

/// Secrets as plain JSON strings, for the stored forms only (here and in the file store).
pub(super) mod plain {
    use super::*;

    pub fn serialize<S: serde::Serializer>(secret: &SecretString, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(secret.expose_secret())
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<SecretString, D::Error> {
        String::deserialize(deserializer).map(SecretString::from)
    }
}

mod plain_option {
    use super::*;

    pub fn serialize<S: serde::Serializer>(secret: &Option<SecretString>, serializer: S) -> Result<S::Ok, S::Error> {
        match secret {
            Some(secret) => serializer.serialize_some(secret.expose_secret()),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<SecretString>, D::Error> {
        Ok(Option::<String>::deserialize(deserializer)?.map(SecretString::from))
    }
}

mod plain_map {
    use super::*;

    pub fn serialize<S: serde::Serializer>(map: &BTreeMap<String, SecretString>, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(map.iter().map(|(key, value)| (key, value.expose_secret())))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<BTreeMap<String, SecretString>, D::Error> {
        let map = BTreeMap::<String, String>::deserialize(deserializer)?;
        Ok(map.into_iter().map(|(key, value)| (key, SecretString::from(value))).collect())
    }
}

/// The latest expiry kept: the last second of the year 9999, which every platform's clock can
/// hold. A later one (`expires_in: 1e300` from a provider, or a number edited into the store) means
/// "does not expire in practice", and is kept as this, instead of overflowing the clock.
pub const LATEST_EXPIRY: u64 = 253_402_300_799;

/// `seconds` after `start`, saturating at [`LATEST_EXPIRY`]: no lifetime a provider or the store
/// hands over can overflow the clock.
pub fn expiry_after(start: SystemTime, seconds: u64) -> SystemTime {
    let latest = UNIX_EPOCH + Duration::from_secs(LATEST_EXPIRY);
    start.checked_add(Duration::from_secs(seconds)).map_or(latest, |at| at.min(latest))
}

/// Absolute times as whole Unix seconds: exact enough for expiry, and readable in the file.
mod unix_seconds {
    use super::*;

    pub fn serialize<S: serde::Serializer>(time: &Option<SystemTime>, serializer: S) -> Result<S::Ok, S::Error> {
        match time {
            Some(time) => {
                let seconds = time.duration_since(UNIX_EPOCH).map_or(0, |since| since.as_secs());
                serializer.serialize_some(&seconds)
            }
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<SystemTime>, D::Error> {
        Ok(Option::<u64>::deserialize(deserializer)?.map(|seconds| expiry_after(UNIX_EPOCH, seconds)))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const ACCESS: &str = "ya29.access-VALUE-1";
    pub(crate) const REFRESH: &str = "1//refresh-VALUE-2";
    pub(crate) const ID_TOKEN: &str = "eyJ.id-VALUE-3";
    pub(crate) const USER_TOKEN: &str = "xoxp-user-VALUE-4";

    pub(crate) fn sample(id: CredentialId) -> Credential {
        Credential {
            id,
            provider: "google".into(),
            tokens: TokenSet {
                access_token: ACCESS.to_string().into(),
                token_type: "Bearer".into(),
                refresh_token: Some(REFRESH.to_string().into()),
                expires_at: Some(UNIX_EPOCH + Duration::from_secs(1_900_000_000)),
                refresh_token_expires_at: None,
                scopes: vec!["openid".into(), "https://www.googleapis.com/auth/gmail.readonly".into()],
                id_token: Some(ID_TOKEN.to_string().into()),
                extra: BTreeMap::from([("user_token".to_string(), USER_TOKEN.to_string().into())]),
            },
            status: Status::NeedsReauthorization { reason: "invalid_grant: Token has been revoked".into() },
            grant: Grant::DeviceCode,
            identity: Some(Identity { subject: "1076915035".into(), label: "jane@example.com".into() }),
            context: Default::default(),
            site: None,
            last_refresh_error: Some("invalid_grant".into()),
        }
    }

    pub(crate) fn assert_same(a: &Credential, b: &Credential) {
        assert_eq!(a.id, b.id);
        assert_eq!(a.provider, b.provider);
        assert_eq!(a.status, b.status);
        assert_eq!(a.grant, b.grant);
        assert_eq!(a.identity, b.identity);
        assert_eq!(a.last_refresh_error, b.last_refresh_error);
        let (x, y) = (&a.tokens, &b.tokens);
        assert_eq!(x.access_token.expose_secret(), y.access_token.expose_secret());
        assert_eq!(x.token_type, y.token_type);
        let reveal = |secret: &Option<SecretString>| secret.as_ref().map(|s| s.expose_secret().to_string());
        assert_eq!(reveal(&x.refresh_token), reveal(&y.refresh_token));
        assert_eq!(reveal(&x.id_token), reveal(&y.id_token));
        assert_eq!(x.expires_at, y.expires_at);
        assert_eq!(x.refresh_token_expires_at, y.refresh_token_expires_at);
        assert_eq!(x.scopes, y.scopes);
        let extra =
            |map: &BTreeMap<String, SecretString>| map.iter().map(|(k, v)| (k.clone(), v.expose_secret().to_string())).collect::<Vec<_>>();
        assert_eq!(extra(&x.extra), extra(&y.extra));
    }

    #[test]
    fn debug_output_redacts_every_token() {
        let credential = sample(CredentialId::new("gmail", "https://accounts.google.com", "1234.apps"));
        let debug = format!("{credential:?} {credential:#?} {:?}", credential.tokens);
        for secret in [ACCESS, REFRESH, ID_TOKEN, USER_TOKEN] {
            assert!(!debug.contains(secret), "{secret} leaked into {debug}");
        }
        // The rest stays visible for debugging.
        assert!(debug.contains("gmail") && debug.contains("REDACTED") && debug.contains("user_token"), "{debug}");
    }

    #[test]
    fn encode_then_decode_gives_the_same_record() {
        let id = CredentialId::new("gmail", "https://accounts.google.com", "1234.apps");
        let credential = sample(id.clone());
        let decoded = Credential::decode(&id, &credential.encode()).unwrap();
        assert_same(&credential, &decoded);
        let stored: serde_json::Value = serde_json::from_str(credential.encode().expose_secret()).unwrap();
        assert_eq!(stored["format"], FORMAT);
        assert_eq!(stored["credential"]["tokens"]["expires_at"], 1_900_000_000);
        assert_eq!(stored["credential"]["status"]["state"], "needs_reauthorization");
        assert_eq!(stored["credential"]["grant"], "device_code");
    }

    #[test]
    fn a_record_from_before_grants_came_from_the_browser_and_is_written_back_the_same() {
        let id = CredentialId::new("gmail", "https://accounts.google.com", "1234.apps");
        let mut credential = sample(id.clone());
        credential.grant = Grant::AuthorizationCode;
        let stored: serde_json::Value = serde_json::from_str(credential.encode().expose_secret()).unwrap();
        assert!(stored["credential"].get("grant").is_none(), "the default is not written: {stored}");
        assert_eq!(Credential::decode(&id, &credential.encode()).unwrap().grant, Grant::AuthorizationCode);
    }

    #[test]
    fn expiries_beyond_the_clock_saturate_when_loading() {
        let id = CredentialId::new("gmail", "https://accounts.google.com", "1234.apps");
        let mut stored: serde_json::Value = serde_json::from_str(sample(id.clone()).encode().expose_secret()).unwrap();
        stored["credential"]["tokens"]["expires_at"] = u64::MAX.into();
        stored["credential"]["tokens"]["refresh_token_expires_at"] = (LATEST_EXPIRY + 1).into();
        let decoded = Credential::decode(&id, &SecretString::from(stored.to_string())).unwrap();
        let latest = UNIX_EPOCH + Duration::from_secs(LATEST_EXPIRY);
        assert_eq!(decoded.tokens.expires_at, Some(latest));
        assert_eq!(decoded.tokens.refresh_token_expires_at, Some(latest));
        // And it stores back as the same number.
        let again = Credential::decode(&id, &decoded.encode()).unwrap();
        assert_eq!(again.tokens.expires_at, Some(latest));
        assert_eq!(expiry_after(SystemTime::now(), u64::MAX), latest);
    }

    #[test]
    fn decode_refuses_another_credential_or_format() {
        let id = CredentialId::new("gmail", "https://accounts.google.com", "1234.apps");
        let other = CredentialId::new("gmail", "https://accounts.google.com", "5678.apps");
        let error = Credential::decode(&other, &sample(id.clone()).encode()).unwrap_err().to_string();
        assert!(error.contains("holds the credential of server gmail") && error.contains("1234.apps"), "{error}");

        let foreign = SecretString::from(r#"{"format":"docker.dcr/1","credential":{}}"#.to_string());
        let error = Credential::decode(&id, &foreign).unwrap_err().to_string();
        assert!(error.contains("docker.dcr/1"), "{error}");

        // A plain secret value is not a credential, and the error does not repeat it.
        let error = format!("{:#}", Credential::decode(&id, &SecretString::from("hunter2-VALUE".to_string())).unwrap_err());
        assert!(error.contains("damaged") && !error.contains("hunter2-VALUE"), "{error}");
        assert!(error.contains("`latchkey oauth authorize gmail`"), "{error}");
        // Nor does a token in a field of the wrong type.
        let misplaced = format!(r#"{{"format":"{FORMAT}","credential":{{"server":"gmail","scopes":"hunter2-VALUE"}}}}"#);
        let error = format!("{:#}", Credential::decode(&id, &SecretString::from(misplaced)).unwrap_err());
        assert!(error.contains("damaged") && !error.contains("hunter2-VALUE"), "{error}");
    }
}
