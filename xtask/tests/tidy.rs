//! Tidy checks, as rust-analyzer does them: the architecture's invariants that can be checked
//! mechanically, over the workspace's sources.
//!
//! - No clock outside perf-core (the instrument), accel's peak probe and accel's worker pool (a
//!   spin-then-park bound, not a measurement): `Instant::now` appears in no other library source, and
//!   nowhere in xtask or the suite library.
//! - No `unsafe` outside the modules that need it (SIMD kernels, the FFI-style calls into reference
//!   crates, the counting allocator, the worker pool, a test's counting allocator), and none in xtask.
//! - xtask holds no statistics, formats or rendering: no statrs, plotters or serde_json writers of
//!   archives, and no hand-written intervals.
//! - No library file over 800 lines unless its header says it is one cohesive thing; every library
//!   crate compiles its README; nothing cites a path outside the repository, and every repository
//!   path a document names exists.

use std::path::{Path, PathBuf};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn rust_files(directory: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(directory) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_dir() {
            if name != "target" && !name.starts_with('.') {
                rust_files(&path, found);
            }
        } else if name.ends_with(".rs") {
            found.push(path);
        }
    }
}

/// Every source file under `crates/` and `xtask/`, as a path relative to the workspace root.
fn sources() -> Vec<(String, String)> {
    let root = workspace_root();
    let mut files = Vec::new();
    rust_files(&root.join("crates"), &mut files);
    rust_files(&root.join("xtask"), &mut files);
    files
        .into_iter()
        .map(|path| {
            let relative = path
                .strip_prefix(&root)
                .unwrap_or(&path)
                .to_string_lossy()
                .replace('\\', "/");
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            (relative, text)
        })
        .collect()
}

/// The code of a file without its comments and string literals, so that prose or a message which
/// names a forbidden item does not count.
fn code_lines(text: &str) -> impl Iterator<Item = (usize, String)> + '_ {
    text.lines().enumerate().filter_map(|(index, line)| {
        let mut code = String::new();
        let mut in_string = false;
        let mut previous = ' ';
        for character in line.chars() {
            match character {
                '"' if previous != '\\' => in_string = !in_string,
                '/' if !in_string && previous == '/' => {
                    code.pop();
                    break;
                }
                _ if !in_string => code.push(character),
                _ => {}
            }
            previous = character;
        }
        let code = code.trim().to_string();
        (!code.is_empty()).then_some((index + 1, code))
    })
}

fn violations(
    allowed: &[&str],
    pattern: impl Fn(&str) -> bool,
    scope: impl Fn(&str) -> bool,
) -> Vec<String> {
    let mut found = Vec::new();
    for (path, text) in sources() {
        // This file names what it looks for.
        if path == "xtask/tests/tidy.rs"
            || !scope(&path)
            || allowed.iter().any(|prefix| path.starts_with(prefix))
        {
            continue;
        }
        for (line_number, code) in code_lines(&text) {
            if pattern(&code) {
                found.push(format!("{path}:{line_number}: {code}"));
            }
        }
    }
    found
}

/// Library sources and xtask: examples, benches and tests of the kernel crates time things their own
/// way (a tuning loop, criterion) and are not part of the referee.
fn library_or_xtask(path: &str) -> bool {
    path.starts_with("xtask/") || (path.starts_with("crates/") && path.contains("/src/"))
}

#[test]
fn no_clock_outside_the_instrument() {
    let allowed = [
        "crates/perf-core/src/",
        "crates/accel/src/peak.rs",
        "crates/accel/src/pool.rs",
    ];
    let found = violations(
        &allowed,
        |code| code.contains("Instant::now"),
        library_or_xtask,
    );
    assert!(
        found.is_empty(),
        "a clock read outside perf-core's instrument (use perf_core::timer::Stopwatch or the protocol):\n{}",
        found.join("\n")
    );
}

#[test]
fn no_unsafe_outside_the_allowed_modules() {
    let allowed = [
        "crates/accel/src/simd/",
        "crates/accel/src/pool.rs",
        "crates/accel/src/baselines.rs",
        "crates/perf-core/src/alloc.rs",
        "crates/quant/src/gemm/kernels.rs",
        // quant's batch-1 kernels: the u8 × i8 GEMV (VNNI / AVX2) and the f16 GEMV (F16C).
        "crates/quant/src/gemm/gemv.rs",
        "crates/quant/src/half_gemv.rs",
        // A test's own counting allocator (GlobalAlloc is an unsafe trait).
        "crates/kvcache/tests/no_allocation.rs",
    ];
    let is_unsafe = |code: &str| {
        code.contains("unsafe {")
            || code.contains("unsafe fn")
            || code.contains("unsafe impl")
            || code.ends_with("unsafe")
    };
    let found = violations(&allowed, is_unsafe, |_| true);
    assert!(
        found.is_empty(),
        "unsafe code outside the modules allowed to hold it:\n{}",
        found.join("\n")
    );
}

#[test]
fn xtask_holds_no_statistics_formats_or_rendering() {
    let forbidden = [
        "statrs::",
        "plotters::",
        "serde_json::to_string",
        "inverse_cdf",
        "std::fs::write(",
        "fs::File::create",
    ];
    let found = violations(
        // `report --html FILE`, `history --svg FILE` and `gate --report/--json FILE` write what the
        // libraries rendered where the user asked; the rendering itself is the libraries'.
        &[
            "xtask/tests/",
            "xtask/src/main.rs",
            "xtask/src/history_cmd.rs",
        ],
        |code| forbidden.iter().any(|item| code.contains(item)),
        |path| path.starts_with("xtask/"),
    );
    assert!(
        found.is_empty(),
        "xtask is a command line over the libraries; these belong in a library crate:\n{}",
        found.join("\n")
    );
}

