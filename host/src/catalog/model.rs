//! The checked shape of a catalog entry: what the OAuth engine and the gateway read.
//!
//! Field names follow Docker's catalog `Server` and pull request #444 (`oauth.providers[]` with
//! RFC 8414 `server_metadata` and a `registration` that holds only a `client_id`), so an entry
//! written for one reads the same in the other. Values whose position matters to a later check are
//! [`Located`]; they dereference to the plain value.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::path::PathBuf;
use std::sync::Arc;

use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

/// A value and where it was written (line and column, from 1), so that checks made after parsing
/// can still name the line. Dereferences to the value and serializes as the value alone.
#[derive(Clone, Debug)]
pub struct Located<T> {
    value: T,
    line: u64,
    column: u64,
}

impl<T> Located<T> {
    pub fn into_inner(self) -> T {
        self.value
    }

    pub(crate) fn line(&self) -> u64 {
        self.line
    }

    pub(crate) fn column(&self) -> u64 {
        self.column
    }
}

/// A value the file did not write (a field's default): it has no position, line 0.
impl<T: Default> Default for Located<T> {
    fn default() -> Located<T> {
        Located { value: T::default(), line: 0, column: 0 }
    }
}

impl<T> Deref for Located<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T> DerefMut for Located<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.value
    }
}

impl<T: PartialEq> PartialEq for Located<T> {
    /// Equal values are equal wherever they were written.
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

impl<T: fmt::Display> fmt::Display for Located<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.value.fmt(f)
    }
}

impl<T: Serialize> Serialize for Located<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(serializer)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Located<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // serde-saphyr recognises its `Spanned` wrapper and hands over the node's position; an
        // alias reports where it is used, which is the line a reader of the entry looks at.
        let spanned = serde_saphyr::Spanned::<T>::deserialize(deserializer)?;
        Ok(Located { value: spanned.value, line: spanned.referenced.line(), column: spanned.referenced.column() })
    }
}

/// Where a catalog came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// The default catalog embedded in the binary (`host/src/catalog/default.yaml`).
    BuiltIn,
    /// A user catalog, or a file given to `latchkey catalog validate`.
    File(PathBuf),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::BuiltIn => f.write_str("built-in catalog"),
            Source::File(path) => write!(f, "{}", path.display()),
        }
    }
}

impl Serialize for Source {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// One MCP server.
#[derive(Clone, Debug, Serialize)]
pub struct Server {
    /// The key of the entry: what commands and secret names (`<name>.client_secret`) use.
    pub name: String,
    pub title: Option<String>,
    pub description: Option<String>,
    /// How the server runs: a container, a local process or a remote URL.
    #[serde(flatten)]
    pub kind: Kind,
    /// Fixed environment variables for a container or local process.
    pub env: Vec<EnvVar>,
    pub secrets: Vec<Secret>,
    pub oauth: Option<Arc<OAuth>>,
    /// Docker's per-server configuration: the settings the user gives with `latchkey config set`,
    /// which `{{<server>.<key>}}` placeholders in `env` and `command` receive (see [`super::config`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub config: Vec<ConfigObject>,
    /// Fields of Docker's catalog format that change how Docker runs the server but that latchkey
    /// does not act on (`volumes`, `user`, `allowHosts`…). Purely descriptive Docker fields (`icon`,
    /// `readme`, `metadata`, `tools`, `dateAdded`…) are dropped without a mention.
    pub ignored: Vec<String>,
    pub source: Source,
    /// The line of the entry's key in `source`.
    pub line: u64,
    /// The account whose credentials the server gets, when it is served for one of the user's
    /// several (`gateway run --servers gmail@work`); `None`: the default account.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
}

impl Server {
    /// This server, served for `account`.
    pub fn for_account(&self, account: Option<String>) -> Server {
        Server { account, ..self.clone() }
    }

    /// The name the gateway serves it under for `account`: the catalog's, with `-<account>` for an
    /// account other than the default (tool names allow no `@`).
    pub fn served_name(&self, account: Option<&str>) -> String {
        match account {
            Some(account) => format!("{}-{}", self.name, account.replace(['@', '+'], "-")),
            None => self.name.clone(),
        }
    }

