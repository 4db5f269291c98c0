//! A loaded provider: its `info()`, and typed, bounded calls to its hooks. The host never trusts a
//! hook's output blindly: sizes are capped by the sandbox, and this module checks what the contract
//! promises (a well-formed id, no attempt to set the parameters that the host owns).
//!
//! A provider is confined to the endpoints its flow declared: `prepare-request` may change a
//! request's path, query, method, headers and body, but never its origin (scheme, host and port),
//! because the host adds the client secret to that request and the body carries codes, PKCE
//! verifiers and refresh tokens. `info().issuers` are full origins, so that matching an issuer
//! never hands a provider every server; a loopback redirect is a loopback host and a plain path.

use std::sync::Arc;

use wasmtime::component::{ComponentNamedList, Lift, Lower};

use super::bindings::{
    Contract, Failure, Flow, Hook, HttpRequest, HttpResponse, LoopbackRedirect, Params, PostTokenResult, ProviderInfo, Redirect,
    RefreshPolicy, TokenContext, TokenSet, v0_1::latchkey::provider::types as v0_1,
};
use super::builtin::BuiltInComponent;
use super::error::{Origin, PluginError, Problem};
use super::runtime::{Prepared, Runtime};
use super::{sandbox, since_v0_1};

/// Authorization-request parameters that only the host sets: a provider that returns one of these
/// from `authorize-params` is refused, so a plugin can never weaken PKCE, `state` or the redirect.
pub const HOST_OWNED_AUTHORIZE_PARAMS: &[&str] =
    &["response_type", "client_id", "redirect_uri", "state", "code_challenge", "code_challenge_method", "resource"];

/// The most requests a provider may plan after a token exchange: enough for an account, its sites
/// and a detail or two, not a crawl.
pub const MAX_POST_TOKEN_REQUESTS: usize = 8;

/// A provider component that passed its load-time checks.
#[derive(Clone)]
pub struct Provider {
    runtime: Arc<Runtime>,
    prepared: Prepared,
    origin: Origin,
    info: ProviderInfo,
}

/// A hook that ran but said no (a bad configuration key, say), or a plugin that failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error(transparent)]
    Plugin(#[from] PluginError),
    #[error("provider `{provider}` refused in `{hook}`: {message}")]
    Refused { provider: String, hook: &'static str, message: String },
    /// `prepare-request` pointed a request at another origin than the flow's endpoint.
    #[error(transparent)]
    Retargeted(Box<Retargeted>),
}

/// A request that `prepare-request` pointed at another origin than the flow's endpoint; it was not
/// sent. Only origins are named: a URL may carry a token in its path or query.
#[derive(Debug, thiserror::Error)]
#[error(
    "provider `{provider}` ({source_file}) tried to send the request for {endpoint} to {asked}, but this flow allows only \
     {allowed} (the origins of its endpoints: the catalog's `server_metadata`, else the provider's own); the request \
     was not sent. A provider may change a request's path, query, method, headers and body, never where it goes: {fix}"
)]
pub struct Retargeted {
    pub provider: String,
    pub source_file: String,
    pub endpoint: String,
    pub asked: String,
    pub allowed: String,
    pub fix: String,
}

impl Provider {
    /// Prepare `bytes` and call `info()` under the runtime's limits.
    pub fn load(runtime: &Arc<Runtime>, origin: Origin, bytes: &[u8]) -> Result<Provider, PluginError> {
        let prepared = runtime.prepare(&origin, bytes)?;
        Provider::from_prepared(runtime, origin, prepared)
    }

    /// A built-in: [`Provider::load`] without hashing its bytes again.
    pub(crate) fn load_built_in(runtime: &Arc<Runtime>, component: &BuiltInComponent) -> Result<Provider, PluginError> {
        let origin = Origin::BuiltIn(component.name.to_string());
        let prepared = runtime.prepare_hashed(&origin, component.bytes, component.sha256.to_string())?;
        Provider::from_prepared(runtime, origin, prepared)
    }

