//! Connection settings (from a URL or a Secrets Manager JSON secret), TLS, and
//! a reconnecting handle that a Lambda keeps across invocations.

use std::{fmt, future::Future, path::PathBuf, pin::Pin, str::FromStr, sync::Arc, time::Duration};

use dbsync_workflow::StepError;
use tokio::sync::{MappedMutexGuard, Mutex, MutexGuard};
use tokio_postgres::{config::SslMode, Client, NoTls};

use crate::{
    error::classify,
    tls::{self, TlsMode},
};

/// Session limits applied to every connection (startup options, so they hold
/// for every statement, even one a step forgets to bound).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub statement: Duration,
    pub lock: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        // Below Lambda's 15-minute ceiling, so a statement never outlives its invocation.
        Self {
            statement: Duration::from_secs(600),
            lock: Duration::from_secs(10),
        }
    }
}

/// Everything needed to open a session. `Debug` never prints the password.
#[derive(Clone)]
pub struct DbConfig {
    pg: tokio_postgres::Config,
    tls: TlsMode,
    ca_file: Option<PathBuf>,
    timeouts: Timeouts,
}

impl fmt::Debug for DbConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DbConfig")
            .field("target", &self.describe())
            .field("tls", &self.tls)
            .field("ca_file", &self.ca_file)
            .field("timeouts", &self.timeouts)
            .finish()
    }
}

/// The JSON shape of a Secrets Manager database secret. Secrets rotated by
/// a Lambda function hold `host`, `port`, `dbname` beside the credentials;
/// RDS-managed master secrets hold only `username` and `password`, and the
/// rest comes from an [`Endpoint`].
#[derive(serde::Deserialize)]
struct Secret {
    #[serde(default)]
    host: Option<String>,
    #[serde(default)]
    port: Option<serde_json::Value>,
    username: String,
    password: String,
    #[serde(default)]
    dbname: Option<String>,
}

/// Where a database is when its secret holds only credentials: the
/// deployment's parameters (`DB_HOST`/`DB_PORT`/`DB_NAME`, and `SOURCE_DB_…`
/// for production). A secret's own values win where it has them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Endpoint {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub dbname: Option<String>,
}

