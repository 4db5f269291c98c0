//! The component's exports, written once for every provider: each calls the hook of the provider
//! that [`export_provider!`](crate::export_provider) named, through the [`Hooks`] it defined.

use crate::bindings::exports::latchkey::provider::{post_token, provider};
use crate::{
    Config, Failure, Flow, Hooks, HttpRequest, HttpResponse, Params, PostTokenResult, ProviderInfo, RefreshPolicy, TokenContext, TokenSet,
};

unsafe extern "Rust" {
    /// Defined by `export_provider!` in the provider's crate.
    static __LATCHKEY_PROVIDER_HOOKS: Hooks;
}

fn hooks() -> &'static Hooks {
    // SAFETY: `export_provider!` defines the static with this type; a component without it does
    // not link.
    unsafe { &__LATCHKEY_PROVIDER_HOOKS }
}

struct Component;

impl provider::Guest for Component {
    fn info() -> ProviderInfo {
        (hooks().info)()
    }
    fn configure(config: Params) -> Result<Flow, String> {
        (hooks().configure)(&Config::new(config))
    }
    fn authorize_params(scopes: Vec<String>, config: Params) -> Result<Params, String> {
        (hooks().authorize_params)(&scopes, &Config::new(config))
    }
    fn prepare_request(context: TokenContext, request: HttpRequest) -> Result<HttpRequest, String> {
        (hooks().prepare_request)(&context, request)
    }
    fn read_token_response(context: TokenContext, response: HttpResponse) -> Result<TokenSet, Failure> {
        (hooks().read_token_response)(&context, &response)
    }
    fn read_revocation_response(response: HttpResponse) -> Result<(), Failure> {
        (hooks().read_revocation_response)(&response)
    }
    fn merge_refreshed(policy: RefreshPolicy, previous: TokenSet, fresh: TokenSet) -> TokenSet {
        (hooks().merge_refreshed)(policy, previous, fresh)
    }
}

impl post_token::Guest for Component {
    fn plan(tokens: TokenSet, config: Params) -> Result<Vec<HttpRequest>, String> {
        (hooks().post_token_plan)(&tokens, &Config::new(config))
    }
    fn read(tokens: TokenSet, config: Params, responses: Vec<HttpResponse>) -> Result<PostTokenResult, Failure> {
        (hooks().post_token_read)(&tokens, &Config::new(config), &responses)
    }
}

crate::bindings::export!(Component with_types_in crate::bindings);
