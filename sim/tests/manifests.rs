//! The manifests reader through the public API, as the CLI fronts use it.

use std::error::Error;

use twin::diag::Diagnostics;
use twin::manifests::{load_dir, load_file};

#[test]
fn the_plan_loads_through_the_public_api() {
    // Goal: the library's entry point works from outside the crate. Method: load the plan and
    // print its summary's first line.
    let inventory = load_dir("fixtures/sophia").expect("the plan loads");
    let summary = inventory.summary().to_string();
    assert_eq!(
        summary.lines().next(),
        Some("24 object(s) from 13 file(s), 0 warning(s)")
    );
}

#[test]
fn a_bad_file_renders_compiler_style_with_a_caret_from_its_error_chain() {
    // Goal: the CLI can find the diagnostics in the error's source chain (as
    // `commands::render_error` does) and render them with the offending line. Method: load a
    // bad fixture, walk `source()`, render from disk.
    let err =
        load_file("fixtures/manifests/err/wrong_type_replicas.yaml").expect_err("a bad replicas");
    let diagnostics = err
        .source()
        .and_then(|source| source.downcast_ref::<Diagnostics>())
        .expect("diagnostics");
    assert_eq!(err.to_string(), "1 problem(s) in the input");
    assert_eq!(
        diagnostics.0[0].render_from_disk(),
        "error: fixtures/manifests/err/wrong_type_replicas.yaml:13:13: document 2: spec.replicas: invalid type: string \"three\", expected i32\n   |\n13 |   replicas: \"three\"\n   |             ^"
    );
}