#[test]
fn only_the_judge_produces_a_verdict() {
    // A judged claim is changed only through `ClaimResult::weaken` / `annotate` (which never raise a
    // verdict), never by rewriting its fields.
    let rewrites = [".verdict =", ".reason ="];
    let found = violations(
        &["crates/perf-core/src/claim.rs"],
        |code| {
            rewrites
                .iter()
                .any(|rewrite| code.contains(rewrite) && !code.contains(&format!("{rewrite}=")))
        },
        |path| !path.contains("/tests/"),
    );
    assert!(
        found.is_empty(),
        "a judged result rewritten outside perf-core's claim module:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_checks_see_the_sources_they_check() {
    // A tidy check that finds no files cannot fail: make sure it reads the workspace.
    let files = sources();
    assert!(files
        .iter()
        .any(|(path, _)| path == "crates/perf-core/src/timer.rs"));
    assert!(files.iter().any(
        |(path, text)| path == "crates/perf-core/src/timer.rs" && text.contains("Instant::now")
    ));
    assert!(files
        .iter()
        .any(|(path, _)| path.starts_with("xtask/src/modules/")));
}

/// Longest a library file may be before its header must say why it is one piece.
const LONG_FILE_LINES: usize = 800;

#[test]
fn no_long_library_file_without_saying_why() {
    // A library file over the bound holds one cohesive thing and says so in its `//!` header; a
    // test module split out beside its code (`tests.rs`) is not library code.
    let mut found = Vec::new();
    for (path, text) in sources() {
        let library = path.starts_with("crates/") && path.contains("/src/");
        if !library || path.ends_with("/tests.rs") || path.contains("/tests/") {
            continue;
        }
        let lines = text.lines().count();
        let says_why = text
            .lines()
            .take_while(|line| line.starts_with("//!"))
            .any(|line| line.to_lowercase().contains("one cohesive"));
        if lines > LONG_FILE_LINES && !says_why {
            found.push(format!("{path}: {lines} lines"));
        }
    }
    assert!(
        found.is_empty(),
        "library files over {LONG_FILE_LINES} lines whose header does not say they are one cohesive thing:\n{}",
        found.join("\n")
    );
}

#[test]
fn every_library_readme_is_compiled_as_crate_docs() {
    // Each library crate includes its README under `cfg(doctest)`, so its examples run with
    // `cargo test --doc` and cannot drift from the API.
    let root = workspace_root();
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(root.join("crates")).unwrap().flatten() {
        let lib = entry.path().join("src/lib.rs");
        if !lib.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(&lib).unwrap_or_default();
        if !text.contains("include_str!(\"../README.md\")") {
            missing.push(lib.display().to_string());
        }
    }
    assert!(
        missing.is_empty(),
        "library crates whose README is not compiled:\n{}",
        missing.join("\n")
    );
}

/// The repository's Markdown documents: the README, `docs/` and every crate's.
fn documents() -> Vec<PathBuf> {
    let root = workspace_root();
    let mut documents: Vec<PathBuf> = vec![root.join("README.md")];
    for directory in ["docs", "crates"] {
        let mut stack = vec![root.join(directory)];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "md") {
                    documents.push(path);
                }
            }
        }
    }
    documents
}

#[test]
fn nothing_points_outside_the_repository() {
    // Someone who clones the repository has only the repository: no source or document cites the
    // workspace's surroundings.
    let documents = documents();
    let mut found = Vec::new();
    let texts = sources()
        .into_iter()
        .filter(|(path, _)| path != "xtask/tests/tidy.rs" && !path.contains("/tests/"))
        .chain(documents.iter().map(|path| {
            (
                path.display().to_string(),
                std::fs::read_to_string(path).unwrap_or_default(),
            )
        }));
    for (path, text) in texts {
        for (index, line) in text.lines().enumerate() {
            if line.contains("../shared") || line.contains("/work/") {
                found.push(format!("{path}:{}: {}", index + 1, line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "text that points outside the repository:\n{}",
        found.join("\n")
    );
}

#[test]
fn every_repository_path_a_document_names_exists() {
    // A document that names a file or folder of the repository in code spans (`crates/...`, `docs/...`)
    // names one that is there: a split or a rename updates the docs that point at it.
    let root = workspace_root();
    let prefixes = ["crates/", "xtask/", "docs/", ".ci/", "examples/"];
    let mut found = Vec::new();
    let mut checked = 0;
    for document in documents() {
        let text = std::fs::read_to_string(&document).unwrap_or_default();
        for (index, line) in text.lines().enumerate() {
            // Code spans are the odd-numbered pieces between backticks.
            for span in line.split('`').skip(1).step_by(2) {
                let is_path = prefixes.iter().any(|prefix| span.starts_with(prefix))
                    && !span.contains(|c: char| " <>{}*|$".contains(c));
                if !is_path {
                    continue;
                }
                // `file.rs:120` or `file.rs:120-140` names lines of the file.
                let path = span.split(':').next().unwrap_or(span);
                checked += 1;
                if !root.join(path).exists() {
                    let name = document.strip_prefix(&root).unwrap_or(&document);
                    found.push(format!("{}:{}: `{span}`", name.display(), index + 1));
                }
            }
        }
    }
    assert!(checked > 20, "the check saw only {checked} paths");
    assert!(
        found.is_empty(),
        "documents name repository paths that do not exist:\n{}",
        found.join("\n")
    );
}