    /// Call `info()` of a prepared component and check its default configuration.
    fn from_prepared(runtime: &Arc<Runtime>, origin: Origin, prepared: Prepared) -> Result<Provider, PluginError> {
        let info: ProviderInfo = sandbox::call(runtime, &prepared, Hook::Info, ()).map_err(|problem| PluginError::new(&origin, problem))?;
        validate_info(&info).map_err(|message| PluginError::new(&origin, Problem::InvalidOutput { hook: Hook::Info.name(), message }))?;
        let provider = Provider { runtime: runtime.clone(), prepared, origin, info };
        // The flow of the default configuration is checked now, so that a bad redirect is refused
        // when the provider is loaded; a configuration that the provider refuses without keys
        // (a tenant it needs) is checked when it is configured.
        if let Ok(config) = provider.resolve_config(&[])
            && let Err(CallError::Plugin(error)) = provider.configure(&config)
        {
            return Err(error);
        }
        Ok(provider)
    }

    pub fn id(&self) -> &str {
        &self.info.id
    }

    pub fn info(&self) -> &ProviderInfo {
        &self.info
    }

    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    pub fn sha256(&self) -> &str {
        &self.prepared.sha256
    }

    /// Whether the compiled code came from the cache rather than a compilation.
    pub fn compiled_from_cache(&self) -> bool {
        self.prepared.from_cache
    }

    /// Check catalog configuration entries against the provider's declared keys and fill in the
    /// defaults. An unknown key is an error that lists the known ones.
    pub fn resolve_config(&self, entries: &[(String, String)]) -> Result<Params, CallError> {
        let known: Vec<&str> = self.info.config_keys.iter().map(|key| key.name.as_str()).collect();
        if let Some((unknown, _)) = entries.iter().find(|(name, _)| !known.contains(&name.as_str())) {
            let hint =
                if known.is_empty() { "it takes no configuration".to_string() } else { format!("its keys are {}", known.join(", ")) };
            return Err(self.refused(Hook::Configure, format!("unknown config key `{unknown}`: {hint}")));
        }
        let mut resolved: Params = entries.to_vec();
        for key in &self.info.config_keys {
            if let Some(default) = &key.default
                && !resolved.iter().any(|(name, _)| *name == key.name)
            {
                resolved.push((key.name.clone(), default.clone()));
            }
        }
        Ok(resolved)
    }

    /// The contract version the component was built for.
    pub fn contract(&self) -> Contract {
        self.prepared.contract
    }

    pub fn configure(&self, config: &Params) -> Result<Flow, CallError> {
        let result: Result<Flow, String> = match self.contract() {
            Contract::V0_1 => self.call::<_, Result<v0_1::Flow, String>>(Hook::Configure, (config.as_slice(),))?.map(Flow::from),
            Contract::V0_2 | Contract::V0_3 => self.call(Hook::Configure, (config.as_slice(),))?,
        };
        let flow = result.map_err(|message| self.refused(Hook::Configure, message))?;
        if let Redirect::Loopback(loopback) = &flow.redirect {
            check_loopback(loopback).map_err(|message| self.invalid(Hook::Configure, message))?;
        }
        if let Some(device) = &flow.endpoints.device_authorization {
            check_device_endpoint(device, &flow.endpoints.token).map_err(|message| self.invalid(Hook::Configure, message))?;
        }
        Ok(flow)
    }

    pub fn authorize_params(&self, scopes: &[String], config: &Params) -> Result<Params, CallError> {
        let result: Result<Params, String> = self.call(Hook::AuthorizeParams, (scopes, config.as_slice()))?;
        let params = result.map_err(|message| self.refused(Hook::AuthorizeParams, message))?;
        if let Some((name, _)) = params.iter().find(|(name, _)| HOST_OWNED_AUTHORIZE_PARAMS.contains(&name.as_str())) {
            return Err(self.invalid(Hook::AuthorizeParams, format!("it sets `{name}`, which only the host may set")));
        }
        Ok(params)
    }

    /// The provider's reshaping of `request`, which must still go to `request`'s origin; `endpoint`
    /// names the endpoint in errors ("the token endpoint").
    pub fn prepare_request(&self, context: &TokenContext, request: &HttpRequest, endpoint: &str) -> Result<HttpRequest, CallError> {
        if self.contract() == Contract::V0_1 && since_v0_1::needs_no_reshaping(context.kind) {
            return Ok(request.clone());
        }
        let result: Result<HttpRequest, String> = match self.contract() {
            Contract::V0_1 => self.call(Hook::PrepareRequest, (&since_v0_1::token_context(context), request))?,
            Contract::V0_2 | Contract::V0_3 => self.call(Hook::PrepareRequest, (context, request))?,
        };
        let prepared = result.map_err(|message| self.refused(Hook::PrepareRequest, message))?;
        let allowed = url::Url::parse(&request.url).map(|url| url.origin().ascii_serialization()).unwrap_or_default();
        self.check_origin(Hook::PrepareRequest, &prepared.url, &[allowed], endpoint)?;
        Ok(prepared)
    }

