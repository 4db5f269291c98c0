//! Components built for contract 0.1.0, in the current contract's types: the one place where the
//! host converts between versions.
//!
//! Most of 0.1's types are the same records as 0.2's and pass through the calls as they are (the
//! component model checks records by their fields). Two differ:
//! - 0.1's `flow` has no `endpoints.device-authorization` and no `refresh-ahead`, and its
//!   `client-auth` no `private-key-jwt`: a 0.1 flow is the current flow with neither set;
//! - 0.1's `request-kind` has no `device-code` or `client-credentials`: the host sends those
//!   requests to a 0.1 component as the RFCs define them, without `prepare-request`
//!   ([`needs_no_reshaping`]), and a 0.1 component reads their answers as `authorization-code`,
//!   the first token of a grant, which is what they are.

use super::bindings::v0_1::latchkey::provider::types as v0_1;
use super::bindings::{
    ClientAuth, Endpoints, Flow, LoopbackRedirect, Pkce, Redirect, RefreshPolicy, RequestKind, RevocationEndpoint, TokenContext,
};

impl From<v0_1::Flow> for Flow {
    fn from(flow: v0_1::Flow) -> Flow {
        let v0_1::Flow { endpoints, scope_separator, pkce, client_auth, refresh, redirect, send_resource } = flow;
        let v0_1::Endpoints { issuer, authorization, token, refresh: refresh_endpoint, revocation, userinfo } = endpoints;
        Flow {
            endpoints: Endpoints {
                issuer,
                authorization,
                token,
                refresh: refresh_endpoint,
                revocation: revocation
                    .map(|revocation| RevocationEndpoint { url: revocation.url, client_auth: revocation.client_auth.into() }),
                userinfo,
                device_authorization: None,
            },
            scope_separator,
            pkce: match pkce {
                v0_1::Pkce::Required => Pkce::Required,
                v0_1::Pkce::Supported => Pkce::Supported,
                v0_1::Pkce::Unsupported => Pkce::Unsupported,
            },
            client_auth: client_auth.into(),
            refresh: match refresh {
                v0_1::RefreshPolicy::KeepPrevious => RefreshPolicy::KeepPrevious,
                v0_1::RefreshPolicy::Rotate => RefreshPolicy::Rotate,
                v0_1::RefreshPolicy::RotateSingleUse => RefreshPolicy::RotateSingleUse,
            },
            redirect: match redirect {
                v0_1::Redirect::Loopback(v0_1::LoopbackRedirect { host, port, path }) => {
                    Redirect::Loopback(LoopbackRedirect { host, port, path })
                }
                v0_1::Redirect::HttpsOnly => Redirect::HttpsOnly,
            },
            send_resource,
            refresh_ahead: None,
        }
    }
}

impl From<v0_1::ClientAuth> for ClientAuth {
    fn from(auth: v0_1::ClientAuth) -> ClientAuth {
        match auth {
            v0_1::ClientAuth::Basic => ClientAuth::Basic,
            v0_1::ClientAuth::Post => ClientAuth::Post,
            v0_1::ClientAuth::None => ClientAuth::None,
        }
    }
}

/// The context a 0.1 component reads: the grants 0.1 cannot name are the first token of a grant.
pub fn token_context(context: &TokenContext) -> v0_1::TokenContext {
    v0_1::TokenContext {
        kind: match context.kind {
            RequestKind::AuthorizationCode | RequestKind::DeviceCode | RequestKind::ClientCredentials => {
                v0_1::RequestKind::AuthorizationCode
            }
            RequestKind::RefreshToken => v0_1::RequestKind::RefreshToken,
            RequestKind::Revocation => v0_1::RequestKind::Revocation,
        },
        requested_scopes: context.requested_scopes.clone(),
        callback: context.callback.clone(),
        config: context.config.clone(),
    }
}

/// Requests of a kind 0.1 cannot name: a 0.1 component's `prepare-request` was written for the
/// others, and might drop fields it has never seen, so these are sent as their RFCs define them.
pub fn needs_no_reshaping(kind: RequestKind) -> bool {
    matches!(kind, RequestKind::DeviceCode | RequestKind::ClientCredentials)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_0_1_flow_is_the_current_flow_without_what_0_2_added() {
        let old = v0_1::Flow {
            endpoints: v0_1::Endpoints {
                issuer: Some("https://as.example".into()),
                authorization: "https://as.example/authorize".into(),
                token: "https://as.example/token".into(),
                refresh: None,
                revocation: Some(v0_1::RevocationEndpoint { url: "https://as.example/revoke".into(), client_auth: v0_1::ClientAuth::None }),
                userinfo: None,
            },
            scope_separator: ",".into(),
            pkce: v0_1::Pkce::Unsupported,
            client_auth: v0_1::ClientAuth::Post,
            refresh: v0_1::RefreshPolicy::RotateSingleUse,
            redirect: v0_1::Redirect::HttpsOnly,
            send_resource: true,
        };
        let flow = Flow::from(old);
        assert_eq!(flow.endpoints.revocation.as_ref().map(|r| r.client_auth), Some(ClientAuth::None));
        assert_eq!((flow.client_auth, flow.pkce, flow.refresh), (ClientAuth::Post, Pkce::Unsupported, RefreshPolicy::RotateSingleUse));
        assert_eq!((flow.scope_separator.as_str(), flow.send_resource, flow.redirect), (",", true, Redirect::HttpsOnly));
        assert_eq!((flow.endpoints.device_authorization, flow.refresh_ahead), (None, None));
    }

    #[test]
    fn grants_0_1_cannot_name_are_a_first_token_to_it_and_go_out_unreshaped() {
        let context = |kind| TokenContext { kind, requested_scopes: vec!["a".into()], callback: Vec::new(), config: Vec::new() };
        for kind in [RequestKind::DeviceCode, RequestKind::ClientCredentials] {
            assert_eq!(token_context(&context(kind)).kind, v0_1::RequestKind::AuthorizationCode);
            assert!(needs_no_reshaping(kind));
        }
        assert_eq!(token_context(&context(RequestKind::RefreshToken)).kind, v0_1::RequestKind::RefreshToken);
        assert!(!needs_no_reshaping(RequestKind::Revocation));
    }
}
