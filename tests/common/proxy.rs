//! Fault-injecting proxies for the reliability tests: `HttpFaults` sits between idsync and
//! the real scim2-server and answers chosen requests wrongly (throttled, failed, reset, hung,
//! slow, with moved pages or wrong totals, or by killing idsync); `LdapCut` sits between idsync
//! and the real slapd and pauses the directory's answer midway, or rewrites a search's
//! result code, so a test can stop slapd mid-read.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// What the proxy does to a matching request.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answers with this status (and `Retry-After`, if given) without forwarding.
    Status {
        code: u16,
        retry_after: Option<String>,
    },
    /// Resets the connection (TCP RST) without forwarding.
    Reset,
    /// Forwards (the app acts on it), then holds the reply for this long and closes: the
    /// client times out not knowing the request worked.
    ForwardThenHang(Duration),
    /// Waits this long, then forwards.
    Slow(Duration),
    /// A list page shifted back by `n`: its first `n` items are the previous page's last `n`
    /// (and its own last `n` are lost), as index paging over a list that grew does.
    Shifted(usize),
    /// Forwards and rewrites `totalResults`.
    TotalResults(u64),
    /// `kill -9` the process, before forwarding (`after: false`) or after the app acted on
    /// the request (`after: true`, the reply never arrives).
    Kill { pid: u32, after: bool },
    /// A strict app's refusal (RFC 7644 3.12): this status with a SCIM error body carrying
    /// `scimType` and `detail`, without forwarding.
    ScimError {
        code: u16,
        scim_type: &'static str,
        detail: &'static str,
    },
    /// A hostile app: answers `307` to this URL without forwarding.
    Redirect(String),
    /// A careless app: answers this status with the whole request echoed in the body
    /// (headers, the bearer among them, and body).
    Echo(u16),
    /// A hostile app: a `200` JSON body of `bytes` bytes, announced by Content-Length or
    /// (`chunked`) not; `None` streams until the client hangs up (at most 60 s).
    Huge { bytes: Option<u64>, chunked: bool },
    /// A hostile app: a full list page of accounts never seen before, on every page, with
    /// `totalResults` as given (or none).
    FreshPage { total: Option<u64> },
    /// An app with a size cap (Miro's group PATCH): a body naming more than this many
    /// `"value"`s is answered 413 without forwarding; a smaller one is forwarded.
    TooLarge(usize),
    /// Answers 200 with this JSON body without forwarding (an app's own
    /// ServiceProviderConfig, say).
    Answer(String),
    /// Atlassian's list: a page without its deactivated accounts (`totalResults` counts
    /// the rest). (Use with a page size above the population: pages are cut, not re-cut.)
    HideInactive,
}

/// Which requests a fault hits: the method (empty = any, `WRITE` = any but GET), a substring of the path and
/// query, and optionally one of the body; the first `skip` matches pass untouched, then
/// `times` are hit.
#[derive(Clone, Debug)]
pub struct Rule {
    pub method: &'static str,
    pub path: String,
    pub body: String,
    pub skip: usize,
    pub times: usize,
    pub fault: Fault,
}

impl Rule {
    pub fn new(method: &'static str, path: &str, fault: Fault) -> Rule {
        Rule {
            method,
            path: path.to_string(),
            body: String::new(),
            skip: 0,
            times: 1,
            fault,
        }
    }
    pub fn skip(mut self, n: usize) -> Rule {
        self.skip = n;
        self
    }
    /// Only requests whose body contains `text`.
    pub fn body(mut self, text: &str) -> Rule {
        self.body = text.to_string();
        self
    }
    pub fn times(mut self, n: usize) -> Rule {
        self.times = n;
        self
    }
}

/// One request the proxy saw.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub at: Instant,
    /// The request body (as text).
    pub body: String,
    /// The fault it got, if any.
    pub fault: Option<String>,
    /// Its `If-Match` header, if it had one.
    pub if_match: Option<String>,
}

#[derive(Default)]
struct State {
    rules: Vec<Rule>,
    seen: Vec<Seen>,
    /// The last list page forwarded, per endpoint, for `Shifted`.
    last_page: std::collections::HashMap<String, Vec<Value>>,
}

