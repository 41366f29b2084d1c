//! The admin API checked against its own OpenAPI document by schemathesis (PyPI), which
//! generates requests from the document, valid and invalid: no answer may be a 5xx, every
//! answer must match the document (status, content type, body schema), and every request the
//! document calls invalid must be refused (an array body was once read as an object, and four
//! bodies that may be left out were documented as required). Valid requests may still be refused: the document
//! cannot say which event types the catalog holds, or which URLs resolve.
//!
//! `POST /v1/endpoints/{id}/test` is left out: it POSTs to the endpoint's URL, and generated
//! URLs may name any host, while tests only ever target loopback. `tests/api.rs` covers it.

use std::time::Duration;

use crate::util::OPERATOR_TOKEN;

/// Generated cases per operation and phase: enough to find a 5xx in a few seconds a run.
/// `SCHEMATHESIS_MAX_EXAMPLES` asks for more, to explore deeper by hand.
const MAX_EXAMPLES: u64 = 30;
/// A bound on the whole run (it takes about 10 s on two cores).
const LIMIT: Duration = Duration::from_secs(300);

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs schemathesis (pip install schemathesis); scripts/test runs it"]
async fn schemathesis_finds_no_5xx_and_no_answer_outside_the_document() {
    // With a message history: its routes are in the document and must keep to it too.
    let fleet = crate::history::history_fleet().await;
    let api = fleet.spawn_api().await;
    let seed = seed();
    let max_examples = env_number("SCHEMATHESIS_MAX_EXAMPLES").unwrap_or(MAX_EXAMPLES);
    let auth = format!("Authorization: Bearer {OPERATOR_TOKEN}");
    let run = tokio::process::Command::new("st")
        .args([
            "run",
            &api.url("/openapi.json"),
            "--header",
            &auth,
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,negative_data_rejection",
            "--exclude-path",
            "/v1/endpoints/{id}/test",
            "--max-examples",
            &max_examples.to_string(),
            "--seed",
            &seed.to_string(),
            // One worker thread: hypothesis parses lambdas' source with `ast` to describe them,
            // and CPython 3.11's parser is not thread-safe ("AST constructor recursion depth
            // mismatch" at random with two).
            "--workers",
            "1",
        ])
        // Its cache (.schemathesis/) goes there, not into the source tree.
        .current_dir(env!("CARGO_TARGET_TMPDIR"))
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(LIMIT, run)
        .await
        .expect("schemathesis ran past its bound")
        .expect("schemathesis is needed: pip install schemathesis");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis (seed {seed}) found problems:\n{stdout}\n{}\nAPI log:\n{}",
        String::from_utf8_lossy(&output.stderr),
        api.process.log()
    );
    println!("{stdout}");
    api.process.stop().await.unwrap();
    crate::history::drop_schema(&fleet).await;
    fleet.cleanup().await;
}

/// The seed: fixed, so that CI tries the same generated cases each run (the stateful phase
/// still follows the ids the API hands out). A seed taken from the clock once failed a CI run
/// on a case no earlier run had tried: a real fault, but found at random. To explore
/// further, `SCHEMATHESIS_SEED=<n>` (with `SCHEMATHESIS_MAX_EXAMPLES`, say 300: about 2 min)
/// runs other cases; a failure prints its seed for `st run --seed` or this variable.
fn seed() -> u64 {
    /// It passed on 2026-12-07, as did 24 other seeds at 30 examples and 4 at 300 (about
    /// 6 600 requests each).
    const FIXED: u64 = 20261207;
    env_number("SCHEMATHESIS_SEED").unwrap_or(FIXED)
}

/// A whole number from the environment; unset or empty is `None`, anything else a clear panic.
fn env_number(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok().filter(|v| !v.is_empty())?;
    Some((value.parse()).unwrap_or_else(|_| panic!("{name}={value:?}: a whole number, please")))
}
