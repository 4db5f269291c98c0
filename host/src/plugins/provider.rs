//! A loaded provider: its `info()`, and typed, bounded calls to its hooks. The host never trusts a
//! hook's output blindly: sizes are capped by the sandbox, and this module checks what the contract
//! promises (a well-formed id, no attempt to set the parameters that the host owns).

use std::sync::Arc;

use wasmtime::component::{ComponentNamedList, Lift, Lower};

use super::bindings::{Failure, Flow, Hook, HttpRequest, HttpResponse, Params, ProviderInfo, RefreshPolicy, TokenContext, TokenSet};
use super::error::{Origin, PluginError, Problem};
use super::runtime::{Prepared, Runtime};
use super::sandbox;

/// Authorization-request parameters that only the host sets: a provider that returns one of these
/// from `authorize-params` is refused, so a plugin can never weaken PKCE, `state` or the redirect.
pub const HOST_OWNED_AUTHORIZE_PARAMS: &[&str] =
    &["response_type", "client_id", "redirect_uri", "state", "code_challenge", "code_challenge_method", "resource"];

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
}

impl Provider {
    /// Prepare `bytes` and call `info()` under the runtime's limits.
    pub fn load(runtime: &Arc<Runtime>, origin: Origin, bytes: &[u8]) -> Result<Provider, PluginError> {
        let prepared = runtime.prepare(&origin, bytes)?;
        let info: ProviderInfo = sandbox::call(runtime, &prepared, Hook::Info, ()).map_err(|problem| PluginError::new(&origin, problem))?;
        validate_info(&info).map_err(|message| PluginError::new(&origin, Problem::InvalidOutput { hook: Hook::Info.name(), message }))?;
        Ok(Provider { runtime: runtime.clone(), prepared, origin, info })
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
            if let Some(default) = &key.default {
                if !resolved.iter().any(|(name, _)| *name == key.name) {
                    resolved.push((key.name.clone(), default.clone()));
                }
            }
        }
        Ok(resolved)
    }

    pub fn configure(&self, config: &Params) -> Result<Flow, CallError> {
        let result: Result<Flow, String> = self.call(Hook::Configure, (config.as_slice(),))?;
        result.map_err(|message| self.refused(Hook::Configure, message))
    }

    pub fn authorize_params(&self, scopes: &[String], config: &Params) -> Result<Params, CallError> {
        let result: Result<Params, String> = self.call(Hook::AuthorizeParams, (scopes, config.as_slice()))?;
        let params = result.map_err(|message| self.refused(Hook::AuthorizeParams, message))?;
        if let Some((name, _)) = params.iter().find(|(name, _)| HOST_OWNED_AUTHORIZE_PARAMS.contains(&name.as_str())) {
            return Err(self.invalid(Hook::AuthorizeParams, format!("it sets `{name}`, which only the host may set")));
        }
        Ok(params)
    }

    pub fn prepare_request(&self, context: &TokenContext, request: &HttpRequest) -> Result<HttpRequest, CallError> {
        let result: Result<HttpRequest, String> = self.call(Hook::PrepareRequest, (context, request))?;
        let prepared = result.map_err(|message| self.refused(Hook::PrepareRequest, message))?;
        if !(prepared.url.starts_with("https://") || prepared.url.starts_with("http://")) {
            return Err(self.invalid(Hook::PrepareRequest, format!("`{}` is not an http(s) URL", prepared.url)));
        }
        Ok(prepared)
    }

    /// The normalised token set, or the provider's classification of the failure.
    pub fn read_token_response(&self, context: &TokenContext, response: &HttpResponse) -> Result<Result<TokenSet, Failure>, CallError> {
        Ok(self.call(Hook::ReadTokenResponse, (context, response))?)
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
    let mut names: Vec<&str> = info.config_keys.iter().map(|key| key.name.as_str()).collect();
    names.sort_unstable();
    if let Some(pair) = names.windows(2).find(|pair| pair[0] == pair[1]) {
        return Err(format!("config key `{}` is declared twice", pair[0]));
    }
    Ok(())
}
