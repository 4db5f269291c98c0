//! After the first token: the provider's calls that turn a token into an account and the context
//! its servers need (Atlassian's cloud id, Slack's team), and the choice among several sites.
//!
//! The provider only plans (contract 0.3's `post-token`); this module checks every planned request
//! against the flow's origins (in [`Provider::post_token_plan`]), sends it with the new access
//! token as its bearer, and hands the answers back to the provider to read. What comes back is
//! untrusted like any other answer: its ids, names and context names are checked, and a site is
//! chosen only by an exact id, name or URL.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};

use super::exchange::TokenEndpoint;
use super::http::Client;
use crate::plugins::{self, CallError, Failure, PostTokenResult, Site, request_origins};
use crate::store::{ChosenSite, Identity};

/// The index of the site a person chose among several, or `None`.
pub type AskForSite = dyn Fn(&[Site]) -> Option<usize> + Send + Sync;

/// Asks a person which of several sites to use. The command line installs one on a terminal;
/// elsewhere nobody is asked.
#[derive(Clone)]
pub struct SiteChooser(pub Arc<AskForSite>);

impl fmt::Debug for SiteChooser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SiteChooser")
    }
}

/// How a site is chosen when the token reaches several.
#[derive(Clone, Debug, Default)]
pub struct SiteChoice {
    /// `--site`: a site's id, name or URL.
    pub named: Option<String>,
    pub ask: Option<SiteChooser>,
}

/// What the provider learned after the token exchange.
#[derive(Clone, Debug, Default)]
pub struct Learned {
    pub account: Option<Identity>,
    pub context: BTreeMap<String, String>,
    pub site: Option<ChosenSite>,
}

#[derive(Debug, thiserror::Error)]
pub enum PostTokenError {
    #[error(transparent)]
    Plugin(#[from] CallError),
    #[error("a call after the token exchange got no answer: {0}")]
    Send(super::http::SendError),
    #[error("provider `{provider}` could not read the answers to its calls after the token exchange: {}", .failure.message)]
    Failed { provider: String, failure: Failure },
    #[error(
        "the token reaches {} sites and {}: {}; sign in again with `--site <id>` naming one of them",
        .sites.len(),
        match .named { Some(named) => format!("`--site {named}` matches none of them"), None => "none was chosen".to_string() },
        .sites.iter().map(describe_site).collect::<Vec<_>>().join(", ")
    )]
    NoSite { named: Option<String>, sites: Vec<Site> },
}

/// Run `endpoint`'s provider's post-token calls for `tokens` (as the provider returned them) with
/// `access_token`, and choose a site as `choice` says.
pub async fn learn(
    http: &Client,
    endpoint: &TokenEndpoint,
    tokens: &plugins::TokenSet,
    access_token: &SecretString,
    choice: &SiteChoice,
) -> Result<Learned, PostTokenError> {
    let provider = &endpoint.provider;
    let plan = {
        let (provider, tokens, config) = (provider.clone(), tokens.clone(), endpoint.config.clone());
        let origins = request_origins(&endpoint.flow);
        tokio::task::spawn_blocking(move || provider.post_token_plan(&tokens, &config, &origins))
            .await
            .expect("a hook call does not panic")?
    };
    if plan.is_empty() {
        return Ok(Learned::default());
    }
    let bearer = format!("Bearer {}", access_token.expose_secret());
    let mut responses = Vec::with_capacity(plan.len());
    for mut request in plan {
        if !request.headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("authorization")) {
            request.headers.push(("authorization".into(), bearer.clone()));
        }
        responses.push(http.send(&request).await.map_err(PostTokenError::Send)?);
    }
    let read = {
        let (provider, tokens, config) = (provider.clone(), tokens.clone(), endpoint.config.clone());
        tokio::task::spawn_blocking(move || provider.post_token_read(&tokens, &config, &responses))
            .await
            .expect("a hook call does not panic")?
    };
    let result = read.map_err(|failure| PostTokenError::Failed { provider: provider.id().to_string(), failure })?;
    // Choosing may wait for a person at the terminal: not on an async worker.
    let choice = choice.clone();
    tokio::task::spawn_blocking(move || learned(result, &choice)).await.expect("choosing a site does not panic")
}

/// The account, the context and the chosen site's context (which wins over the common context).
fn learned(result: PostTokenResult, choice: &SiteChoice) -> Result<Learned, PostTokenError> {
    let PostTokenResult { account, context, sites } = result;
    let mut learned = Learned {
        account: account.map(|account| Identity { subject: account.subject, label: account.label }),
        context: context.into_iter().collect(),
        site: None,
    };
    if sites.is_empty() {
        return Ok(learned);
    }
    let index = match &choice.named {
        Some(named) => sites.iter().position(|site| site.id == *named || site.name == *named || site.url.as_deref() == Some(named)),
        None if sites.len() == 1 => Some(0),
        None => choice.ask.as_ref().and_then(|ask| (ask.0)(&sites)).filter(|index| *index < sites.len()),
    };
    let Some(index) = index else { return Err(PostTokenError::NoSite { named: choice.named.clone(), sites }) };
    let site = sites.into_iter().nth(index).expect("the index was checked");
    learned.context.extend(site.context);
    learned.site = Some(ChosenSite { id: site.id, name: site.name, url: site.url });
    Ok(learned)
}

/// `id` (name, url) for messages and prompts.
pub fn describe_site(site: &Site) -> String {
    match &site.url {
        Some(url) => format!("`{}` ({}, {url})", site.id, site.name),
        None => format!("`{}` ({})", site.id, site.name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(id: &str, name: &str, cloud_id: &str) -> Site {
        Site {
            id: id.into(),
            name: name.into(),
            url: Some(format!("https://{id}.atlassian.net")),
            context: vec![("cloud_id".into(), cloud_id.into())],
        }
    }

    fn result(sites: Vec<Site>) -> PostTokenResult {
        PostTokenResult { account: None, context: vec![("cloud_id".into(), "none".into()), ("team".into(), "t".into())], sites }
    }

    #[test]
    fn one_site_is_chosen_without_asking_and_its_context_wins() {
        let learned = learned(result(vec![site("acme", "Acme", "c-1")]), &SiteChoice::default()).unwrap();
        assert_eq!(learned.context.get("cloud_id").map(String::as_str), Some("c-1"));
        assert_eq!(learned.context.get("team").map(String::as_str), Some("t"));
        assert_eq!(learned.site.map(|site| site.id), Some("acme".to_string()));
    }

    #[test]
    fn several_sites_take_a_named_one_or_an_answer_or_fail_naming_them() {
        let sites = || vec![site("acme", "Acme", "c-1"), site("globex", "Globex", "c-2")];
        let by_url = SiteChoice { named: Some("https://globex.atlassian.net".into()), ask: None };
        assert_eq!(learned(result(sites()), &by_url).unwrap().context["cloud_id"], "c-2");
        let ask = SiteChoice { named: None, ask: Some(SiteChooser(Arc::new(|_: &[Site]| Some(0)))) };
        assert_eq!(learned(result(sites()), &ask).unwrap().context["cloud_id"], "c-1");

        let nobody = learned(result(sites()), &SiteChoice::default()).unwrap_err().to_string();
        assert!(nobody.contains("reaches 2 sites and none was chosen") && nobody.contains("`globex` (Globex"), "{nobody}");
        let wrong = SiteChoice { named: Some("initech".into()), ask: None };
        let wrong = learned(result(sites()), &wrong).unwrap_err().to_string();
        assert!(wrong.contains("`--site initech` matches none of them") && wrong.contains("`acme` (Acme"), "{wrong}");
    }
}
