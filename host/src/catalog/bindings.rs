//! A server's OAuth credentials, as the catalog declares them: its [`Binding`]s.
//!
//! A binding names one credential a server uses: one per `oauth.providers` entry, and for a remote
//! server without any, one whose authorization server is discovered (RFC 9728). The OAuth engine
//! resolves a binding to its issuer and client (`crate::oauth::engine`), which together name the
//! stored credential; everything that authorizes, refreshes, revokes or hands out a token names
//! the binding, so that a server with two providers gets each provider's token where that provider's
//! `secret` goes, and a discovery-only remote server is treated like any other. A server served
//! for one of the user's several accounts (`gmail@work`) has bindings of that account.

use std::fmt;

use super::model::{Kind, Server};

/// One credential of one server. See the module documentation.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Binding {
    pub server: String,
    pub entry: Entry,
    /// One of the user's accounts (`oauth authorize --account`); `None`: the default one.
    pub account: Option<String>,
}

/// Where a binding's authorization server comes from.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Entry {
    /// `oauth.providers[index]`; `label` is how commands name it (see [`Server::binding`]).
    Provider { index: usize, label: String, secret: Option<String> },
    /// A remote server without `oauth.providers`: discovered from the server.
    Discovery,
}

/// A `--provider` that names none of a server's bindings, or none given where one must be.
#[derive(Debug, thiserror::Error)]
pub enum BindingError {
    #[error("server `{server}` uses no OAuth: add an `oauth` section with a provider to its catalog entry")]
    NoOAuth { server: String },
    #[error(
        "server `{server}` has no OAuth provider `{wanted}`; name one of its providers by provider id or by the secret that \
         receives its token: {known}"
    )]
    Unknown { server: String, wanted: String, known: String },
    #[error("server `{server}` has {count} OAuth providers; say which with --provider, one of: {known}")]
    Ambiguous { server: String, count: usize, known: String },
}

impl Binding {
    /// The stored secret that holds this credential's client secret: `<server>.client_secret`,
    /// and for a server with several providers one per provider, `<server>.<provider>.client_secret`
    /// (the provider named by its id, or by the secret its token goes to without the server's
    /// prefix), so that one provider's client secret never goes to another's authorization server.
    pub fn client_secret_name(&self) -> String {
        self.client_credential_name("client_secret")
    }

    /// The stored secret that holds the client's private key, for `private_key_jwt`: named like
    /// [`Binding::client_secret_name`], ending in `client_key`.
    pub fn client_key_name(&self) -> String {
        self.client_credential_name("client_key")
    }

    fn client_credential_name(&self, kind: &str) -> String {
        match &self.entry {
            Entry::Provider { label, index, .. } if !label.is_empty() => {
                let prefix = format!("{}.", self.server);
                let name = match label.strip_prefix(&prefix) {
                    Some(rest) => rest.to_string(),
                    None if label.starts_with('#') => format!("provider-{}", index + 1),
                    None => label.clone(),
                };
                format!("{}.{name}.{kind}", self.server)
            }
            _ => format!("{}.{kind}", self.server),
        }
    }

    /// The command that signs this credential in.
    pub fn authorize_command(&self) -> String {
        let mut command = format!("latchkey oauth authorize {}", self.server);
        if let Entry::Provider { label, .. } = &self.entry
            && !label.is_empty()
        {
            command.push_str(&format!(" --provider {label}"));
        }
        if let Some(account) = &self.account {
            command.push_str(&format!(" --account {account}"));
        }
        command
    }

    /// This binding, for `account`.
    pub fn for_account(self, account: Option<String>) -> Binding {
        Binding { account, ..self }
    }

    /// The index of the `oauth.providers` entry, `None` for discovery.
    pub fn provider_index(&self) -> Option<usize> {
        match &self.entry {
            Entry::Provider { index, .. } => Some(*index),
            Entry::Discovery => None,
        }
    }
}

/// `server` for a server's only (or discovered) credential, `server[label]` when it has several
/// providers, with `@account` for an account other than the default: the name `/health` and
/// messages use.
impl fmt::Display for Binding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.entry {
            Entry::Provider { label, .. } if !label.is_empty() => write!(f, "{}[{label}]", self.server)?,
            _ => f.write_str(&self.server)?,
        }
        match &self.account {
            Some(account) => write!(f, "@{account}"),
            None => Ok(()),
        }
    }
}

impl Server {
    /// Every credential this server uses: one per `oauth.providers` entry; for a remote server
    /// without any, its discovered one; for a local server without OAuth, none.
    pub fn bindings(&self) -> Vec<Binding> {
        let providers: Vec<_> = self.oauth.iter().flat_map(|oauth| oauth.providers.iter()).collect();
        if providers.is_empty() {
            return match self.kind {
                Kind::Remote { .. } => vec![Binding { server: self.name.clone(), entry: Entry::Discovery, account: self.account.clone() }],
                _ => Vec::new(),
            };
        }
        let several = providers.len() > 1;
        let unique_id =
            |id: &str| providers.iter().filter(|p| p.provider.as_deref().is_some_and(|other| other.as_str() == id)).count() == 1;
        providers
            .iter()
            .enumerate()
            .map(|(index, provider)| {
                let secret = provider.secret.as_deref().cloned();
                // Empty for a server's only provider: it needs no name.
                let label = match (several, provider.provider.as_deref().filter(|id| unique_id(id)), &secret) {
                    (false, _, _) => String::new(),
                    (true, Some(id), _) => id.clone(),
                    (true, None, Some(secret)) => secret.clone(),
                    (true, None, None) => format!("#{}", index + 1),
                };
                Binding { server: self.name.clone(), entry: Entry::Provider { index, label, secret }, account: self.account.clone() }
            })
            .collect()
    }

