//! The providers this latchkey knows: the built-ins embedded in the binary, then the drop-ins in
//! `<config dir>/providers/*.wasm`. A drop-in with a built-in's id replaces it (and the registry
//! says so); a drop-in that fails to load is reported with its file and cause, and every other
//! provider keeps working. A long-running process swaps in a [`Registry::reloaded`] one when the
//! folder changes (see [`super::watch`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::builtin::BUILT_IN;
use super::error::{Origin, PluginError, Problem};
use super::provider::Provider;
use super::runtime::Runtime;

#[derive(Clone, Default)]
pub struct Registry {
    providers: BTreeMap<String, Provider>,
    /// Things the user should know that are not failures (a drop-in overriding a built-in).
    notices: Vec<String>,
    /// Drop-ins that could not be loaded.
    failures: Vec<Arc<PluginError>>,
}

/// Asked for a provider id that nothing provides.
#[derive(Debug, thiserror::Error)]
#[error("unknown provider `{id}`; known providers: {known}. A custom provider goes in {dropin_dir} (see `latchkey provider verify`)")]
pub struct UnknownProvider {
    pub id: String,
    pub known: String,
    pub dropin_dir: String,
}

impl Registry {
    /// The built-ins, then every `*.wasm` in `dropin_dir` (in name order), when given.
    pub fn load(runtime: &Arc<Runtime>, dropin_dir: Option<&Path>) -> Registry {
        let mut registry = Registry::default();
        for (name, bytes) in BUILT_IN {
            // A built-in that does not load is a bug in this build, not a user error; report it
            // like any other failure rather than refusing to start.
            match Provider::load(runtime, Origin::BuiltIn((*name).to_string()), bytes) {
                Ok(provider) => registry.insert(provider),
                Err(error) => registry.fail(error),
            }
        }
        if let Some(dir) = dropin_dir {
            for path in dropin_files(dir) {
                registry.load_dropin(runtime, path);
            }
        }
        registry
    }

    /// The registry after the drop-in folder changed: loaded afresh, except that a drop-in whose
    /// file fails to load now keeps the provider it gave before, so a broken build or a
    /// half-written copy never takes a working provider away. The failure is still reported.
    pub fn reloaded(&self, runtime: &Arc<Runtime>, dropin_dir: &Path) -> Registry {
        let mut fresh = Registry::load(runtime, Some(dropin_dir));
        let broken: Vec<Origin> = fresh.failures.iter().map(|failure| failure.origin.clone()).collect();
        for previous in self.providers.values().filter(|provider| broken.contains(provider.origin())) {
            // Another drop-in that loaded now owns the id: the user's folder decides, not history.
            let owned_by_dropin = fresh.providers.get(previous.id()).is_some_and(|now| matches!(now.origin(), Origin::File(_)));
            if !owned_by_dropin {
                fresh.notices.push(format!(
                    "{} did not load; keeping provider `{}` {} as it was before the file changed",
                    previous.origin(),
                    previous.id(),
                    previous.info().version
                ));
                fresh.insert(previous.clone());
            }
        }
        fresh
    }

    fn load_dropin(&mut self, runtime: &Arc<Runtime>, path: PathBuf) {
        let origin = Origin::File(path.clone());
        let loaded = std::fs::read(&path)
            .map_err(|error| PluginError::new(&origin, Problem::Unreadable(error)))
            .and_then(|bytes| Provider::load(runtime, origin.clone(), &bytes));
        let provider = match loaded {
            Ok(provider) => provider,
            Err(error) => return self.fail(error),
        };
        match self.providers.get(provider.id()) {
            Some(existing) if matches!(existing.origin(), Origin::BuiltIn(_)) => {
                let notice = format!(
                    "{} (provider `{}` {}) overrides the built-in `{}` {}",
                    path.display(),
                    provider.id(),
                    provider.info().version,
                    existing.id(),
                    existing.info().version
                );
                tracing::info!("{notice}");
                self.notices.push(notice);
                self.insert(provider);
            }
            Some(existing) => {
                let problem = Problem::DuplicateId { id: provider.id().to_string(), first: existing.origin().clone() };
                self.fail(PluginError::new(&Origin::File(path), problem));
            }
            None => self.insert(provider),
        }
    }

    /// Keep a failure for the caller to show (`failures()`); logging it here as well would show
    /// it twice.
    fn fail(&mut self, error: PluginError) {
        tracing::debug!("not loaded: {error}");
        self.failures.push(Arc::new(error));
    }

    fn insert(&mut self, provider: Provider) {
        self.providers.insert(provider.id().to_string(), provider);
    }

    /// The provider called `id`.
    pub fn get(&self, id: &str) -> Result<&Provider, UnknownProvider> {
        self.providers.get(id).ok_or_else(|| UnknownProvider {
            id: id.to_string(),
            known: self.providers.keys().cloned().collect::<Vec<_>>().join(", "),
            dropin_dir: crate::paths::Paths::discover()
                .map(|paths| paths.providers_dir().display().to_string())
                .unwrap_or_else(|_| "the providers folder".into()),
        })
    }

    /// The provider that declares `issuer`, exactly or by a prefix ending in `/`.
    pub fn match_issuer(&self, issuer: &str) -> Option<&Provider> {
        let issuer = issuer.trim_end_matches('/');
        self.providers.values().find(|provider| {
            provider.info().issuers.iter().any(|declared| {
                if declared.ends_with('/') {
                    issuer.starts_with(declared.as_str()) || issuer == declared.trim_end_matches('/')
                } else {
                    issuer == declared.trim_end_matches('/')
                }
            })
        })
    }

    /// Every provider, by id.
    pub fn providers(&self) -> impl Iterator<Item = &Provider> {
        self.providers.values()
    }

    pub fn notices(&self) -> &[String] {
        &self.notices
    }

    pub fn failures(&self) -> &[Arc<PluginError>] {
        &self.failures
    }
}

/// `*.wasm` files directly in `dir`, sorted; a missing folder has none. Hidden files are skipped,
/// so that a copy in progress named `.acme.wasm` is never loaded half-written.
fn dropin_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| {
            path.extension().is_some_and(|ext| ext == "wasm")
                && path.file_name().is_some_and(|name| !name.to_string_lossy().starts_with('.'))
                && path.is_file()
        })
        .collect();
    files.sort();
    files
}
