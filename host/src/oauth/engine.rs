//! The OAuth engine: the catalog, the provider plugins, the secret store and the manual
//! registrations put together into [`Target`]s — everything needed to authorize, refresh or revoke
//! one server's credential.
//!
//! How a catalog server becomes a target:
//! - provider: `oauth register --provider`, else the entry's `provider`, else the plugin that
//!   declares the issuer, else `standard`;
//! - endpoints: the plugin's defaults (for its configuration, e.g. the Microsoft tenant),
//!   overridden by the catalog's `server_metadata`, overridden by `oauth register`; a remote server
//!   with none of these is discovered (RFC 9728 → RFC 8414 → OpenID Connect);
//! - client: `oauth register`, else the catalog's `registration.client_id`, else (remote servers)
//!   a Client ID Metadata Document or dynamic registration; the secret is the stored secret
//!   `<server>.client_secret`;
//! - client authentication: the registration's, else the provider's, unless the server's metadata
//!   lists methods that exclude it;
//! - `resource` (RFC 8707): the remote server's URL; local servers call provider APIs, not an MCP
//!   server, so they get none.

use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::authorize::{self, ClientSource, Exchanged, Mode, Pending};
use super::discovery::{self, AuthServerMetadata, Challenge, Discovered};
use super::exchange::{self, TokenEndpoint};
use super::http::{self, Client};
use super::manual::Registrations;
use super::registration::{self, ClientRegistration, RegistrationSource};
use crate::catalog::{Catalog, Kind, OAuthProvider, Server};
use crate::paths::Paths;
use crate::plugins::{self, ClientAuth, Flow, LiveRegistry, Provider};
use crate::store::{Credential, CredentialId, Status, Store};

/// Loaded configuration and state, shared by every OAuth command and the gateway.
pub struct Engine {
    pub paths: Paths,
    pub catalog: Catalog,
    /// The providers: reloaded while a long-running process watches the drop-in folder
    /// ([`LiveRegistry::watch`]), so each use takes the current registry.
    pub registry: Arc<LiveRegistry>,
    pub store: Arc<Store>,
    pub http: Client,
    pub registrations: Registrations,
}

/// One credential's flow: who to ask, as which client, for what.
#[derive(Clone)]
pub struct Target {
    pub id: CredentialId,
    pub endpoint: TokenEndpoint,
    pub scopes: Vec<String>,
    pub resource: Option<String>,
    /// The issuer to expect in `iss` (RFC 9207), when known.
    pub expected_iss: Option<String>,
    pub iss_required: bool,
    /// The client is not settled yet: it will be registered dynamically.
    pub dynamic: Option<(String, AuthServerMetadata)>,
}

impl Target {
    /// After an authorization: the client it used (a dynamically registered one included), so
    /// that refreshes go out as that client and find the stored credential.
    pub fn settle(&mut self, client: &ClientRegistration) {
        if self.dynamic.take().is_some() {
            self.id.client_id = client.client_id.clone();
            self.endpoint.client = client.clone();
        }
    }
}

/// Options that the command line can add to a target.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub client_id: Option<String>,
    pub client_secret: Option<SecretString>,
    pub scopes: Option<Vec<String>>,
    /// A Client ID Metadata Document URL to use as the client id where the server supports it.
    pub client_metadata_url: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error(
        "server `{server}` needs a client secret ({method}), and none is stored; store it with \
         `latchkey secret set {server}.client_secret` (the value is read from stdin)"
    )]
    MissingSecret { server: String, method: &'static str },
    #[error(
        "server `{server}` has no OAuth client id; register your app's id with \
         `latchkey oauth register {server} --client-id <id>`{}",
        if *.remote { "" } else { " (the provider offers no dynamic registration)" }
    )]
    NoClientId { server: String, remote: bool },
    #[error(
        "server `{server}` has no {what}: add `server_metadata` to its catalog entry, or run \
         `latchkey oauth register {server} --authorization-endpoint <url> --token-endpoint <url> --client-id <id>`"
    )]
    NoEndpoints { server: String, what: &'static str },
    #[error("server `{server}` has no oauth section in its catalog entry, so there is nothing to authorize")]
    NotOAuth { server: String },
    #[error("server `{server}` has no oauth provider `{provider}`; it has {known}")]
    NoSuchProvider { server: String, provider: String, known: String },
}

