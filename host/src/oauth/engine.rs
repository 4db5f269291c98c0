//! The OAuth engine: the catalog, the provider plugins, the secret store and the manual
//! registrations put together into [`Target`]s — everything needed to authorize, refresh or revoke
//! one credential.
//!
//! A credential is named by a [`Binding`] (a server's `oauth.providers` entry, or the discovered
//! authorization server of a remote server without one); the engine resolves a binding to its
//! target once per process and keeps it ([`Engine::resolve`]), so handing out a token costs a store
//! read, not a plugin call and a discovery.
//!
//! How a binding becomes a target:
//! - provider: `oauth register --provider`, else the entry's `provider`, else the plugin that
//!   declares the issuer, else `standard`;
//! - endpoints: the plugin's defaults (for its configuration, e.g. the Microsoft tenant),
//!   overridden by the catalog's `server_metadata`, overridden by `oauth register`; a remote server
//!   with none of these is discovered (RFC 9728 → RFC 8414 → OpenID Connect);
//! - client: `oauth register`, else the catalog's `registration.client_id`, else (remote servers)
//!   a Client ID Metadata Document or dynamic registration; the secret is the stored secret
//!   `<server>.client_secret` (one per provider for a server with several:
//!   [`Binding::client_secret_name`]);
//! - client authentication: the registration's, else the provider's, unless the server's metadata
//!   lists methods that exclude it;
//! - `resource` (RFC 8707): the remote server's URL; local servers call provider APIs, not an MCP
//!   server, so they get none.
//!
//! Issuer binding (the MCP specification's; RFC 9207's mix-up defence): a pre-registered client
//! with a secret is bound to one authorization server — `oauth register --issuer` (or
//! `tools --url … --issuer` for a client given on the command line), the catalog's
//! `server_metadata.issuer`, the provider's own issuer, or, for a credential stored before latchkey
//! bound issuers, the issuer that credential came from ([`Pin`]). When the server's metadata names
//! another one, resolution fails before anything that carries the secret, a code or a token is
//! sent; discovered metadata never replaces a bound issuer. A confidential client bound to nothing
//! is refused, naming the issuer discovery found and the command that binds it.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::authorize::{self, ClientSource, Exchanged, Mode, Pending};
use super::clock::ClockFile;
use super::device;
use super::discovery::{self, AuthServerMetadata, Challenge, Discovered};
use super::exchange::{self, TokenEndpoint};
use super::http::{self, Client};
use super::identity;
use super::manual::{ManualRegistration, Registrations};
use super::post_token::{self, SiteChoice};
use super::registration::{self, ClientRegistration, RegistrationSource};
use crate::catalog::{Binding, Catalog, Kind, OAuthProvider, Server};
use crate::paths::Paths;
use crate::plugins::{self, ClientAuth, Flow, LiveRegistry, Provider};
use crate::store::{Credential, CredentialId, Grant, Identity, Status, Store};

/// Loaded configuration and state, shared by every OAuth command and the gateway. The gateway
/// reaches it through narrow handles ([`super::access`]).
pub struct Engine {
    paths: Paths,
    catalog: Catalog,
    /// The providers: reloaded while a long-running process watches the drop-in folder
    /// ([`LiveRegistry::watch`]), so each use takes the current registry.
    registry: Arc<LiveRegistry>,
    store: Arc<Store>,
    http: Client,
    registrations: Registrations,
    /// Targets resolved without overrides, by binding (settled clients only).
    targets: tokio::sync::Mutex<Targets>,
}

/// The targets [`Engine::resolve`] keeps, and the provider registry they were made with: a reload
/// of the drop-in providers (a long-running gateway) starts afresh. One per binding of the default
/// account: a binding's accounts differ only in whose tokens they are, so a server served for a
/// hundred accounts keeps one target, not a hundred (~2 KB each).
#[derive(Default)]
struct Targets {
    registry: Option<Arc<plugins::Registry>>,
    by_binding: HashMap<Binding, Arc<Target>>,
}

/// One credential's flow: who to ask, as which client, for what.
#[derive(Clone)]
pub struct Target {
    pub binding: Binding,
    pub id: CredentialId,
    pub endpoint: TokenEndpoint,
    pub scopes: Vec<String>,
    pub resource: Option<String>,
    /// The issuer to expect in `iss` (RFC 9207), when known.
    pub expected_iss: Option<String>,
    pub iss_required: bool,
    /// The client is not settled yet: it will be registered dynamically.
    pub dynamic: Option<(String, AuthServerMetadata)>,
    /// The grant the catalog names for this binding (`client_credentials`: no person signs in).
    pub grant: Grant,
    /// Which site to use when the token reaches several (contract 0.3's `post-token`).
    pub site: SiteChoice,
}

impl Target {
    /// This target, for `account`'s tokens (the target of a binding is the same for every account
    /// but in whose credential it names).
    fn for_account(&self, account: Option<String>) -> Target {
        let mut target = self.clone();
        target.binding.account.clone_from(&account);
        target.id.account = account;
        target
    }