/// An HTTP/1.1 proxy in front of one upstream base (e.g. `http://127.0.0.1:PORT`).
pub struct HttpFaults {
    pub port: u16,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

impl HttpFaults {
    pub fn start(upstream: &str) -> HttpFaults {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let upstream = upstream.trim_end_matches('/').to_string();
        let (st, sp) = (state.clone(), stop.clone());
        std::thread::spawn(move || {
            let http = reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(60))
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap();
            for conn in listener.incoming() {
                if sp.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (st, http, upstream) = (st.clone(), http.clone(), upstream.clone());
                std::thread::spawn(move || serve_conn(conn, &st, &http, &upstream));
            }
        });
        HttpFaults { port, state, stop }
    }

    /// The SCIM base URL through the proxy.
    pub fn scim_url(&self) -> String {
        format!("http://127.0.0.1:{}/v2", self.port)
    }

    pub fn add(&self, rule: Rule) {
        self.state.lock().unwrap().rules.push(rule);
    }

    /// Every request seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    /// Writes seen (POST, PUT, PATCH, DELETE).
    pub fn writes(&self) -> usize {
        self.seen()
            .iter()
            .filter(|s| ["POST", "PUT", "PATCH", "DELETE"].contains(&s.method.as_str()))
            .count()
    }

    /// Requests seen whose method is `method` and whose path contains `path`.
    pub fn count(&self, method: &str, path: &str) -> usize {
        self.seen()
            .iter()
            .filter(|s| s.method == method && s.path.contains(path))
            .count()
    }

    /// Faults not yet used up.
    pub fn pending(&self) -> usize {
        self.state
            .lock()
            .unwrap()
            .rules
            .iter()
            .filter(|r| r.times > 0)
            .count()
    }

    pub fn clear(&self) {
        let mut s = self.state.lock().unwrap();
        s.rules.clear();
        s.seen.clear();
    }
}

impl Drop for HttpFaults {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

pub fn read_request(r: &mut impl BufRead) -> Option<Request> {
    let mut head = Vec::new();
    loop {
        let mut line = Vec::new();
        if r.read_until(b'\n', &mut line).ok()? == 0 {
            return None;
        }
        head.extend_from_slice(&line);
        if line == b"\r\n" || line == b"\n" {
            break;
        }
    }
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    req.parse(&head).ok()?;
    let headers: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_ascii_lowercase(),
                String::from_utf8_lossy(h.value).to_string(),
            )
        })
        .collect();
    let len = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some(Request {
        method: req.method?.to_string(),
        path: req.path?.to_string(),
        headers,
        body,
    })
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        307 => "Temporary Redirect",
        400 => "Bad Request",
        201 => "Created",
        204 => "No Content",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

pub fn respond(w: &mut impl Write, code: u16, headers: &[(String, String)], body: &[u8]) -> bool {
    let mut out = format!("HTTP/1.1 {code} {}\r\n", reason(code));
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
    w.write_all(out.as_bytes()).is_ok() && w.write_all(body).is_ok() && w.flush().is_ok()
}

fn reset(conn: &TcpStream) {
    let _ = socket2::SockRef::from(conn).set_linger(Some(Duration::ZERO));
    let _ = conn.shutdown(Shutdown::Read);
}

fn kill(pid: u32) {
    let _ = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status();
}

/// The fault for this request, if a rule hits it (and uses the hit up).
fn fault_for(state: &Mutex<State>, req: &Request) -> Option<Fault> {
    let mut st = state.lock().unwrap();
    let rule = st.rules.iter_mut().find(|r| {
        r.times > 0
            && (r.method.is_empty()
                || r.method == req.method
                || (r.method == "WRITE" && req.method != "GET"))
            && req.path.contains(&r.path)
            && (r.body.is_empty() || String::from_utf8_lossy(&req.body).contains(&r.body))
    })?;
    if rule.skip > 0 {
        rule.skip -= 1;
        return None;
    }
    rule.times -= 1;
    Some(rule.fault.clone())
}

