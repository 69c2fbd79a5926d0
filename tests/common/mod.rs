//! Black-box test harness: a private slapd and a real scim2-server per test (both started by
//! `scripts/testbed.sh`), the real `idsync` binary, and helpers to poke both servers.
#![allow(dead_code)]

pub mod ad;
pub mod graph;
pub mod hostile;
pub mod proxy;

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const ADMIN_DN: &str = "cn=admin,dc=example,dc=org";
pub const ADMIN_PW: &str = "admin-secret";
pub const SYNC_DN: &str = "cn=idsync,ou=services,dc=example,dc=org";
pub const SYNC_PW: &str = "idsync-secret";
/// 389-ds's administrator (the testbed gives it `ADMIN_PW`).
pub const DS389_MANAGER: &str = "cn=Directory Manager";

/// Which real directory server a testbed runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DirectoryServer {
    /// OpenLDAP slapd with syncprov.
    Slapd,
    /// 389 Directory Server with content sync, the retro changelog and entryUUID.
    Ds389,
}

pub const TOKEN: &str = "test-token-0f3c";

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn testbed(args: &[&str]) -> Output {
    testbed_env(args, "")
}

fn testbed_env(args: &[&str], limits: &str) -> Output {
    testbed_with(args, &[("SLAPD_SYNC_LIMITS", limits)])
}

