//! The README stays true to the code: its event catalogue table is the one the code generates.
//! (Here rather than with the layers' tests: the README is the workspace's.)

#[test]
fn readme_catalogue_table_matches_the_code() {
    let readme = include_str!("../../README.md");
    let table = closedloop_telemetry_layers::__private::catalogue::markdown_table();
    assert!(
        readme.contains(&table),
        "README.md's catalogue table is out of date; regenerate it from catalogue::markdown_table():\n{table}"
    );
}
