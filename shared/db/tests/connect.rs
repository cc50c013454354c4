//! Connecting: TLS modes, credentials, timeouts and reconnection, against real servers.

use std::{sync::Arc, time::Duration};

use dbsync_db::{Db, DbConfig, Timeouts, TlsMode};
use dbsync_testpg::{Cluster, Options, PASSWORD, PASSWORD_USER};

fn tls_cluster() -> &'static Cluster {
    static C: std::sync::OnceLock<Cluster> = std::sync::OnceLock::new();
    C.get_or_init(|| {
        Cluster::start(Options {
            tls: true,
            ..Options::default()
        })
        .unwrap_or_else(|e| panic!("cannot start a TLS test server: {e}"))
    })
}

async fn ssl_in_use(client: &tokio_postgres::Client) -> bool {
    client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn tls_modes_behave_like_libpq() {
    let c = tls_cluster();
    let ca = c.ca_file();
    let url = |host: &str, mode: &str| {
        format!(
            "postgres://postgres@{host}:{}/postgres?sslmode={mode}&sslrootcert={}",
            c.port,
            ca.display()
        )
    };

    let plain = DbConfig::from_url(&url("127.0.0.1", "disable"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    assert!(!ssl_in_use(&plain).await);

    let require = DbConfig::from_url(&format!(
        "postgres://postgres@127.0.0.1:{}/postgres?sslmode=require",
        c.port
    ))
    .unwrap()
    .connect()
    .await
    .unwrap();
    assert!(
        ssl_in_use(&require).await,
        "require encrypts without checking the certificate"
    );

    // The certificate names localhost only: verify-ca accepts an IP, verify-full does not.
    let ca_ok = DbConfig::from_url(&url("127.0.0.1", "verify-ca"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    assert!(ssl_in_use(&ca_ok).await);
    let err = DbConfig::from_url(&url("127.0.0.1", "verify-full"))
        .unwrap()
        .connect()
        .await
        .unwrap_err();
    assert_eq!(err.name(), "DatabaseTlsError", "{err}");
    let full_ok = DbConfig::from_url(&url("localhost", "verify-full"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    assert!(ssl_in_use(&full_ok).await);

    // Without our CA (public roots only) the self-signed chain is rejected.
    let err = DbConfig::from_url(&format!(
        "postgres://postgres@localhost:{}/postgres?sslmode=verify-ca",
        c.port
    ))
    .unwrap()
    .connect()
    .await
    .unwrap_err();
    assert_eq!(err.name(), "DatabaseTlsError", "{err}");

    // A bundle that holds another CA (a wrong RDS region's, say) is refused too.
    let other = std::env::temp_dir().join(format!("dbsync-other-ca-{}", std::process::id()));
    std::fs::create_dir_all(&other).unwrap();
    let other_ca = other.join("other-ca.pem");
    let made = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=some-other-ca", "-keyout"])
        .arg(other.join("key.pem"))
        .arg("-out")
        .arg(&other_ca)
        .output()
        .expect("openssl runs");
    assert!(made.status.success(), "openssl: {made:?}");
    for mode in ["verify-ca", "verify-full"] {
        let err = DbConfig::from_url(&format!(
            "postgres://postgres@localhost:{}/postgres?sslmode={mode}&sslrootcert={}",
            c.port,
            other_ca.display()
        ))
        .unwrap()
        .connect()
        .await
        .unwrap_err();
        assert_eq!(err.name(), "DatabaseTlsError", "{mode}: {err}");
    }
    std::fs::remove_dir_all(&other).ok();

    // A bundle the build did not package: named, and the message says how to get it.
    let err = DbConfig::from_url(&format!(
        "postgres://postgres@localhost:{}/postgres?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
        c.port
    ))
    .unwrap()
    .connect()
    .await
    .unwrap_err();
    assert_eq!(err.name(), "ConfigurationError", "{err}");
    assert!(err.to_string().contains("RDS_CA_BUNDLE"), "{err}");
}

#[tokio::test]
async fn tls_against_a_server_without_tls_is_a_named_error() {
    let c = Cluster::shared();
    let err = DbConfig::from_url(&format!(
        "postgres://postgres@127.0.0.1:{}/postgres?sslmode=require",
        c.port
    ))
    .unwrap()
    .connect()
    .await
    .unwrap_err();
    assert_eq!(err.name(), "DatabaseTlsError", "{err}");
}

#[tokio::test]
async fn wrong_password_is_named_and_never_echoed() {
    let c = Cluster::shared();
    let good = format!(
        "postgres://{PASSWORD_USER}:{}@127.0.0.1:{}/postgres",
        PASSWORD.replace(' ', "%20"),
        c.port
    );
    DbConfig::from_url(&good).unwrap().connect().await.unwrap();
    let bad = format!(
        "postgres://{PASSWORD_USER}:Sup3rS3cret@127.0.0.1:{}/postgres",
        c.port
    );
    let err = DbConfig::from_url(&bad)
        .unwrap()
        .connect()
        .await
        .unwrap_err();
    assert_eq!(err.name(), "DatabaseAuthenticationFailed", "{err}");
    assert!(!err.to_string().contains("Sup3rS3cret"), "{err}");
}

#[tokio::test]
async fn unreachable_server_is_transient() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = DbConfig::from_url(&format!("postgres://u:pw@127.0.0.1:{port}/db"))
        .unwrap()
        .connect()
        .await
        .unwrap_err();
    assert_eq!(err.name(), "DatabaseUnavailable", "{err}");
    assert!(err.is_transient());
    let err = DbConfig::from_url(&format!(
        "postgres://postgres@127.0.0.1:{}/no_such_db",
        Cluster::shared().port
    ))
    .unwrap()
    .connect()
    .await
    .unwrap_err();
    assert_eq!(err.name(), "ConfigurationError", "{err}");
}

#[tokio::test]
async fn sessions_carry_the_configured_time_limits() {
    let db = Cluster::shared().create_db("limits").await;
    let client = DbConfig::from_url(&db.url)
        .unwrap()
        .with_timeouts(Timeouts {
            statement: Duration::from_millis(1500),
            lock: Duration::from_millis(250),
        })
        .connect()
        .await
        .unwrap();
    let st: String = client
        .query_one("SHOW statement_timeout", &[])
        .await
        .unwrap()
        .get(0);
    let lt: String = client
        .query_one("SHOW lock_timeout", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!((st.as_str(), lt.as_str()), ("1500ms", "250ms"));
    let err = client
        .batch_execute("SELECT pg_sleep(3)")
        .await
        .unwrap_err();
    assert_eq!(
        dbsync_db::classify(err, "sleeping").name(),
        "StatementTimeout"
    );
}

#[tokio::test]
async fn handle_reconnects_after_the_session_dies() {
    let db = Cluster::shared().create_db("reconnect").await;
    let handle = Db::new(DbConfig::from_url(&db.url).unwrap());
    let pid: i32 = handle
        .client()
        .await
        .unwrap()
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    let admin = db.client().await;
    admin
        .batch_execute(&format!("SELECT pg_terminate_backend({pid})"))
        .await
        .unwrap();
    // Termination is asynchronous: wait until the backend is gone.
    for _ in 0..100 {
        let left: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = $1",
                &[&pid],
            )
            .await
            .unwrap()
            .get(0);
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Either the handle already noticed the dead session and reconnects, or
    // the first use fails and the Lambda entry point resets it (as here).
    let mut new_pid = None;
    for _ in 0..3 {
        let c = handle.client().await.unwrap();
        match c.query_one("SELECT pg_backend_pid()", &[]).await {
            Ok(r) => {
                new_pid = Some(r.get::<_, i32>(0));
                break;
            }
            Err(_) => {
                drop(c);
                handle.reset().await;
            }
        }
    }
    let new_pid = new_pid.expect("a new session after the old one died");
    assert_ne!(pid, new_pid);
}

#[tokio::test]
async fn secret_json_connects_and_rotation_is_refetched() {
    let c = Cluster::shared();
    let secret = |pw: &str| {
        format!(
            r#"{{"engine":"postgres","host":"127.0.0.1","port":{},"username":"{PASSWORD_USER}","password":"{pw}","dbname":"postgres"}}"#,
            c.port
        )
    };
    // The first load returns a stale password; a refresh returns the rotated one.
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (stale, fresh) = (secret("old-password"), secret(PASSWORD));
    let counter = calls.clone();
    let handle = Db::with_loader(Arc::new(move |refresh| {
        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let text = if refresh {
            fresh.clone()
        } else {
            stale.clone()
        };
        Box::pin(async move {
            Ok(DbConfig::from_secret_json("test secret", &text)?.with_tls(TlsMode::Disable, None))
        })
    }));
    let user: String = handle
        .client()
        .await
        .unwrap()
        .query_one("SELECT current_user::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(user, PASSWORD_USER);
    assert_eq!(
        calls.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "loaded, then refreshed once"
    );
}
