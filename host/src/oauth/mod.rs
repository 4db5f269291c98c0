//! The OAuth client: discovery, client registration, the authorization-code flow, token exchange,
//! refresh and revocation, for pre-registered clients first and for MCP servers that support
//! discovery and registration too.
//!
//! Everything provider-specific goes through the provider's hooks ([`crate::plugins`]); this
//! module is the generic pipeline:
//! - [`http`]: the HTTP client and the https-except-loopback rule for endpoints;
//! - [`clock`]: the clock compared with the servers' `Date` headers, for `latchkey doctor`;
//! - [`discovery`]: RFC 9728 → RFC 8414 → OpenID Connect discovery for MCP servers;
//! - [`registration`]: pre-registered → Client ID Metadata Document → RFC 7591;
//! - [`callback`]: the loopback redirect listener and pasted redirect URLs;
//! - [`authorize`]: PKCE, `state`, `resource`, `iss`, and the code exchange;
//! - [`device`]: the device authorization grant (RFC 8628), for machines without a browser;
//! - [`client_key`]: `private_key_jwt`, client assertions signed with the user's stored key;
//! - [`exchange`]: token, refresh and revocation requests through the provider's hooks, and the
//!   grants no browser takes part in (device code, client credentials);
//! - [`engine`]: catalog, plugins, store and manual registrations turned into a [`engine::Target`]
//!   per credential binding, with the issuer each pre-registered client is bound to;
//! - [`identity`]: who signed in, from the ID token;
//! - [`post_token`]: the provider's calls after the first token (account, context, site);
//! - [`access`]: the narrow handles the gateway gets (secrets, tokens by binding);
//! - [`lifecycle`]: listing, refresh that never loses a token, revocation;
//! - [`manual`]: clients registered with `latchkey oauth register`;
//! - [`tokens`]: token sets between their wire and stored forms.

pub mod access;
pub mod authorize;
pub mod callback;
pub mod client_key;
pub mod clock;
pub mod device;
pub mod discovery;
pub mod engine;
pub mod exchange;
pub mod http;
pub mod identity;
pub mod lifecycle;
pub mod manual;
pub mod post_token;
pub mod registration;
pub mod tokens;