fn serve_conn(
    conn: TcpStream,
    state: &Mutex<State>,
    http: &reqwest::blocking::Client,
    upstream: &str,
) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut conn = conn;
    while let Some(req) = read_request(&mut reader) {
        let fault = fault_for(state, &req);
        state.lock().unwrap().seen.push(Seen {
            method: req.method.clone(),
            path: req.path.clone(),
            at: Instant::now(),
            body: String::from_utf8_lossy(&req.body).to_string(),
            fault: fault.as_ref().map(|f| format!("{f:?}")),
            if_match: req
                .headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("if-match"))
                .map(|(_, v)| v.clone()),
        });
        match &fault {
            Some(Fault::ScimError {
                code,
                scim_type,
                detail,
            }) => {
                let h = vec![(
                    "content-type".to_string(),
                    "application/scim+json".to_string(),
                )];
                let body = serde_json::json!({
                    "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
                    "status": code.to_string(),
                    "scimType": scim_type,
                    "detail": detail,
                })
                .to_string();
                if !respond(&mut conn, *code, &h, body.as_bytes()) {
                    return;
                }
                continue;
            }
            Some(Fault::Status { code, retry_after }) => {
                let mut h = vec![(
                    "content-type".to_string(),
                    "application/scim+json".to_string(),
                )];
                if let Some(ra) = retry_after {
                    h.push(("retry-after".into(), ra.clone()));
                }
                let body = format!(
                    r#"{{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"{code}","detail":"injected fault"}}"#
                );
                if !respond(&mut conn, *code, &h, body.as_bytes()) {
                    return;
                }
                continue;
            }
            Some(Fault::Reset) => return reset(&conn),
            Some(Fault::Redirect(to)) => {
                if !respond(&mut conn, 307, &[("location".into(), to.clone())], b"") {
                    return;
                }
                continue;
            }
            Some(Fault::Echo(code)) => {
                let mut text = format!("{} {}\n", req.method, req.path);
                for (k, v) in &req.headers {
                    text.push_str(&format!("{k}: {v}\n"));
                }
                text.push_str(&String::from_utf8_lossy(&req.body));
                let body = serde_json::json!({ "status": code.to_string(), "detail": format!("cannot handle request: {text}") });
                if !respond(&mut conn, *code, &[], body.to_string().as_bytes()) {
                    return;
                }
                continue;
            }
            Some(Fault::Huge { bytes, chunked }) => return send_huge(&mut conn, *bytes, *chunked),
            Some(Fault::FreshPage { total }) => {
                if !respond(&mut conn, 200, &[], &fresh_page(&req.path, *total)) {
                    return;
                }
                continue;
            }
            Some(Fault::Kill { pid, after: false }) => {
                kill(*pid);
                return reset(&conn);
            }
            Some(Fault::Slow(d)) => std::thread::sleep(*d),
            Some(Fault::Answer(body)) => {
                let h = [(
                    "content-type".to_string(),
                    "application/scim+json".to_string(),
                )];
                if !respond(&mut conn, 200, &h, body.as_bytes()) {
                    return;
                }
                continue;
            }
            Some(Fault::TooLarge(max))
                if String::from_utf8_lossy(&req.body)
                    .matches("\"value\"")
                    .count()
                    > *max =>
            {
                let body = r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"413","detail":"Request Entity Too Large"}"#;
                if !respond(&mut conn, 413, &[], body.as_bytes()) {
                    return;
                }
                continue;
            }
            _ => {}
        }
        let Ok(resp) = forward(http, upstream, &req) else {
            return reset(&conn);
        };
        let (code, mut headers, mut body) = resp;
        match &fault {
            Some(Fault::ForwardThenHang(d)) => {
                std::thread::sleep(*d);
                return;
            }
            Some(Fault::Kill { pid, after: true }) => {
                kill(*pid);
                return reset(&conn);
            }
            _ => {}
        }
        if req.method == "GET" && req.path.contains("startIndex=") {
            body = rewrite_page(state, &req.path, &body, fault.as_ref());
            headers.retain(|(k, _)| k != "etag");
        }
        if !respond(&mut conn, code, &headers, &body) {
            return;
        }
    }
}

