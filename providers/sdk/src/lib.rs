//! Write a latchkey OAuth provider as a WebAssembly component, overriding only what your provider
//! does differently from standard OAuth 2.0.
//!
//! A provider is a type that implements [`Provider`]. Every hook except [`Provider::info`] and
//! [`Provider::configure`] has a default from [`standard`] that follows the RFCs (6749, 7636,
//! 7009), so Google's provider is little more than "add `access_type=offline`, send the secret in
//! the body, keep the old refresh token":
//!
//! ```ignore
//! use latchkey_provider_sdk::*;
//!
//! struct Acme;
//!
//! impl Provider for Acme {
//!     fn info() -> ProviderInfo { /* id, name, issuers, config keys */ }
//!     fn configure(_config: &Config) -> Result<Flow, String> {
//!         let endpoints = Endpoints::new("https://id.acme.example/authorize", "https://id.acme.example/token");
//!         // The RFCs' flow, but for what Acme does differently.
//!         Ok(Flow::standard(endpoints).client_auth(ClientAuth::Post).refresh(RefreshPolicy::KeepPrevious))
//!     }
//!     fn authorize_params(scopes: &[String], config: &Config) -> Result<Params, String> {
//!         let mut params = standard::scope_param(scopes, " ");
//!         params.push(("prompt".into(), "consent".into()));
//!         Ok(params)
//!     }
//! }
//!
//! export_provider!(Acme);
//! ```
//!
//! Build it with `cargo build --target wasm32-wasip2 --release`; the `.wasm` in
//! `target/wasm32-wasip2/release/` is the component. The host runs it with no network, files,
//! clock or secrets, under fuel, time and memory limits, with a fresh instance for every call: keep
//! no state between calls, and panic with a message that helps (the host shows it).
//!
//! Two modules hold the building blocks: [`standard`], the RFCs' defaults (the flow, reading token
//! responses and errors) and [`common`], conventions that several providers share (registered
//! apps, exact loopback ports, the API calls of `post-token`). The generated bindings are private;
//! the contract's types are re-exported here, and [`export_provider!`] names the provider whose
//! hooks the SDK's exports call.
//!
//! The functions in [`standard`] and [`common`] are plain Rust and also run natively, so a provider's
//! logic can be unit-tested with `cargo test` as well as through the host's sandbox.

pub mod common;
mod config;
pub mod standard;

pub use config::{Config, config_key};
/// The JSON crate the SDK reads bodies with, for providers that read API answers.
pub use serde_json;

// The bindings stay private: providers see the contract's types through the re-exports below and
// implement [`Provider`]; the component's exports are written once, in `component`.
mod bindings {
    wit_bindgen::generate!({
        world: "provider-component",
        path: "wit/since_v0.3.0",
    });
}

#[cfg(target_arch = "wasm32")]
mod component;

pub use bindings::exports::latchkey::provider::post_token::{Account, PostTokenResult, Site};
pub use bindings::latchkey::provider::types::{
    ClientAuth, ConfigKey, Endpoints, Failure, FailureKind, Flow, HttpRequest, HttpResponse, LoopbackRedirect, Params, Pkce, ProviderInfo,
    Redirect, RefreshPolicy, RequestKind, RevocationEndpoint, TokenContext, TokenSet,
};

/// The contract version this SDK builds components for.
pub const CONTRACT: &str = "latchkey:provider@0.3.0";

/// An OAuth provider's deviations from standard OAuth 2.0. See the crate documentation.
pub trait Provider {
    /// Static facts about the provider: id, display name, issuers it serves, config keys.
    fn info() -> ProviderInfo;

    /// The flow for one configuration. The host has already checked the keys against
    /// [`ProviderInfo::config_keys`] and filled in their defaults.
    fn configure(config: &Config) -> Result<Flow, String>;

    /// Parameters to add to the authorization URL. Default: `scope`, joined with the flow's
    /// separator, when any scopes were requested.
    fn authorize_params(scopes: &[String], config: &Config) -> Result<Params, String> {
        let flow = Self::configure(config)?;
        Ok(standard::scope_param(scopes, &flow.scope_separator))
    }