impl DbConfig {
    /// From a `postgres://user:pass@host:port/db?sslmode=…&sslrootcert=…` URL.
    /// `sslmode` may be any of [`TlsMode`]'s names (tokio-postgres alone knows
    /// only disable/prefer/require, so dbsync reads those two keys itself).
    pub fn from_url(url: &str) -> Result<Self, StepError> {
        let (base, query) = match url.split_once('?') {
            Some((b, q)) => (b, q),
            None => (url, ""),
        };
        let mut tls = None;
        let mut ca_file = None;
        let mut rest = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("sslmode", v)) => tls = Some(v.parse::<TlsMode>()?),
                Some(("sslrootcert", v)) => ca_file = Some(PathBuf::from(v)),
                _ => rest.push(pair),
            }
        }
        let cleaned = if rest.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", rest.join("&"))
        };
        // tokio-postgres' parse errors never echo the input, so no password can leak here.
        let pg = tokio_postgres::Config::from_str(&cleaned).map_err(|e| {
            StepError::Configuration(format!("the database URL cannot be parsed: {e}"))
        })?;
        if pg.get_hosts().is_empty() {
            return Err(StepError::Configuration(
                "the database URL names no host".into(),
            ));
        }
        Ok(Self {
            pg,
            // Like libpq's default "prefer" minus the silent downgrade: explicit is safer.
            tls: tls.unwrap_or(TlsMode::Disable),
            ca_file,
            timeouts: Timeouts::default(),
        })
    }

    /// From a Secrets Manager secret string (`host`, `port`, `username`,
    /// `password`, `dbname`), as RDS-managed secrets store it. Errors
    /// (`SecretInvalid`) name the secret by `name` and never quote it.
    pub fn from_secret_json(name: &str, secret: &str) -> Result<Self, StepError> {
        Self::from_secret_json_at(name, secret, &Endpoint::default())
    }

    /// [`from_secret_json`](Self::from_secret_json), taking what the secret
    /// lacks (host, port, database) from `endpoint`.
    pub fn from_secret_json_at(
        name: &str,
        secret: &str,
        endpoint: &Endpoint,
    ) -> Result<Self, StepError> {
        let s: Secret = serde_json::from_str(secret).map_err(|e| {
            // serde's message can quote a value; only "missing field" is safe to repeat.
            let msg = e.to_string();
            let what = match msg.find("missing field") {
                Some(i) => msg[i..]
                    .split(" at line")
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
                None => format!(
                    "not valid JSON of the expected shape (line {}, column {})",
                    e.line(),
                    e.column()
                ),
            };
            StepError::SecretInvalid(format!(
                "{name}: needs username and password (and host, port, dbname unless the deployment gives them): {what}"
            ))
        })?;
        let port = match &s.port {
            None => Some(endpoint.port.unwrap_or(5432)),
            Some(serde_json::Value::Number(n)) => n.as_u64().and_then(|p| u16::try_from(p).ok()),
            Some(serde_json::Value::String(p)) => p.parse().ok(),
            Some(_) => None,
        }
        .ok_or_else(|| {
            StepError::SecretInvalid(format!("{name}: the port is not a valid port number"))
        })?;
        let host = s
            .host
            .filter(|h| !h.is_empty())
            .or_else(|| endpoint.host.clone())
            .ok_or_else(|| {
                StepError::SecretInvalid(format!(
                    "{name}: holds no host (an RDS-managed master secret holds only the credentials): give the database's endpoint as a parameter (TargetDbHost / SourceDbHost)"
                ))
            })?;
        if s.username.is_empty() {
            return Err(StepError::SecretInvalid(format!(
                "{name}: the username is empty"
            )));
        }
        let dbname = s
            .dbname
            .filter(|d| !d.is_empty())
            .or_else(|| endpoint.dbname.clone())
            .unwrap_or_else(|| "postgres".into());
        let mut pg = tokio_postgres::Config::new();
        pg.host(&host)
            .port(port)
            .user(&s.username)
            .password(&s.password)
            .dbname(&dbname);
        Ok(Self {
            pg,
            // RDS accepts TLS everywhere; callers that know better override it.
            tls: TlsMode::Require,
            ca_file: None,
            timeouts: Timeouts::default(),
        })
    }

    pub fn with_tls(mut self, mode: TlsMode, ca_file: Option<PathBuf>) -> Self {
        self.tls = mode;
        if ca_file.is_some() {
            self.ca_file = ca_file;
        }
        self
    }

    pub fn with_timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    pub fn with_application_name(mut self, name: &str) -> Self {
        self.pg.application_name(name);
        self
    }

    pub fn tls_mode(&self) -> TlsMode {
        self.tls
    }

    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    /// The user sessions log in as.
    pub fn user(&self) -> Option<String> {
        self.pg.get_user().map(str::to_owned)
    }

    /// Whether the settings carry no password (the CLI then looks where libpq would).
    pub fn has_password(&self) -> bool {
        self.pg.get_password().is_some()
    }

    pub fn with_password(mut self, password: &str) -> Self {
        self.pg.password(password);
        self
    }

    /// The host name (or socket directory) sessions connect to.
    pub fn host(&self) -> Option<String> {
        match self.pg.get_hosts().first()? {
            tokio_postgres::config::Host::Tcp(h) => Some(h.clone()),
            #[cfg(unix)]
            tokio_postgres::config::Host::Unix(p) => Some(p.display().to_string()),
        }
    }

    pub fn database(&self) -> Option<String> {
        self.pg.get_dbname().map(str::to_owned)
    }

    pub fn port(&self) -> Option<u16> {
        self.pg.get_ports().first().copied()
    }

    /// `user@host:port/db`, safe for logs.
    pub fn describe(&self) -> String {
        let host = match self.pg.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            #[cfg(unix)]
            Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
            None => String::new(),
        };
        format!(
            "{}@{}:{}/{}",
            self.pg.get_user().unwrap_or(""),
            host,
            self.pg.get_ports().first().copied().unwrap_or(5432),
            self.pg.get_dbname().unwrap_or("")
        )
    }

    /// Opens a session with the configured TLS and timeouts.
    pub async fn connect(&self) -> Result<Client, StepError> {
        let mut pg = self.pg.clone();
        pg.options(format!(
            "-c statement_timeout={} -c lock_timeout={}",
            self.timeouts.statement.as_millis(),
            self.timeouts.lock.as_millis()
        ));
        pg.connect_timeout(Duration::from_secs(10));
        let ctx = "connecting";
        match self.tls {
            TlsMode::Disable => {
                pg.ssl_mode(SslMode::Disable);
                let (client, conn) = pg.connect(NoTls).await.map_err(|e| classify(e, ctx))?;
                spawn_connection(conn);
                Ok(client)
            }
            mode => {
                pg.ssl_mode(SslMode::Require);
                let connector = tls::connector(mode, self.ca_file.as_deref())?;
                let (client, conn) = pg.connect(connector).await.map_err(|e| classify(e, ctx))?;
                spawn_connection(conn);
                Ok(client)
            }
        }
    }
}

fn spawn_connection<C>(conn: C)
where
    C: Future<Output = Result<(), tokio_postgres::Error>> + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            // The client sees the failure on its next call; this only records why.
            tracing::warn!(error = %e, "database connection closed");
        }
    });
}

/// Produces the connection settings; `refresh` asks for a fresh copy (after an
/// authentication failure, the secret may have been rotated).
pub type ConfigLoader = Arc<
    dyn Fn(bool) -> Pin<Box<dyn Future<Output = Result<DbConfig, StepError>> + Send>> + Send + Sync,
>;

/// A session kept across Lambda invocations, reopened when it has closed.
pub struct Db {
    loader: ConfigLoader,
    state: Mutex<State>,
}

struct State {
    config: Option<DbConfig>,
    client: Option<Client>,
}

impl Db {
    /// A handle for fixed settings (a URL).
    pub fn new(config: DbConfig) -> Self {
        Self::with_loader(Arc::new(move |_refresh| {
            let c = config.clone();
            Box::pin(async move { Ok(c) })
        }))
    }

