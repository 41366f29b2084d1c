//! The admin API checked against its own OpenAPI document by schemathesis (PyPI), which
//! generates requests from the document, valid and invalid: no answer may be a 5xx, and every
//! answer must match the document (status, content type, body schema).
//!
//! `POST /v1/endpoints/{id}/test` is left out: it POSTs to the endpoint's URL, and generated
//! URLs may name any host, while tests only ever target loopback. `tests/api.rs` covers it.

use std::time::Duration;

use crate::util::OPERATOR_TOKEN;

/// Generated cases per operation and phase: enough to find a 5xx in a few seconds a run.
const MAX_EXAMPLES: &str = "30";
/// A bound on the whole run (it takes about 10 s on two cores).
const LIMIT: Duration = Duration::from_secs(300);

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs schemathesis (pip install schemathesis); scripts/test runs it"]
async fn schemathesis_finds_no_5xx_and_no_answer_outside_the_document() {
    // With a message history: its routes are in the document and must keep to it too.
    let fleet = crate::history::history_fleet().await;
    let api = fleet.spawn_api().await;
    let seed = rand_seed();
    let auth = format!("Authorization: Bearer {OPERATOR_TOKEN}");
    let run = tokio::process::Command::new("st")
        .args([
            "run",
            &api.url("/openapi.json"),
            "--header",
            &auth,
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            "--exclude-path",
            "/v1/endpoints/{id}/test",
            "--max-examples",
            MAX_EXAMPLES,
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

/// A seed printed with any failure, so that the run can be repeated: with `st run --seed`,
/// or with this test and `SCHEMATHESIS_SEED=<seed>`.
fn rand_seed() -> u64 {
    if let Some(seed) = std::env::var("SCHEMATHESIS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return seed;
    }
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_secs())
}