impl Engine {
    /// Load the catalog, the provider plugins, the store and the manual registrations.
    pub fn open(paths: Paths) -> anyhow::Result<Engine> {
        let catalog = Catalog::load(&paths)?;
        let (runtime, registry) = plugins::load(&paths)?;
        let store = Arc::new(Store::open(&paths)?);
        let registrations = Registrations::load(&paths)?;
        let registry = Arc::new(LiveRegistry::new(runtime, registry, paths.providers_dir()));
        Ok(Engine { paths, catalog, registry, store, http: Client::new(), registrations })
    }

    /// Store notices (the file-store fallback) and plugin problems worth a warning.
    pub fn notices(&self) -> Vec<String> {
        let mut notices: Vec<String> = self.store.notice().map(str::to_string).into_iter().collect();
        notices.extend(self.catalog.notices().iter().cloned());
        let registry = self.registry.current();
        notices.extend(registry.notices().iter().cloned());
        notices.extend(registry.failures().iter().map(|failure| format!("provider not loaded: {failure}")));
        notices
    }

    /// The target for a catalog server's credential.
    pub async fn target(&self, server_name: &str, provider_id: Option<&str>, overrides: &Overrides) -> anyhow::Result<Target> {
        let server = self.catalog.server(server_name)?;
        let manual = self.registrations.get(server_name).cloned();
        let entry = oauth_entry(server, provider_id)?;
        let remote = remote_url(server);
        if entry.is_none() && remote.is_none() {
            return Err(TargetError::NotOAuth { server: server_name.to_string() }.into());
        }

        let metadata = entry.and_then(|entry| entry.server_metadata.as_ref());
        let declared_issuer = manual.as_ref().and_then(|m| m.issuer.clone()).or_else(|| metadata.map(|m| m.issuer.to_string()));
        let provider = self.pick_provider(
            manual.as_ref().and_then(|m| m.provider.as_deref()).or(entry.and_then(|e| e.provider.as_deref().map(String::as_str))),
            declared_issuer.as_deref(),
        )?;
        let catalog_config: Vec<(String, String)> =
            entry.map(|entry| entry.config.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default();
        let config = provider.resolve_config(&catalog_config)?;
        let mut flow = configure(&provider, &config).await?;

        // Endpoints: plugin defaults < catalog metadata < `oauth register`.
        let mut as_metadata = AuthServerMetadata::default();
        if let Some(metadata) = metadata {
            flow.endpoints.authorization = metadata.authorization_endpoint.to_string();
            flow.endpoints.token = metadata.token_endpoint.to_string();
            flow.endpoints.issuer = Some(metadata.issuer.to_string());
            if let Some(revocation) = &metadata.revocation_endpoint {
                // Unless the provider says otherwise, the client authenticates there as it does at
                // the token endpoint (settled when revoking: `TokenEndpoint::revoke`).
                let auth = flow.endpoints.revocation.as_ref().map_or(flow.client_auth, |r| r.client_auth);
                flow.endpoints.revocation = Some(plugins::RevocationEndpoint { url: revocation.to_string(), client_auth: auth });
            }
            as_metadata.token_endpoint_auth_methods_supported = metadata.token_endpoint_auth_methods_supported.clone();
            as_metadata.authorization_response_iss_parameter_supported =
                metadata.authorization_response_iss_parameter_supported.unwrap_or(false);
        }
        if let Some(manual) = &manual {
            if let Some(url) = &manual.authorization_endpoint {
                flow.endpoints.authorization = url.clone();
            }
            if let Some(url) = &manual.token_endpoint {
                flow.endpoints.token = url.clone();
            }
            if let Some(issuer) = &manual.issuer {
                flow.endpoints.issuer = Some(issuer.clone());
            }
        }

        let mut discovered: Option<Discovered> = None;
        if flow.endpoints.authorization.is_empty() || flow.endpoints.token.is_empty() {
            let Some(url) = &remote else {
                let what = if flow.endpoints.authorization.is_empty() { "authorization endpoint" } else { "token endpoint" };
                return Err(TargetError::NoEndpoints { server: server_name.to_string(), what }.into());
            };
            let found = self.discover(url).await?;
            apply_discovered(&mut flow, &found.metadata);
            as_metadata = found.metadata.clone();
            discovered = Some(found);
        }

        let scopes = overrides
            .scopes
            .clone()
            .or_else(|| manual.as_ref().and_then(|m| m.scopes.clone()))
            .or_else(|| server.oauth.as_ref().map(|oauth| oauth.scopes.iter().map(|s| s.to_string()).collect()))
            .filter(|scopes: &Vec<String>| !scopes.is_empty())
            .or_else(|| discovered.as_ref().map(|d| d.scopes.clone()))
            .unwrap_or_default();
        let resource = discovered.as_ref().map(|d| d.resource.clone()).or_else(|| remote.as_ref().map(discovery::canonical_resource));
        let client_id = overrides
            .client_id
            .clone()
            .map(|id| (id, RegistrationSource::CommandLine))
            .or_else(|| manual.as_ref().map(|m| (m.client_id.clone(), RegistrationSource::Manual)))
            .or_else(|| entry.and_then(|e| e.registration.as_ref()).map(|r| (r.client_id.to_string(), RegistrationSource::Catalog)));

        let (client, dynamic) = match client_id {
            Some((client_id, source)) => {
                let secret = match &overrides.client_secret {
                    Some(secret) => Some(secret.clone()),
                    None => self.secret(&format!("{server_name}.client_secret")).await?,
                };
                // A hand registration may settle the method (a public client has no secret).
                let auth_method = match source {
                    RegistrationSource::Manual => {
                        manual.as_ref().and_then(|m| m.token_endpoint_auth_method.as_deref()).and_then(registration::parse_auth_method)
                    }
                    _ => None,
                };
                (ClientRegistration { client_id, client_secret: secret, auth_method, source }, None)
            }
            None => match (&remote, self.unregistered_client(server_name, &as_metadata, overrides).await?) {
                (_, Some(ready)) => (ready, None),
                (Some(_), None) if as_metadata.registration_endpoint.is_some() => {
                    let placeholder = ClientRegistration {
                        client_id: String::new(),
                        client_secret: None,
                        auth_method: None,
                        source: RegistrationSource::Dynamic,
                    };
                    (placeholder, as_metadata.registration_endpoint.clone().map(|url| (url, as_metadata.clone())))
                }
                (remote, None) => {
                    return Err(TargetError::NoClientId { server: server_name.to_string(), remote: remote.is_some() }.into());
                }
            },
        };

        let issuer = flow.endpoints.issuer.clone().unwrap_or_else(|| origin_of(&flow.endpoints.authorization));
        let iss_required = as_metadata.authorization_response_iss_parameter_supported;
        let mut endpoint = TokenEndpoint { provider: provider.clone(), flow, client, config, http: self.http.clone() };
        settle_client_auth(&mut endpoint, &as_metadata);
        if dynamic.is_none() {
            check_secret(server_name, &endpoint)?;
        }
        Ok(Target {
            id: CredentialId::new(server_name, issuer.clone(), endpoint.client.client_id.clone()),
            endpoint,
            scopes,
            resource,
            expected_iss: Some(issuer),
            iss_required,
            dynamic,
        })
    }

    /// The target for an MCP server known only by its URL (`tools ls --url`): discovery, then the
    /// client from `overrides`, a metadata document, or dynamic registration.
    pub async fn target_for_url(&self, url: &Url, challenge: Option<&Challenge>, overrides: &Overrides) -> anyhow::Result<Target> {
        let found = discovery::discover(&self.http, url, challenge).await?;
        let server = discovery::canonical_resource(url);
        let issuer = found.metadata.issuer.clone().unwrap_or_else(|| origin_of(&found.metadata.authorization_endpoint));
        let provider = self.pick_provider(None, Some(&issuer))?;
        let config = provider.resolve_config(&[])?;
        let mut flow = configure(&provider, &config).await?;
        apply_discovered(&mut flow, &found.metadata);
        let scopes = overrides.scopes.clone().unwrap_or_else(|| with_offline_access(found.scopes.clone(), &found.metadata));
        let (client, dynamic) = match &overrides.client_id {
            Some(client_id) => (
                ClientRegistration {
                    client_id: client_id.clone(),
                    client_secret: overrides.client_secret.clone(),
                    auth_method: None,
                    source: RegistrationSource::CommandLine,
                },
                None,
            ),
            None => match self.unregistered_client(&server, &found.metadata, overrides).await? {
                Some(ready) => (ready, None),
                None => match &found.metadata.registration_endpoint {
                    Some(endpoint) => (
                        ClientRegistration {
                            client_id: String::new(),
                            client_secret: None,
                            auth_method: None,
                            source: RegistrationSource::Dynamic,
                        },
                        Some((endpoint.clone(), found.metadata.clone())),
                    ),
                    None => return Err(registration::RegistrationError::NoClient { server, issuer }.into()),
                },
            },
        };
        let iss_required = found.metadata.authorization_response_iss_parameter_supported;
        let mut endpoint = TokenEndpoint { provider, flow, client, config, http: self.http.clone() };
        settle_client_auth(&mut endpoint, &found.metadata);
        Ok(Target {
            id: CredentialId::new(server, issuer.clone(), endpoint.client.client_id.clone()),
            endpoint,
            scopes,
            resource: Some(found.resource),
            expected_iss: found.metadata.issuer.clone(),
            iss_required,
            dynamic,
        })
    }

    async fn discover(&self, url: &Url) -> anyhow::Result<Discovered> {
        let challenge = probe(&self.http, url).await;
        Ok(discovery::discover(&self.http, url, challenge.as_ref()).await?)
    }

    /// A client that needs no interaction to settle: one registered dynamically before, or the
    /// metadata-document client id when the server accepts those.
    async fn unregistered_client(
        &self,
        server: &str,
        metadata: &AuthServerMetadata,
        overrides: &Overrides,
    ) -> anyhow::Result<Option<ClientRegistration>> {
        if let (true, Some(url)) = (metadata.client_id_metadata_document_supported, &overrides.client_metadata_url) {
            return Ok(Some(registration::metadata_document_client(url)));
        }
        let name = dynamic_client_secret_name(server, metadata);
        Ok(match self.secret(&name).await? {
            Some(stored) => serde_json::from_str(stored.expose_secret()).ok(),
            None => None,
        })
    }

    fn pick_provider(&self, id: Option<&str>, issuer: Option<&str>) -> anyhow::Result<Provider> {
        let registry = self.registry.current();
        if let Some(id) = id {
            return Ok(registry.get(id)?.clone());
        }
        if let Some(provider) = issuer.and_then(|issuer| registry.match_issuer(issuer)) {
            return Ok(provider.clone());
        }
        Ok(registry.get("standard")?.clone())
    }

    async fn secret(&self, name: &str) -> anyhow::Result<Option<SecretString>> {
        let store = self.store.clone();
        let name = name.to_string();
        tokio::task::spawn_blocking(move || store.get_secret(&name)).await?
    }

    /// Start the browser flow for `target`.
    pub async fn start(&self, target: Target, mode: Mode) -> anyhow::Result<(Pending, Target)> {
        let client = match &target.dynamic {
            Some((endpoint, metadata)) => ClientSource::Dynamic { registration_endpoint: endpoint.clone(), metadata: metadata.clone() },
            None => ClientSource::Ready(target.endpoint.client.clone()),
        };
        let request = authorize::Request {
            endpoint: target.endpoint.clone(),
            scopes: target.scopes.clone(),
            resource: target.resource.clone(),
            issuer: target.expected_iss.clone(),
            iss_required: target.iss_required,
        };
        let pending = authorize::start(request, client, mode).await?;
        Ok((pending, target))
    }

    /// Store what an authorization produced (and a dynamically registered client), returning the
    /// stored credential.
    pub async fn save(&self, mut target: Target, exchanged: &Exchanged) -> anyhow::Result<Credential> {
        if target.dynamic.is_some() {
            target.id.client_id = exchanged.client.client_id.clone();
            let metadata = &target.dynamic.as_ref().expect("checked").1;
            let name = dynamic_client_secret_name(&target.id.server, metadata);
            let json = serde_json::to_string(&exchanged.client).expect("a client registration serializes");
            self.blocking_store(move |store| store.set_secret(&name, &SecretString::from(json))).await?;
        }
        let credential = Credential {
            id: target.id.clone(),
            provider: target.endpoint.provider.id().to_string(),
            tokens: super::tokens::to_stored(&exchanged.tokens, std::time::SystemTime::now()),
            status: Status::Authorized,
            last_refresh_error: None,
        };
        let saved = credential.clone();
        self.blocking_store(move |store| store.save_credential(&saved)).await?;
        Ok(credential)
    }

    pub(crate) async fn blocking_store<R: Send + 'static>(
        &self,
        job: impl FnOnce(&Store) -> anyhow::Result<R> + Send + 'static,
    ) -> anyhow::Result<R> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || job(&store)).await?
    }
}

