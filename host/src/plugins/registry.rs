//! The providers this latchkey knows: the built-ins embedded in the binary, then the drop-ins in
//! `<config dir>/providers/*.wasm`. A drop-in with a built-in's id replaces it only when the user
//! allowed exactly that file (`provider install --replace`, see [`super::replacements`]); otherwise
//! it is not loaded and the registry says how to allow it. A drop-in that fails to load is reported
//! with its file and cause, and every other provider keeps working. A long-running process swaps in a [`Registry::reloaded`] one when the
//! folder changes (see [`super::watch`]).
//!
//! Built-ins are loaded the first time they are asked for, not when the registry is: each one
//! costs a map of its compiled code, an `InstancePre` and an `info()` call, and most processes
//! need one provider or none (a gateway in front of servers without OAuth needs none, and loading
//! all 23 took its memory from under 30 MB to over 70 MB). A built-in's id is its name in the
//! build, so it can be found without loading it. Drop-ins are loaded with the registry: their id
//! is only known from their `info()`, and a broken file should be reported at once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use super::builtin::{BUILT_IN, BuiltInComponent};
use super::error::{Origin, PluginError, Problem};
use super::provider::Provider;
use super::replacements::Replacements;
use super::runtime::Runtime;

/// Drop-ins are the `*.wasm` files directly in the providers folder.
pub(crate) const DROPIN_EXTENSION: &str = "wasm";

#[derive(Clone)]
pub struct Registry {
    /// Every built-in, loaded or not; shared with the registries that replace this one on a
    /// reload, so a built-in is loaded once per process.
    built_ins: Arc<[Arc<BuiltIn>]>,
    /// What each id resolves to: its built-in, or the drop-in that has the id.
    entries: BTreeMap<String, Entry>,
    /// Things the user should know that are not failures (a drop-in overriding a built-in).
    notices: Vec<String>,
    /// Drop-ins that could not be loaded.
    dropin_failures: Vec<Arc<PluginError>>,
}

#[derive(Clone)]
enum Entry {
    BuiltIn(Arc<BuiltIn>),
    /// Boxed: a provider is much larger than the `Arc` of a built-in.
    DropIn(Box<Provider>),
}

/// A built-in provider, loaded on first use.
struct BuiltIn {
    runtime: Arc<Runtime>,
    component: &'static BuiltInComponent,
    loaded: OnceLock<Result<Provider, Arc<PluginError>>>,
    /// The issuers its `info()` declares, learnt without keeping it loaded (see
    /// [`Registry::match_issuer`]).
    issuers: OnceLock<Vec<String>>,
}

/// Asked for a provider id that nothing provides.
#[derive(Debug, thiserror::Error)]
#[error("unknown provider `{id}`; known providers: {known}. A custom provider goes in {dropin_dir} (see `latchkey provider verify`)")]
pub struct UnknownProvider {
    pub id: String,
    pub known: String,
    pub dropin_dir: String,
}

/// Why [`Registry::get`] has no provider to give.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error(transparent)]
    Unknown(#[from] UnknownProvider),
    /// A built-in that does not load: a bug in this build, shown with its cause.
    #[error(transparent)]
    NotLoaded(Arc<PluginError>),
}

impl BuiltIn {
    fn provider(&self) -> Result<&Provider, &Arc<PluginError>> {
        self.loaded
            .get_or_init(|| {
                let loaded = self.load();
                if let Err(error) = &loaded {
                    tracing::debug!("not loaded: {error}");
                }
                loaded.map_err(Arc::new)
            })
            .as_ref()
    }

    fn load(&self) -> Result<Provider, PluginError> {
        let name = self.component.name;
        let provider = Provider::load_built_in(&self.runtime, self.component)?;
        if provider.id() != name {
            let message = format!("it declares the id `{}`, but is built in as `{name}`", provider.id());
            return Err(PluginError::new(provider.origin(), Problem::Invalid(message)));
        }
        Ok(provider)
    }

    /// The issuers it declares. A built-in not used yet is loaded for them and dropped again: its
    /// compiled code (~0.8 MB mapped, besides the engine's tables) stays only where it is used,
    /// which a gateway whose servers name no provider would otherwise hold for every built-in.
    fn issuers(&self) -> &[String] {
        self.issuers.get_or_init(|| match self.loaded.get() {
            Some(loaded) => loaded.as_ref().map(|provider| provider.info().issuers.clone()).unwrap_or_default(),
            None => match self.load() {
                Ok(provider) => provider.info().issuers.clone(),
                Err(error) => {
                    tracing::debug!("not loaded: {error}");
                    let _ = self.loaded.set(Err(Arc::new(error)));
                    Vec::new()
                }
            },
        })
    }