/// A 200 JSON body of `bytes` bytes (or endless), written as fast as the client reads it.
pub fn send_huge(conn: &mut TcpStream, bytes: Option<u64>, chunked: bool) {
    let mut head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n".to_string();
    match (bytes, chunked) {
        (Some(n), false) => head.push_str(&format!("content-length: {n}\r\n\r\n")),
        _ => head.push_str("transfer-encoding: chunked\r\n\r\n"),
    }
    if conn.write_all(head.as_bytes()).is_err() {
        return;
    }
    let chunk = vec![b' '; 64 * 1024];
    let started = Instant::now();
    let mut sent = 0u64;
    while bytes.is_none_or(|n| sent < n) && started.elapsed() < Duration::from_secs(60) {
        let len = bytes.map_or(chunk.len() as u64, |n| (n - sent).min(chunk.len() as u64));
        let piece = &chunk[..len as usize];
        let ok = if chunked || bytes.is_none() {
            conn.write_all(format!("{len:x}\r\n").as_bytes()).is_ok()
                && conn.write_all(piece).is_ok()
                && conn.write_all(b"\r\n").is_ok()
        } else {
            conn.write_all(piece).is_ok()
        };
        if !ok {
            return;
        }
        sent += len;
    }
    if chunked || bytes.is_none() {
        let _ = conn.write_all(b"0\r\n\r\n");
    }
}

/// A SCIM list page of `count` users no one has seen before.
fn fresh_page(path: &str, total: Option<u64>) -> Vec<u8> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let count: u64 = path
        .split(['?', '&'])
        .find_map(|kv| kv.strip_prefix("count="))
        .and_then(|c| c.parse().ok())
        .unwrap_or(100);
    let users: Vec<Value> = (0..count)
        .map(|_| {
            let n = NEXT.fetch_add(1, Ordering::SeqCst);
            serde_json::json!({ "id": format!("fresh-{n}"), "userName": format!("fresh{n}@example.org"), "active": true })
        })
        .collect();
    let mut page = serde_json::json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "itemsPerPage": count,
        "Resources": users,
    });
    if let Some(t) = total {
        page["totalResults"] = t.into();
    }
    serde_json::to_vec(&page).unwrap()
}

type Forwarded = (u16, Vec<(String, String)>, Vec<u8>);

fn forward(
    http: &reqwest::blocking::Client,
    upstream: &str,
    req: &Request,
) -> reqwest::Result<Forwarded> {
    let method = reqwest::Method::from_bytes(req.method.as_bytes()).unwrap();
    let mut r = http.request(method, format!("{upstream}{}", req.path));
    for (k, v) in &req.headers {
        if matches!(
            k.as_str(),
            "authorization" | "content-type" | "accept" | "if-match"
        ) {
            r = r.header(k, v);
        }
    }
    let resp = r.body(req.body.clone()).send()?;
    let code = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .filter(|(k, _)| matches!(k.as_str(), "content-type" | "location" | "etag"))
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
        .collect();
    Ok((code, headers, resp.bytes()?.to_vec()))
}

/// Applies `Shifted` / `TotalResults` to a list page, and remembers the true page.
fn rewrite_page(state: &Mutex<State>, path: &str, body: &[u8], fault: Option<&Fault>) -> Vec<u8> {
    let Ok(mut page) = serde_json::from_slice::<Value>(body) else {
        return body.to_vec();
    };
    let endpoint = path.split('?').next().unwrap_or_default().to_string();
    let resources: Vec<Value> = page["Resources"].as_array().cloned().unwrap_or_default();
    let mut st = state.lock().unwrap();
    if path.contains("startIndex=1&") {
        // A new read: nothing before its first page.
        st.last_page.remove(&endpoint);
    }
    match fault {
        Some(Fault::Shifted(n)) => {
            let prev = st.last_page.get(&endpoint).cloned().unwrap_or_default();
            let n = (*n).min(prev.len()).min(resources.len());
            let mut shifted: Vec<Value> = prev[prev.len() - n..].to_vec();
            shifted.extend(resources[..resources.len() - n].iter().cloned());
            page["Resources"] = Value::Array(shifted);
        }
        Some(Fault::TotalResults(t)) => page["totalResults"] = (*t).into(),
        Some(Fault::HideInactive) => {
            let shown: Vec<Value> = resources
                .iter()
                .filter(|r| r["active"] != false)
                .cloned()
                .collect();
            let hidden = resources.len() - shown.len();
            let total = page["totalResults"].as_u64().unwrap_or(0);
            page["totalResults"] = total.saturating_sub(hidden as u64).into();
            page["Resources"] = Value::Array(shown);
        }
        _ => {}
    }
    st.last_page.insert(endpoint, resources);
    serde_json::to_vec(&page).unwrap()
}