/// The entry's OAuth provider: the one with `provider_id`, else the first.
fn oauth_entry<'a>(server: &'a Server, provider_id: Option<&str>) -> anyhow::Result<Option<&'a OAuthProvider>> {
    let providers: Vec<&OAuthProvider> = server.oauth.iter().flat_map(|oauth| oauth.providers.iter().map(|p| &**p)).collect();
    match provider_id {
        None => Ok(providers.first().copied()),
        Some(id) => providers.iter().copied().find(|p| p.provider.as_deref().map(String::as_str) == Some(id)).map(Some).ok_or_else(|| {
            TargetError::NoSuchProvider {
                server: server.name.clone(),
                provider: id.to_string(),
                known: providers.iter().filter_map(|p| p.provider.as_deref().cloned()).collect::<Vec<_>>().join(", "),
            }
            .into()
        }),
    }
}

fn remote_url(server: &Server) -> Option<Url> {
    match &server.kind {
        Kind::Remote { remote } => Url::parse(&remote.url).ok(),
        _ => None,
    }
}

/// Ask the MCP server, without a token, for its `WWW-Authenticate` challenge.
pub async fn probe(http: &Client, url: &Url) -> Option<Challenge> {
    let initialize = serde_json::json!({
        "jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "latchkey", "version": env!("CARGO_PKG_VERSION")}}
    });
    let response =
        http.inner().post(url.clone()).header("accept", "application/json, text/event-stream").json(&initialize).send().await.ok()?;
    let header = response.headers().get("www-authenticate")?.to_str().ok()?;
    Challenge::parse(header)
}

