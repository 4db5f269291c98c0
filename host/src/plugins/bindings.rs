//! Host-side bindings for every published version of the `latchkey:provider` contract, each
//! generated from its own folder (`wit/since_vX.Y.Z/`). The current version's types are the host's
//! own; a component of an older version is called through its version's bindings and its types are
//! converted in one place ([`super::since_v0_1`]).

/// Contract 0.1.0, as published.
pub mod v0_1 {
    wasmtime::component::bindgen!({
        path: "../wit/since_v0.1.0",
        world: "provider-component",
        additional_derives: [serde::Serialize, serde::Deserialize, PartialEq],
    });
}

/// Contract 0.2.0, as published. Its types are 0.3's; only the world differs.
pub mod v0_2 {
    wasmtime::component::bindgen!({
        path: "../wit/since_v0.2.0",
        world: "provider-component",
        additional_derives: [serde::Serialize, serde::Deserialize, PartialEq],
    });
}

/// Contract 0.3.0: the current one.
pub mod v0_3 {
    wasmtime::component::bindgen!({
        path: "../wit/since_v0.3.0",
        world: "provider-component",
        additional_derives: [serde::Serialize, serde::Deserialize, PartialEq],
    });
}

pub use v0_3::exports::latchkey::provider::post_token::{Account, PostTokenResult, Site};
pub use v0_3::latchkey::provider::types::*;

/// The contract package this host implements.
pub const CONTRACT_PACKAGE: &str = "latchkey:provider";
/// The interface a provider component must export (without its version).
pub const PROVIDER_INTERFACE: &str = "latchkey:provider/provider";
/// The interface of calls after the token exchange, from contract 0.3 on (without its version).
pub const POST_TOKEN_INTERFACE: &str = "latchkey:provider/post-token";

/// A contract version this host loads components of. The one source of the version strings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Contract {
    V0_1,
    V0_2,
    V0_3,
}

impl Contract {
    /// What new components are built for (the SDK's version).
    pub const CURRENT: Contract = Contract::V0_3;
    pub const ALL: [Contract; 3] = [Contract::V0_1, Contract::V0_2, Contract::V0_3];

    /// The version as published: `0.3.0`.
    pub fn version(self) -> &'static str {
        match self {
            Contract::V0_1 => "0.1.0",
            Contract::V0_2 => "0.2.0",
            Contract::V0_3 => "0.3.0",
        }
    }

    /// Whether components of this version export the `post-token` interface.
    pub fn has_post_token(self) -> bool {
        self >= Contract::V0_3
    }

    /// `latchkey:provider@0.3.0`.
    pub fn package(self) -> String {
        format!("{CONTRACT_PACKAGE}@{}", self.version())
    }

    /// The contract a component that exports the interface at `version` is loaded as, by the
    /// component model's semver rule: for 0.x the minor version must match (0.1.7 is 0.1), from
    /// 1.0 on the major version.
    pub fn of(version: &str) -> Option<Contract> {
        let parts = |v: &str| -> Option<(u64, u64)> {
            let mut it = v.split(['.', '-', '+']);
            Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
        };
        let (major, minor) = parts(version)?;
        Contract::ALL.into_iter().find(|contract| {
            let (ours_major, ours_minor) = parts(contract.version()).expect("a published version");
            if major == 0 { ours_major == 0 && minor == ours_minor } else { major == ours_major }
        })
    }

    /// Every version this host loads, for messages: `latchkey:provider@0.1.0, @0.2.0 and @0.3.0`.
    pub fn supported() -> String {
        let versions: Vec<String> = Contract::ALL.iter().map(|contract| format!("@{}", contract.version())).collect();
        let (last, earlier) = versions.split_last().expect("at least one version");
        format!("{CONTRACT_PACKAGE}{} and {last}", earlier.join(", "))
    }
}

impl std::fmt::Display for Contract {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.version())
    }
}

/// The functions of the contract's interfaces. A call looks up and type-checks only the one it
/// runs (see [`super::sandbox::call`]); the whole world is checked once, when the component loads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    Info,
    Configure,
    AuthorizeParams,
    PrepareRequest,
    ReadTokenResponse,
    ReadRevocationResponse,
    MergeRefreshed,
    PostTokenPlan,
    PostTokenRead,
}

impl Hook {
    /// The `provider` interface's functions, which every version has.
    pub const PROVIDER: [Hook; 7] = [
        Hook::Info,
        Hook::Configure,
        Hook::AuthorizeParams,
        Hook::PrepareRequest,
        Hook::ReadTokenResponse,
        Hook::ReadRevocationResponse,
        Hook::MergeRefreshed,
    ];
    /// The `post-token` interface's functions (0.3 on).
    pub const POST_TOKEN: [Hook; 2] = [Hook::PostTokenPlan, Hook::PostTokenRead];

    /// The hook's name in messages: the function's, prefixed by its interface outside `provider`.
    pub fn name(self) -> &'static str {
        match self {
            Hook::Info => "info",
            Hook::Configure => "configure",
            Hook::AuthorizeParams => "authorize-params",
            Hook::PrepareRequest => "prepare-request",
            Hook::ReadTokenResponse => "read-token-response",
            Hook::ReadRevocationResponse => "read-revocation-response",
            Hook::MergeRefreshed => "merge-refreshed",
            Hook::PostTokenPlan => "post-token.plan",
            Hook::PostTokenRead => "post-token.read",
        }
    }

    /// The function's name in its interface.
    pub fn function(self) -> &'static str {
        self.name().rsplit('.').next().expect("split yields one piece at least")
    }
}

// The contract's names, for people and for `--json`.

impl std::fmt::Display for ClientAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ClientAuth::Basic => "client_secret_basic",
            ClientAuth::Post => "client_secret_post",
            ClientAuth::None => "none",
            ClientAuth::PrivateKeyJwt => "private_key_jwt",
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