    /// The requests the provider wants made with a new token (contract 0.3 on; none before), each
    /// aimed at one of `origins`: the flow's, as [`request_origins`] lists them.
    pub fn post_token_plan(&self, tokens: &TokenSet, config: &Params, origins: &[String]) -> Result<Vec<HttpRequest>, CallError> {
        if !self.contract().has_post_token() {
            return Ok(Vec::new());
        }
        let result: Result<Vec<HttpRequest>, String> = self.call(Hook::PostTokenPlan, (tokens, config.as_slice()))?;
        let plan = result.map_err(|message| self.refused(Hook::PostTokenPlan, message))?;
        if plan.len() > MAX_POST_TOKEN_REQUESTS {
            let message = format!("it planned {} requests; at most {MAX_POST_TOKEN_REQUESTS} are made", plan.len());
            return Err(self.invalid(Hook::PostTokenPlan, message));
        }
        for request in &plan {
            self.check_origin(Hook::PostTokenPlan, &request.url, origins, "a call after the token exchange")?;
        }
        Ok(plan)
    }

    /// What the answers to the planned requests say: who signed in, context, sites to choose from.
    pub fn post_token_read(
        &self,
        tokens: &TokenSet,
        config: &Params,
        responses: &[HttpResponse],
    ) -> Result<Result<PostTokenResult, Failure>, CallError> {
        let result: Result<PostTokenResult, Failure> = self.call(Hook::PostTokenRead, (tokens, config.as_slice(), responses))?;
        if let Ok(read) = &result {
            check_post_token_result(read).map_err(|message| self.invalid(Hook::PostTokenRead, message))?;
        }
        Ok(result)
    }

    /// `url` goes to one of `allowed`; otherwise the request is refused, naming origins only (a
    /// URL may carry a token in its path or query).
    fn check_origin(&self, hook: Hook, url: &str, allowed: &[String], endpoint: &str) -> Result<(), CallError> {
        let asked = match url::Url::parse(url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.username().is_empty() && url.password().is_none() => {
                url.origin().ascii_serialization()
            }
            _ => return Err(self.invalid(hook, "the URL it returned is not an http(s) URL without user info".into())),
        };
        if !allowed.contains(&asked) {
            let fix = match &self.origin {
                Origin::File(_) => {
                    format!("remove it (`latchkey provider remove {}`), or ask its author to fix `prepare-request`", self.info.id)
                }
                Origin::BuiltIn(_) => format!(
                    "the catalog's `server_metadata` moved this endpoint to another origin than the one provider `{}` builds \
                     its requests for; point the endpoint at the provider's own origin, or use provider `standard`",
                    self.info.id
                ),
            };
            return Err(CallError::Retargeted(Box::new(Retargeted {
                provider: self.info.id.clone(),
                source_file: self.origin.to_string(),
                endpoint: endpoint.to_string(),
                asked,
                allowed: allowed.join(", "),
                fix,
            })));
        }
        Ok(())
    }

    /// The normalised token set, or the provider's classification of the failure.
    pub fn read_token_response(&self, context: &TokenContext, response: &HttpResponse) -> Result<Result<TokenSet, Failure>, CallError> {
        Ok(match self.contract() {
            Contract::V0_1 => self.call(Hook::ReadTokenResponse, (&since_v0_1::token_context(context), response))?,
            Contract::V0_2 | Contract::V0_3 => self.call(Hook::ReadTokenResponse, (context, response))?,
        })
    }

    pub fn read_revocation_response(&self, response: &HttpResponse) -> Result<Result<(), Failure>, CallError> {
        Ok(self.call(Hook::ReadRevocationResponse, (response,))?)
    }

    pub fn merge_refreshed(&self, policy: RefreshPolicy, previous: &TokenSet, fresh: &TokenSet) -> Result<TokenSet, CallError> {
        Ok(self.call(Hook::MergeRefreshed, (policy, previous, fresh))?)
    }