/// The provider's flow for `config`, computed off the async runtime like every hook call: WASI's
/// synchronous output streams (a guest's panic message) block on the runtime, which must not be
/// the thread that drives it.
async fn configure(provider: &Provider, config: &plugins::Params) -> anyhow::Result<Flow> {
    let (provider, config) = (provider.clone(), config.clone());
    Ok(exchange::blocking(move || provider.configure(&config)).await?)
}

fn apply_discovered(flow: &mut Flow, metadata: &AuthServerMetadata) {
    flow.endpoints.authorization = metadata.authorization_endpoint.clone();
    flow.endpoints.token = metadata.token_endpoint.clone();
    flow.endpoints.issuer = metadata.issuer.clone();
    if let Some(url) = &metadata.revocation_endpoint {
        flow.endpoints.revocation = Some(plugins::RevocationEndpoint { url: url.clone(), client_auth: flow.client_auth });
    }
}

/// MCP 2026-07-28 (SEP-2207): ask for `offline_access` when the server lists it, so a refresh
/// token comes back.
fn with_offline_access(mut scopes: Vec<String>, metadata: &AuthServerMetadata) -> Vec<String> {
    if metadata.scopes_supported.iter().any(|s| s == "offline_access") && !scopes.iter().any(|s| s == "offline_access") {
        scopes.push("offline_access".into());
    }
    scopes
}