    /// The declared secret called `name`.
    pub fn secret(&self, name: &str) -> Option<&Secret> {
        self.secrets.iter().find(|secret| secret.name.as_str() == name)
    }
}

/// How a server runs. Exactly one of `image`, `command` (without `image`) and `remote` in YAML.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Kind {
    /// A Docker container; `command`, when not empty, replaces the image's command.
    Image {
        image: String,
        command: Vec<String>,
        #[serde(flatten)]
        container: Container,
    },
    /// A local process: `command[0]`, with the rest as its arguments. It gets a minimal
    /// environment (see `gateway::environment`) plus the gateway's variables named in
    /// `inherit_env`.
    Command {
        command: Vec<String>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        inherit_env: Vec<String>,
    },
    /// An MCP server reached over HTTP.
    Remote { remote: Remote },
    /// Docker's `type: poci`: each tool runs in a container of its own, per call. Listed, so that a
    /// Docker catalog loads whole, but never started: latchkey runs MCP servers, not tool
    /// containers ([`Kind::refusal`]).
    Poci { tools: Vec<String> },
}

impl Kind {
    /// `image`, `command` or `remote`, as tables print it.
    pub fn name(&self) -> &'static str {
        match self {
            Kind::Image { .. } => "image",
            Kind::Command { .. } => "command",
            Kind::Remote { .. } => "remote",
            Kind::Poci { .. } => "poci",
        }
    }

    /// Why a server of this kind is never started, when it is not.
    pub fn refusal(&self, server: &str) -> Option<String> {
        matches!(self, Kind::Poci { .. }).then(|| {
            format!(
                "`{server}` is a Docker tool-container entry (`type: poci`), which runs each tool in a container of its own; \
                 latchkey runs MCP servers, not per-tool containers, so it does not start `{server}` (Docker's `docker mcp \
                 gateway` does; or describe a server image with `image:`)"
            )
        })
    }
}

/// Limits for a container, which the gateway applies when it starts one.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Container {
    /// `none` (the default: no network at all), `bridge`, or the name of a Docker network.
    pub network: String,
    pub cpus: Option<f64>,
    /// In bytes.
    pub memory: Option<u64>,
}