fn testbed_with(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(repo().join("scripts/testbed.sh"));
    for (k, v) in env.iter().filter(|(_, v)| !v.is_empty()) {
        cmd.env(k, v);
    }
    let out = cmd.args(args).output().expect("run scripts/testbed.sh");
    assert!(
        out.status.success(),
        "testbed {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A test CA (`ca.pem`) and a server certificate (`server.pem`, `server.key`) in `dir`,
/// for `san` (empty: 127.0.0.1 and localhost).
pub fn tls_certs(dir: &Path, san: &str) {
    testbed_with(&["tls-certs", dir.to_str().unwrap()], &[("TLS_SAN", san)]);
}

/// An in-test HTTP server (axum) on a thread of its own: its port, and a handle that stops
/// it when dropped.
pub struct Served {
    pub port: u16,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Serves `app` on a free loopback port until the returned handle is dropped.
pub fn serve(app: axum::Router) -> Served {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
    });
    Served {
        port,
        stop: Some(tx),
        thread: Some(thread),
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Writes a secret file readable by its owner only, as idsync requires.
pub fn write_secret(path: &Path, value: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, format!("{value}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One person for an LDIF.
pub struct Person<'a> {
    pub uid: &'a str,
    pub given: &'a str,
    pub sn: &'a str,
    pub title: &'a str,
}

impl Person<'_> {
    pub fn ldif(&self) -> String {
        person_ldif(self.uid, self.given, self.sn, self.title, "ou=people")
    }
}

pub fn person_ldif(uid: &str, given: &str, sn: &str, title: &str, ou: &str) -> String {
    format!(
        "dn: uid={uid},{ou},dc=example,dc=org\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {given} {sn}\ngivenName: {given}\nsn: {sn}\nmail: {uid}@example.org\ntitle: {title}\ntelephoneNumber: +1 555 0100\npreferredLanguage: en\nemployeeType: staff\n\n"
    )
}

/// Ada, Alan and Grace in ou=people.
pub fn trio() -> String {
    [
        Person {
            uid: "ada",
            given: "Ada",
            sn: "Lovelace",
            title: "Analyst",
        }
        .ldif(),
        Person {
            uid: "alan",
            given: "Alan",
            sn: "Turing",
            title: "Researcher",
        }
        .ldif(),
        Person {
            uid: "grace",
            given: "Grace",
            sn: "Hopper",
            title: "Admiral",
        }
        .ldif(),
    ]
    .concat()
}

/// Ada alone.
pub fn one() -> String {
    Person {
        uid: "ada",
        given: "Ada",
        sn: "Lovelace",
        title: "Analyst",
    }
    .ldif()
}

/// `n` generated people: user0000 ... as LDIF.
pub fn people(n: usize) -> String {
    (0..n)
        .map(|i| {
            person_ldif(
                &format!("user{i:04}"),
                "Test",
                &format!("Person{i}"),
                "Engineer",
                "ou=people",
            )
        })
        .collect()
}

pub struct Testbed {
    pub dir: tempfile::TempDir,
    pub ldap_port: u16,
    pub scim_port: u16,
    scim_stopped: bool,
    /// The sync account's slapd `limits` (empty = the testbed's default).
    slapd_limits: String,
    pub server: DirectoryServer,
}

impl Testbed {
    /// Starts slapd (with `ldif` loaded) and scim2-server.
    pub fn start(ldif: &str) -> Testbed {
        Self::start_with_limits(ldif, "")
    }

    /// Like `start`, with the sync account's slapd `limits` replaced (empty = the default).
    pub fn start_with_limits(ldif: &str, limits: &str) -> Testbed {
        Self::start_full(ldif, limits, false)
    }

    /// Like `start`, with StartTLS on slapd (certificates in `<dir>/tls`, CA `tls/ca.pem`).
    pub fn start_tls(ldif: &str) -> Testbed {
        Self::start_full(ldif, "", true)
    }

    /// Starts a 389 Directory Server (with `ldif` loaded) and scim2-server.
    pub fn start_389(ldif: &str) -> Testbed {
        let mut tb = Self::start_servers(None, "", None);
        tb.server = DirectoryServer::Ds389;
        let ldif_path = tb.dir.path().join("people.ldif");
        std::fs::write(&ldif_path, ldif).unwrap();
        let port = tb.ldap_port.to_string();
        let dir = tb.ds389_dir();
        let mut args = vec!["ds389-start", &dir, &port];
        let ldif_arg = ldif_path.to_string_lossy().to_string();
        if !ldif.trim().is_empty() {
            args.push(&ldif_arg);
        }
        testbed(&args);
        tb
    }

    /// Starts `server` with `ldif` loaded (syncrepl reads need no size limit) and
    /// scim2-server.
    pub fn start_on(server: DirectoryServer, ldif: &str) -> Testbed {
        match server {
            DirectoryServer::Slapd => Self::start_with_limits(ldif, "size=unlimited"),
            DirectoryServer::Ds389 => Self::start_389(ldif),
        }
    }

    fn ds389_dir(&self) -> String {
        self.dir.path().join("ds389").to_string_lossy().into_owned()
    }

    /// Only the SCIM app (for sources other than LDAP).
    pub fn start_app_only() -> Testbed {
        Self::start_servers(None, "", None)
    }

    /// Like `start_tls`, with a server certificate for these names only (`TLS_SAN`, e.g.
    /// `DNS:other.example`).
    pub fn start_tls_for(ldif: &str, san: &str) -> Testbed {
        Self::start_servers(Some(ldif), "", Some(san))
    }

    fn start_full(ldif: &str, limits: &str, tls: bool) -> Testbed {
        Self::start_servers(Some(ldif), limits, tls.then_some(""))
    }

    /// `tls`: StartTLS on slapd, with a certificate for these names (empty: the default).
    fn start_servers(ldif: Option<&str>, limits: &str, tls: Option<&str>) -> Testbed {
        let dir = tempfile::Builder::new()
            .prefix("idsync-test")
            .tempdir()
            .unwrap();
        let ldap_port = free_port();
        if let Some(ldif) = ldif {
            Self::start_slapd(dir.path(), ldif, ldap_port, limits, tls);
        }
        let scim_port = free_port();
        let mut tb = Testbed {
            dir,
            ldap_port,
            scim_port,
            scim_stopped: false,
            slapd_limits: limits.to_string(),
            server: DirectoryServer::Slapd,
        };
        testbed(&[
            "scim-start",
            tb.scim_dir().to_str().unwrap(),
            &scim_port.to_string(),
            TOKEN,
        ]);
        write_secret(&tb.dir.path().join("ldap.secret"), SYNC_PW);
        write_secret(&tb.dir.path().join("scim.token"), TOKEN);
        tb.scim_stopped = false;
        tb
    }

    fn start_slapd(dir: &Path, ldif: &str, ldap_port: u16, limits: &str, tls: Option<&str>) {
        let ldif_path = dir.join("people.ldif");
        std::fs::write(&ldif_path, ldif).unwrap();
        let slapd_dir = dir.join("slapd");
        let ldif_arg = ldif_path.to_string_lossy().to_string();
        let mut args = vec!["slapd-start", slapd_dir.to_str().unwrap(), ""];
        let port = ldap_port.to_string();
        args[2] = &port;
        if !ldif.trim().is_empty() {
            args.push(&ldif_arg);
        }
        let tls_dir = dir.join("tls");
        let tls_arg = tls_dir.to_string_lossy().to_string();
        if let Some(san) = tls {
            tls_certs(&tls_dir, san);
        }
        testbed_with(
            &args,
            &[
                ("SLAPD_SYNC_LIMITS", limits),
                ("SLAPD_TLS_DIR", if tls.is_some() { &tls_arg } else { "" }),
            ],
        );
    }

    fn slapd_dir(&self) -> PathBuf {
        self.dir.path().join("slapd")
    }
    fn scim_dir(&self) -> PathBuf {
        self.dir.path().join("scim")
    }
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }
    pub fn ldap_url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.ldap_port)
    }
    pub fn scim_url(&self) -> String {
        format!("http://127.0.0.1:{}/v2", self.scim_port)
    }

    /// Stops the directory server.
    pub fn stop_slapd(&self) {
        match self.server {
            DirectoryServer::Slapd => {
                testbed(&["slapd-stop", self.slapd_dir().to_str().unwrap()]);
            }
            DirectoryServer::Ds389 => {
                testbed(&["ds389-stop", &self.ds389_dir()]);
            }
        }
    }

    /// Stops the directory server and starts it again on the same data and port.
    pub fn restart_slapd(&self) {
        self.stop_slapd();
        let port = self.ldap_port.to_string();
        match self.server {
            DirectoryServer::Slapd => {
                testbed_env(
                    &["slapd-start", self.slapd_dir().to_str().unwrap(), &port],
                    &self.slapd_limits,
                );
            }
            DirectoryServer::Ds389 => {
                testbed(&["ds389-start", &self.ds389_dir(), &port]);
            }
        }
    }

    /// The directory administrator's DN.
    pub fn admin_dn(&self) -> &'static str {
        match self.server {
            DirectoryServer::Slapd => ADMIN_DN,
            DirectoryServer::Ds389 => DS389_MANAGER,
        }
    }
    pub fn stop_scim(&mut self) {
        testbed(&["scim-stop", self.scim_dir().to_str().unwrap()]);
        self.scim_stopped = true;
    }

    /// The standard test config, with `extra` YAML appended (top-level keys not in the base).
    pub fn config(&self, extra: &str) -> PathBuf {
        self.config_with(&self.base_source(), extra)
    }

    pub fn base_source(&self) -> String {
        format!(
            "source:\n  kind: ldap\n  url: {}\n  bind_dn: {SYNC_DN}\n  bind_password_file: ldap.secret\n  base_dn: ou=people,dc=example,dc=org\n  filter: (objectClass=inetOrgPerson)\n  disabled: \"(employeeType=disabled)\"\n  page_size: 100\n",
            self.ldap_url()
        )
    }

    pub fn config_with(&self, source: &str, extra: &str) -> PathBuf {
        self.write_config(source, "", extra)
    }

    /// `config(extra)` with `target.rate_limit` set (e.g. `"20/s"`), for runs that must last.
    pub fn config_rate_limited(&self, extra: &str, rate: &str) -> PathBuf {
        self.write_config(
            &self.base_source(),
            &format!("  rate_limit: {rate}\n"),
            extra,
        )
    }

    /// The standard test config with lines added under `source:` (in `source`), `target:` and at
    /// the top level.
    pub fn write_config(&self, source: &str, target_extra: &str, extra: &str) -> PathBuf {
        let text = format!(
            r#"state_dir: {state}
{source}target:
  kind: scim
  url: {scim}
  token_file: scim.token
  concurrency: 4
{target_extra}match: {{ target: userName, source: "{{mail}}" }}
mapping:
  userName: "{{mail}}"
  name.givenName: "{{givenName}}"
  name.familyName: "{{sn}}"
  displayName: "{{cn}}"
  title: "{{title}}"
  emails[type eq "work"].value: "{{mail}}"
  phoneNumbers[type eq "work"].value: "{{telephoneNumber}}"
  preferredLanguage: {{ value: "{{preferredLanguage}}", set: once }}
{extra}"#,
            state = self.state_dir().display(),
            scim = self.scim_url(),
        );
        let path = self.dir.path().join("idsync.yaml");
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Runs the real binary with `--config <config>`.
    pub fn idsync(&self, config: &Path, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_idsync"))
            .arg("--config")
            .arg(config)
            .args(args)
            .env_remove("RUST_LOG")
            .output()
            .expect("run idsync")
    }

    /// Starts the real binary with `--config <config>` in the background, stdout and stderr
    /// piped.
    pub fn spawn(&self, config: &Path, args: &[&str]) -> Child {
        Command::new(env!("CARGO_BIN_EXE_idsync"))
            .arg("--config")
            .arg(config)
            .args(args)
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start idsync")
    }

    /// `base_source()` with StartTLS on, trusting `<ca_dir>/ca.pem`.
    pub fn start_tls_source(&self, ca_dir: &str) -> String {
        self.base_source().replace(
            "  bind_dn:",
            &format!("  start_tls: true\n  ca_file: {ca_dir}/ca.pem\n  bind_dn:"),
        )
    }

    /// Runs idsync and asserts it exits 0; returns stdout.
    pub fn ok(&self, config: &Path, args: &[&str]) -> String {
        let out = self.idsync(config, args);
        assert!(
            out.status.success(),
            "idsync {args:?} exited {:?}\nstdout:\n{}\nstderr:\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// Runs idsync expecting a failed run: exit 1, stderr saying each of `says`, no panic,
    /// no write reaching the app, the run journaled `failed`. Returns stderr.
    pub fn fails(&self, config: &Path, args: &[&str], says: &[&str]) -> String {
        let writes = self.scim_writes();
        let out = self.idsync(config, args);
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(out.status.code(), Some(1), "{err}");
        for s in says {
            assert!(err.contains(s), "expected `{s}` in: {err}");
        }
        assert!(!err.contains("panicked"), "{err}");
        assert_eq!(self.scim_writes(), writes, "a failed run wrote");
        assert_eq!(self.last_run(config)["run"]["outcome"], "failed");
        err
    }

    /// Applies LDIF change records as the directory admin (ldapmodify).
    pub fn ldapmodify(&self, ldif: &str) {
        let mut child = Command::new("ldapmodify")
            .args([
                "-x",
                "-H",
                &self.ldap_url(),
                "-D",
                self.admin_dn(),
                "-w",
                ADMIN_PW,
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run ldapmodify");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(ldif.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "ldapmodify failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn http() -> reqwest::blocking::Client {
        reqwest::blocking::Client::new()
    }

    /// Every SCIM user, straight from the server.
    pub fn scim_users(&self) -> Vec<Value> {
        let mut out = Vec::new();
        let mut start = 1;
        loop {
            let page: Value = Self::http()
                .get(format!(
                    "{}/Users?startIndex={start}&count=1000",
                    self.scim_url()
                ))
                .bearer_auth(TOKEN)
                .send()
                .unwrap()
                .json()
                .unwrap();
            let items = page["Resources"].as_array().cloned().unwrap_or_default();
            if items.is_empty() {
                break;
            }
            start += items.len();
            out.extend(items);
        }
        out
    }

    /// The SCIM user with this userName (case-insensitive), if any.
    pub fn scim_user(&self, user_name: &str) -> Option<Value> {
        let matches: Vec<Value> = self
            .scim_users()
            .into_iter()
            .filter(|u| {
                u["userName"]
                    .as_str()
                    .is_some_and(|n| n.eq_ignore_ascii_case(user_name))
            })
            .collect();
        assert!(
            matches.len() <= 1,
            "duplicate accounts for {user_name}: {matches:?}"
        );
        matches.into_iter().next()
    }

    /// Creates a SCIM user directly in the app (as an admin would by hand).
    pub fn scim_create(&self, body: Value) -> Value {
        self.scim_post("Users", body)
    }

    /// POSTs a resource to the app, asserting 201; returns it as created.
    fn scim_post(&self, endpoint: &str, body: Value) -> Value {
        let resp = Self::http()
            .post(format!("{}/{endpoint}", self.scim_url()))
            .bearer_auth(TOKEN)
            .header("Content-Type", "application/scim+json")
            .body(body.to_string())
            .send()
            .unwrap();
        assert_eq!(resp.status().as_u16(), 201);
        resp.json().unwrap()
    }

    /// Every SCIM group, straight from the server.
    pub fn scim_groups(&self) -> Vec<Value> {
        let page: Value = Self::http()
            .get(format!(
                "{}/Groups?startIndex=1&count=1000",
                self.scim_url()
            ))
            .bearer_auth(TOKEN)
            .send()
            .unwrap()
            .json()
            .unwrap();
        page["Resources"].as_array().cloned().unwrap_or_default()
    }

    /// The SCIM group with this displayName, if any (asserting there is at most one).
    pub fn scim_group(&self, name: &str) -> Option<Value> {
        let found: Vec<Value> = self
            .scim_groups()
            .into_iter()
            .filter(|g| g["displayName"].as_str() == Some(name))
            .collect();
        assert!(found.len() <= 1, "duplicate groups named {name}: {found:?}");
        found.into_iter().next()
    }

    /// The userNames of a SCIM group's members (ids of non-users kept as they are), sorted.
    pub fn member_names(&self, group: &Value) -> Vec<String> {
        let users = self.scim_users();
        let mut names: Vec<String> = group["members"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|m| {
                let id = m["value"].as_str().unwrap_or_default();
                users
                    .iter()
                    .find(|u| u["id"] == id)
                    .and_then(|u| u["userName"].as_str())
                    .unwrap_or(id)
                    .to_string()
            })
            .collect();
        names.sort();
        names
    }

    /// Creates a SCIM group directly in the app (as an admin would by hand).
    pub fn scim_create_group(&self, name: &str, member_ids: &[&str]) -> Value {
        let members: Vec<Value> = member_ids
            .iter()
            .map(|id| serde_json::json!({ "value": id }))
            .collect();
        let body = serde_json::json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": name,
            "members": members,
        });
        self.scim_post("Groups", body)
    }

    /// Write requests the SCIM server has logged so far whose request line contains `what`
    /// (e.g. `"PATCH /v2/Groups/"`).
    pub fn scim_requests(&self, what: &str) -> usize {
        let log = std::fs::read_to_string(self.scim_dir().join("scim.log")).unwrap_or_default();
        log.lines().filter(|l| l.contains(what)).count()
    }

    /// Write requests (POST/PUT/PATCH/DELETE) the SCIM server has logged so far.
    pub fn scim_writes(&self) -> usize {
        let log = std::fs::read_to_string(self.scim_dir().join("scim.log")).unwrap_or_default();
        log.lines()
            .filter(|l| {
                ["\"POST ", "\"PUT ", "\"PATCH ", "\"DELETE "]
                    .iter()
                    .any(|m| l.contains(m))
            })
            .count()
    }

    /// How the last run read the directory (its `read` count: full / incremental, and why).
    pub fn last_read(&self, config: &Path) -> String {
        self.last_count(config, "read")
    }

    /// How the last run read the app (its `app_read` count: listed in full and why, or
    /// planned against the remembered accounts).
    pub fn last_app_read(&self, config: &Path) -> String {
        self.last_count(config, "app_read")
    }

    /// One text count of the last run.
    fn last_count(&self, config: &Path, key: &str) -> String {
        let runs: Value =
            serde_json::from_str(&self.ok(config, &["runs", "--limit", "1", "--format", "json"]))
                .unwrap();
        runs[0]["counts"][key]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Syncs after `n` people left at once: more removals than idsync confirms one by one,
    /// so the cycle reads everything first, and `max_deprovisions` holds what it finds:
    /// nothing is written.
    pub fn sync_storm_read_in_full_and_held(&self, config: &Path, n: usize) {
        let writes = self.scim_writes();
        let out = self.ok(config, &["sync"]);
        let read = self.last_read(config);
        assert!(
            read.starts_with(&format!(
                "full read (the incremental read reported {n} people removed or disabled"
            )),
            "{read}"
        );
        assert!(out.contains(": held"), "{out}");
        assert_eq!(
            self.scim_writes(),
            writes,
            "held by max_deprovisions, nothing written"
        );
    }

    /// `idsync show last --format json`.
    pub fn last_run(&self, config: &Path) -> Value {
        serde_json::from_str(&self.ok(config, &["show", "last", "--format", "json"])).unwrap()
    }
}

/// The action of `user_name` in a run as `idsync show --format json` prints it.
pub fn action_of(run: &Value, user_name: &str) -> Value {
    run["actions"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["user_name"] == user_name))
        .unwrap_or_else(|| panic!("no action of {user_name} in {run}"))
        .clone()
}

/// Rewrites a config file, replacing `from` (e.g. the SCIM URL) with `to` (a proxy's).
pub fn retarget(config: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(config).unwrap();
    assert!(text.contains(from), "{from} is not in the config");
    std::fs::write(config, text.replace(from, to)).unwrap();
}

/// Sends a signal (`"-TERM"`, `"-HUP"`) to a child process.
pub fn signal(child: &Child, sig: &str) {
    let sent = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success(), "kill {sig} failed");
}

/// Waits for a child to exit, failing the test after `secs` seconds.
pub fn wait_exit(child: &mut Child, secs: u64) -> ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "the process did not exit within {secs}s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        let _ = Command::new(repo().join("scripts/testbed.sh"))
            .args(["slapd-stop", self.slapd_dir().to_str().unwrap()])
            .output();
        if self.server == DirectoryServer::Ds389 {
            let _ = Command::new(repo().join("scripts/testbed.sh"))
                .args(["ds389-stop", &self.ds389_dir()])
                .output();
        }
        if !self.scim_stopped {
            let _ = Command::new(repo().join("scripts/testbed.sh"))
                .args(["scim-stop", self.scim_dir().to_str().unwrap()])
                .output();
        }
    }
}