    /// Who `tokens` belong to, when they carry an ID token from this target's issuer for its
    /// client.
    pub fn identity_in(&self, tokens: &plugins::TokenSet) -> Option<Identity> {
        identity::from_id_token(tokens.id_token.as_deref()?, &self.id.issuer, &self.endpoint.client.client_id)
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
    /// The issuer `client_id` belongs to (`--issuer`); a client with a secret needs one.
    pub issuer: Option<String>,
    /// `--site`, and who to ask on a terminal.
    pub site: SiteChoice,
}

/// The issuer a client is bound to, and who said so.
#[derive(Clone, Debug)]
pub struct Pin {
    pub issuer: String,
    pub source: PinSource,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PinSource {
    /// `latchkey oauth register --issuer`.
    Registered,
    /// The catalog's `server_metadata.issuer`.
    Catalog,
    /// The provider plugin's own issuer.
    Provider,
    /// The issuer of the credential stored for this client before latchkey bound issuers.
    Stored,
    /// `--issuer` next to `--client-id` on the command line (`latchkey tools --url`).
    CommandLine,
}

impl fmt::Display for PinSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PinSource::Registered => "by `latchkey oauth register --issuer`",
            PinSource::Catalog => "by the catalog's `server_metadata.issuer`",
            PinSource::Provider => "by its provider plugin",
            PinSource::Stored => "by the credential stored for it",
            PinSource::CommandLine => "by `--issuer`",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error(
        "server `{server}` needs a client secret ({method}), and none is stored; store it with \
         `latchkey secret set {name}` (the value is read from stdin)"
    )]
    MissingSecret { server: String, name: String, method: &'static str },
    #[error(
        "server `{server}`'s client authenticates with private_key_jwt and needs its private key, which is not stored; store \
         it with `latchkey secret set {name} < key.pem` (an RSA or P-256 PEM, read from stdin; latchkey signs with it and never \
         sends it)"
    )]
    MissingKey { server: String, name: String },
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
    #[error(
        "refusing to use client `{client_id}` of server `{server}` with the authorization server `{offered}`: the client is \
         bound to `{expected}` ({pinned_by}), and the server's metadata names `{offered}` instead (a server may name any \
         authorization server, and the client secret, codes and tokens go only to the one the client belongs to); \
         nothing was sent to `{offered}`. {fix}"
    )]
    IssuerMismatch { server: String, client_id: String, expected: String, offered: String, pinned_by: PinSource, fix: String },
    #[error(
        "refusing to send the client secret of server `{server}`'s client `{client_id}` to `{offered}`, the authorization \
         server that `{server}`'s metadata names: the client is bound to no issuer, and a server may name any; nothing was \
         sent to it. If `{offered}` is the authorization server that registered client `{client_id}`, bind the client to it: \
         {bind}"
    )]
    Unpinned { server: String, client_id: String, offered: String, bind: String },
    #[error(
        "server `{server}` has several OAuth providers, and a client registered with `latchkey oauth register` would not say \
         whose it is; give each provider its client id in a catalog file instead: \
         `registrations: {{{server}: {{provider: <id>, client_id: <client id>}}}}`"
    )]
    RegisterWhich { server: String },
    #[error(
        "server `{server}`'s authorization server has no device authorization endpoint (RFC 8628) that latchkey knows of: add \
         `device_authorization_endpoint` to the `server_metadata` of its catalog entry, or give it with `latchkey oauth register \
         {server} --device-authorization-endpoint <url> …`; without one, sign in with a browser on another machine: \
         `latchkey oauth authorize {server} --paste`"
    )]
    NoDeviceEndpoint { server: String },
    #[error(
        "server `{server}` has no OAuth client yet, and latchkey registers one dynamically only for a browser sign-in, so \
         {grant} cannot be used: sign in once with `latchkey oauth authorize {server}`, or register a client with \
         `latchkey oauth register {server} --client-id <id>`"
    )]
    UnsettledClient { server: String, grant: &'static str },
    #[error(
        "the client credentials grant needs a client that authenticates (RFC 6749 §4.4), and server `{server}`'s client is \
         public (`none`): store its secret with `latchkey secret set {name}`, or register the client again with \
         `--client-secret-stdin`"
    )]
    PublicClientCredentials { server: String, name: String },
}

impl TargetError {
    /// A catalog server's confidential client bound to no issuer: `oauth register --issuer` or
    /// the catalog's `server_metadata` binds it.
    fn unpinned_catalog_client(server: &str, client_id: &str, offered: &str) -> TargetError {
        let bind = format!(
            "`latchkey oauth register {server} --client-id {client_id} --issuer {offered}` (add --client-secret-stdin to store \
             the secret again), or add `server_metadata` with `issuer: {offered}` and its endpoints to the server's catalog entry"
        );
        TargetError::Unpinned { server: server.to_string(), client_id: client_id.to_string(), offered: offered.to_string(), bind }
    }

    /// A confidential client given with `tools --url` without `--issuer`: the same command with it.
    fn unpinned_command_line_client(url: &Url, client_id: &str, offered: &str) -> TargetError {
        let bind = format!(
            "run the command again with `--issuer {offered}`, e.g. `latchkey tools ls --url {url} --client-id {client_id} \
             --client-secret-stdin --issuer {offered}` (`tools call` takes the same options)"
        );
        TargetError::Unpinned { server: url.to_string(), client_id: client_id.to_string(), offered: offered.to_string(), bind }
    }
}

