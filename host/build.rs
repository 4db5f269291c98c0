//! Builds the built-in provider components (`providers/*`) for `wasm32-wasip2` and generates the
//! table that embeds them in the binary (`src/plugins/builtin.rs` includes it).
//!
//! The nested cargo uses its own target folder beside this build's, so it never waits on the lock
//! of the build that runs this script.
//!
//! Fuzz builds (`cargo fuzz`, which sets `--cfg fuzzing`) embed an empty table instead: the fuzz
//! targets (`fuzz/`) exercise parsers that never load a component, and building 23 components with
//! LTO would be most of their build.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The provider crates embedded in the binary, as (file stem, package).
const BUILT_IN: &[(&str, &str)] = &[
    ("standard", "latchkey-provider-standard"),
    ("google", "latchkey-provider-google"),
    ("slack", "latchkey-provider-slack"),
    ("microsoft", "latchkey-provider-microsoft"),
    ("github", "latchkey-provider-github"),
    ("atlassian", "latchkey-provider-atlassian"),
    ("dropbox", "latchkey-provider-dropbox"),
    ("notion", "latchkey-provider-notion"),
    ("salesforce", "latchkey-provider-salesforce"),
    ("linear", "latchkey-provider-linear"),
    ("zoom", "latchkey-provider-zoom"),
    ("box", "latchkey-provider-box"),
    ("gitlab", "latchkey-provider-gitlab"),
    ("okta", "latchkey-provider-okta"),
    ("auth0", "latchkey-provider-auth0"),
    ("spotify", "latchkey-provider-spotify"),
    ("x", "latchkey-provider-x"),
    ("reddit", "latchkey-provider-reddit"),
    ("hubspot", "latchkey-provider-hubspot"),
    ("strava", "latchkey-provider-strava"),
    ("figma", "latchkey-provider-figma"),
    ("asana", "latchkey-provider-asana"),
    ("discord", "latchkey-provider-discord"),
];

const TARGET: &str = "wasm32-wasip2";
const PROFILE: &str = "provider";

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let workspace = manifest_dir.parent().unwrap().to_path_buf();
    for watched in ["providers", "wit", "Cargo.lock", "Cargo.toml"] {
        println!("cargo:rerun-if-changed={}", workspace.join(watched).display());
    }

    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").unwrap());
    let mut table =
        String::from("/// Built-in provider components: (name, component bytes).\npub static BUILT_IN: &[(&str, &[u8])] = &[\n");
    if std::env::var_os("CARGO_CFG_FUZZING").is_none() {
        let target_dir = providers_target_dir(&out_dir);
        build_providers(&workspace, &target_dir);
        let artefacts = target_dir.join(TARGET).join(PROFILE);
        for (stem, package) in BUILT_IN {
            let wasm = artefacts.join(format!("{}.wasm", package.replace('-', "_")));
            assert!(wasm.is_file(), "{} was not built", wasm.display());
            table.push_str(&format!("    ({stem:?}, include_bytes!({:?})),\n", wasm.display().to_string()));
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

fn build_providers(workspace: &Path, target_dir: &Path) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command.current_dir(workspace).args(["build", "--profile", PROFILE, "--target", TARGET, "--target-dir"]).arg(target_dir);
    for (_, package) in BUILT_IN {
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
