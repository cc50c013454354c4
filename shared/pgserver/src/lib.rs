//! A throwaway local PostgreSQL server: `initdb` into a fresh temporary
//! directory, a server on its own free port and socket directory, removed when
//! the owner drops it or, failing that, when the owning process exits (a
//! watchdog process outlives a crash just long enough to clean up).
//!
//! `dbsync demo` runs on one; the tests' clusters (`shared/testing/testpg`)
//! build on it. As root, `initdb`/`postgres` run as the `postgres` user through
//! `setpriv` (PostgreSQL refuses to run as root). Server binaries come from
//! `PG_BINDIR`, `pg_config --bindir`, or the newest `/usr/lib/postgresql/*/bin`.
//! When no server can be started, the caller gets an error saying why and how
//! to fix it.

use std::{
    fs,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

/// Options for a new server.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Extra `-c name=value` server settings.
    pub settings: Vec<(String, String)>,
    /// `pg_hba.conf` lines placed before the defaults (local and 127.0.0.1: trust).
    pub hba: Vec<String>,
    /// Keep the server when this process exits (no watchdog); the caller
    /// `std::mem::forget`s the [`Cluster`] to keep it past its scope too.
    pub persistent: bool,
}

/// A running throwaway server.
#[derive(Debug)]
pub struct Cluster {
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
    pid: u32,
    run_as_postgres: bool,
}

impl Cluster {
    /// Starts a new server.
    pub fn start(opts: Options) -> Result<Cluster, String> {
        Self::start_with(opts, |_| Ok(()))
    }

    /// Starts a new server; `prepare` may add files to the data directory
    /// (certificates, say) after `initdb` and before the server starts.
    pub fn start_with(
        opts: Options,
        prepare: impl FnOnce(&Path) -> Result<(), String>,
    ) -> Result<Cluster, String> {
        let bin = find_bindir()?;
        let run_as_postgres = is_root();
        let dir = std::env::temp_dir().join(format!(
            "dbsync-pg-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default()
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("sock"))
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let chown = |path: &Path| {
            if run_as_postgres {
                run(Command::new("chown")
                    .args(["-R", "postgres:postgres"])
                    .arg(path))
            } else {
                Ok(())
            }
        };
        chown(&dir)?;
        let data = dir.join("data");
        run(as_pg(run_as_postgres, &bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ]))?;
        let mut hba = opts.hba.join("\n");
        if !hba.is_empty() {
            hba.push('\n');
        }
        hba.push_str("local all all trust\nhost all all 127.0.0.1/32 trust\n");
        fs::write(data.join("pg_hba.conf"), hba)
            .map_err(|e| format!("cannot write pg_hba.conf: {e}"))?;
        prepare(&data)?;
        chown(&data)?;
        let mut settings: Vec<(String, String)> = vec![
            ("listen_addresses".into(), "127.0.0.1".into()),
            (
                "unix_socket_directories".into(),
                dir.join("sock").display().to_string(),
            ),
            // Throwaway data: durability only costs time.
            ("fsync".into(), "off".into()),
            ("synchronous_commit".into(), "off".into()),
            ("full_page_writes".into(), "off".into()),
            ("max_connections".into(), "100".into()),
            ("max_locks_per_transaction".into(), "256".into()),
            // Lets tests count the statements a step sends (ALTER DATABASE … SET log_statement).
            ("log_line_prefix".into(), "%d|".into()),
        ];
        settings.extend(opts.settings);
        let port = free_port()?;
        let log = fs::File::create(dir.join("server.log")).map_err(|e| e.to_string())?;
        let mut cmd = as_pg(run_as_postgres, &bin.join("postgres"));
        cmd.arg("-D").arg(&data).arg("-p").arg(port.to_string());
        for (k, v) in &settings {
            cmd.arg("-c").arg(format!("{k}={v}"));
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start postgres: {e}"))?;
        let cluster = Cluster {
            port,
            dir,
            bin,
            pid: child.id(),
            run_as_postgres,
        };
        if !opts.persistent {
            cluster.spawn_watchdog();
        }
        cluster.wait_ready()?;
        Ok(cluster)
    }

    /// Stops the server and removes its files when this process ends, even by a crash.
    fn spawn_watchdog(&self) {
        let script = format!(
            "while kill -0 {parent} 2>/dev/null; do sleep 0.5; done; \
             kill -INT {pid} 2>/dev/null; for i in $(seq 1 40); do kill -0 {pid} 2>/dev/null || break; sleep 0.25; done; \
             kill -KILL {pid} 2>/dev/null; rm -rf '{dir}'",
            parent = std::process::id(),
            pid = self.pid,
            dir = self.dir.display()
        );
        let _ = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
    }

    fn wait_ready(&self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ok = Command::new(self.bin.join("pg_isready"))
                .args([
                    "-q",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    "postgres",
                ])
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if ok {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("server did not start; log:\n{}", self.log_tail()));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The last lines of the server log, for failure messages.
    pub fn log_tail(&self) -> String {
        let log = fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        let lines: Vec<_> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// The server's log file.
    pub fn log_file(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Everything the server owns (data, socket, log): removing it removes all.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Runs SQL as the superuser through psql (setup only).
    pub fn admin_sql(&self, sql: &str) -> Result<(), String> {
        run(Command::new(self.bin.join("psql"))
            .args([
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
            ])
            .args(["-p", &self.port.to_string(), "-d", "postgres", "-c", sql]))
    }

    /// `postgres://postgres@127.0.0.1:PORT/DB`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    pub fn bindir(&self) -> &Path {
        &self.bin
    }

    /// Stops the server now and removes its files.
    pub fn stop(&self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.pid.to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Path::new(&format!("/proc/{}", self.pid)).exists() && Instant::now() < deadline {
            // A zombie child still has a /proc entry; reap it if it is ours.
            if fs::read_to_string(format!("/proc/{}/stat", self.pid))
                .is_ok_and(|s| s.contains(") Z "))
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = fs::remove_dir_all(&self.dir);
    }

    /// The postmaster's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn runs_as_postgres_user(&self) -> bool {
        self.run_as_postgres
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}

fn as_pg(run_as_postgres: bool, program: &Path) -> Command {
    if run_as_postgres {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=postgres",
            "--regid=postgres",
            "--init-groups",
            "--",
        ])
        .arg(program);
        c
    } else {
        Command::new(program)
    }
}

/// Runs a command to completion; its output becomes the error when it fails.
pub fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{:?} failed: {}{}",
            cmd.get_program(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

fn find_bindir() -> Result<PathBuf, String> {
    let has_initdb = |p: &Path| p.join("initdb").exists() && p.join("postgres").exists();
    if let Some(dir) = std::env::var_os("PG_BINDIR") {
        let p = PathBuf::from(dir);
        return if has_initdb(&p) {
            Ok(p)
        } else {
            Err(format!(
                "PG_BINDIR={} holds no initdb/postgres",
                p.display()
            ))
        };
    }
    let mut candidates: Vec<PathBuf> = fs::read_dir("/usr/lib/postgresql")
        .map(|rd| rd.flatten().map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    candidates.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        candidates.push(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    }
    candidates.into_iter().rev().find(|p| has_initdb(p)).ok_or_else(|| {
        "PostgreSQL server binaries (initdb, postgres) not found: run `make test` (it installs them), \
         install the postgresql package, or set PG_BINDIR"
            .to_owned()
    })
}