impl Default for Container {
    fn default() -> Container {
        Container { network: "none".into(), cpus: None, memory: None }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Remote {
    pub url: Located<String>,
    /// Only Streamable HTTP is spoken: the catalog refuses `sse` (see `parse`).
    #[serde(default, rename = "transport_type")]
    pub transport: Located<Transport>,
    /// Sent with every request; `$VAR` and `${VAR}` in values are the server's variables (see
    /// [`super::headers`]).
    #[serde(default)]
    pub headers: BTreeMap<String, Located<String>>,
}

/// The MCP transport of a remote server, under Docker's names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub enum Transport {
    /// Streamable HTTP (the default).
    #[default]
    #[serde(rename = "http", alias = "streamable", alias = "streaming", alias = "streamable-http")]
    StreamableHttp,
    /// The deprecated HTTP+SSE transport.
    #[serde(rename = "sse")]
    Sse,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EnvVar {
    pub name: Located<String>,
    pub value: String,
}

/// A secret the server needs, stored with `latchkey secret set <name>`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Secret {
    pub name: Located<String>,
    /// The environment variable that receives the value. Without one, the secret is never passed
    /// to the server (a client secret, which only latchkey uses).
    #[serde(default)]
    pub env: Option<Located<String>>,
    /// Docker's catalogs show users an example value; descriptive only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub example: Option<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OAuth {
    /// The scopes to request.
    #[serde(default)]
    pub scopes: Vec<Located<String>>,
    #[serde(default)]
    pub providers: Vec<Located<OAuthProvider>>,
    /// Which of the user's accounts the server uses (`oauth authorize <server> --account <name>`);
    /// without it, the default account. `gateway run --servers <server>@<account>` overrides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<Located<String>>,
    /// Docker's older shape, `oauth: {enabled: true, provider: <Docker Desktop app>}`: a remote
    /// server that signs its user in through the authorization server it names (RFC 9728
    /// discovery). `enabled: false` means no OAuth at all. Read by the parser, not kept.
    #[serde(default, skip_serializing)]
    pub enabled: Option<Located<bool>>,
    #[serde(default, skip_serializing)]
    pub provider: Option<Located<String>>,
}

impl OAuth {
    /// Docker's older shape read into the current one: `enabled: false` is no OAuth at all; with
    /// `enabled: true` and no `providers`, the server's authorization server is discovered, which
    /// is what an `oauth` without providers already means.
    pub(crate) fn normalized(mut self) -> Option<OAuth> {
        if self.enabled.as_ref().is_some_and(|enabled| !**enabled) {
            return None;
        }
        self.enabled = None;
        self.provider = None;
        Some(self)
    }
}

/// One authorization server the server's tokens come from.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthProvider {
    /// The provider plugin's id (`google`, `slack`, `microsoft`…); when absent, the plugin that
    /// declares the issuer is used.
    #[serde(default)]
    pub provider: Option<Located<String>>,
    /// The declared secret that receives the access token.
    #[serde(default)]
    pub secret: Option<Located<String>>,
    /// The authorization server's endpoints, so that no discovery is needed.
    #[serde(default)]
    pub server_metadata: Option<ServerMetadata>,
    /// A client registered out of band (the provider has no dynamic registration).
    #[serde(default)]
    pub registration: Option<Registration>,
    /// Settings for the provider plugin, e.g. Microsoft's `tenant`.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// How tokens are obtained: `authorization_code` (a person signs in; the default) or
    /// `client_credentials` (the client itself, unattended: RFC 6749 §4.4), which the gateway
    /// asks for on its own whenever it needs a token.
    #[serde(default)]
    pub grant: Option<CatalogGrant>,
    /// Environment variables (and `$VAR`s in a remote server's headers) that receive what the
    /// provider learned after sign-in, by name: `ATLASSIAN_CLOUD_ID: cloud_id`. A name the
    /// provider's calls after the token did not learn is looked up among what the token response
    /// kept (Salesforce's `instance_url`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub context: BTreeMap<String, Located<String>>,
    /// Docker declares `env` here but never reads it; accepted so Docker entries load, unused.
    #[serde(default, rename = "env", skip_serializing)]
    _docker_env: Option<IgnoredAny>,
}

/// The grants a catalog entry may name (`oauth authorize --device` is the user's choice, not the
/// catalog's).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CatalogGrant {
    AuthorizationCode,
    ClientCredentials,
}

impl From<CatalogGrant> for crate::store::Grant {
    fn from(grant: CatalogGrant) -> crate::store::Grant {
        match grant {
            CatalogGrant::AuthorizationCode => crate::store::Grant::AuthorizationCode,
            CatalogGrant::ClientCredentials => crate::store::Grant::ClientCredentials,
        }
    }
}

/// One object of Docker's `config:` list: a JSON Schema (`type: object`) of the settings under
/// `name` (usually the server's own name), whose values `latchkey config set <name>.<key>` stores.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct ConfigObject {
    pub name: Located<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Always `object` in Docker's catalogs; descriptive.
    #[serde(default, rename = "type", skip_serializing)]
    pub schema_type: Option<IgnoredAny>,
    #[serde(default)]
    pub properties: BTreeMap<String, ConfigProperty>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required: Vec<Located<String>>,
}

impl ConfigObject {
    pub fn is_required(&self, key: &str) -> bool {
        self.required.iter().any(|required| required.as_str() == key)
    }
}

/// One setting of a [`ConfigObject`], in JSON Schema's terms.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct ConfigProperty {
    /// Without a type, any text.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub value_type: Option<ValueType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The values allowed, when only some are.
    #[serde(default, rename = "enum", skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<serde_json::Value>,
    /// Used when the user has set no value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<Box<ConfigProperty>>,
}

/// JSON Schema's value types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ValueType {
    String,
    Number,
    Integer,
    Boolean,
    Array,
    Object,
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            ValueType::String => "string",
            ValueType::Number => "number",
            ValueType::Integer => "integer",
            ValueType::Boolean => "boolean",
            ValueType::Array => "array",
            ValueType::Object => "object",
        };
        f.write_str(name)
    }
}

