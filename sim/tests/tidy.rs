//! Tidy checks over the source tree, run by `cargo test` as rust-analyzer runs its own.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("sim/ is readable")
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn models_never_read_the_wall_clock() {
    // Goal: determinism. Method: no file of sim/ outside live/ (the networked part), the CLI
    // front and this test names a wall-clock or sleeping API.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("sim");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    let forbidden = [
        "Instant::now",
        "SystemTime::now",
        "thread::sleep",
        "tokio::time",
    ];
    let mut offenders = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&root).expect("under sim/");
        let rel_text = rel.to_string_lossy();
        if rel_text.starts_with("live")
            || rel_text.starts_with("tests")
            || rel_text.starts_with("commands")
            || rel_text == "main.rs"
        {
            continue;
        }
        let text = std::fs::read_to_string(file).expect("source is UTF-8");
        for (line_idx, line) in text.lines().enumerate() {
            if forbidden.iter().any(|name| line.contains(name)) {
                offenders.push(format!(
                    "sim/{}:{}: {}",
                    rel_text,
                    line_idx + 1,
                    line.trim()
                ));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "wall-clock use in model code:\n{}",
        offenders.join("\n")
    );
}

#[test]
fn models_never_iterate_a_hash_map_into_output() {
    // Goal: determinism. Method: model code uses BTreeMap/IndexMap; a HashMap is allowed only
    // with a `// lookup only` comment on the same line, saying it is never iterated.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("sim");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    let mut offenders = Vec::new();
    for file in files.iter().filter(|f| !f.ends_with("tests/tidy.rs")) {
        let text = std::fs::read_to_string(file).expect("source is UTF-8");
        for (line_idx, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            if (code.contains("HashMap<") || code.contains("HashSet<"))
                && !line.contains("lookup only")
            {
                offenders.push(format!(
                    "{}:{}: {}",
                    file.display(),
                    line_idx + 1,
                    line.trim()
                ));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "hash collections without a `// lookup only` note:\n{}",
        offenders.join("\n")
    );
}