/// Runs a command to its end, sampling its peak RSS (`VmHWM`, in KiB) while it runs.
pub fn measured(cmd: &mut Command) -> (Output, u64) {
    use std::io::Read;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start");
    let status_file = format!("/proc/{}/status", child.id());
    // Drain the pipes on threads, so a chatty child never blocks on a full pipe.
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let o = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let e = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let mut peak = 0u64;
    let status = loop {
        if let Ok(text) = std::fs::read_to_string(&status_file) {
            if let Some(kb) = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            {
                peak = peak.max(kb);
            }
        }
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = Output {
        status,
        stdout: o.join().unwrap(),
        stderr: e.join().unwrap(),
    };
    (output, peak)
}

/// Which SCIM server a `ScimServer` is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Server {
    /// scim2-server (PyPI), the reference.
    Scim2,
    /// Canaille (PyPI), an identity server with its own SCIM API.
    Canaille,
}

/// Another SCIM app (scim2-server, or Canaille), stopped when dropped.
pub struct ScimServer {
    dir: tempfile::TempDir,
    pub port: u16,
    stopped: bool,
    server: Server,
    /// Canaille's OpenID Connect setup (`canaille_serve.py`'s spec file), if any.
    oidc: Option<PathBuf>,
}

impl ScimServer {
    pub fn start() -> ScimServer {
        Self::start_kind(Server::Scim2)
    }