    /// Reshape a token or revocation request before the host adds client credentials.
    /// Default: unchanged.
    fn prepare_request(context: &TokenContext, request: HttpRequest) -> Result<HttpRequest, String> {
        let _ = context;
        Ok(request)
    }

    /// Read a token-endpoint response. Default: [`standard::read_token_response`].
    fn read_token_response(context: &TokenContext, response: &HttpResponse) -> Result<TokenSet, Failure> {
        standard::read_token_response(context, response)
    }

    /// Read a revocation response. Default: [`standard::read_revocation_response`].
    fn read_revocation_response(response: &HttpResponse) -> Result<(), Failure> {
        standard::read_revocation_response(response)
    }

    /// Combine a stored token set with a refresh answer. Default: [`standard::merge_refreshed`].
    fn merge_refreshed(policy: RefreshPolicy, previous: TokenSet, fresh: TokenSet) -> TokenSet {
        standard::merge_refreshed(policy, previous, fresh)
    }

    /// Requests to make once a grant produced its first token, to the origins of the flow's
    /// endpoints only; the host sends each with the access token as its bearer unless it sets its
    /// own `authorization`. Default: none, so [`Provider::post_token_read`] is not called.
    fn post_token_plan(tokens: &TokenSet, config: &Config) -> Result<Vec<HttpRequest>, String> {
        let _ = (tokens, config);
        Ok(Vec::new())
    }

    /// Read the answers to the planned requests, in order: who signed in, context for the
    /// servers, sites to choose from. Default: nothing learned.
    fn post_token_read(tokens: &TokenSet, config: &Config, responses: &[HttpResponse]) -> Result<PostTokenResult, Failure> {
        let _ = (tokens, config, responses);
        Ok(PostTokenResult { account: None, context: Params::new(), sites: Vec::new() })
    }
}

/// A provider's hooks as function pointers: what the component's exports call. Made by
/// [`export_provider!`]; not for use otherwise.
#[doc(hidden)]
pub struct Hooks {
    pub info: fn() -> ProviderInfo,
    pub configure: fn(&Config) -> Result<Flow, String>,
    pub authorize_params: fn(&[String], &Config) -> Result<Params, String>,
    pub prepare_request: fn(&TokenContext, HttpRequest) -> Result<HttpRequest, String>,
    pub read_token_response: fn(&TokenContext, &HttpResponse) -> Result<TokenSet, Failure>,
    pub read_revocation_response: fn(&HttpResponse) -> Result<(), Failure>,
    pub merge_refreshed: fn(RefreshPolicy, TokenSet, TokenSet) -> TokenSet,
    pub post_token_plan: fn(&TokenSet, &Config) -> Result<Vec<HttpRequest>, String>,
    pub post_token_read: fn(&TokenSet, &Config, &[HttpResponse]) -> Result<PostTokenResult, Failure>,
}

impl Hooks {
    pub const fn of<P: Provider>() -> Hooks {
        Hooks {
            info: P::info,
            configure: P::configure,
            authorize_params: P::authorize_params,
            prepare_request: P::prepare_request,
            read_token_response: P::read_token_response,
            read_revocation_response: P::read_revocation_response,
            merge_refreshed: P::merge_refreshed,
            post_token_plan: P::post_token_plan,
            post_token_read: P::post_token_read,
        }
    }
}

/// Make a [`Provider`] implementation the component's provider: the SDK exports the contract's
/// interfaces and calls its hooks. Once per component.
#[macro_export]
macro_rules! export_provider {
    ($provider:ty) => {
        // Read by the SDK's exports (`latchkey_provider_sdk::Hooks`). Only components carry it:
        // native builds exist only for tests, and may link several providers into one binary.
        #[cfg(target_arch = "wasm32")]
        #[unsafe(no_mangle)]
        static __LATCHKEY_PROVIDER_HOOKS: $crate::Hooks = $crate::Hooks::of::<$provider>();
    };
}
