//! Broken configs, as a user writes them: every file in `tests/config_corpus/` must make
//! `idsync check` exit 2 with one clear message naming the key path (each `# expect:` line
//! of the file), never a panic, never a secret.

use std::path::Path;
use std::process::Command;

const PASSWORD: &str = "Canary-Corpus-Password";
const TOKEN: &str = "Canary-Corpus-Token";

fn expectations(text: &str) -> Vec<&str> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# expect: "))
        .collect()
}

#[test]
fn every_broken_config_in_the_corpus_names_its_key_and_exits_2() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/config_corpus");
    let dir = tempfile::tempdir().unwrap();
    let mut files: Vec<_> = std::fs::read_dir(&corpus)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 40, "the corpus is there");
    let mut failures = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let expect = expectations(&text);
        assert!(
            !expect.is_empty(),
            "{} has no `# expect:` line",
            file.display()
        );
        // Run where a relative path in the config resolves to nothing of ours.
        let cfg = dir.path().join("idsync.yaml");
        std::fs::copy(&file, &cfg).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_idsync"))
            .args(["--config", cfg.to_str().unwrap(), "check"])
            .env("CORPUS_LDAP_PASSWORD", PASSWORD)
            .env("CORPUS_TOKEN", TOKEN)
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        let problems = [
            (
                out.status.code() != Some(2),
                "exit code is not 2".to_string(),
            ),
            (
                !err.starts_with("idsync: config "),
                "not one config error".into(),
            ),
            (err.contains("panicked"), "panicked".into()),
            (
                err.contains(PASSWORD) || err.contains(TOKEN),
                "leaked a secret".into(),
            ),
            (!out.stdout.is_empty(), "wrote to stdout".into()),
        ]
        .into_iter()
        .chain(
            expect
                .iter()
                .map(|e| (!err.contains(e), format!("does not say `{e}`"))),
        )
        .filter(|(bad, _)| *bad)
        .map(|(_, why)| why)
        .collect::<Vec<_>>();
        if !problems.is_empty() {
            failures.push(format!("{name}: {}\n{err}", problems.join(", ")));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