    /// Canaille's SCIM API: filters nothing, takes no photo, requires `name.formatted`,
    /// `name.familyName` and `$ref` on members, lists members by userName.
    pub fn canaille() -> ScimServer {
        Self::start_kind(Server::Canaille)
    }

    /// Canaille as the console's OpenID Connect provider too: `spec` names the console's
    /// client (`client_id`, `client_secret`, `redirect_uri`) and the provider's people
    /// (`users`: `user_name`, `password`, `groups`). The issuer is `origin()`.
    pub fn canaille_provider(spec: &Value) -> ScimServer {
        let dir = tempfile::Builder::new()
            .prefix("idsync-idp")
            .tempdir()
            .unwrap();
        let file = dir.path().join("oidc.json");
        std::fs::write(&file, spec.to_string()).unwrap();
        Self::start_in(dir, Server::Canaille, Some(file))
    }

    fn start_kind(server: Server) -> ScimServer {
        let dir = tempfile::Builder::new()
            .prefix("idsync-app")
            .tempdir()
            .unwrap();
        Self::start_in(dir, server, None)
    }

    fn start_in(dir: tempfile::TempDir, server: Server, oidc: Option<PathBuf>) -> ScimServer {
        let mut s = ScimServer {
            dir,
            port: free_port(),
            stopped: true,
            server,
            oidc,
        };
        s.restart();
        s
    }