    /// The binding whose token goes to the declared secret `secret`.
    pub fn binding_for_secret(&self, secret: &str) -> Option<Binding> {
        self.bindings().into_iter().find(|binding| matches!(&binding.entry, Entry::Provider { secret: Some(name), .. } if name == secret))
    }

    /// The binding whose token a remote server receives as its bearer token: its first.
    pub fn bearer_binding(&self) -> Option<Binding> {
        self.bindings().into_iter().next()
    }

    /// The binding `wanted` names (a provider id, the secret that receives the token, or `#n`),
    /// or, without `wanted`, the server's only one.
    pub fn binding(&self, wanted: Option<&str>) -> Result<Binding, BindingError> {
        let bindings = self.bindings();
        let known = || {
            bindings
                .iter()
                .map(|binding| match &binding.entry {
                    Entry::Provider { label, .. } if !label.is_empty() => label.clone(),
                    Entry::Provider { secret: Some(secret), .. } => secret.clone(),
                    Entry::Provider { index, .. } => format!("#{}", index + 1),
                    Entry::Discovery => "(discovered)".into(),
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let server = self.name.clone();
        match wanted {
            None => match bindings.len() {
                0 => Err(BindingError::NoOAuth { server }),
                1 => Ok(bindings[0].clone()),
                count => Err(BindingError::Ambiguous { server, count, known: known() }),
            },
            Some(wanted) => {
                let providers: Vec<_> = self.oauth.iter().flat_map(|oauth| oauth.providers.iter()).collect();
                let found = bindings.iter().find(|binding| match &binding.entry {
                    Entry::Provider { index, label, secret } => {
                        label == wanted
                            || secret.as_deref() == Some(wanted)
                            || format!("#{}", index + 1) == wanted
                            || (providers.len() == 1 && providers[0].provider.as_deref().is_some_and(|id| id.as_str() == wanted))
                    }
                    Entry::Discovery => false,
                });
                found.cloned().ok_or_else(|| BindingError::Unknown { server, wanted: wanted.to_string(), known: known() })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Catalog, Source};

    fn server(yaml: &str) -> Server {
        let catalog = Catalog::from_yaml(Source::BuiltIn, yaml).unwrap();
        catalog.servers().next().unwrap().clone()
    }

    const TWO: &str = "servers:\n  pair:\n    command: [x]\n    secrets:\n      - {name: pair.a, env: A}\n      - {name: pair.b, env: B}\n\
                       \x20   oauth:\n      providers:\n        - {provider: google, secret: pair.a}\n        - {provider: standard, secret: pair.b}\n";

    #[test]
    fn each_provider_is_a_binding_and_its_secret_finds_it() {
        let pair = server(TWO);
        let bindings = pair.bindings();
        assert_eq!(bindings.len(), 2);
        assert_eq!(pair.binding_for_secret("pair.b"), Some(bindings[1].clone()));
        assert_eq!(pair.binding(Some("google")).unwrap(), bindings[0]);
        assert_eq!(pair.binding(Some("pair.b")).unwrap(), bindings[1]);
        assert_eq!(bindings[1].to_string(), "pair[standard]");
        assert_eq!(bindings[1].authorize_command(), "latchkey oauth authorize pair --provider standard");
        assert_eq!(bindings[1].client_secret_name(), "pair.standard.client_secret");
        let work = pair.for_account(Some("work".into())).bindings().remove(1);
        assert_eq!(work.to_string(), "pair[standard]@work");
        assert_eq!(work.authorize_command(), "latchkey oauth authorize pair --provider standard --account work");
        assert_eq!(work.client_secret_name(), "pair.standard.client_secret", "one client, whichever account signs in");
        let error = pair.binding(None).unwrap_err().to_string();
        assert!(error.contains("2 OAuth providers") && error.contains("google, standard"), "{error}");
        let error = pair.binding(Some("slack")).unwrap_err().to_string();
        assert!(error.contains("no OAuth provider `slack`"), "{error}");
    }

    #[test]
    fn providers_with_one_id_are_told_apart_by_their_secrets() {
        let pair = server(&TWO.replace("provider: google", "provider: standard"));
        let labels: Vec<String> = pair.bindings().iter().map(ToString::to_string).collect();
        assert_eq!(labels, ["pair[pair.a]", "pair[pair.b]"]);
        assert_eq!(pair.bindings()[0].client_secret_name(), "pair.a.client_secret");
        assert!(pair.binding(Some("standard")).is_err(), "an id two providers share names neither");
    }

    #[test]
    fn a_remote_server_without_providers_is_discovered_and_a_local_one_has_none() {
        let remote = server("servers:\n  found:\n    remote: {url: https://mcp.example/mcp}\n");
        assert_eq!(remote.bindings(), [Binding { server: "found".into(), entry: Entry::Discovery, account: None }]);
        assert_eq!(remote.bearer_binding().unwrap().to_string(), "found");
        assert_eq!(remote.bindings()[0].client_secret_name(), "found.client_secret");
        let local = server("servers:\n  plain:\n    command: [x]\n");
        assert!(local.bindings().is_empty());
        assert!(local.binding(None).unwrap_err().to_string().contains("uses no OAuth"));
    }
}