/// RFC 8414 authorization server metadata, under its field names. The fields latchkey uses are
/// typed and checked; every other name is kept as written ([`ServerMetadata::other`]) and shown
/// by `catalog show`: a name of the IANA registry ([`REGISTERED_METADATA`]) silently, another
/// with a notice (`keys.rs`), since a provider may publish names of its own.
#[derive(Clone, Debug, Serialize)]
pub struct ServerMetadata {
    pub issuer: Located<String>,
    pub authorization_endpoint: Located<String>,
    pub token_endpoint: Located<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revocation_endpoint: Option<Located<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registration_endpoint: Option<Located<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub userinfo_endpoint: Option<Located<String>>,
    /// RFC 8628: where `oauth authorize --device` asks for a user code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_authorization_endpoint: Option<Located<String>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scopes_supported: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub response_types_supported: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub grant_types_supported: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub code_challenge_methods_supported: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub token_endpoint_auth_methods_supported: Vec<String>,
    /// RFC 9207: the server sends `iss` with the authorization response.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorization_response_iss_parameter_supported: Option<bool>,
    /// The names latchkey does not use, with their values as written.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// The fields of [`ServerMetadata`] that latchkey reads, typed.
const USED_METADATA: &[&str] = &[
    "issuer",
    "authorization_endpoint",
    "token_endpoint",
    "revocation_endpoint",
    "registration_endpoint",
    "userinfo_endpoint",
    "device_authorization_endpoint",
    "scopes_supported",
    "response_types_supported",
    "grant_types_supported",
    "code_challenge_methods_supported",
    "token_endpoint_auth_methods_supported",
    "authorization_response_iss_parameter_supported",
];

/// The other names of IANA's "OAuth Authorization Server Metadata" registry: RFC 8414 and the
/// specifications that registered names since (OpenID Connect Discovery and its logout and CIBA
/// extensions, RFC 7009, 7662, 8628, 8705, 9101, 9126, 9207, 9396, 9449, JWT introspection
/// responses, OpenID Federation, and the client ID metadata document that MCP uses).
pub(crate) const REGISTERED_METADATA: &[&str] = &[
    "jwks_uri",
    "response_modes_supported",
    "token_endpoint_auth_signing_alg_values_supported",
    "service_documentation",
    "ui_locales_supported",
    "op_policy_uri",
    "op_tos_uri",
    "revocation_endpoint_auth_methods_supported",
    "revocation_endpoint_auth_signing_alg_values_supported",
    "introspection_endpoint",
    "introspection_endpoint_auth_methods_supported",
    "introspection_endpoint_auth_signing_alg_values_supported",
    "signed_metadata",
    "tls_client_certificate_bound_access_tokens",
    "mtls_endpoint_aliases",
    "nfv_token_signing_alg_values_supported",
    "nfv_token_encryption_alg_values_supported",
    "nfv_token_encryption_enc_values_supported",
    "acr_values_supported",
    "subject_types_supported",
    "id_token_signing_alg_values_supported",
    "id_token_encryption_alg_values_supported",
    "id_token_encryption_enc_values_supported",
    "userinfo_signing_alg_values_supported",
    "userinfo_encryption_alg_values_supported",
    "userinfo_encryption_enc_values_supported",
    "request_object_signing_alg_values_supported",
    "request_object_encryption_alg_values_supported",
    "request_object_encryption_enc_values_supported",
    "display_values_supported",
    "claim_types_supported",
    "claims_supported",
    "claims_locales_supported",
    "claims_parameter_supported",
    "request_parameter_supported",
    "request_uri_parameter_supported",
    "require_request_uri_registration",
    "require_signed_request_object",
    "pushed_authorization_request_endpoint",
    "require_pushed_authorization_requests",
    "introspection_signing_alg_values_supported",
    "introspection_encryption_alg_values_supported",
    "introspection_encryption_enc_values_supported",
    "authorization_signing_alg_values_supported",
    "authorization_encryption_alg_values_supported",
    "authorization_encryption_enc_values_supported",
    "authorization_details_types_supported",
    "dpop_signing_alg_values_supported",
    "check_session_iframe",
    "frontchannel_logout_supported",
    "frontchannel_logout_session_supported",
    "backchannel_logout_supported",
    "backchannel_logout_session_supported",
    "end_session_endpoint",
    "backchannel_token_delivery_modes_supported",
    "backchannel_authentication_endpoint",
    "backchannel_authentication_request_signing_alg_values_supported",
    "backchannel_user_code_parameter_supported",
    "client_registration_types_supported",
    "federation_registration_endpoint",
    "request_authentication_methods_supported",
    "request_authentication_signing_alg_values_supported",
    "protected_resources",
    "client_id_metadata_document_supported",
];

/// By hand rather than derived: a derived `flatten` would buffer every value and lose the
/// positions [`Located`] reads from serde-saphyr, so each value is read in place instead.
impl<'de> Deserialize<'de> for ServerMetadata {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::{Error, MapAccess, Visitor};

