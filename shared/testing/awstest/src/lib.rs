//! A moto server (AWS API emulator) for the AWS-facing tests: S3, Step
//! Functions and Secrets Manager are exercised through real SDK calls.
//!
//! The server is found at `$MOTO_SERVER` or `<workspace>/.venv/bin/moto_server`
//! (`make` installs the pinned version from `.ci/requirements-test.txt`).
//! One server per test process, on a free port, started on first use and
//! stopped when the process exits (a watchdog outlives a crashed test just
//! long enough to stop it). Tests keep out of each other's way by naming
//! their resources uniquely ([`unique`]).
//!
//! Nothing here skips silently: when no server can be started, the test fails
//! saying why and how to fix it.

use std::{
    net::{TcpListener, TcpStream},
    path::PathBuf,
    process::{Command, Stdio},
    sync::{
        atomic::{AtomicU32, Ordering},
        OnceLock,
    },
    time::{Duration, Instant},
};

/// Dummy credentials and region moto accepts.
pub const ACCESS_KEY: &str = "testing";
pub const SECRET_KEY: &str = "testing";
pub const REGION: &str = "us-east-1";
/// The account moto reports.
pub const ACCOUNT: &str = "123456789012";

/// A running moto server.
#[derive(Debug)]
pub struct Moto {
    /// `http://127.0.0.1:<port>`
    pub endpoint: String,
    pub pid: u32,
}

static SHARED: OnceLock<Result<Moto, String>> = OnceLock::new();
static COUNTER: AtomicU32 = AtomicU32::new(0);

fn workspace_root() -> PathBuf {
    // shared/awstest → the workspace root.
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../..")
}

/// Where moto_server is: `$MOTO_SERVER`, else the repository's venv.
pub fn moto_server_path() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("MOTO_SERVER").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("MOTO_SERVER={} does not exist", p.display()))
        };
    }
    let venv = workspace_root().join(".venv/bin/moto_server");
    if venv.is_file() {
        return Ok(venv);
    }
    Err(format!(
        "moto_server not found: set MOTO_SERVER, or install it into the repository's venv: \
         python3 -m venv .venv && .venv/bin/pip install -r .ci/requirements-test.txt (looked for {})",
        venv.display()
    ))
}

impl Moto {
    /// The process-wide server, started on first use. Panics (failing the
    /// test) with the reason when it cannot start.
    pub fn shared() -> &'static Moto {
        match SHARED.get_or_init(Moto::start) {
            Ok(m) => m,
            Err(e) => panic!("cannot start the moto AWS emulator for this test: {e}"),
        }
    }

    fn start() -> Result<Moto, String> {
        let bin = moto_server_path()?;
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
        let pid = child.id();
        // Stop the server when this process is gone, however it ends (statics are never dropped).
        let watchdog = format!(
            "while kill -0 {parent} 2>/dev/null; do sleep 1; done; kill {pid} 2>/dev/null; sleep 2; kill -9 {pid} 2>/dev/null",
            parent = std::process::id()
        );
        Command::new("sh")
            .args(["-c", &watchdog])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start the moto watchdog: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err(format!(
                    "{} did not listen on port {port} within 30 s",
                    bin.display()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Moto {
            endpoint: format!("http://127.0.0.1:{port}"),
            pid,
        })
    }

    /// Environment for a function binary talking to this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
            ("AWS_REGION", REGION.into()),
            ("S3_FORCE_PATH_STYLE", "true".into()),
        ]
    }

    /// SDK settings for in-process clients talking to this server (the same
    /// HTTP client and retry policy the Lambdas use).
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        dbsync_aws::config_loader()
            .endpoint_url(&self.endpoint)
            .region(aws_config::Region::new(REGION))
            .credentials_provider(aws_credential_types::Credentials::new(
                ACCESS_KEY, SECRET_KEY, None, None, "moto",
            ))
            .load()
            .await
    }
}

/// A name no other test in this run uses (lower case, digits and dashes).
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}
