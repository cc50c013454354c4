//! A small, synchronous implementation of the Lambda Runtime API (the HTTP
//! interface a `provided.al2023` bootstrap polls), so tests and benchmarks can
//! run a real function binary: its `main.rs` wiring, environment handling and
//! error names, exactly as Lambda would drive it.
//!
//! Routes: `GET /2018-06-01/runtime/invocation/next`,
//! `POST …/invocation/{id}/response`, `POST …/invocation/{id}/error`,
//! `POST …/runtime/init/error`.

use std::{
    collections::VecDeque,
    io::{BufRead, BufReader, Read, Write},
    net::{TcpListener, TcpStream},
    path::Path,
    process::{Child, Command, Stdio},
    sync::{mpsc, Arc, Mutex},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use serde_json::Value;

/// What the function answered for one event.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Response(Value),
    /// `{"errorType": …, "errorMessage": …}` as the function reported it.
    Error(Value),
    /// The function failed before taking an event.
    InitError(Value),
}

struct Shared {
    events: VecDeque<(String, Value)>,
    first_poll: Option<Instant>,
}

/// A running Runtime API endpoint with a function process attached.
pub struct RuntimeApi {
    pub addr: String,
    shared: Arc<Mutex<Shared>>,
    outcomes: mpsc::Receiver<(String, Outcome)>,
    child: Option<Child>,
    started: Option<Instant>,
}

impl RuntimeApi {
    pub fn start() -> RuntimeApi {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the runtime API port");
        let addr = listener.local_addr().unwrap().to_string();
        let shared = Arc::new(Mutex::new(Shared {
            events: VecDeque::new(),
            first_poll: None,
        }));
        let (tx, rx) = mpsc::channel();
        let s = shared.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (s, tx) = (s.clone(), tx.clone());
                std::thread::spawn(move || serve(stream, s, tx));
            }
        });
        RuntimeApi {
            addr,
            shared,
            outcomes: rx,
            child: None,
            started: None,
        }
    }

    /// Starts `binary` as Lambda would, with `env` added to a clean environment.
    pub fn spawn(&mut self, binary: &Path, env: &[(&str, &str)]) {
        self.spawn_args(binary, &[], env);
    }

    /// Like [`RuntimeApi::spawn`], with arguments (e.g. an interpreter and its script).
    pub fn spawn_args(&mut self, binary: &Path, args: &[&str], env: &[(&str, &str)]) {
        let mut cmd = Command::new(binary);
        cmd.args(args);
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AWS_LAMBDA_RUNTIME_API", &self.addr)
            .env("AWS_LAMBDA_FUNCTION_NAME", binary.file_name().unwrap())
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/test")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "test")
            .env("AWS_REGION", "us-east-1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        self.started = Some(Instant::now());
        self.child = Some(
            cmd.spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display())),
        );
    }

    /// Queues one event and waits for the function's answer.
    pub fn invoke(&self, event: Value, timeout: Duration) -> Outcome {
        let id = format!(
            "req-{}",
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        );
        self.shared
            .lock()
            .unwrap()
            .events
            .push_back((id.clone(), event));
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.outcomes.recv_timeout(left) {
                Ok((rid, out @ Outcome::InitError(_))) => {
                    let _ = rid;
                    return out;
                }
                Ok((rid, out)) if rid == id => return out,
                Ok(_) => continue,
                Err(_) => panic!("the function did not answer within {timeout:?}"),
            }
        }
    }

    /// Time from process start to its first request for an event.
    pub fn init_time(&self) -> Option<Duration> {
        let first = self.shared.lock().unwrap().first_poll?;
        Some(first - self.started?)
    }

    /// Waits until the function first asks for an event.
    pub fn wait_ready(&self, timeout: Duration) -> Duration {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(t) = self.init_time() {
                return t;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        panic!("the function never polled for an event");
    }

    /// Peak resident memory of the function process so far (Linux), in KiB.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let pid = self.child.as_ref()?.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn serve(stream: TcpStream, shared: Arc<Mutex<Shared>>, tx: mpsc::Sender<(String, Outcome)>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut out = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let (method, path) = (
            parts.next().unwrap_or("").to_owned(),
            parts.next().unwrap_or("").to_owned(),
        );
        let (mut length, mut chunked) = (0usize, false);
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let lower = h.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
            if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
                chunked = true;
            }
        }
        let body = if chunked {
            read_chunked(&mut reader)
        } else {
            read_exact(&mut reader, length)
        };
        let body_json = || serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null);
        if method == "GET" && path.ends_with("/runtime/invocation/next") {
            let (id, event) = loop {
                {
                    let mut s = shared.lock().unwrap();
                    s.first_poll.get_or_insert_with(Instant::now);
                    if let Some(e) = s.events.pop_front() {
                        break e;
                    }
                }
                std::thread::sleep(Duration::from_millis(1));
            };
            let deadline = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_millis()
                + 300_000;
            let payload = event.to_string();
            let _ = write!(
                out,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nLambda-Runtime-Aws-Request-Id: {id}\r\n\
                 Lambda-Runtime-Deadline-Ms: {deadline}\r\n\
                 Lambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:123456789012:function:test\r\n\
                 Lambda-Runtime-Trace-Id: Root=1-00000000-000000000000000000000000;Sampled=0\r\n\
                 Content-Length: {}\r\n\r\n{payload}",
                payload.len()
            );
        } else {
            let outcome = if path.ends_with("/init/error") {
                Some(("init".to_owned(), Outcome::InitError(body_json())))
            } else {
                let id = path.split('/').nth(4).unwrap_or_default().to_owned();
                if path.ends_with("/response") {
                    Some((id, Outcome::Response(body_json())))
                } else if path.ends_with("/error") {
                    Some((id, Outcome::Error(body_json())))
                } else {
                    None
                }
            };
            let status = if outcome.is_some() {
                "202 Accepted"
            } else {
                "404 Not Found"
            };
            let _ = write!(out, "HTTP/1.1 {status}\r\nContent-Length: 2\r\n\r\n{{}}");
            if let Some(o) = outcome {
                let _ = tx.send(o);
            }
        }
        let _ = out.flush();
    }
}

fn read_exact(r: &mut impl Read, n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    let _ = r.read_exact(&mut buf);
    buf
}

fn read_chunked(r: &mut BufReader<TcpStream>) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        if r.read_line(&mut size).unwrap_or(0) == 0 {
            return body;
        }
        let n =
            usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16).unwrap_or(0);
        let chunk = read_exact(r, n + 2);
        if n == 0 {
            return body;
        }
        body.extend_from_slice(&chunk[..n]);
    }
}

/// Starts `binary`, answers one event with it, stops it.
pub fn invoke_once(binary: &Path, env: &[(&str, &str)], event: Value) -> Outcome {
    let mut api = RuntimeApi::start();
    api.spawn(binary, env);
    api.invoke(event, Duration::from_secs(60))
}

/// The `errorType` of an error outcome (panics on success, naming the response).
pub fn error_type(outcome: &Outcome) -> &str {
    match outcome {
        Outcome::Error(v) | Outcome::InitError(v) => v["errorType"].as_str().unwrap_or_default(),
        Outcome::Response(v) => panic!("expected an error, got the response {v}"),
    }
}