    /// The provider, if it has been loaded already.
    fn loaded(&self) -> Option<&Provider> {
        self.loaded.get().and_then(|loaded| loaded.as_ref().ok())
    }
}

impl Entry {
    fn provider(&self) -> Result<&Provider, &Arc<PluginError>> {
        match self {
            Entry::BuiltIn(built_in) => built_in.provider(),
            Entry::DropIn(provider) => Ok(&**provider),
        }
    }

    fn loaded(&self) -> Option<&Provider> {
        match self {
            Entry::BuiltIn(built_in) => built_in.loaded(),
            Entry::DropIn(provider) => Some(&**provider),
        }
    }
}

impl Registry {
    /// The built-ins (not loaded yet), then every `*.wasm` in `dropin_dir` (in name order), when
    /// given.
    pub fn load(runtime: &Arc<Runtime>, dropin_dir: Option<&Path>) -> Registry {
        let built_ins = BUILT_IN
            .iter()
            .map(|component| Arc::new(BuiltIn { runtime: runtime.clone(), component, loaded: OnceLock::new(), issuers: OnceLock::new() }))
            .collect();
        Registry::with_dropins(built_ins, runtime, dropin_dir)
    }

    fn with_dropins(built_ins: Arc<[Arc<BuiltIn>]>, runtime: &Arc<Runtime>, dropin_dir: Option<&Path>) -> Registry {
        let entries = built_ins.iter().map(|built_in| (built_in.component.name.to_string(), Entry::BuiltIn(built_in.clone()))).collect();
        let mut registry = Registry { built_ins, entries, notices: Vec::new(), dropin_failures: Vec::new() };
        if let Some(dir) = dropin_dir {
            let replacements = Replacements::load(dir).unwrap_or_else(|problem| {
                registry.notices.push(problem);
                Replacements::default()
            });
            for path in crate::paths::visible_files(dir, &[DROPIN_EXTENSION]) {
                registry.load_dropin(runtime, &replacements, path);
            }
        }
        registry
    }

    /// The registry after the drop-in folder changed: loaded afresh, except that a drop-in whose
    /// file fails to load now keeps the provider it gave before, so a broken build or a
    /// half-written copy never takes a working provider away. The failure is still reported.
    pub fn reloaded(&self, runtime: &Arc<Runtime>, dropin_dir: &Path) -> Registry {
        let mut fresh = Registry::with_dropins(self.built_ins.clone(), runtime, Some(dropin_dir));
        // A replacement of a built-in that is not allowed (any more) is not broken: the built-in is
        // what the user asked for.
        let broken: Vec<Origin> = fresh
            .dropin_failures
            .iter()
            .filter(|failure| !matches!(failure.problem, Problem::ReplacesBuiltIn { .. }))
            .map(|failure| failure.origin.clone())
            .collect();
        let previous_dropins = self.entries.values().filter_map(|entry| match entry {
            Entry::DropIn(provider) => Some(provider),
            Entry::BuiltIn(_) => None,
        });
        for previous in previous_dropins.filter(|provider| broken.contains(provider.origin())) {
            // Another drop-in that loaded now owns the id: the user's folder decides, not history.
            let owned_by_dropin = matches!(fresh.entries.get(previous.id()), Some(Entry::DropIn(_)));
            if !owned_by_dropin {
                fresh.notices.push(format!(
                    "{} did not load; keeping provider `{}` {} as it was before the file changed",
                    previous.origin(),
                    previous.id(),
                    previous.info().version
                ));
                fresh.entries.insert(previous.id().to_string(), Entry::DropIn(previous.clone()));
            }
        }
        fresh
    }