    pub fn with_loader(loader: ConfigLoader) -> Self {
        Self {
            loader,
            state: Mutex::new(State {
                config: None,
                client: None,
            }),
        }
    }

    /// The open session, connecting (or reconnecting) first when needed.
    pub async fn client(&self) -> Result<MappedMutexGuard<'_, Client>, StepError> {
        let mut st = self.state.lock().await;
        if st.client.as_ref().is_none_or(Client::is_closed) {
            st.client = None;
            let client = Self::open(&self.loader, &mut st).await?;
            st.client = Some(client);
        }
        Ok(MutexGuard::map(st, |s| {
            s.client.as_mut().expect("client was just set")
        }))
    }

    /// The settings in use, once a session has been opened.
    pub async fn config(&self) -> Option<DbConfig> {
        self.state.lock().await.config.clone()
    }

    /// Forgets the session (after a connection failure), so the next call
    /// reconnects even if the driver has not noticed the broken socket yet.
    pub async fn reset(&self) {
        self.state.lock().await.client = None;
    }

    async fn open(loader: &ConfigLoader, st: &mut State) -> Result<Client, StepError> {
        if st.config.is_none() {
            st.config = Some(loader(false).await?);
        }
        let config = st.config.as_ref().expect("config was just set");
        match config.connect().await {
            Err(StepError::AuthenticationFailed(_)) => {
                // Rotated credentials: fetch the settings again, once.
                let fresh = loader(true).await?;
                let client = fresh.connect().await?;
                st.config = Some(fresh);
                Ok(client)
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_with_extended_sslmode() {
        let c = DbConfig::from_url(
            "postgres://u:secretpw@db.example:6543/app?sslmode=verify-full&sslrootcert=/etc/rds.pem&application_name=x",
        )
        .unwrap();
        assert_eq!(c.tls, TlsMode::VerifyFull);
        assert_eq!(
            c.ca_file.as_deref(),
            Some(std::path::Path::new("/etc/rds.pem"))
        );
        assert_eq!(c.describe(), "u@db.example:6543/app");
        assert!(!format!("{c:?}").contains("secretpw"));
    }

    #[test]
    fn bad_urls_are_named_and_do_not_leak() {
        let e = DbConfig::from_url("postgres://u:hunter2@h/db?sslmode=allow").unwrap_err();
        assert_eq!(e.name(), "ConfigurationError");
        let e = DbConfig::from_url("postgres://u:hunter2@h:notaport/db").unwrap_err();
        assert_eq!(e.name(), "ConfigurationError");
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }

    #[test]
    fn rds_secret_shapes() {
        let c = DbConfig::from_secret_json(
            "s",
            r#"{"username":"app","password":"p@ss","engine":"postgres","host":"h.rds","port":5432,"dbname":"stage","dbInstanceIdentifier":"x"}"#,
        )
        .unwrap();
        assert_eq!(c.describe(), "app@h.rds:5432/stage");
        assert_eq!(c.tls, TlsMode::Require);
        let c = DbConfig::from_secret_json(
            "s",
            r#"{"username":"a","password":"b","host":"h","port":"6000"}"#,
        )
        .unwrap();
        assert_eq!(c.describe(), "a@h:6000/postgres");
    }

    #[test]
    fn an_rds_managed_secret_takes_the_endpoint_from_the_deployment() {
        // RDS-managed master secrets hold only the credentials.
        let managed = r#"{"username":"postgres","password":"p"}"#;
        let e = DbConfig::from_secret_json("arn:s", managed).unwrap_err();
        assert_eq!(e.name(), "SecretInvalid");
        assert!(e.to_string().contains("TargetDbHost"), "{e}");
        let at = Endpoint {
            host: Some("db.abc.eu-west-1.rds.amazonaws.com".into()),
            port: Some(6432),
            dbname: Some("staging".into()),
        };
        let c = DbConfig::from_secret_json_at("arn:s", managed, &at).unwrap();
        assert_eq!(
            c.describe(),
            "postgres@db.abc.eu-west-1.rds.amazonaws.com:6432/staging"
        );
        // A rotation-shaped secret's own values win.
        let full = r#"{"username":"a","password":"b","host":"h","port":5433,"dbname":"d"}"#;
        let c = DbConfig::from_secret_json_at("arn:s", full, &at).unwrap();
        assert_eq!(c.describe(), "a@h:5433/d");
    }

    #[test]
    fn bad_secrets_do_not_leak() {
        for s in [
            r#"{"username":"a","password":"TOPSECRET","host":"h","port":"x"}"#,
            r#"{"password":"TOPSECRET","host":"h"}"#,
            r#"{"username":"a","password":"TOPSECRET","#,
            r#"{"username":"a","password":"TOPSECRET","host":"h","port":99999}"#,
        ] {
            let e = DbConfig::from_secret_json("arn:s", s).unwrap_err();
            assert_eq!(e.name(), "SecretInvalid", "{s}");
            assert!(e.to_string().contains("arn:s"), "{e}");
            assert!(!e.to_string().contains("TOPSECRET"), "{e}");
        }
    }
}
