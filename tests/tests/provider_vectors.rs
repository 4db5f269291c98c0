//! The test-vector runner (`providers/<id>/vectors/*.json`: the providers' own documented requests
//! and responses, run through the compiled components in the production sandbox): a wrong
//! expectation must fail, with a diff that says which field differs and how. That every built-in
//! passes its vectors, each citing its source, is `provider_coverage.rs`; the providers whose quirks
//! matter most need more vectors than its minimum, checked here.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use latchkey::plugins::vectors;
use latchkey::plugins::{Limits, Provider, Registry, Runtime};

/// Providers whose quirks the vectors must cover, with the fewest vectors each should have.
const COVERAGE: &[(&str, usize)] = &[("google", 8), ("slack", 8), ("microsoft", 8), ("standard", 3)];

/// The built-in provider `id`, from a registry made once for this test process; built-ins compile
/// when first used (seconds each in a debug build), so only the ones these tests run.
fn provider(id: &str) -> &'static Provider {
    static REGISTRY: OnceLock<(Arc<Runtime>, Registry)> = OnceLock::new();
    let (_, registry) = REGISTRY.get_or_init(|| {
        let runtime = Runtime::new(None, Limits::default()).expect("a provider runtime");
        let registry = Registry::load(&runtime, None);
        (runtime, registry)
    });
    registry.get(id).unwrap_or_else(|error| panic!("{error}"))
}

fn vectors_dir(id: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace").join("providers").join(id).join("vectors")
}

#[test]
fn the_providers_that_matter_have_enough_vectors() {
    for (id, fewest) in COVERAGE {
        let count = vectors::load_dir(&vectors_dir(id)).unwrap_or_else(|error| panic!("{error}")).len();
        assert!(count >= *fewest, "provider `{id}` has {count} vectors, fewer than the {fewest} its quirks need");
    }
}

/// A vector on Google's documented code-exchange response, with `fields` (such as `"config"`)
/// before the hook and `expect` as the expectation.
fn google_vector(fields: &str, expect: &str) -> String {
    format!(
        r#"{{
            "name": "code exchange, with a deliberately wrong expectation",
            "source": "https://developers.google.com/identity/protocols/oauth2/web-server#exchange-authorization-code",
            {fields}
            "hook": "read-token-response",
            "context": {{"requested_scopes": ["https://www.googleapis.com/auth/drive.metadata.readonly"]}},
            "response": {{"json": {{
                "access_token": "1/fFAGRNJru1FTz70BzhT3Zg",
                "expires_in": 3920,
                "token_type": "Bearer",
                "scope": "https://www.googleapis.com/auth/drive.metadata.readonly",
                "refresh_token": "1//xEoDL4iW3cxlI7yDbSRFYNG01kVKM2C-259HOF2aQbI"
            }}}},
            "expect": {expect}
        }}"#
    )
}

const WRONG_TOKEN: &str = r#"{"token": {
    "access_token": "1/fFAGRNJru1FTz70BzhT3Zg",
    "expires_in": 3600,
    "refresh_token": null,
    "scopes": ["https://www.googleapis.com/auth/drive.metadata.readonly"],
    "extra": {"team_id": "T1"}
}}"#;

#[test]
fn a_wrong_expectation_fails_with_a_field_by_field_diff() {
    let vector = vectors::parse(&google_vector("", WRONG_TOKEN), Path::new("wrong.json")).expect("a valid vector");
    let outcome = vector.run(provider("google"));
    assert!(!outcome.passed(), "a wrong expectation passed:\n{outcome}");
    assert_eq!(outcome.hook_error, None);
    let report = outcome.to_string();
    for line in [
        "FAIL wrong.json: code exchange, with a deliberately wrong expectation",
        "  source: https://developers.google.com/identity/protocols/oauth2/web-server#exchange-authorization-code",
        "  token.expires_in: expected 3600, got 3920",
        "  token.refresh_token: expected null, got \"1//xEoDL4iW3cxlI7yDbSRFYNG01kVKM2C-259HOF2aQbI\"",
        "  token.extra.team_id: expected \"T1\", got nothing",
    ] {
        assert!(report.lines().any(|reported| reported == line), "the report lacks {line:?}:\n{report}");
    }
    // The fields the vector got right are not reported.
    assert!(!report.contains("access_token:") && !report.contains("scopes"), "{report}");
}

#[test]
fn an_answer_of_the_other_kind_is_reported_in_full() {
    let vector = google_vector("", r#"{"failure": {"kind": "reauthorize"}}"#);
    let outcome = vectors::parse(&vector, Path::new("other.json")).expect("a valid vector").run(provider("google"));
    let report = outcome.to_string();
    assert!(report.contains("  token: expected no token (expected failure {\"kind\":\"reauthorize\"}), got {"), "{report}");
    assert!(report.contains("\"access_token\":\"1/fFAGRNJru1FTz70BzhT3Zg\""), "{report}");
}

#[test]
fn a_vector_with_an_unknown_field_is_refused_before_it_runs() {
    let vector = google_vector(r#""expected": {},"#, WRONG_TOKEN);
    let error = vectors::parse(&vector, Path::new("typo.json")).expect_err("an unknown field is refused");
    assert!(error.to_string().starts_with("typo.json: ") && error.to_string().contains("unknown field `expected`"), "{error}");
}

#[test]
fn a_refused_configuration_is_reported_as_a_hook_error() {
    let vector = google_vector(r#""config": {"tenant": "common"},"#, WRONG_TOKEN);
    let outcome = vectors::parse(&vector, Path::new("config.json")).expect("a valid vector").run(provider("google"));
    let error = outcome.hook_error.clone().unwrap_or_else(|| panic!("no hook error:\n{outcome}"));
    assert!(error.contains("unknown config key `tenant`"), "{error}");
    assert!(outcome.to_string().contains("  hook failed: "), "{outcome}");
}

#[test]
fn a_refusal_can_be_the_expected_answer_and_its_text_is_checked() {
    let run = |needle: &str| {
        let text = format!(
            r#"{{"name": "n", "source": "https://docs.slack.dev/authentication/using-pkce",
                "config": {{"pkce": "true", "token": "bot"}}, "hook": "configure", "expect": {{"error": "{needle}"}}}}"#
        );
        vectors::parse(&text, Path::new("refusal.json")).expect("a valid vector").run(provider("slack"))
    };
    let outcome = run("bot scopes");
    assert!(outcome.passed(), "{outcome}");
    let outcome = run("a reason Slack never gives");
    assert!(!outcome.passed());
    assert!(outcome.to_string().contains("  error: expected a refusal containing \"a reason Slack never gives\", got \""), "{outcome}");
}
