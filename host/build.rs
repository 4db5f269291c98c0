//! Builds the built-in provider components (every crate in `providers/*` but the SDK, so a new
//! built-in is one new folder) for `wasm32-wasip2` and generates the table that embeds them in
//! the binary (`src/plugins/builtin.rs` includes it), each with its SHA-256: the name of its
//! compiled code in the cache, known without reading (and so paging in) 5 MB of components at
//! every start.
//!
//! The nested cargo uses its own target folder beside this build's, so it never waits on the lock
//! of the build that runs this script.
//!
//! Fuzz builds (`cargo fuzz`, which sets `--cfg fuzzing`) embed an empty table instead: the fuzz
//! targets (`fuzz/`) exercise parsers that never load a component, and building 23 components with
//! LTO would be most of their build.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The folder under `providers/` that is the guest SDK, not a provider.
const SDK: &str = "sdk";

const TARGET: &str = "wasm32-wasip2";
const PROFILE: &str = "provider";

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let workspace = manifest_dir.parent().unwrap().to_path_buf();
    for watched in ["providers", "wit", "Cargo.lock", "Cargo.toml"] {
        println!("cargo:rerun-if-changed={}", workspace.join(watched).display());
    }

    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").unwrap());
    let mut table = String::from("/// Every built-in provider component.\npub static BUILT_IN: &[BuiltInComponent] = &[\n");
    if std::env::var_os("CARGO_CFG_FUZZING").is_none() {
        let target_dir = providers_target_dir(&out_dir);
        let built_in = provider_crates(&workspace);
        build_providers(&workspace, &target_dir, &built_in);
        let artefacts = target_dir.join(TARGET).join(PROFILE);
        for (stem, package) in &built_in {
            let wasm = artefacts.join(format!("{}.wasm", package.replace('-', "_")));
            assert!(wasm.is_file(), "{} was not built", wasm.display());
            let sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(std::fs::read(&wasm).unwrap()));
            let path = wasm.display().to_string();
            table.push_str(&format!("    BuiltInComponent {{ name: {stem:?}, sha256: {sha256:?}, bytes: include_bytes!({path:?}) }},\n"));
        }
    }
    table.push_str("];\n");
    std::fs::write(out_dir.join("builtin_providers.rs"), table).unwrap();
}

/// `<target>/latchkey-providers`, next to the `debug`/`release` folder this build writes into. A
/// build for another platform (`--target x86_64-pc-windows-gnu`) writes into
/// `<target>/<triple>/debug`, and shares the folder too: the components are the same for every
/// host platform, and building them is most of a cold build's build script.
fn providers_target_dir(out_dir: &Path) -> PathBuf {
    let build =
        out_dir.ancestors().find(|dir| dir.file_name().is_some_and(|name| name == "build")).expect("OUT_DIR is under a build folder");
    let mut target_dir = build.parent().and_then(Path::parent).unwrap();
    let triple = std::env::var_os("TARGET").expect("cargo sets TARGET for build scripts");
    if target_dir.file_name() == Some(triple.as_os_str()) {
        target_dir = target_dir.parent().unwrap();
    }
    target_dir.join("latchkey-providers")
}

/// Every provider crate, as (folder name, package name), in folder order: `providers/<name>/` with
/// a `Cargo.toml`, except the SDK. The workspace's `members` take the same folders.
fn provider_crates(workspace: &Path) -> Vec<(String, String)> {
    let providers = workspace.join("providers");
    let mut crates: Vec<(String, String)> = std::fs::read_dir(&providers)
        .expect("reading providers/")
        .filter_map(|entry| {
            let dir = entry.ok()?.path();
            let stem = dir.file_name()?.to_str()?.to_string();
            let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).ok()?;
            (stem != SDK).then(|| (stem, package_name(&manifest, &dir)))
        })
        .collect();
    crates.sort();
    crates
}

/// `[package] name` of a provider's manifest: the first `name = "…"` line, which is where `provider
/// new` and every provider crate put it.
fn package_name(manifest: &str, dir: &Path) -> String {
    manifest
        .lines()
        .find_map(|line| line.trim().strip_prefix("name").map(str::trim).and_then(|rest| rest.strip_prefix('=')))
        .map(|value| value.trim().trim_matches('"').to_string())
        .unwrap_or_else(|| panic!("{} has no `name = \"…\"` line", dir.join("Cargo.toml").display()))
}

fn build_providers(workspace: &Path, target_dir: &Path, built_in: &[(String, String)]) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command.current_dir(workspace).args(["build", "--profile", PROFILE, "--target", TARGET, "--target-dir"]).arg(target_dir);
    for (_, package) in built_in {
        command.args(["-p", package]);
    }
    // The host's flags and wrappers (coverage, sanitizers, clippy) are not meant for the guests.
    for variable in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
    ] {
        command.env_remove(variable);
    }
    let output = command.output().expect("running cargo to build the provider components");
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        if stderr.contains("target may not be installed") || stderr.contains("can't find crate for `core`") {
            panic!("the {TARGET} target is not installed; run `rustup target add {TARGET}` and build again");
        }
        panic!("building the built-in provider components failed:\n{stderr}");
    }
}