        struct Fields;

        impl<'de> Visitor<'de> for Fields {
            type Value = ServerMetadata;

            fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
                formatter.write_str("authorization server metadata (RFC 8414)")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ServerMetadata, A::Error> {
                let (mut issuer, mut authorization_endpoint, mut token_endpoint) = (None, None, None);
                let (mut revocation_endpoint, mut registration_endpoint, mut userinfo_endpoint) = (None, None, None);
                let mut device_authorization_endpoint = None;
                let (mut scopes, mut response_types, mut grant_types, mut challenge_methods, mut auth_methods) =
                    (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
                let (mut iss_parameter, mut other) = (None, BTreeMap::new());
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "issuer" => issuer = Some(map.next_value()?),
                        "authorization_endpoint" => authorization_endpoint = Some(map.next_value()?),
                        "token_endpoint" => token_endpoint = Some(map.next_value()?),
                        "revocation_endpoint" => revocation_endpoint = map.next_value()?,
                        "registration_endpoint" => registration_endpoint = map.next_value()?,
                        "userinfo_endpoint" => userinfo_endpoint = map.next_value()?,
                        "device_authorization_endpoint" => device_authorization_endpoint = map.next_value()?,
                        "scopes_supported" => scopes = map.next_value()?,
                        "response_types_supported" => response_types = map.next_value()?,
                        "grant_types_supported" => grant_types = map.next_value()?,
                        "code_challenge_methods_supported" => challenge_methods = map.next_value()?,
                        "token_endpoint_auth_methods_supported" => auth_methods = map.next_value()?,
                        "authorization_response_iss_parameter_supported" => iss_parameter = map.next_value()?,
                        _ => {
                            other.insert(key, map.next_value()?);
                        }
                    }
                }
                Ok(ServerMetadata {
                    issuer: issuer.ok_or_else(|| A::Error::missing_field("issuer"))?,
                    authorization_endpoint: authorization_endpoint.ok_or_else(|| A::Error::missing_field("authorization_endpoint"))?,
                    token_endpoint: token_endpoint.ok_or_else(|| A::Error::missing_field("token_endpoint"))?,
                    revocation_endpoint,
                    registration_endpoint,
                    userinfo_endpoint,
                    device_authorization_endpoint,
                    scopes_supported: scopes,
                    response_types_supported: response_types,
                    grant_types_supported: grant_types,
                    code_challenge_methods_supported: challenge_methods,
                    token_endpoint_auth_methods_supported: auth_methods,
                    authorization_response_iss_parameter_supported: iss_parameter,
                    other,
                })
            }
        }

        deserializer.deserialize_struct("ServerMetadata", USED_METADATA, Fields)
    }
}

impl ServerMetadata {
    /// Every endpoint URL, with its field name (the issuer is not an endpoint).
    pub(crate) fn endpoints(&self) -> impl Iterator<Item = (&'static str, &Located<String>)> {
        [
            ("authorization_endpoint", Some(&self.authorization_endpoint)),
            ("token_endpoint", Some(&self.token_endpoint)),
            ("revocation_endpoint", self.revocation_endpoint.as_ref()),
            ("registration_endpoint", self.registration_endpoint.as_ref()),
            ("userinfo_endpoint", self.userinfo_endpoint.as_ref()),
            ("device_authorization_endpoint", self.device_authorization_endpoint.as_ref()),
        ]
        .into_iter()
        .filter_map(|(field, url)| url.map(|url| (field, url)))
    }
}

/// A pre-registered OAuth client. Only the id: a client secret never goes in a catalog.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    pub client_id: Located<String>,
}
