//! The provider crates of this workspace against the binary's built-in set: every crate under
//! `providers/` (the SDK aside) must be embedded, and must document its quirks with enough test
//! vectors, each citing the provider's documentation, that pass through the compiled component in
//! the production sandbox. A provider that is added but not embedded, or embedded without
//! vectors, fails here by name.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use latchkey::plugins::vectors;
use latchkey::plugins::{Origin, Registry};
use latchkey_tests::Home;

/// The fewest vectors a provider needs: its flow, its distinctive quirks and its error
/// classification.
const FEWEST_VECTORS: usize = 4;

fn providers_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace").join("providers")
}

/// Every provider crate's id: the folders under `providers/` with a Cargo.toml, except the SDK.
fn provider_crates() -> BTreeSet<String> {
    std::fs::read_dir(providers_dir())
        .expect("the providers folder")
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.join("Cargo.toml").is_file())
        .filter_map(|path| path.file_name().map(|name| name.to_string_lossy().into_owned()))
        .filter(|name| name != "sdk")
        .collect()
}

fn built_in_ids(registry: &Registry) -> BTreeSet<String> {
    registry
        .providers()
        .filter(|provider| matches!(provider.origin(), Origin::BuiltIn(_)))
        .map(|provider| provider.id().to_string())
        .collect()
}

#[test]
fn every_provider_crate_is_built_in_and_passes_its_documented_vectors() {
    let (_runtime, registry) = Home::new().load();
    let crates = provider_crates();
    let built_in = built_in_ids(&registry);
    assert_eq!(crates, built_in, "provider crates and built-in providers differ: host/build.rs embeds every providers/* crate but the SDK");

    let mut problems = Vec::new();
    for id in &crates {
        let provider = registry.get(id).unwrap_or_else(|error| panic!("{error}"));
        let dir = providers_dir().join(id).join("vectors");
        let loaded = vectors::load_dir(&dir).unwrap_or_else(|error| panic!("{error}"));
        if loaded.len() < FEWEST_VECTORS {
            problems.push(format!("{id}: {} vectors, fewer than {FEWEST_VECTORS}", loaded.len()));
        }
        for vector in &loaded {
            if !vector.source.starts_with("https://") {
                problems.push(format!("{}: `source` must be a documentation URL, not {:?}", vector.file.display(), vector.source));
            }
            let outcome = vector.run(provider);
            if !outcome.passed() {
                problems.push(outcome.to_string());
            }
        }
    }
    assert!(problems.is_empty(), "{} problems:\n{}", problems.len(), problems.join("\n"));
}