impl Engine {
    /// Load the catalog, the provider plugins, the store and the manual registrations.
    pub fn open(paths: Paths) -> anyhow::Result<Engine> {
        let catalog = Catalog::load(&paths)?;
        let (runtime, registry) = plugins::load(&paths)?;
        let store = Store::open(&paths)?;
        Engine::assemble(paths, catalog, (runtime, registry), store)
    }

    /// An engine of parts loaded already: `latchkey doctor` keeps going with the servers of a
    /// catalog that has problems, and reports on the store and providers it opened itself.
    pub fn assemble(
        paths: Paths,
        catalog: Catalog,
        plugins: (Arc<plugins::Runtime>, plugins::Registry),
        store: Store,
    ) -> anyhow::Result<Engine> {
        let registrations = Registrations::load(&paths)?;
        let registry = Arc::new(LiveRegistry::new(plugins.0, plugins.1, paths.providers_dir()));
        let store = Arc::new(store);
        let http = Client::new().recording_clock(ClockFile::new(paths.clock_file()));
        Ok(Engine { paths, catalog, registry, store, http, registrations, targets: Default::default() })
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    pub fn registry(&self) -> &Arc<LiveRegistry> {
        &self.registry
    }

    pub fn paths(&self) -> &Paths {
        &self.paths
    }

    pub(crate) fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Where the store keeps entries, for people (`the OS keyring (Secret Service)`).
    pub fn store_description(&self) -> String {
        self.store.describe()
    }

    /// Store `value` as the secret `name`.
    pub async fn set_secret(&self, name: &str, value: SecretString) -> anyhow::Result<()> {
        let name = name.to_string();
        self.blocking_store(move |store| store.set_secret(&name, &value)).await
    }

    /// Store notices (the file-store fallback) and plugin problems worth a warning.
    pub fn notices(&self) -> Vec<String> {
        let mut notices: Vec<String> = self.store.notice_once().map(str::to_string).into_iter().collect();
        notices.extend(self.catalog.notices().iter().cloned());
        let registry = self.registry.current();
        notices.extend(registry.notices().iter().cloned());
        notices.extend(registry.failures().iter().map(|failure| format!("provider not loaded: {failure}")));
        notices
    }

    /// The binding of catalog server `server` that `provider` names (a provider id, or the secret
    /// that receives its token), or its only one; for `account`, else the account the catalog
    /// entry names (`oauth.account`), else the default one.
    pub fn binding(&self, server: &str, provider: Option<&str>, account: Option<&str>) -> anyhow::Result<Binding> {
        let binding = self.catalog.server(server)?.binding(provider)?;
        match account {
            Some(account) => {
                crate::store::validate_account_name(account)?;
                Ok(binding.for_account(Some(account.to_string())))
            }
            None => Ok(binding),
        }
    }

    /// `binding`'s target, resolved once per process (and binding, whichever account): later calls
    /// get the same one without a plugin call, a store read or a discovery. A target whose client
    /// is not settled yet (it will be registered dynamically) is not kept.
    pub async fn resolve(&self, binding: &Binding) -> anyhow::Result<Target> {
        let mut targets = self.targets.lock().await;
        let registry = self.registry.current();
        if !targets.registry.as_ref().is_some_and(|kept| Arc::ptr_eq(kept, &registry)) {
            *targets = Targets { registry: Some(registry), by_binding: HashMap::new() };
        }
        let shared = binding.clone().for_account(None);
        if let Some(target) = targets.by_binding.get(&shared) {
            return Ok(target.for_account(binding.account.clone()));
        }
        let target = self.target(&shared, &Overrides::default()).await?;
        let for_account = target.for_account(binding.account.clone());
        if target.dynamic.is_none() {
            targets.by_binding.insert(shared, Arc::new(target));
        }
        Ok(for_account)
    }

    /// The target for `binding`, resolved now (with `overrides` from the command line).
    pub async fn target(&self, binding: &Binding, overrides: &Overrides) -> anyhow::Result<Target> {
        let plan = self.plan(binding, None).await?;
        let Plan { server, entry, manual, provider, config, mut flow, pin, remote } = plan;
        let server_name = server.name.as_str();
        let metadata = entry.and_then(|entry| entry.server_metadata.as_ref());

        let mut as_metadata = AuthServerMetadata::default();
        if let Some(metadata) = metadata {
            as_metadata.token_endpoint_auth_methods_supported = metadata.token_endpoint_auth_methods_supported.clone();
            as_metadata.authorization_response_iss_parameter_supported =
                metadata.authorization_response_iss_parameter_supported.unwrap_or(false);
        }
        let mut discovered: Option<Discovered> = None;
        if needs_discovery(&flow) {
            let Some(url) = &remote else {
                let what = if flow.endpoints.authorization.is_empty() { "authorization endpoint" } else { "token endpoint" };
                return Err(TargetError::NoEndpoints { server: server_name.to_string(), what }.into());
            };
            let found = self.discover(url, pin.as_ref().map(|pin| pin.issuer.as_str())).await?;
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
                    None => self.client_secret(binding).await?,
                };
                // A hand registration may settle the method (a public client has no secret).
                let auth_method = match source {
                    RegistrationSource::Manual => {
                        manual.as_ref().and_then(|m| m.token_endpoint_auth_method.as_deref()).and_then(registration::parse_auth_method)
                    }
                    _ => None,
                };
                (ClientRegistration { client_id, client_secret: secret, auth_method, source, client_key: None }, None)
            }
            None => match (&remote, self.unregistered_client(server_name, &as_metadata, overrides).await?) {
                (_, Some(ready)) => (ready, None),
                (Some(_), None) if as_metadata.registration_endpoint.is_some() => {
                    let placeholder = ClientRegistration {
                        client_id: String::new(),
                        client_secret: None,
                        auth_method: None,
                        source: RegistrationSource::Dynamic,
                        client_key: None,
                    };
                    (placeholder, as_metadata.registration_endpoint.clone().map(|url| (url, as_metadata.clone())))
                }
                (remote, None) => {
                    return Err(TargetError::NoClientId { server: server_name.to_string(), remote: remote.is_some() }.into());
                }
            },
        };