    fn call<P, R>(&self, hook: Hook, params: P) -> Result<R, PluginError>
    where
        P: ComponentNamedList + Lower,
        (R,): ComponentNamedList + Lift,
        R: serde::Serialize,
    {
        sandbox::call(&self.runtime, &self.prepared, hook, params).map_err(|problem| PluginError::new(&self.origin, problem))
    }

    fn refused(&self, hook: Hook, message: String) -> CallError {
        CallError::Refused { provider: self.info.id.clone(), hook: hook.name(), message }
    }

    fn invalid(&self, hook: Hook, message: String) -> CallError {
        CallError::Plugin(PluginError::new(&self.origin, Problem::InvalidOutput { hook: hook.name(), message }))
    }
}

/// Ids are what catalogs refer to, so they must be plain: `a-z`, `0-9` and `-`, at most 40.
pub fn check_id(id: &str) -> Result<(), String> {
    let id_ok = !id.is_empty()
        && id.len() <= 40
        && id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !id.starts_with('-');
    if id_ok { Ok(()) } else { Err(format!("id `{id}` must be 1-40 characters of a-z, 0-9 and `-`, not starting with `-`")) }
}

fn validate_info(info: &ProviderInfo) -> Result<(), String> {
    check_id(&info.id)?;
    if info.display_name.trim().is_empty() {
        return Err("display-name is empty".into());
    }
    if info.version.split('.').count() < 2 || !info.version.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(format!("version `{}` is not a semantic version such as 1.0.0", info.version));
    }
    for issuer in &info.issuers {
        check_issuer(issuer)?;
    }
    let mut names: Vec<&str> = info.config_keys.iter().map(|key| key.name.as_str()).collect();
    names.sort_unstable();
    if let Some(pair) = names.windows(2).find(|pair| pair[0] == pair[1]) {
        return Err(format!("config key `{}` is declared twice", pair[0]));
    }
    Ok(())
}

/// An issuer the provider claims: an `https` URL with a host, or a prefix of per-tenant issuers
/// (ending in `/`) that includes the host, so that it never matches issuers of other hosts.
fn check_issuer(issuer: &str) -> Result<(), String> {
    let refuse = |why: &str| {
        Err(format!(
            "issuer `{issuer}` {why}; an issuer is a full origin such as `https://login.example.com`, or a prefix that includes \
             the host such as `https://login.example.com/tenants/`"
        ))
    };
    let host_given = issuer.strip_prefix("https://").is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'));
    if !host_given {
        return refuse("does not name an https host, so it would match the issuers of every server");
    }
    let Ok(url) = url::Url::parse(issuer) else { return refuse("is not a URL") };
    if url.host_str().is_none_or(str::is_empty) {
        return refuse("does not name an https host, so it would match the issuers of every server");
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
        return refuse("has a query, fragment or user info");
    }
    Ok(())
}

/// What `post-token.read` returns is shown to people and chosen from by id: ids present and
/// distinct, names and labels present, context names plain.
fn check_post_token_result(result: &PostTokenResult) -> Result<(), String> {
    if let Some(account) = &result.account
        && (account.subject.trim().is_empty() || account.label.trim().is_empty())
    {
        return Err("its account has an empty subject or label".into());
    }
    let mut ids: Vec<&str> = result.sites.iter().map(|site| site.id.as_str()).collect();
    if let Some(site) = result.sites.iter().find(|site| site.id.trim().is_empty() || site.name.trim().is_empty()) {
        return Err(format!("a site has an empty id or name (id `{}`)", site.id));
    }
    ids.sort_unstable();
    if let Some(pair) = ids.windows(2).find(|pair| pair[0] == pair[1]) {
        return Err(format!("site id `{}` occurs twice, so `--site` could not tell them apart", pair[0]));
    }
    let names = result.context.iter().chain(result.sites.iter().flat_map(|site| &site.context)).map(|(name, _)| name);
    if let Some(name) = names.into_iter().find(|name| !is_context_name(name)) {
        return Err(format!("context name `{name}` is not 1-64 characters of a-z, 0-9 and `_`"));
    }
    Ok(())
}

/// Context names are what catalogs map to environment variables: `cloud_id`, `instance_url`.
pub fn is_context_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.bytes().all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'_')
}

/// Host names a loopback redirect may use: the ones that stay on this machine (RFC 8252 §7.3).
pub const LOOPBACK_HOSTS: &[&str] = &["127.0.0.1", "localhost", "[::1]"];

