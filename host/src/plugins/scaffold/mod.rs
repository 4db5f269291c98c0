//! `latchkey provider new`: a provider crate on the guest SDK that builds at once with
//! `cargo build --target wasm32-wasip2 --release`, inside or outside latchkey's repository.
//!
//! The crate has a `Cargo.toml` with a release profile for small components, a `src/lib.rs` that
//! writes out every hook with its standard default, a `vectors/` folder with two example test
//! vectors (run by `latchkey provider test`), and a README. The files are the templates in
//! `template/`, with `{{placeholders}}` filled in.
//!
//! The SDK (`latchkey-provider-sdk`) is not on crates.io yet, so the new crate depends on it by
//! path when latchkey knows where the SDK's source is (`--sdk-path`, `LATCHKEY_SDK_PATH`, or the
//! checkout this latchkey was built from, while it is still there), and otherwise by git at the
//! tag of this latchkey's version. `docs/provider-guide.md` says how the SDK and the WIT package
//! are published, after which the dependency is a plain version.

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::bindings::Contract;
use super::provider::check_id;

/// The SDK's package name, as its Cargo.toml declares it.
pub const SDK_PACKAGE: &str = "latchkey-provider-sdk";

/// Where a new provider crate gets the SDK from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SdkSource {
    /// A folder holding the SDK crate.
    Path(PathBuf),
    /// latchkey's repository, at a tag.
    Git { url: String, tag: String },
}

impl SdkSource {
    /// `explicit` (from `--sdk-path` or `LATCHKEY_SDK_PATH`) when given, which must be the SDK;
    /// else the checkout this binary was built from, if it still has the SDK; else git.
    pub fn locate(explicit: Option<&Path>) -> anyhow::Result<SdkSource> {
        if let Some(dir) = explicit {
            if !is_sdk(dir) {
                anyhow::bail!(
                    "{} is not the {SDK_PACKAGE} crate (its Cargo.toml does not name it); give the folder \
                     providers/sdk of a latchkey checkout",
                    dir.display()
                );
            }
            return Ok(SdkSource::Path(absolute(dir)?));
        }
        let checkout = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("providers").join("sdk");
        if is_sdk(&checkout) {
            return Ok(SdkSource::Path(absolute(&checkout)?));
        }
        Ok(SdkSource::Git { url: env!("CARGO_PKG_REPOSITORY").to_string(), tag: format!("v{}", env!("CARGO_PKG_VERSION")) })
    }

    /// The dependency line for the new crate's Cargo.toml.
    fn dependency(&self) -> String {
        match self {
            SdkSource::Path(dir) => format!("{SDK_PACKAGE} = {{ path = {} }}", toml_string(&dir.to_string_lossy())),
            SdkSource::Git { url, tag } => format!(
                "# The SDK from latchkey's repository; once it is on crates.io: {SDK_PACKAGE} = \"{}\"\n\
                 {SDK_PACKAGE} = {{ git = {}, tag = {} }}",
                env!("CARGO_PKG_VERSION"),
                toml_string(url),
                toml_string(tag)
            ),
        }
    }
}

/// What `provider new` made.
#[derive(Debug)]
pub struct Created {
    pub dir: PathBuf,
    pub files: Vec<PathBuf>,
    /// Where `cargo build --target wasm32-wasip2 --release` puts the component, relative to `dir`.
    pub artefact: PathBuf,
}

/// The templates: (path in the new crate, text).
const TEMPLATES: &[(&str, &str)] = &[
    ("Cargo.toml", include_str!("template/Cargo.toml.tmpl")),
    ("src/lib.rs", include_str!("template/lib.rs.tmpl")),
    ("vectors/configure-default-flow.json", include_str!("template/vectors/configure-default-flow.json")),
    ("vectors/token-exchange-success.json", include_str!("template/vectors/token-exchange-success.json")),
    ("README.md", include_str!("template/README.md.tmpl")),
    (".gitignore", include_str!("template/gitignore.tmpl")),
];

/// Write a provider crate for provider `id` into `dir`, which must not exist or be empty.
pub fn create(id: &str, dir: &Path, sdk: &SdkSource) -> anyhow::Result<Created> {
    check_id(id).map_err(|message| anyhow::anyhow!("cannot use `{id}` as the provider's name: {message}"))?;
    if std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some()) {
        anyhow::bail!("{} already exists and is not empty; choose another folder with --path", dir.display());
    }
    let crate_name = format!("latchkey-provider-{id}");
    let artefact = format!("{}.wasm", crate_name.replace('-', "_"));
    let values = [
        ("id", id.to_string()),
        ("display_name", display_name(id)),
        ("type_name", type_name(id)),
        ("crate", crate_name),
        ("artefact", artefact.clone()),
        ("contract", Contract::CURRENT.package()),
        ("sdk_dependency", sdk.dependency()),
    ];
    let mut files = Vec::new();
    for (name, template) in TEMPLATES {
        let path = dir.join(name);
        let parent = path.parent().expect("template paths are relative files");
        std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
        std::fs::write(&path, render(template, &values)).with_context(|| format!("cannot write {}", path.display()))?;
        files.push(path);
    }
    Ok(Created { dir: dir.to_path_buf(), files, artefact: Path::new("target").join("wasm32-wasip2").join("release").join(artefact) })
}