/// What `LdapCut` does to the directory's answers.
#[derive(Default)]
struct Cut {
    /// Pause the server-to-client stream once this many bytes have passed.
    pause_after: Option<usize>,
    paused: bool,
    released: bool,
    /// Rewrite the result code of every SearchResultDone to this.
    done_rc: Option<u8>,
    /// Every byte the client sent.
    from_client: Vec<u8>,
}

/// A TCP proxy in front of slapd.
pub struct LdapCut {
    pub port: u16,
    ctl: Arc<(Mutex<Cut>, Condvar)>,
}

impl LdapCut {
    /// Proxies to slapd on `upstream_port`, pausing its answers after `pause_after` bytes
    /// (counted over all connections).
    pub fn pausing(upstream_port: u16, pause_after: usize) -> LdapCut {
        Self::start(
            upstream_port,
            Cut {
                pause_after: Some(pause_after),
                ..Cut::default()
            },
        )
    }

    /// Proxies to slapd, rewriting every search's final result code to `rc`.
    pub fn result_code(upstream_port: u16, rc: u8) -> LdapCut {
        Self::start(
            upstream_port,
            Cut {
                done_rc: Some(rc),
                ..Cut::default()
            },
        )
    }

    fn start(upstream_port: u16, cut: Cut) -> LdapCut {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let ctl = Arc::new((Mutex::new(cut), Condvar::new()));
        let c = ctl.clone();
        std::thread::spawn(move || {
            let sent = Arc::new(Mutex::new(0usize));
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream_port)) else {
                    continue;
                };
                let (c1, s1) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let rec = c.clone();
                std::thread::spawn(move || pump_requests(c1, s1, &rec));
                let (c, sent) = (c.clone(), sent.clone());
                std::thread::spawn(move || pump_answers(server, client, &c, &sent));
            }
        });
        LdapCut { port, ctl }
    }

    /// Proxies to slapd as is, recording what the client sends.
    pub fn recording(upstream_port: u16) -> LdapCut {
        Self::start(upstream_port, Cut::default())
    }

    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    /// Every byte the client has sent so far.
    pub fn sent_by_client(&self) -> Vec<u8> {
        self.ctl.0.lock().unwrap().from_client.clone()
    }

    /// Waits until the answer stream has paused (fails the test after `secs`).
    pub fn wait_paused(&self, secs: u64) {
        let (m, cv) = &*self.ctl;
        let guard = m.lock().unwrap();
        let (guard, timeout) = cv
            .wait_timeout_while(guard, Duration::from_secs(secs), |c| !c.paused)
            .unwrap();
        assert!(
            !timeout.timed_out() && guard.paused,
            "the directory read never reached the pause"
        );
    }

    /// Lets the paused stream go on (whatever the server still has to say).
    pub fn release(&self) {
        let (m, cv) = &*self.ctl;
        m.lock().unwrap().released = true;
        cv.notify_all();
    }
}

