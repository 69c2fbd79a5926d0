//! A live Active Directory domain controller for the tests: Samba's AD DC (Debian `samba`),
//! provisioned by `scripts/testbed.sh samba-start` as domain EXAMPLE.TEST on loopback, with
//! LDAPS from a test CA. Its ports are fixed (389/636), so one DC serves the whole test
//! binary; each test keeps to people tagged with its own `department` (and its own OUs),
//! and the DC stops when the test process ends.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use base64::Engine;

use super::{repo, testbed_with};

pub const DOMAIN: &str = "DC=example,DC=test";
pub const URL: &str = "ldaps://127.0.0.1:636";
pub const ADMIN: &str = "Administrator@example.test";
pub const ADMIN_PW: &str = "Adm1n-Secret!";
/// userAccountControl: a normal account that needs no password (enabled), and disabled.
pub const ENABLED: u32 = 544;
pub const DISABLED: u32 = 546;

pub struct Dc {
    pub dir: PathBuf,
}

/// The DC, started on first use.
pub fn dc() -> &'static Dc {
    static DC: OnceLock<Dc> = OnceLock::new();
    DC.get_or_init(|| {
        let dir = repo().join(".testbed/ad");
        let owner = std::process::id().to_string();
        testbed_with(&["samba-start", dir.to_str().unwrap(), &owner], &[]);
        Dc { dir }
    })
}

impl Dc {
    /// The CA that signed the DC's certificate.
    pub fn ca(&self) -> PathBuf {
        self.dir.join("tls/ca.pem")
    }

    fn ldap_tool(&self, tool: &str, args: &[&str], input: &str) -> String {
        use std::io::Write;
        let mut child = Command::new(tool)
            .args(["-x", "-H", URL, "-D", ADMIN, "-w", ADMIN_PW])
            .args(args)
            .env("LDAPTLS_CACERT", self.ca())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run an ldap tool");
        // Written from a thread: the tool answers while it reads, and a full stdout pipe
        // would otherwise stop both.
        let mut stdin = child.stdin.take().unwrap();
        let input = input.to_string();
        let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap().unwrap();
        assert!(
            out.status.success(),
            "{tool} {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// Adds entries (LDIF) as the domain admin.
    pub fn add(&self, ldif: &str) {
        self.ldap_tool("ldapadd", &[], ldif);
    }

    /// Applies LDIF change records as the domain admin.
    pub fn modify(&self, ldif: &str) {
        self.ldap_tool("ldapmodify", &[], ldif);
    }

    /// The raw bytes of a binary attribute of one entry.
    pub fn binary(&self, dn: &str, attr: &str) -> Vec<u8> {
        let out = self.ldap_tool(
            "ldapsearch",
            &[
                "-LLL",
                "-o",
                "ldif-wrap=no",
                "-b",
                dn,
                "-s",
                "base",
                "(objectClass=*)",
                attr,
            ],
            "",
        );
        let prefix = format!("{attr}:: ");
        let line = out
            .lines()
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("{dn} has no {attr}: {out}"));
        base64::engine::general_purpose::STANDARD
            .decode(&line[prefix.len()..])
            .unwrap()
    }
}

/// An OU under the domain root.
pub fn ou(name: &str) -> String {
    format!("dn: OU={name},{DOMAIN}\nobjectClass: organizationalUnit\n\n")
}

/// A person in `OU=<ou>`, tagged `department: <tag>`, with a title.
pub fn person(ou: &str, tag: &str, sam: &str, title: &str) -> String {
    format!(
        "dn: CN={sam},OU={ou},{DOMAIN}\nobjectClass: user\nsAMAccountName: {sam}\ngivenName: {sam}\nsn: Tester\nmail: {sam}@example.test\ntitle: {title}\ndepartment: {tag}\nuserAccountControl: {ENABLED}\n\n"
    )
}

pub fn person_dn(ou: &str, sam: &str) -> String {
    format!("CN={sam},OU={ou},{DOMAIN}")
}

/// A config reading the people tagged `tag` from the domain root (`base` to override), as
/// an AD admin writes it, into the test's app.
pub fn config(tb: &super::Testbed, tag: &str, source_extra: &str, extra: &str) -> PathBuf {
    config_trusting(tb, tag, &dc().ca(), source_extra, extra)
}

/// `config`, trusting `ca` for the DC's certificate.
pub fn config_trusting(
    tb: &super::Testbed,
    tag: &str,
    ca: &Path,
    source_extra: &str,
    extra: &str,
) -> PathBuf {
    let (dir, scim) = (tb.dir.path(), tb.scim_url());
    super::write_secret(&dir.join("ad.secret"), ADMIN_PW);
    let text = format!(
        r#"state_dir: {state}
source:
  kind: ldap
  url: {URL}
  ca_file: {ca}
  bind_dn: {ADMIN}
  bind_password_file: ad.secret
  base_dn: {DOMAIN}
  filter: "(&(objectCategory=person)(objectClass=user)(department={tag}))"
  anchor: objectGUID
  disabled: "(userAccountControl:1.2.840.113556.1.4.803:=2)"
{source_extra}target:
  kind: scim
  url: {scim}
  token_file: scim.token
match: {{ target: userName, source: "{{mail}}" }}
mapping:
  userName: "{{mail}}"
  name.givenName: "{{givenName}}"
  name.familyName: "{{sn}}"
  title: "{{title}}"
  externalId: "{{objectGUID}}"
{extra}"#,
        state = dir.join("state").display(),
        ca = ca.display(),
    );
    let path = dir.join("idsync.yaml");
    std::fs::write(&path, text).unwrap();
    path
}
