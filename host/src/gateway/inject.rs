//! What a server receives from latchkey. A local server (process or container): environment
//! variables. A remote server: the `headers` of its entry, their `$VAR`s filled from the same
//! variables a local server would get (its bearer token comes from
//! [`crate::mcp::catalog_credential`], and replaces a catalog `Authorization` header).
//!
//! For every declared secret with an `env`: the current OAuth access token of the provider whose
//! `secret` it is (each provider's own credential: its [`crate::catalog::Binding`]), else the
//! stored secret of that name. A secret without an `env` (a
//! client secret) is never passed on. A missing value is an error that names the command that
//! provides it: starting a server without its credentials only moves the failure into the server.
//! A remote server needs only the secrets its headers name.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context;
use http::header::AUTHORIZATION;
use http::{HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};

use crate::catalog::headers::{self, Piece};
use crate::catalog::{Binding, BindingEntry, OAuthProvider, Remote, Secret, Server};
use crate::oauth::engine::Engine;
use crate::store::Credential;

/// The environment variables carrying `server`'s secrets, and what its providers learned after
/// sign-in that the catalog maps to variables.
pub async fn secret_env(engine: &Arc<Engine>, server: &Server) -> anyhow::Result<Vec<(String, SecretString)>> {
    let mut env = Vec::new();
    for secret in &server.secrets {
        let Some(variable) = &secret.env else { continue };
        env.push((variable.to_string(), secret_value(engine, server, secret, variable).await?));
    }
    for (provider, binding) in context_providers(server) {
        let credential = engine.tokens().stored(&binding).await?;
        for (variable, name) in &provider.context {
            env.push((variable.clone(), context_value(credential.as_ref(), server, &binding, variable, name)?));
        }
    }
    Ok(env)
}

/// `server`'s provider entries that map context to variables, with their bindings.
fn context_providers(server: &Server) -> impl Iterator<Item = (&OAuthProvider, Binding)> {
    let providers = server.oauth.iter().flat_map(|oauth| oauth.providers.iter()).map(|provider| &**provider);
    providers.zip(server.bindings()).filter(|(provider, _)| !provider.context.is_empty())
}

/// What `$variable` receives of `binding`'s `credential` under the catalog's `name`: the context
/// the provider learned after sign-in, else what the token response kept under that name.
fn context_value(
    credential: Option<&Credential>,
    server: &Server,
    binding: &Binding,
    variable: &str,
    name: &str,
) -> anyhow::Result<SecretString> {
    let value = credential.and_then(|credential| {
        let learned = credential.context.get(name).map(|value| SecretString::from(value.clone()));
        learned.or_else(|| credential.tokens.extra.get(name).cloned())
    });
    value.ok_or_else(|| {
        anyhow::anyhow!(
            "server `{}` maps ${variable} to `{name}`, which its sign-in did not learn; sign in again with `{}` (the provider's \
             calls after sign-in learn it), or check the name against `latchkey oauth ls --json`",
            server.name,
            binding.authorize_command()
        )
    })
}

/// The headers of `remote` (`server`'s), expanded. Values are marked sensitive: they carry
/// secrets, so neither these nor anything that prints them may log them.
pub async fn remote_headers(engine: &Arc<Engine>, server: &Server, remote: &Remote) -> anyhow::Result<HashMap<HeaderName, HeaderValue>> {
    // The server's OAuth token goes out as its bearer: a provider's, or a discovered one stored.
    let oauth = match server.bearer_binding().map(|binding| binding.entry) {
        Some(BindingEntry::Provider { .. }) => true,
        Some(BindingEntry::Discovery) => engine.tokens().any_for(&server.name).await?,
        None => false,
    };
    let mut expanded = HashMap::new();
    for (name, template) in &remote.headers {
        let header = headers::name(name).map_err(anyhow::Error::msg)?;
        if oauth && header == AUTHORIZATION {
            tracing::debug!("{}: the OAuth token goes out as `Authorization`, in place of the catalog's `{name}` header", server.name);
            continue;
        }
        let mut text = String::new();
        for piece in headers::pieces(template).map_err(anyhow::Error::msg)? {
            match piece {
                Piece::Text(part) => text.push_str(part),
                Piece::Variable(variable) => {
                    let value = variable_value(engine, server, variable).await.with_context(|| format!("header `{name}`"))?;
                    text.push_str(value.expose_secret());
                }
            }
        }
        let mut value = HeaderValue::from_bytes(text.as_bytes()).map_err(|_| {
            anyhow::anyhow!(
                "header `{name}` of server `{}` would carry a line break or control character from one of its variables, \
                 which HTTP headers cannot; store the secret again without it (`latchkey secret set <name>`)",
                server.name
            )
        })?;
        value.set_sensitive(true);
        expanded.insert(header, value);
    }
    Ok(expanded)
}

/// `$variable` as `server` would see it in its environment: a secret's value, or a fixed `env`.
async fn variable_value(engine: &Arc<Engine>, server: &Server, variable: &str) -> anyhow::Result<SecretString> {
    if let Some(secret) = server.secrets.iter().find(|secret| secret.env.as_ref().is_some_and(|env| env.as_str() == variable)) {
        return secret_value(engine, server, secret, variable).await;
    }
    if let Some((provider, binding)) = context_providers(server).find(|(provider, _)| provider.context.contains_key(variable)) {
        let credential = engine.tokens().stored(&binding).await?;
        return context_value(credential.as_ref(), server, &binding, variable, &provider.context[variable]);
    }
    match server.env.iter().find(|var| var.name.as_str() == variable) {
        Some(var) => Ok(SecretString::from(var.value.clone())),
        None => anyhow::bail!(
            "server `{}` declares no ${variable}; add a secret `- {{name: {}.<secret>, env: {variable}}}` to its entry and store it \
             with `latchkey secret set {}.<secret>`",
            server.name,
            server.name,
            server.name
        ),
    }
}

/// The value of `secret`, which `server` declares for `$variable`.
async fn secret_value(engine: &Arc<Engine>, server: &Server, secret: &Secret, variable: &str) -> anyhow::Result<SecretString> {
    if let Some(binding) = server.binding_for_secret(&secret.name) {
        return engine.tokens().current(&binding).await;
    }
    let stored = engine.secrets().get(&secret.name).await?;
    stored.ok_or_else(|| {
        anyhow::anyhow!(
            "server `{}` needs the secret `{}` (for ${variable}); store it with `latchkey secret set {}`",
            server.name,
            *secret.name,
            *secret.name
        )
    })
}
