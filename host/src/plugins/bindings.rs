//! Host-side bindings for the `latchkey:provider@0.1.0` contract, generated from `wit/`.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "provider-component",
    additional_derives: [serde::Serialize, serde::Deserialize, PartialEq],
});

pub use latchkey::provider::types::*;

/// The contract package this host implements.
pub const CONTRACT_PACKAGE: &str = "latchkey:provider";
/// The contract version this host implements. Components built for any 0.1.x version load.
pub const CONTRACT_VERSION: &str = "0.1.0";
/// The interface a provider component must export (without its version).
pub const PROVIDER_INTERFACE: &str = "latchkey:provider/provider";

/// The functions of the provider interface. A call looks up and type-checks only the one it runs
/// (see [`super::sandbox::call`]); the whole interface is checked once, when the component loads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    Info,
    Configure,
    AuthorizeParams,
    PrepareRequest,
    ReadTokenResponse,
    ReadRevocationResponse,
    MergeRefreshed,
}

impl Hook {
    pub const ALL: [Hook; 7] = [
        Hook::Info,
        Hook::Configure,
        Hook::AuthorizeParams,
        Hook::PrepareRequest,
        Hook::ReadTokenResponse,
        Hook::ReadRevocationResponse,
        Hook::MergeRefreshed,
    ];

    /// The function's name in the contract.
    pub fn name(self) -> &'static str {
        match self {
            Hook::Info => "info",
            Hook::Configure => "configure",
            Hook::AuthorizeParams => "authorize-params",
            Hook::PrepareRequest => "prepare-request",
            Hook::ReadTokenResponse => "read-token-response",
            Hook::ReadRevocationResponse => "read-revocation-response",
            Hook::MergeRefreshed => "merge-refreshed",
        }
    }
}

// The contract's names, for people and for `--json`.

impl std::fmt::Display for ClientAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ClientAuth::Basic => "client_secret_basic",
            ClientAuth::Post => "client_secret_post",
            ClientAuth::None => "none",
        })
    }
}

impl std::fmt::Display for Pkce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Pkce::Required => "required",
            Pkce::Supported => "supported",
            Pkce::Unsupported => "unsupported",
        })
    }
}

impl std::fmt::Display for RefreshPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RefreshPolicy::KeepPrevious => "keep-previous",
            RefreshPolicy::Rotate => "rotate",
            RefreshPolicy::RotateSingleUse => "rotate-single-use",
        })
    }
}

impl std::fmt::Display for Redirect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Redirect::HttpsOnly => f.write_str("https only (paste the final URL)"),
            Redirect::Loopback(loopback) => match loopback.port {
                Some(port) => write!(f, "http://{}:{port}{}", loopback.host, loopback.path),
                None => write!(f, "http://{}:<any port>{}", loopback.host, loopback.path),
            },
        }
    }
}

impl std::fmt::Display for FailureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FailureKind::Reauthorize => "reauthorize",
            FailureKind::Misconfigured => "misconfigured",
            FailureKind::Retry => "retry",
            FailureKind::Other => "other",
        })
    }
}
