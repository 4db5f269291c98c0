//! The official MCP conformance suite's client leg against `latchkey tools`: every authorization
//! scenario (discovery variants, CIMD, scope selection and step-up, the three token-endpoint
//! authentication methods, pre-registration, the 2025-03-26 back-compat and the 2026-07-28 issuer,
//! resource, offline_access and migration checks), on both protocol eras. The work is done by
//! `tests/conformance/run` (which also runs by hand); this test runs it with this build's binary.
//!
//! Prerequisites: `npm ci --prefix tests/peers` (the pinned harness and Node 22) and curl.

use std::path::Path;
use std::process::Command;

use latchkey_tests::latchkey_bin;

#[test]
fn every_client_scenario_passes() {
    let bin = latchkey_bin();
    let target_dir = bin.parent().and_then(Path::parent).expect("the binary lives in <target>/<profile>");
    let runner = Path::new(env!("CARGO_MANIFEST_DIR")).join("conformance/run");
    let output = Command::new(&runner)
        .env("LATCHKEY_BIN", &bin)
        .env("CARGO_TARGET_DIR", target_dir)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", runner.display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the conformance run failed ({}):\n{stdout}\n{stderr}", output.status);
    // The runner exits 0 only when every scenario passed; make sure it ran them.
    assert!(
        stdout.contains("pass  auth/pre-registration") && stdout.contains(", 0 failed,"),
        "unexpected runner output:\n{stdout}\n{stderr}"
    );
}
