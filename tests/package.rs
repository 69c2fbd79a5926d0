//! The Debian package, installed into this machine the way an admin installs it: built by
//! `scripts/package.sh` (from the binary under test), `dpkg -i`, checked, then removed and
//! purged. Needs root and dpkg, as the rest of the harness does.

mod common;

use std::path::Path;
use std::process::{Command, Output};

fn run(cmd: &str, args: &[&str]) -> Output {
    Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"))
}

fn ok(cmd: &str, args: &[&str]) -> String {
    let out = run(cmd, args);
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn the_package_installs_a_ready_to_configure_service_and_purges_cleanly() {
    let built = ok(
        common::repo().join("scripts/package.sh").to_str().unwrap(),
        &["--binary", env!("CARGO_BIN_EXE_idsync")],
    );
    let deb = common::repo().join(built.trim());
    assert!(deb.is_file(), "{built}");
    // Depends as the binary needs it (glibc's symbol versions, libgcc_s), not a bare libc6.
    let depends = ok("dpkg-deb", &["-f", deb.to_str().unwrap(), "Depends"]);
    assert!(
        depends.contains("libc6 (>= 2.") && depends.contains("libgcc-s1"),
        "{depends}"
    );
    // A package left by an interrupted earlier run goes first.
    let _ = run("dpkg", &["--purge", "idsync"]);
    ok("dpkg", &["-i", deb.to_str().unwrap()]);
    let result = std::panic::catch_unwind(check_installed);
    ok("dpkg", &["--remove", "idsync"]);
    assert!(
        !Path::new("/usr/bin/idsync").exists(),
        "remove takes the binary"
    );
    assert!(
        Path::new("/etc/idsync/idsync.yaml").exists(),
        "remove keeps the admin's config"
    );
    ok("dpkg", &["--purge", "idsync"]);
    assert!(
        !Path::new("/etc/idsync").exists(),
        "purge takes /etc/idsync"
    );
    assert!(!Path::new("/lib/systemd/system/idsync.service").exists());
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

fn check_installed() {
    let version = ok("/usr/bin/idsync", &["--version"]);
    assert!(
        version.starts_with(&format!("idsync {} (commit ", env!("CARGO_PKG_VERSION"))),
        "{version}"
    );
    let man = ok("man", &["-w", "idsync"]);
    assert!(man.contains("/usr/share/man/man1/idsync.1"), "{man}");
    ok("man", &["-w", "idsync-sync"]);
    for file in [
        "/usr/share/bash-completion/completions/idsync",
        "/usr/share/zsh/vendor-completions/_idsync",
        "/usr/share/fish/vendor_completions.d/idsync.fish",
        "/lib/systemd/system/idsync.service",
        "/lib/systemd/system/idsync-plan.service",
        "/lib/systemd/system/idsync-plan.timer",
        "/lib/systemd/system/idsync-console.service",
    ] {
        let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(!text.is_empty(), "{file}");
    }
    let bash = std::fs::read_to_string("/usr/share/bash-completion/completions/idsync").unwrap();
    assert!(bash.contains("approvals"), "completions know the commands");
    let unit = std::fs::read_to_string("/lib/systemd/system/idsync.service").unwrap();
    assert!(unit.contains("ExecStart=/usr/bin/idsync "), "{unit}");
    ok(
        "systemd-analyze",
        &[
            "verify",
            "/lib/systemd/system/idsync.service",
            "/lib/systemd/system/idsync-plan.service",
            "/lib/systemd/system/idsync-plan.timer",
            "/lib/systemd/system/idsync-console.service",
        ],
    );
    // The conffile is the commented example; the secrets folder is root's alone.
    let conffiles = ok(
        "dpkg-query",
        &["--showformat=${Conffiles}", "--show", "idsync"],
    );
    assert!(conffiles.contains("/etc/idsync/idsync.yaml"), "{conffiles}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata("/etc/idsync/secrets")
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
    // Installed, not started: nothing runs until the admin has configured it.
    let check = run("/usr/bin/idsync", &["check"]);
    let text = String::from_utf8_lossy(&check.stderr);
    assert_eq!(
        check.status.code(),
        Some(2),
        "the example needs its secrets: {text}"
    );
}