/// A loopback redirect's host is a loopback name and its path a plain absolute path: the host
/// routes exactly that path, so route syntax (`:name`, `*rest`, `{name}`) or a query would either
/// fail or match requests the provider never meant.
pub fn check_loopback(redirect: &LoopbackRedirect) -> Result<(), String> {
    if !LOOPBACK_HOSTS.contains(&redirect.host.as_str()) {
        return Err(format!("the loopback redirect host `{}` is not one of {}", redirect.host, LOOPBACK_HOSTS.join(", ")));
    }
    let path = &redirect.path;
    let plain = path.starts_with('/')
        && path.bytes().all(|byte| byte.is_ascii_alphanumeric() || b"-._~/".contains(&byte))
        && path.split('/').skip(1).all(|segment| segment != "." && segment != "..");
    if !plain {
        return Err(format!(
            "the loopback redirect path `{path}` is not a plain absolute path such as `/callback` (letters, digits, `-._~` and `/`, \
             no `.` or `..` segments, no query)"
        ));
    }
    Ok(())
}

/// A provider's device authorization endpoint is on its token endpoint's origin: the client
/// authenticates at both, so both must be the one authorization server.
fn check_device_endpoint(device: &str, token: &str) -> Result<(), String> {
    let origin = |url: &str| url::Url::parse(url).ok().map(|url| url.origin().ascii_serialization());
    match (origin(device), origin(token)) {
        (Some(device), Some(token)) if device == token => Ok(()),
        (Some(device), Some(token)) => Err(format!(
            "its device authorization endpoint is on {device}, not on its token endpoint's origin {token}; the client's \
             credentials go to both, so they must be one server"
        )),
        (None, _) => Err("its device authorization endpoint is not a URL".into()),
        // A flow whose token endpoint the catalog gives has no device endpoint of its own to check
        // against; the catalog's replaces it.
        (Some(_), None) => Ok(()),
    }
}

/// The origins the host sends requests to on a provider's behalf under `flow`: its token, refresh,
/// revocation, userinfo and device authorization endpoints' (the authorization endpoint is the
/// browser's), in order,
/// each once. Endpoints the flow leaves to the catalog are left out.
pub fn request_origins(flow: &Flow) -> Vec<String> {
    let endpoints = &flow.endpoints;
    let urls = [
        Some(&endpoints.token),
        endpoints.refresh.as_ref(),
        endpoints.revocation.as_ref().map(|r| &r.url),
        endpoints.userinfo.as_ref(),
        endpoints.device_authorization.as_ref(),
    ];
    let mut origins: Vec<String> = Vec::new();
    for url in urls.into_iter().flatten().filter_map(|url| url::Url::parse(url).ok()) {
        let origin = url.origin().ascii_serialization();
        if !origins.contains(&origin) {
            origins.push(origin);
        }
    }
    origins
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuers_are_full_origins_or_prefixes_with_a_host() {
        for good in ["https://accounts.google.com", "https://login.microsoftonline.com/", "https://app.asana.com/api/1.0"] {
            assert_eq!(check_issuer(good), Ok(()), "{good}");
        }
        for bad in ["https://", "https:///tenant/", "http://login.example.com", "login.example.com", "https://x.example?q=1", ""] {
            assert!(check_issuer(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn loopback_redirects_are_loopback_hosts_and_plain_paths() {
        let redirect = |host: &str, path: &str| LoopbackRedirect { host: host.into(), port: None, path: path.into() };
        for (host, path) in [("127.0.0.1", "/callback"), ("localhost", "/"), ("[::1]", "/oauth/cb-1.0_x~")] {
            assert_eq!(check_loopback(&redirect(host, path)), Ok(()), "{host} {path}");
        }
        for (host, path) in [
            ("127.0.0.1", "/:cb"),
            ("127.0.0.1", "/*rest"),
            ("127.0.0.1", "/{id}"),
            ("127.0.0.1", "/a/../b"),
            ("127.0.0.1", "/cb?x=1"),
            ("127.0.0.1", "callback"),
            ("evil.example", "/callback"),
            ("127.0.0.2", "/callback"),
        ] {
            assert!(check_loopback(&redirect(host, path)).is_err(), "{host} {path} was accepted");
        }
    }
}
