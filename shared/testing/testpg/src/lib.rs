//! Throwaway PostgreSQL clusters for the tests and benchmarks, on top of the
//! product's throwaway server (`dbsync-pgserver`): one shared cluster per test
//! process, fresh databases, a password-only role, TLS with a CA made for the
//! test, and a count of the statements a step sent.
//!
//! Nothing here is a silent skip: when no server can be started, the test
//! fails saying why and how to fix it.

use std::{
    ops::Deref,
    path::{Path, PathBuf},
    process::Command,
    sync::atomic::{AtomicU32, Ordering},
    sync::OnceLock,
};

use dbsync_pgserver::run;

/// Options for a new cluster.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Serve TLS with a fresh self-signed CA (see [`Cluster::ca_file`]).
    pub tls: bool,
    /// Extra `-c name=value` server settings.
    pub settings: Vec<(String, String)>,
    /// Keep the server when this process exits (no watchdog).
    pub persistent: bool,
}

/// A running throwaway server, with the tests' conveniences.
#[derive(Debug)]
pub struct Cluster {
    server: dbsync_pgserver::Cluster,
}

impl Deref for Cluster {
    type Target = dbsync_pgserver::Cluster;
    fn deref(&self) -> &Self::Target {
        &self.server
    }
}

/// A role that must log in with a password (for authentication tests).
pub const PASSWORD_USER: &str = "dbsync_pw";
pub const PASSWORD: &str = "correct horse";

static SHARED: OnceLock<Result<Cluster, String>> = OnceLock::new();
static DB_COUNTER: AtomicU32 = AtomicU32::new(0);

impl Cluster {
    /// One cluster per test process, started on first use.
    pub fn shared() -> &'static Cluster {
        match SHARED.get_or_init(|| Cluster::start(Options::default())) {
            Ok(c) => c,
            Err(e) => panic!("cannot start a throwaway PostgreSQL server for the tests: {e}"),
        }
    }

    /// Starts a new cluster.
    pub fn start(opts: Options) -> Result<Cluster, String> {
        let mut settings = opts.settings;
        if opts.tls {
            settings.push(("ssl".into(), "on".into()));
        }
        let server_opts = dbsync_pgserver::Options {
            settings,
            hba: vec![
                format!("host all {PASSWORD_USER} 127.0.0.1/32 scram-sha-256"),
                format!("hostssl all {PASSWORD_USER} 127.0.0.1/32 scram-sha-256"),
            ],
            persistent: opts.persistent,
        };
        let server = dbsync_pgserver::Cluster::start_with(server_opts, |data| {
            if opts.tls {
                make_certs(data)
            } else {
                Ok(())
            }
        })?;
        server.admin_sql(&format!(
            "CREATE ROLE {PASSWORD_USER} LOGIN SUPERUSER PASSWORD '{PASSWORD}'"
        ))?;
        Ok(Cluster { server })
    }

    /// Statements the server logged for `db` (after `ALTER DATABASE db SET
    /// log_statement = 'all'`): one per simple query or extended-protocol execute,
    /// so this counts round trips.
    pub fn statements_logged(&self, db: &str) -> usize {
        let log = std::fs::read_to_string(self.log_file()).unwrap_or_default();
        let (simple, extended) = (
            format!("{db}|LOG:  statement: "),
            format!("{db}|LOG:  execute "),
        );
        log.lines()
            .filter(|l| l.starts_with(&simple) || l.starts_with(&extended))
            .count()
    }

    /// The CA that signed the server certificate (TLS clusters).
    pub fn ca_file(&self) -> PathBuf {
        self.data_dir().join("ca.crt")
    }

    /// A fresh, empty database.
    pub async fn create_db(&self, prefix: &str) -> TestDb {
        let name = format!("{prefix}_{}", DB_COUNTER.fetch_add(1, Ordering::SeqCst));
        let (client, conn) = tokio_postgres::connect(&self.url("postgres"), tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("cannot reach the test server: {e}\n{}", self.log_tail()));
        tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .unwrap_or_else(|e| panic!("cannot create database {name}: {e}"));
        TestDb {
            url: self.url(&name),
            name,
        }
    }
}

/// A database of a throwaway cluster.
#[derive(Debug, Clone)]
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    /// A plain client (no TLS, no dbsync settings) for setup and assertions.
    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", self.name));
        tokio::spawn(conn);
        client
    }
}

/// A CA and a server certificate for `localhost` / 127.0.0.1, made with openssl.
fn make_certs(data: &Path) -> Result<(), String> {
    let sh = format!(
        "set -e; cd '{}'; \
         openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=dbsync-test-ca -keyout ca.key -out ca.crt 2>/dev/null; \
         openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout server.key -out server.csr 2>/dev/null; \
         printf 'subjectAltName=DNS:localhost\\nbasicConstraints=CA:FALSE\\nkeyUsage=digitalSignature,keyEncipherment\\nextendedKeyUsage=serverAuth\\n' > ext.cnf; \
         openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile ext.cnf -out server.crt 2>/dev/null; \
         chmod 600 server.key",
        data.display()
    );
    run(Command::new("sh").arg("-c").arg(sh))
        .map_err(|e| format!("cannot make test certificates (is openssl installed?): {e}"))
}