fn render(template: &str, values: &[(&str, String)]) -> String {
    let text = values.iter().fold(template.to_string(), |text, (key, value)| text.replace(&format!("{{{{{key}}}}}"), value));
    debug_assert!(!text.contains("{{"), "a template placeholder has no value:\n{text}");
    text
}

/// `acme-id` → `Acme Id`: a starting point the author edits in `info()`.
fn display_name(id: &str) -> String {
    id.split('-').filter(|part| !part.is_empty()).map(capitalise).collect::<Vec<_>>().join(" ")
}

/// `acme-id` → `AcmeIdProvider`; a Rust type name cannot start with a digit.
fn type_name(id: &str) -> String {
    let name: String = id.split('-').map(capitalise).collect::<String>() + "Provider";
    if name.starts_with(|c: char| c.is_ascii_digit()) { format!("P{name}") } else { name }
}

fn capitalise(word: &str) -> String {
    let mut chars = word.chars();
    chars.next().map(|first| first.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
}

fn is_sdk(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("Cargo.toml"))
        .is_ok_and(|manifest| manifest.lines().any(|line| line.replace(' ', "") == format!("name=\"{SDK_PACKAGE}\"")))
}

fn absolute(dir: &Path) -> anyhow::Result<PathBuf> {
    dunce::canonicalize(dir).with_context(|| format!("cannot resolve {}", dir.display()))
}

/// A TOML basic string.
fn toml_string(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_derived_from_the_id() {
        assert_eq!(display_name("acme-id"), "Acme Id");
        assert_eq!(type_name("acme-id"), "AcmeIdProvider");
        assert_eq!(type_name("3scale"), "P3scaleProvider");
    }

    #[test]
    fn every_placeholder_of_every_template_is_filled() {
        let dir = tempfile::tempdir().unwrap();
        let sdk = SdkSource::Git { url: "https://example.com/latchkey".into(), tag: "v9.9.9".into() };
        let created = create("acme", &dir.path().join("acme"), &sdk).unwrap();
        for file in &created.files {
            let text = std::fs::read_to_string(file).unwrap();
            assert!(!text.contains("{{"), "{} has an unfilled placeholder", file.display());
        }
        let manifest = std::fs::read_to_string(dir.path().join("acme/Cargo.toml")).unwrap();
        assert!(manifest.contains(r#"latchkey-provider-sdk = { git = "https://example.com/latchkey", tag = "v9.9.9" }"#), "{manifest}");
        assert!(manifest.contains(r#"name = "latchkey-provider-acme""#), "{manifest}");
        let lib = std::fs::read_to_string(dir.path().join("acme/src/lib.rs")).unwrap();
        assert!(lib.contains("export_provider!(AcmeProvider);") && lib.contains(r#"id: "acme".into()"#), "{lib}");
        assert_eq!(created.artefact, Path::new("target/wasm32-wasip2/release/latchkey_provider_acme.wasm"));
    }

    #[test]
    fn a_bad_name_or_a_used_folder_is_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let sdk = SdkSource::Git { url: "u".into(), tag: "t".into() };
        let error = create("Acme ID", &dir.path().join("x"), &sdk).unwrap_err().to_string();
        assert!(error.contains("`Acme ID`") && error.contains("a-z, 0-9"), "{error}");
        std::fs::write(dir.path().join("taken"), "").unwrap();
        let error = create("acme", dir.path(), &sdk).unwrap_err().to_string();
        assert!(error.contains("not empty") && error.contains("--path"), "{error}");
    }

    #[test]
    fn an_sdk_path_must_hold_the_sdk() {
        let dir = tempfile::tempdir().unwrap();
        let error = SdkSource::locate(Some(dir.path())).unwrap_err().to_string();
        assert!(error.contains("is not the latchkey-provider-sdk crate"), "{error}");
        let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../providers/sdk");
        assert_eq!(SdkSource::locate(Some(&sdk)).unwrap(), SdkSource::Path(dunce::canonicalize(&sdk).unwrap()));
    }
}