/// Client to server, as is (and recorded).
fn pump_requests(mut from: TcpStream, mut to: TcpStream, ctl: &(Mutex<Cut>, Condvar)) {
    let mut chunk = [0u8; 16 * 1024];
    while let Ok(n) = from.read(&mut chunk) {
        if n == 0 {
            break;
        }
        ctl.0
            .lock()
            .unwrap()
            .from_client
            .extend_from_slice(&chunk[..n]);
        if to.write_all(&chunk[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// Server to client: frames LDAP messages (BER), counts bytes, pauses, rewrites results.
fn pump_answers(
    mut server: TcpStream,
    mut client: TcpStream,
    ctl: &(Mutex<Cut>, Condvar),
    sent: &Mutex<usize>,
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let n = match server.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        while let Some(len) = ber_len(&buf) {
            let mut msg: Vec<u8> = buf.drain(..len).collect();
            let (m, cv) = ctl;
            let mut cut = m.lock().unwrap();
            if let Some(rc) = cut.done_rc {
                rewrite_done(&mut msg, rc);
            }
            let mut total = sent.lock().unwrap();
            *total += msg.len();
            if cut.pause_after.is_some_and(|p| *total >= p) && !cut.released {
                cut.paused = true;
                cv.notify_all();
                drop(total);
                let _unused = cv.wait_while(cut, |c| !c.released).unwrap();
            } else {
                drop((cut, total));
            }
            if client.write_all(&msg).is_err() {
                return;
            }
        }
    }
    let _ = client.shutdown(Shutdown::Both);
}

/// The length of the first complete BER element in `b`, if it is all there.
fn ber_len(b: &[u8]) -> Option<usize> {
    if b.len() < 2 {
        return None;
    }
    let (len, head) = if b[1] & 0x80 == 0 {
        (b[1] as usize, 2)
    } else {
        let k = (b[1] & 0x7f) as usize;
        if b.len() < 2 + k {
            return None;
        }
        (
            b[2..2 + k]
                .iter()
                .fold(0usize, |a, x| (a << 8) | *x as usize),
            2 + k,
        )
    };
    (b.len() >= head + len).then_some(head + len)
}

/// Sets the resultCode of an LDAP SearchResultDone ([APPLICATION 5]) message.
fn rewrite_done(msg: &mut [u8], rc: u8) {
    // SEQUENCE { messageID INTEGER, protocolOp ... }
    let skip_len = |b: &[u8], at: usize| -> usize {
        if b[at] & 0x80 == 0 {
            1
        } else {
            1 + (b[at] & 0x7f) as usize
        }
    };
    let mut at = 1 + skip_len(msg, 1); // past the SEQUENCE header
    if msg.get(at) != Some(&0x02) {
        return;
    }
    let id_len = msg[at + 1] as usize;
    at += 2 + id_len; // past messageID
    if msg.get(at) != Some(&0x65) {
        return;
    }
    at += 1 + skip_len(msg, at + 1); // past the op header
                                     // resultCode ENUMERATED: 0a 01 rc
    if msg.get(at) == Some(&0x0a) && msg.get(at + 1) == Some(&0x01) {
        msg[at + 2] = rc;
    }
}

/// HTTPS in front of a plain HTTP server: TLS with `server.pem` / `server.key` from a
/// `tls_certs` directory, each request forwarded, one request per connection.
pub struct TlsFront {
    pub port: u16,
}

impl TlsFront {
    pub fn start(upstream: &str, cert_dir: &std::path::Path) -> TlsFront {
        let pem = std::fs::read(cert_dir.join("server.pem")).unwrap();
        let certs: Vec<_> = rustls_pemfile::certs(&mut pem.as_slice())
            .map(Result::unwrap)
            .collect();
        let key_pem = std::fs::read(cert_dir.join("server.key")).unwrap();
        let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
            .unwrap()
            .unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = Arc::new(
            rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(certs, key)
                .unwrap(),
        );
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let upstream = upstream.trim_end_matches('/').to_string();
        std::thread::spawn(move || {
            // A pass-through: the upstream's redirects reach the client as they are.
            let http = reqwest::blocking::Client::builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap();
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (config, http, upstream) = (config.clone(), http.clone(), upstream.clone());
                std::thread::spawn(move || {
                    let Ok(tls) = rustls::ServerConnection::new(config) else {
                        return;
                    };
                    let mut stream = rustls::StreamOwned::new(tls, conn);
                    let req = {
                        let mut r = BufReader::new(&mut stream);
                        read_request(&mut r)
                    };
                    let Some(req) = req else { return };
                    if let Ok((code, mut headers, body)) = forward(&http, &upstream, &req) {
                        headers.push(("connection".into(), "close".into()));
                        let _ = respond(&mut stream, code, &headers, &body);
                        stream.conn.send_close_notify();
                        let _ = stream.flush();
                    }
                });
            }
        });
        TlsFront { port }
    }
}
