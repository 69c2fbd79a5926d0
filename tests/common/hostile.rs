//! A scripted HTTP server playing a hostile or broken directory or app: each request is
//! answered by the test's closure, and every request is recorded (so a test can say "this
//! origin received zero requests").

use std::io::BufReader;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::proxy::{read_request, respond, send_huge, Request};

/// How the server answers one request.
pub enum Reply {
    Json(u16, Value),
    /// A status with headers and a raw body.
    Raw(u16, Vec<(String, String)>, Vec<u8>),
    /// A 200 of `bytes` bytes (announced unless `chunked`), or endless (`None`).
    Huge {
        bytes: Option<u64>,
        chunked: bool,
    },
}

type Handler = dyn Fn(&Request, u16) -> Reply + Send + Sync;

pub struct Scripted {
    pub port: u16,
    seen: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl Scripted {
    /// Serves on a free loopback port; `answer` gets each request and the server's own port.
    pub fn start(answer: impl Fn(&Request, u16) -> Reply + Send + Sync + 'static) -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let answer: Arc<Handler> = Arc::new(answer);
        let (sn, sp) = (seen.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if sp.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (sn, answer) = (sn.clone(), answer.clone());
                std::thread::spawn(move || serve(conn, port, &sn, &*answer));
            }
        });
        Scripted { port, seen, stop }
    }

    /// A server that answers everything with a token and an empty list, and counts: the
    /// "other origin" a redirect points to.
    pub fn sink() -> Scripted {
        Scripted::start(|_, _| {
            Reply::Json(
                200,
                serde_json::json!({ "access_token": "stolen", "expires_in": 3600, "value": [], "Resources": [], "totalResults": 0 }),
            )
        })
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Requests received, as `METHOD /path`.
    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve(conn: TcpStream, port: u16, seen: &Mutex<Vec<String>>, answer: &Handler) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut conn = conn;
    while let Some(req) = read_request(&mut reader) {
        seen.lock()
            .unwrap()
            .push(format!("{} {}", req.method, req.path));
        let ok = match answer(&req, port) {
            Reply::Json(code, v) => respond(
                &mut conn,
                code,
                &[("content-type".into(), "application/json".into())],
                v.to_string().as_bytes(),
            ),
            Reply::Raw(code, headers, body) => respond(&mut conn, code, &headers, &body),
            Reply::Huge { bytes, chunked } => {
                send_huge(&mut conn, bytes, chunked);
                false
            }
        };
        if !ok {
            return;
        }
    }
}