/// The registration's method wins; else the provider's, unless the server lists methods that
/// exclude it (then its first one that latchkey supports). A public client never sends a secret.
fn settle_client_auth(endpoint: &mut TokenEndpoint, metadata: &AuthServerMetadata) {
    if endpoint.client.auth_method.is_some() {
        return;
    }
    let listed: Vec<ClientAuth> =
        metadata.token_endpoint_auth_methods_supported.iter().filter_map(|name| registration::parse_auth_method(name)).collect();
    let mut method = endpoint.flow.client_auth;
    if !listed.is_empty() && !listed.contains(&method) {
        method = listed[0];
    }
    if endpoint.client.client_secret.is_none()
        && method != ClientAuth::None
        && endpoint.client.source == RegistrationSource::MetadataDocument
    {
        method = ClientAuth::None;
    }
    endpoint.client.auth_method = Some(method);
}

fn check_secret(server: &str, endpoint: &TokenEndpoint) -> Result<(), TargetError> {
    let method = endpoint.client_auth();
    if method != ClientAuth::None && endpoint.client.client_secret.is_none() {
        return Err(TargetError::MissingSecret { server: server.to_string(), method: registration::auth_method_name(method) });
    }
    Ok(())
}

/// Where a dynamically registered client is kept: per server and issuer (MCP 2026-07-28: a client
/// registered with one authorization server is never used with another).
fn dynamic_client_secret_name(server: &str, metadata: &AuthServerMetadata) -> String {
    use sha2::Digest;
    let issuer = metadata.issuer.clone().unwrap_or_else(|| origin_of(&metadata.authorization_endpoint));
    let digest = sha2::Sha256::digest(format!("{server}\n{issuer}"));
    format!("oauth-client.{}", hex::encode(&digest[..12]))
}

/// `scheme://host[:port]` of a URL, as an issuer stand-in for servers that publish none.
fn origin_of(url: &str) -> String {
    Url::parse(url).map(|url| url.origin().ascii_serialization()).unwrap_or_else(|_| url.to_string())
}

/// Whether `url` may be used as an endpoint (for `oauth register`).
pub fn check_endpoint(url: &str) -> anyhow::Result<()> {
    http::endpoint_url(url)?;
    Ok(())
}
