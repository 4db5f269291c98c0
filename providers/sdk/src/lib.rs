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
//!     fn configure(config: &Config) -> Result<Flow, String> { /* endpoints, client auth, … */ }
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
//! The functions in [`standard`] and [`body`] are plain Rust and also run natively, so a provider's
//! logic can be unit-tested with `cargo test` as well as through the host's sandbox.

pub mod body;
pub mod common;
mod config;
pub mod shape;
pub mod standard;

pub use config::{Config, config_key};
/// The JSON crate the SDK reads bodies with, for providers that read API answers.
pub use serde_json;

/// Bindings generated from `wit/since_v0.3.0/provider.wit` (the `latchkey:provider@0.3.0`
/// package).
pub mod bindings {
    wit_bindgen::generate!({
        world: "provider-component",
        path: "wit/since_v0.3.0",
        pub_export_macro: true,
        export_macro_name: "__export_provider_component",
        default_bindings_module: "latchkey_provider_sdk::bindings",
    });
}

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

/// Export a [`Provider`] implementation as the component's `latchkey:provider/provider` and
/// `latchkey:provider/post-token` interfaces.
#[macro_export]
macro_rules! export_provider {
    ($provider:ty) => {
        const _: () = {
            use $crate::bindings::exports::latchkey::provider::post_token as exported_post_token;
            use $crate::bindings::exports::latchkey::provider::provider as exported;

            struct Exported;

            impl exported_post_token::Guest for Exported {
                fn plan(tokens: $crate::TokenSet, config: $crate::Params) -> Result<Vec<$crate::HttpRequest>, String> {
                    <$provider as $crate::Provider>::post_token_plan(&tokens, &$crate::Config::new(config))
                }
                fn read(
                    tokens: $crate::TokenSet,
                    config: $crate::Params,
                    responses: Vec<$crate::HttpResponse>,
                ) -> Result<$crate::PostTokenResult, $crate::Failure> {
                    <$provider as $crate::Provider>::post_token_read(&tokens, &$crate::Config::new(config), &responses)
                }
            }

            impl exported::Guest for Exported {
                fn info() -> $crate::ProviderInfo {
                    <$provider as $crate::Provider>::info()
                }
                fn configure(config: $crate::Params) -> Result<$crate::Flow, String> {
                    <$provider as $crate::Provider>::configure(&$crate::Config::new(config))
                }
                fn authorize_params(scopes: Vec<String>, config: $crate::Params) -> Result<$crate::Params, String> {
                    <$provider as $crate::Provider>::authorize_params(&scopes, &$crate::Config::new(config))
                }
                fn prepare_request(context: $crate::TokenContext, request: $crate::HttpRequest) -> Result<$crate::HttpRequest, String> {
                    <$provider as $crate::Provider>::prepare_request(&context, request)
                }
                fn read_token_response(
                    context: $crate::TokenContext,
                    response: $crate::HttpResponse,
                ) -> Result<$crate::TokenSet, $crate::Failure> {
                    <$provider as $crate::Provider>::read_token_response(&context, &response)
                }
                fn read_revocation_response(response: $crate::HttpResponse) -> Result<(), $crate::Failure> {
                    <$provider as $crate::Provider>::read_revocation_response(&response)
                }
                fn merge_refreshed(policy: $crate::RefreshPolicy, previous: $crate::TokenSet, fresh: $crate::TokenSet) -> $crate::TokenSet {
                    <$provider as $crate::Provider>::merge_refreshed(policy, previous, fresh)
                }
            }

            // Only components carry the exports: their names (`latchkey:provider/provider@0.3.0#info`)
            // are not valid symbols for native linkers, and native builds exist only for tests.
            #[cfg(target_arch = "wasm32")]
            $crate::bindings::__export_provider_component! { Exported with_types_in $crate::bindings }
        };
    };
}