        if let Some(found) = &discovered {
            let offered = discovered_issuer(&found.metadata);
            // A confidential pre-registered client needs an issuer before discovery may pick one;
            // a dynamically registered client is kept per issuer already.
            let pin = match pin {
                Some(pin) => Some(pin),
                None if is_confidential(&client) => Some(self.stored_pin(server_name, &client, &offered).await?),
                None => None,
            };
            if let Some(pin) = &pin {
                check_pin(server_name, &client.client_id, pin, &offered)?;
            }
            apply_discovered(&mut flow, &found.metadata);
        }

        let issuer = flow.endpoints.issuer.clone().unwrap_or_else(|| origin_of(&flow.endpoints.authorization));
        let iss_required = as_metadata.authorization_response_iss_parameter_supported;
        let mut endpoint = TokenEndpoint { provider: provider.clone(), flow, client, config, http: self.http.clone() };
        settle_client_auth(&mut endpoint, &as_metadata);
        self.add_client_key(binding, &mut endpoint).await?;
        if dynamic.is_none() {
            check_secret(binding, &endpoint)?;
        }
        Ok(Target {
            binding: binding.clone(),
            id: CredentialId::new(server_name, issuer.clone(), endpoint.client.client_id.clone()).with_account(binding.account.clone()),
            endpoint,
            scopes,
            resource,
            expected_iss: Some(issuer),
            iss_required,
            dynamic,
            grant: entry.and_then(|entry| entry.grant).map(Grant::from).unwrap_or_default(),
            site: overrides.site.clone(),
        })
    }

    /// Everything about `binding` that needs no network: its entry, registration, provider, the
    /// endpoints the plugin, the catalog and `oauth register` declare, and the issuer they bind
    /// the client to. `proposed` stands in for the server's manual registration.
    async fn plan<'a>(&'a self, binding: &Binding, proposed: Option<&ManualRegistration>) -> anyhow::Result<Plan<'a>> {
        let server = self.catalog.server(&binding.server)?;
        let several = server.bindings().len() > 1;
        let manual = match proposed {
            Some(proposed) => Some(proposed.clone()),
            // A manual registration says nothing about which provider it is for.
            None if several => None,
            None => self.registrations.get(&server.name).cloned(),
        };
        let entry = binding.provider_index().and_then(|index| server.oauth.as_ref().and_then(|oauth| oauth.providers.get(index)));
        let entry: Option<&OAuthProvider> = entry.map(|entry| &**entry);
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
        let mut pin = flow.endpoints.issuer.clone().map(|issuer| Pin { issuer, source: PinSource::Provider });

        // Endpoints: plugin defaults < catalog metadata < `oauth register`.
        if let Some(metadata) = metadata {
            flow.endpoints.authorization = metadata.authorization_endpoint.to_string();
            flow.endpoints.token = metadata.token_endpoint.to_string();
            flow.endpoints.issuer = Some(metadata.issuer.to_string());
            pin = Some(Pin { issuer: metadata.issuer.to_string(), source: PinSource::Catalog });
            // The provider's revocation, device and userinfo endpoints belong with the server the
            // catalog replaced: only the catalog's own are used. Unless the provider says
            // otherwise, the client authenticates at the revocation endpoint as it does at the
            // token endpoint (settled when revoking: `TokenEndpoint::revoke`).
            let auth = flow.endpoints.revocation.as_ref().map_or(flow.client_auth, |r| r.client_auth);
            flow.endpoints.revocation = metadata
                .revocation_endpoint
                .as_ref()
                .map(|revocation| plugins::RevocationEndpoint { url: revocation.to_string(), client_auth: auth });
            flow.endpoints.device_authorization = metadata.device_authorization_endpoint.as_ref().map(|url| url.to_string());
            flow.endpoints.userinfo = metadata.userinfo_endpoint.as_ref().map(|url| url.to_string());
        }
        if let Some(manual) = &manual {
            if let Some(url) = &manual.authorization_endpoint {
                flow.endpoints.authorization = url.clone();
            }
            if let Some(url) = &manual.token_endpoint {
                flow.endpoints.token = url.clone();
                flow.endpoints.device_authorization = None;
                flow.endpoints.userinfo = None;
            }
            if let Some(url) = &manual.device_authorization_endpoint {
                flow.endpoints.device_authorization = Some(url.clone());
            }
            if let Some(issuer) = &manual.issuer {
                flow.endpoints.issuer = Some(issuer.clone());
                pin = Some(Pin { issuer: issuer.clone(), source: PinSource::Registered });
            }
        }
        Ok(Plan { server, entry, manual, provider, config, flow, pin, remote: remote_url(server) })
    }

    /// What a sign-in for `binding` would use, found without the network: the client id and where
    /// it comes from, whether the client secret it needs is stored, and the redirect URI the
    /// provider's rules give (as `oauth authorize` builds it). For `latchkey doctor`.
    pub async fn readiness(&self, binding: &Binding) -> anyhow::Result<Readiness> {
        let Plan { entry, manual, provider, config, flow, remote, .. } = self.plan(binding, None).await?;
        let redirect = flow.redirect.clone();
        let discovers = needs_discovery(&flow) && remote.is_some();
        let client_id = manual
            .as_ref()
            .map(|m| (m.client_id.clone(), RegistrationSource::Manual))
            .or_else(|| entry.and_then(|e| e.registration.as_ref()).map(|r| (r.client_id.to_string(), RegistrationSource::Catalog)));
        let Some((client_id, source)) = client_id else {
            return Ok(Readiness { client: None, missing_secret: None, redirect, discovers });
        };
        let auth_method = match source {
            RegistrationSource::Manual => {
                manual.as_ref().and_then(|m| m.token_endpoint_auth_method.as_deref()).and_then(registration::parse_auth_method)
            }
            _ => None,
        };
        let client = ClientRegistration {
            client_id: client_id.clone(),
            client_secret: self.client_secret(binding).await?,
            auth_method,
            source,
            client_key: None,
        };
        let mut as_metadata = AuthServerMetadata::default();
        if let Some(metadata) = entry.and_then(|entry| entry.server_metadata.as_ref()) {
            as_metadata.token_endpoint_auth_methods_supported = metadata.token_endpoint_auth_methods_supported.clone();
        }
        let mut endpoint = TokenEndpoint { provider, flow, client, config, http: self.http.clone() };
        settle_client_auth(&mut endpoint, &as_metadata);
        self.add_client_key(binding, &mut endpoint).await?;
        let missing_secret = check_secret(binding, &endpoint).err();
        Ok(Readiness { client: Some((client_id, source)), missing_secret, redirect, discovers })
    }

    /// Before `oauth register` records `registration` for `server`: a client with a secret whose
    /// authorization server would be discovered must be bound to an issuer, so without
    /// `--issuer` this discovers the one the server names and refuses, naming the command that
    /// binds it.
    pub async fn check_registration(&self, server: &str, registration: &ManualRegistration, with_secret: bool) -> anyhow::Result<()> {
        let entry = self.catalog.server(server)?;
        if entry.bindings().len() > 1 {
            return Err(TargetError::RegisterWhich { server: server.to_string() }.into());
        }
        let binding = entry.binding(None)?;
        let plan = self.plan(&binding, Some(registration)).await?;
        if !with_secret || plan.pin.is_some() || !needs_discovery(&plan.flow) {
            return Ok(());
        }
        let Some(url) = &plan.remote else { return Ok(()) };
        let found = self.discover(url, None).await?;
        Err(TargetError::unpinned_catalog_client(server, &registration.client_id, &discovered_issuer(&found.metadata)).into())
    }

    /// The issuer a confidential client without a declared one was used with before latchkey bound
    /// issuers: the issuer of its stored credential. None stored: the client is refused.
    async fn stored_pin(&self, server: &str, client: &ClientRegistration, offered: &str) -> anyhow::Result<Pin> {
        let (server, client_id) = (server.to_string(), client.client_id.clone());
        let issuers: Vec<String> = {
            let (server, client_id) = (server.clone(), client_id.clone());
            self.blocking_store(move |store| {
                Ok(store
                    .credential_ids()?
                    .into_iter()
                    .filter(|id| id.server == server && id.client_id == client_id)
                    .map(|id| id.issuer)
                    .collect())
            })
            .await?
        };
        match issuers.iter().find(|issuer| discovery::issuers_match(issuer, offered)).or(issuers.first()) {
            Some(issuer) => Ok(Pin { issuer: issuer.clone(), source: PinSource::Stored }),
            None => Err(TargetError::unpinned_catalog_client(&server, &client_id, offered).into()),
        }
    }

    /// The target for an MCP server known only by its URL (`tools ls --url`): discovery, then the
    /// client from `overrides`, a metadata document, or dynamic registration. A client from
    /// `overrides` is held to `overrides.issuer` as a catalog client is to its bound issuer, and
    /// one with a secret needs that issuer: the server may name any authorization server.
    pub async fn target_for_url(&self, url: &Url, challenge: Option<&Challenge>, overrides: &Overrides) -> anyhow::Result<Target> {
        let found = discovery::discover(&self.http, url, challenge, overrides.issuer.as_deref()).await?;
        let server = discovery::canonical_resource(url);
        let issuer = discovered_issuer(&found.metadata);
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
                    client_key: None,
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
                            client_key: None,
                        },
                        Some((endpoint.clone(), found.metadata.clone())),
                    ),
                    None => return Err(registration::RegistrationError::NoClient { server, issuer }.into()),
                },
            },
        };
        match &overrides.issuer {
            Some(issuer_given) => {
                let pin = Pin { issuer: issuer_given.clone(), source: PinSource::CommandLine };
                check_pin(url.as_str(), &client.client_id, &pin, &issuer)?;
            }
            None if is_confidential(&client) => {
                return Err(TargetError::unpinned_command_line_client(url, &client.client_id, &issuer).into());
            }
            None => {}
        }
        let iss_required = found.metadata.authorization_response_iss_parameter_supported;
        let mut endpoint = TokenEndpoint { provider, flow, client, config, http: self.http.clone() };
        settle_client_auth(&mut endpoint, &found.metadata);
        Ok(Target {
            binding: Binding { server: server.clone(), entry: crate::catalog::BindingEntry::Discovery, account: None },
            id: CredentialId::new(server, issuer.clone(), endpoint.client.client_id.clone()),
            endpoint,
            scopes,
            resource: Some(found.resource),
            expected_iss: found.metadata.issuer.clone(),
            iss_required,
            dynamic,
            grant: Grant::AuthorizationCode,
            site: overrides.site.clone(),
        })
    }

    async fn discover(&self, url: &Url, preferred: Option<&str>) -> anyhow::Result<Discovered> {
        let challenge = probe(&self.http, url).await;
        Ok(discovery::discover(&self.http, url, challenge.as_ref(), preferred).await?)
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

    /// `binding`'s client secret. A server's first provider also takes `<server>.client_secret`,
    /// which every provider of a server used before each had its own.
    async fn client_secret(&self, binding: &Binding) -> anyhow::Result<Option<SecretString>> {
        Ok(self.client_credential(binding, &binding.client_secret_name(), "client_secret").await?.map(|(_, secret)| secret))
    }

    /// For a client that authenticates with `private_key_jwt`: its private key, named like its
    /// client secret would be.
    async fn add_client_key(&self, binding: &Binding, endpoint: &mut TokenEndpoint) -> anyhow::Result<()> {
        if endpoint.client_auth() == ClientAuth::PrivateKeyJwt {
            endpoint.client.client_key = self.client_credential(binding, &binding.client_key_name(), "client_key").await?;
        }
        Ok(())
    }

    /// The stored secret `name` of `binding`'s client, or for a server's first provider the
    /// server-wide `<server>.<kind>`; with the name it was found under.
    async fn client_credential(&self, binding: &Binding, name: &str, kind: &str) -> anyhow::Result<Option<(String, SecretString)>> {
        let shared = format!("{}.{kind}", binding.server);
        let found = match self.secret(name).await? {
            None if name != shared && binding.provider_index() == Some(0) => self.secret(&shared).await?.map(|value| (shared, value)),
            found => found.map(|value| (name.to_string(), value)),
        };
        Ok(found)
    }

    pub(crate) async fn secret(&self, name: &str) -> anyhow::Result<Option<SecretString>> {
        let name = name.to_string();
        self.blocking_store(move |store| store.get_secret(&name)).await
    }

    /// Start the browser flow for `target`.
    pub async fn start(&self, target: &Target, mode: Mode) -> anyhow::Result<Pending> {
        let client = match &target.dynamic {
            Some((endpoint, metadata)) => {
                ClientSource::Dynamic { registration_endpoint: endpoint.clone(), metadata: Box::new(metadata.clone()) }
            }
            None => ClientSource::Ready(target.endpoint.client.clone()),
        };
        let request = authorize::Request {
            endpoint: target.endpoint.clone(),
            scopes: target.scopes.clone(),
            resource: target.resource.clone(),
            issuer: target.expected_iss.clone(),
            iss_required: target.iss_required,
            // OpenID Connect's hint at which account to sign in with: only an account named by
            // its e-mail address says which.
            login_hint: target.id.account.clone().filter(|account| account.contains('@')),
        };
        Ok(authorize::start(request, client, mode).await?)
    }

    /// Store what an authorization produced (and a dynamically registered client), returning the
    /// stored credential. `target` is settled: it now names the client the authorization used,
    /// so that refreshes go out as that client and find the stored credential.
    pub async fn save(&self, target: &mut Target, exchanged: &Exchanged) -> anyhow::Result<Credential> {
        if let Some((_, metadata)) = target.dynamic.take() {
            target.id.client_id = exchanged.client.client_id.clone();
            target.endpoint.client = exchanged.client.clone();
            let name = dynamic_client_secret_name(&target.id.server, &metadata);
            let json = serde_json::to_string(&exchanged.client).expect("a client registration serializes");
            self.blocking_store(move |store| store.set_secret(&name, &SecretString::from(json))).await?;
        }
        self.save_tokens(target, &exchanged.tokens, Grant::AuthorizationCode).await
    }

    /// Ask the device authorization endpoint for a user code (RFC 8628) as `target`'s client.
    pub async fn start_device(&self, target: &Target) -> anyhow::Result<device::Pending> {
        let server = &target.id.server;
        let Some(url) = &target.endpoint.flow.endpoints.device_authorization else {
            return Err(TargetError::NoDeviceEndpoint { server: server.clone() }.into());
        };
        if target.dynamic.is_some() {
            return Err(TargetError::UnsettledClient { server: server.clone(), grant: "the device grant" }.into());
        }
        Ok(device::start(&target.endpoint, url, &target.scopes, target.resource.as_deref()).await?)
    }

    /// Ask for the client's own token (RFC 6749 §4.4) and store it.
    pub async fn issue_client_credentials(&self, target: &Target) -> anyhow::Result<Credential> {
        let server = &target.id.server;
        if target.dynamic.is_some() {
            return Err(TargetError::UnsettledClient { server: server.clone(), grant: "the client credentials grant" }.into());
        }
        if target.endpoint.client_auth() == ClientAuth::None {
            return Err(TargetError::PublicClientCredentials { server: server.clone(), name: target.binding.client_secret_name() }.into());
        }
        let tokens = target.endpoint.client_credentials(&target.scopes, target.resource.as_deref()).await?;
        self.save_tokens(target, &tokens, Grant::ClientCredentials).await
    }

    /// Store the tokens a grant produced for `target`, as the credential of its binding, with
    /// what the provider's calls after the token learned. When those fail (or no site can be
    /// chosen), the tokens are stored all the same and the error says what is missing.
    pub async fn save_tokens(&self, target: &Target, tokens: &plugins::TokenSet, grant: Grant) -> anyhow::Result<Credential> {
        let stored = super::tokens::to_stored(tokens, std::time::SystemTime::now());
        let (learned, unlearned) = match post_token::learn(&self.http, &target.endpoint, tokens, &stored.access_token, &target.site).await {
            Ok(learned) => (learned, None),
            Err(error) => (post_token::Learned::default(), Some(error)),
        };
        // Without an account from the provider or an ID token, the userinfo endpoint says who
        // signed in (a client's own token belongs to no person).
        let identity = match (learned.account, target.identity_in(tokens), &target.endpoint.flow.endpoints.userinfo) {
            (Some(account), _, _) => Some(account),
            (None, Some(identity), _) => Some(identity),
            (None, None, Some(url)) if grant != Grant::ClientCredentials => {
                identity::from_userinfo(&self.http, url, &stored.access_token).await
            }
            (None, None, _) => None,
        };
        let credential = Credential {
            id: target.id.clone(),
            provider: target.endpoint.provider.id().to_string(),
            tokens: stored,
            status: Status::Authorized,
            grant,
            identity,
            context: learned.context,
            site: learned.site,
            last_refresh_error: None,
        };
        let saved = credential.clone();
        self.blocking_store(move |store| store.save_credential(&saved)).await?;
        // A process that keeps targets (the gateway) now has a settled one for this binding.
        self.targets.lock().await.by_binding.remove(&target.binding.clone().for_account(None));
        if let Some(error) = unlearned {
            return Err(anyhow::Error::new(error).context(format!(
                "signed in to `{}` and stored the token, but without what the provider's calls after sign-in would have added",
                target.id.server
            )));
        }
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

/// What [`Engine::readiness`] found.
#[derive(Debug)]
pub struct Readiness {
    /// The client id, and whether the catalog or `oauth register` gave it.
    pub client: Option<(String, RegistrationSource)>,
    /// The client needs a secret that is not stored ([`TargetError::MissingSecret`]).
    pub missing_secret: Option<TargetError>,
    /// The provider's redirect rule: the URI to register with the provider.
    pub redirect: plugins::Redirect,
    /// The endpoints come from the MCP server's discovery (a remote server), which may also offer
    /// dynamic registration when there is no client id.
    pub discovers: bool,
}

/// What [`Engine::plan`] found.
struct Plan<'a> {
    server: &'a Server,
    entry: Option<&'a OAuthProvider>,
    manual: Option<ManualRegistration>,
    provider: Provider,
    config: plugins::Params,
    flow: Flow,
    pin: Option<Pin>,
    remote: Option<Url>,
}

fn needs_discovery(flow: &Flow) -> bool {
    flow.endpoints.authorization.is_empty() || flow.endpoints.token.is_empty()
}

/// A pre-registered client with a secret (or one it needs): what issuer binding protects.
fn is_confidential(client: &ClientRegistration) -> bool {
    matches!(client.source, RegistrationSource::Catalog | RegistrationSource::Manual | RegistrationSource::CommandLine)
        && (client.client_secret.is_some()
            || client.client_key.is_some()
            || client.auth_method.is_some_and(|method| method != ClientAuth::None))
}

/// Refuse an authorization server other than the one `pin` binds the client to.
fn check_pin(server: &str, client_id: &str, pin: &Pin, offered: &str) -> Result<(), TargetError> {
    if discovery::issuers_match(offered, &pin.issuer) {
        return Ok(());
    }
    let fix = match pin.source {
        PinSource::Registered => format!(
            "If `{server}` really moved to `{offered}` and client `{client_id}` is registered there, run \
             `latchkey oauth register {server} --client-id {client_id} --issuer {offered}`; otherwise do not use this server"
        ),
        PinSource::Catalog => format!(
            "If `{server}` really moved to `{offered}`, change `server_metadata` in its catalog entry (`latchkey catalog show \
             {server}` names the file); otherwise do not use this server"
        ),
        PinSource::Provider => format!(
            "The provider plugin serves only `{}`: if `{server}` really moved, name another provider for it in its catalog \
             entry; otherwise do not use this server",
            pin.issuer
        ),
        PinSource::CommandLine => format!(
            "If `{server}` really moved to `{offered}` and client `{client_id}` is registered there, run the command again \
             with `--issuer {offered}`; otherwise do not use this server"
        ),
        PinSource::Stored => format!(
            "If `{server}` really moved to `{offered}` and client `{client_id}` is registered there, forget the old credential \
             (`latchkey oauth revoke {server}`) and bind the client to the new issuer: `latchkey oauth register {server} \
             --client-id {client_id} --issuer {offered}`; otherwise do not use this server"
        ),
    };
    Err(TargetError::IssuerMismatch {
        server: server.to_string(),
        client_id: client_id.to_string(),
        expected: pin.issuer.clone(),
        offered: offered.to_string(),
        pinned_by: pin.source,
        fix,
    })
}

/// The issuer that discovered metadata names, or its authorization endpoint's origin.
fn discovered_issuer(metadata: &AuthServerMetadata) -> String {
    metadata.issuer.clone().unwrap_or_else(|| origin_of(&metadata.authorization_endpoint))
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

/// Discovered endpoints into `flow`. An issuer already there (a bound one, which the caller has
/// compared with the discovered one) is never replaced.
fn apply_discovered(flow: &mut Flow, metadata: &AuthServerMetadata) {
    flow.endpoints.authorization = metadata.authorization_endpoint.clone();
    flow.endpoints.token = metadata.token_endpoint.clone();
    if flow.endpoints.issuer.is_none() {
        flow.endpoints.issuer = metadata.issuer.clone();
    }
    if let Some(url) = &metadata.revocation_endpoint {
        flow.endpoints.revocation = Some(plugins::RevocationEndpoint { url: url.clone(), client_auth: flow.client_auth });
    }
    if flow.endpoints.device_authorization.is_none() {
        flow.endpoints.device_authorization = metadata.device_authorization_endpoint.clone();
    }
    if flow.endpoints.userinfo.is_none() {
        flow.endpoints.userinfo = metadata.userinfo_endpoint.clone();
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

fn check_secret(binding: &Binding, endpoint: &TokenEndpoint) -> Result<(), TargetError> {
    let method = endpoint.client_auth();
    if method == ClientAuth::PrivateKeyJwt {
        if endpoint.client.client_key.is_none() {
            return Err(TargetError::MissingKey { server: binding.server.clone(), name: binding.client_key_name() });
        }
        return Ok(());
    }
    if method != ClientAuth::None && endpoint.client.client_secret.is_none() {
        return Err(TargetError::MissingSecret {
            server: binding.server.clone(),
            name: binding.client_secret_name(),
            method: registration::auth_method_name(method),
        });
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

#[cfg(test)]
mod tests {
    use super::*;

    fn pin(source: PinSource) -> Pin {
        Pin { issuer: "https://as.example".into(), source }
    }

    #[test]
    fn a_bound_client_accepts_its_own_issuer_only() {
        assert!(check_pin("wiki", "app", &pin(PinSource::Registered), "https://as.example/").is_ok());
        let error = check_pin("wiki", "app", &pin(PinSource::Registered), "https://evil.example").unwrap_err().to_string();
        for part in [
            "bound to `https://as.example` (by `latchkey oauth register --issuer`)",
            "names `https://evil.example` instead",
            "nothing was sent to `https://evil.example`",
            "`latchkey oauth register wiki --client-id app --issuer https://evil.example`",
        ] {
            assert!(error.contains(part), "{part}: {error}");
        }
    }

    #[test]
    fn each_kind_of_binding_names_its_own_fix() {
        let fix = |source| check_pin("wiki", "app", &pin(source), "https://evil.example").unwrap_err().to_string();
        assert!(fix(PinSource::Catalog).contains("change `server_metadata` in its catalog entry"));
        assert!(fix(PinSource::Provider).contains("name another provider"));
        assert!(fix(PinSource::Stored).contains("by the credential stored for it") && fix(PinSource::Stored).contains("oauth revoke wiki"));
    }

    #[test]
    fn only_pre_registered_clients_with_a_secret_are_confidential() {
        let client = |source, secret: Option<&str>, auth_method| ClientRegistration {
            client_id: "app".into(),
            client_secret: secret.map(|s| SecretString::from(s.to_string())),
            auth_method,
            source,
            client_key: None,
        };
        assert!(is_confidential(&client(RegistrationSource::Catalog, Some("s"), None)));
        assert!(is_confidential(&client(RegistrationSource::Manual, None, Some(ClientAuth::Basic))));
        assert!(!is_confidential(&client(RegistrationSource::Manual, None, Some(ClientAuth::None))));
        assert!(!is_confidential(&client(RegistrationSource::Dynamic, Some("s"), None)));
    }
}