    fn load_dropin(&mut self, runtime: &Arc<Runtime>, replacements: &Replacements, path: PathBuf) {
        let origin = Origin::File(path.clone());
        let loaded = std::fs::read(&path)
            .map_err(|error| PluginError::new(&origin, Problem::Unreadable(error)))
            .and_then(|bytes| Provider::load(runtime, origin.clone(), &bytes));
        let provider = match loaded {
            Ok(provider) => provider,
            Err(error) => {
                // Kept for the caller to show (`failures()`); logging it here as well would show
                // it twice.
                tracing::debug!("not loaded: {error}");
                return self.dropin_failures.push(Arc::new(error));
            }
        };
        match self.entries.get(provider.id()) {
            Some(Entry::BuiltIn(_)) if !replacements.allows(provider.id(), provider.sha256()) => {
                let problem = Problem::ReplacesBuiltIn { id: provider.id().to_string(), file: path.clone() };
                self.dropin_failures.push(Arc::new(PluginError::new(&Origin::File(path), problem)));
            }
            Some(Entry::BuiltIn(built_in)) => {
                let replaced = match built_in.provider() {
                    Ok(existing) => format!("`{}` {}", existing.id(), existing.info().version),
                    Err(_) => format!("`{}`", built_in.component.name),
                };
                let notice = format!(
                    "{} (provider `{}` {}) replaces the built-in {replaced}, as `latchkey provider install --replace` allowed",
                    path.display(),
                    provider.id(),
                    provider.info().version
                );
                tracing::info!("{notice}");
                self.notices.push(notice);
                self.entries.insert(provider.id().to_string(), Entry::DropIn(Box::new(provider)));
            }
            Some(Entry::DropIn(existing)) => {
                let problem = Problem::DuplicateId { id: provider.id().to_string(), first: existing.origin().clone() };
                self.dropin_failures.push(Arc::new(PluginError::new(&Origin::File(path), problem)));
            }
            None => {
                self.entries.insert(provider.id().to_string(), Entry::DropIn(Box::new(provider)));
            }
        }
    }

    /// The provider called `id`, loading it if it is a built-in not used yet.
    pub fn get(&self, id: &str) -> Result<&Provider, LookupError> {
        let entry = self.entries.get(id).ok_or_else(|| UnknownProvider {
            id: id.to_string(),
            known: self.entries.keys().cloned().collect::<Vec<_>>().join(", "),
            dropin_dir: crate::paths::Paths::discover()
                .map(|paths| paths.providers_dir().display().to_string())
                .unwrap_or_else(|_| "the providers folder".into()),
        })?;
        entry.provider().map_err(|error| LookupError::NotLoaded(error.clone()))
    }

    /// Whether some provider has the id `id` (without loading it).
    pub fn contains(&self, id: &str) -> bool {
        self.entries.contains_key(id)
    }

    /// The provider that declares `issuer`, exactly or by a prefix ending in `/`. Issuers are
    /// declared in `info()`: the providers loaded already are asked first, then the others' issuers
    /// are learnt (see [`BuiltIn::issuers`]), and only the one that matches stays loaded.
    pub fn match_issuer(&self, issuer: &str) -> Option<&Provider> {
        let issuer = issuer.trim_end_matches('/');
        let declares = |issuers: &[String]| {
            issuers.iter().any(|declared| {
                if declared.ends_with('/') {
                    issuer.starts_with(declared.as_str()) || issuer == declared.trim_end_matches('/')
                } else {
                    issuer == declared.trim_end_matches('/')
                }
            })
        };
        if let Some(provider) = self.loaded().find(|provider| declares(&provider.info().issuers)) {
            return Some(provider);
        }
        self.entries.values().find_map(|entry| match entry {
            Entry::BuiltIn(built_in) if built_in.loaded().is_none() && declares(built_in.issuers()) => built_in.provider().ok(),
            _ => None,
        })
    }

    /// Every provider, by id, loading the built-ins not used yet. A built-in that fails to load
    /// is left out and shows in [`Registry::failures`].
    pub fn providers(&self) -> impl Iterator<Item = &Provider> {
        self.entries.values().filter_map(|entry| entry.provider().ok())
    }

    /// The providers loaded so far, by id; loads nothing.
    pub fn loaded(&self) -> impl Iterator<Item = &Provider> {
        self.entries.values().filter_map(Entry::loaded)
    }

    pub fn notices(&self) -> &[String] {
        &self.notices
    }

    /// The drop-ins that did not load, then the built-ins that failed when they were first used.
    pub fn failures(&self) -> Vec<Arc<PluginError>> {
        let built_ins = self.built_ins.iter().filter_map(|built_in| built_in.loaded.get()?.as_ref().err().cloned());
        self.dropin_failures.iter().cloned().chain(built_ins).collect()
    }
}
