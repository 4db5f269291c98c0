//! What a local server (process or container) receives from latchkey: environment variables.
//! (Remote servers get a bearer token from [`crate::mcp::catalog_credential`].)
//!
//! For every declared secret with an `env`: the current OAuth access token when the secret is an
//! OAuth provider's `secret`, else the stored secret of that name. A secret without an `env` (a
//! client secret) is never passed on. A missing value is an error that names the command that
//! provides it: starting a server without its credentials only moves the failure into the server.

use std::sync::Arc;

use secrecy::SecretString;

use crate::catalog::Server;
use crate::oauth::engine::Engine;

/// The environment variables carrying `server`'s secrets.
pub async fn secret_env(engine: &Arc<Engine>, server: &Server) -> anyhow::Result<Vec<(String, SecretString)>> {
    let oauth_secrets: Vec<&str> = server
        .oauth
        .iter()
        .flat_map(|oauth| oauth.providers.iter().filter_map(|provider| provider.secret.as_deref().map(String::as_str)))
        .collect();
    let mut env = Vec::new();
    for secret in &server.secrets {
        let Some(variable) = &secret.env else { continue };
        let value = if oauth_secrets.contains(&secret.name.as_str()) {
            engine.access_token(&server.name).await?
        } else {
            let store = engine.store.clone();
            let name = secret.name.to_string();
            let stored = tokio::task::spawn_blocking(move || store.get_secret(&name)).await??;
            stored.ok_or_else(|| {
                anyhow::anyhow!(
                    "server `{}` needs the secret `{}` (for ${}); store it with `latchkey secret set {}`",
                    server.name,
                    *secret.name,
                    **variable,
                    *secret.name
                )
            })?
        };
        env.push((variable.to_string(), value));
    }
    Ok(env)
}