    /// `http://127.0.0.1:PORT`.
    pub fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}{}", self.port, self.base_path())
    }

    /// The SCIM base's path (`/v2`, Canaille's `/scim/v2`).
    pub fn base_path(&self) -> &'static str {
        match self.server {
            Server::Scim2 => "/v2",
            Server::Canaille => "/scim/v2",
        }
    }

    fn verbs(&self) -> (&'static str, &'static str) {
        match self.server {
            Server::Scim2 => ("scim-start", "scim-stop"),
            Server::Canaille => ("canaille-start", "canaille-stop"),
        }
    }

    pub fn stop(&mut self) {
        testbed(&[self.verbs().1, self.dir.path().to_str().unwrap()]);
        self.stopped = true;
    }

    /// Starts it again on the same port (both keep their users in memory: empty).
    pub fn restart(&mut self) {
        let port = self.port.to_string();
        let mut args = vec![
            self.verbs().0,
            self.dir.path().to_str().unwrap(),
            &port,
            TOKEN,
        ];
        if let Some(spec) = &self.oidc {
            args.push(spec.to_str().unwrap());
        }
        testbed(&args);
        self.stopped = false;
    }

    /// GET a path under the SCIM base, as JSON.
    pub fn get(&self, path: &str) -> Value {
        reqwest::blocking::Client::new()
            .get(format!("{}/{path}", self.url()))
            .bearer_auth(TOKEN)
            .send()
            .unwrap()
            .json()
            .unwrap()
    }

    /// Every resource of an endpoint (`Users`, `Groups`), in one page.
    fn all(&self, endpoint: &str) -> Value {
        match self.server {
            Server::Scim2 => self.get(&format!("{endpoint}?count=1000")),
            // Canaille fails on `count` and sends everything without it.
            Server::Canaille => self.get(endpoint),
        }
    }

    /// Every user resource.
    pub fn user_resources(&self) -> Vec<Value> {
        self.all("Users")["Resources"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Every group resource.
    pub fn group_resources(&self) -> Vec<Value> {
        self.all("Groups")["Resources"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Every user: (userName, active).
    pub fn users(&self) -> Vec<(String, bool)> {
        let mut out: Vec<(String, bool)> = self
            .user_resources()
            .iter()
            .map(|u| {
                (
                    u["userName"].as_str().unwrap_or_default().to_lowercase(),
                    u["active"].as_bool().unwrap_or(true),
                )
            })
            .collect();
        out.sort();
        out
    }
}

impl Drop for ScimServer {
    fn drop(&mut self) {
        if !self.stopped {
            let _ = Command::new(repo().join("scripts/testbed.sh"))
                .args([self.verbs().1, self.dir.path().to_str().unwrap()])
                .output();
        }
    }
}
