use super::*;

#[test]
fn the_sophia_fixtures_load_without_errors() {
    // Goal: the plan's own files read cleanly. Method: load the folder and print the summary.
    let inventory = load_dir("fixtures/sophia").unwrap_or_else(|err| {
        panic!(
            "{}",
            err.diagnostics()
                .iter()
                .map(|d| d.headline())
                .collect::<Vec<_>>()
                .join("\n")
        )
    });
    println!("{}", inventory.summary());
    assert_eq!(inventory.deployments().len(), 2);
}
