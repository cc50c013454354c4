//! version-check's SQL source against real PostgreSQL databases (and the
//! binary configured for it).

use std::path::Path;

use dbsync_db::version::SqlVersionSource as SqlSource;
use dbsync_db::{Db, DbConfig};
use dbsync_lambda_test::{error_type, invoke_once, Outcome};
use dbsync_testpg::Cluster;
use dbsync_workflow::steps::version_check;
use serde_json::json;

const QUERY: &str = "select max(version)::text from schema_migrations";

async fn database(prefix: &str, versions: &[i64]) -> dbsync_testpg::TestDb {
    let db = Cluster::shared().create_db(prefix).await;
    let c = db.client().await;
    c.batch_execute("CREATE TABLE schema_migrations (version bigint PRIMARY KEY)")
        .await
        .unwrap();
    for v in versions {
        c.execute("INSERT INTO schema_migrations VALUES ($1)", &[v])
            .await
            .unwrap();
    }
    db
}

fn handle(url: &str) -> Db {
    Db::new(DbConfig::from_url(url).unwrap())
}

#[tokio::test]
async fn compares_the_query_results() {
    let (prod, staging) = (
        database("vprod", &[1, 20251124]).await,
        database("vstage", &[1, 20251124]).await,
    );
    let staging_db = handle(&staging.url);
    // Local mode shares the target's handle: the source borrows it.
    let src = SqlSource::new(handle(&prod.url), &staging_db, QUERY.into());
    let out = version_check::handle(&src, json!({})).await.unwrap();
    assert!(out.in_sync);
    assert_eq!(out.prod_version, "20251124");

    staging
        .client()
        .await
        .batch_execute("DELETE FROM schema_migrations WHERE version > 1")
        .await
        .unwrap();
    let out = version_check::handle(&src, json!({})).await.unwrap();
    assert!(!out.in_sync);
    assert_eq!(out.staging_version, "1");

    // No migrations recorded: max() is NULL.
    staging
        .client()
        .await
        .batch_execute("DELETE FROM schema_migrations")
        .await
        .unwrap();
    let e = version_check::handle(&src, json!({})).await.unwrap_err();
    assert_eq!(e.name(), "VersionUnavailable");
    assert!(
        e.to_string().contains("staging") && e.to_string().contains("NULL"),
        "{e}"
    );

    // More than one row is not a version.
    let src = SqlSource::new(
        handle(&prod.url),
        &staging_db,
        "select version::text from schema_migrations".into(),
    );
    assert_eq!(
        version_check::handle(&src, json!({}))
            .await
            .unwrap_err()
            .name(),
        "VersionInvalid"
    );
}

#[tokio::test]
async fn missing_tables_and_unreachable_servers_are_named() {
    let prod = database("vprod2", &[5]).await;
    let empty = Cluster::shared().create_db("vnotable").await;
    let src = SqlSource::new(handle(&prod.url), handle(&empty.url), QUERY.into());
    let e = version_check::handle(&src, json!({})).await.unwrap_err();
    assert_eq!(e.name(), "DatabaseError");
    assert!(
        e.to_string().contains("42P01") && !e.to_string().contains("select max"),
        "{e}"
    );

    // Nothing listens on port 1.
    let src = SqlSource::new(
        handle("postgres://u:secretpw@127.0.0.1:1/db"),
        handle(&prod.url),
        QUERY.into(),
    );
    let e = version_check::handle(&src, json!({})).await.unwrap_err();
    assert_eq!(e.name(), "DatabaseUnavailable");
    assert!(!e.to_string().contains("secretpw"), "{e}");
}

#[tokio::test]
async fn the_binary_reads_both_databases() {
    let (prod, staging) = (
        database("vbprod", &[3]).await,
        database("vbstage", &[3]).await,
    );
    let env = [
        ("VERSION_SOURCE", "sql"),
        ("SOURCE_DATABASE_URL", prod.url.as_str()),
        ("DATABASE_URL", staging.url.as_str()),
    ];
    let event = serde_json::from_str(include_str!("../../../events/version-check.json")).unwrap();
    let out = invoke_once(Path::new(env!("CARGO_BIN_EXE_version-check")), &env, event);
    assert_eq!(
        out,
        Outcome::Response(json!({"inSync": true, "prodVersion": "3", "stagingVersion": "3"}))
    );

    // Both a URL and a secret for one side: refused rather than guessed.
    let env = [
        ("VERSION_SOURCE", "sql"),
        ("SOURCE_DATABASE_URL", "postgres://u@h/db"),
        (
            "SOURCE_DB_SECRET_ARN",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:x",
        ),
        ("DATABASE_URL", "postgres://u@h/db"),
    ];
    let out = invoke_once(
        Path::new(env!("CARGO_BIN_EXE_version-check")),
        &env,
        json!({}),
    );
    assert_eq!(error_type(&out), "ConfigurationError");
}

#[tokio::test]
async fn the_binary_reads_connection_secrets_from_secrets_manager() {
    use dbsync_awstest::{unique, Moto};
    use dbsync_testpg::{PASSWORD, PASSWORD_USER};

    let (prod, staging) = (
        database("vsprod", &[9]).await,
        database("vsstage", &[8]).await,
    );
    let moto = Moto::shared();
    let sm = aws_sdk_secretsmanager::Client::new(&moto.sdk_config().await);
    let port = Cluster::shared().port;
    let mut arns = Vec::new();
    for db in [&prod, &staging] {
        let value = format!(
            r#"{{"host":"127.0.0.1","port":{port},"username":"{PASSWORD_USER}","password":"{PASSWORD}","dbname":"{}"}}"#,
            db.name
        );
        let out = sm
            .create_secret()
            .name(unique("dbsync/db"))
            .secret_string(value)
            .send()
            .await
            .unwrap();
        arns.push(out.arn().unwrap().to_owned());
    }
    let base = moto.env();
    let mut env: Vec<(&str, &str)> = base.iter().map(|(k, v)| (*k, v.as_str())).collect();
    env.extend([
        ("VERSION_SOURCE", "sql"),
        ("SOURCE_DB_SECRET_ARN", arns[0].as_str()),
        ("DB_SECRET_ARN", arns[1].as_str()),
        ("DB_SSLMODE", "disable"),
    ]);
    let out = invoke_once(
        Path::new(env!("CARGO_BIN_EXE_version-check")),
        &env,
        json!({}),
    );
    assert_eq!(
        out,
        Outcome::Response(json!({"inSync": false, "prodVersion": "9", "stagingVersion": "8"}))
    );

    // A secret that does not exist: named, fails closed.
    let missing = "arn:aws:secretsmanager:us-east-1:123456789012:secret:dbsync/gone-AbCdEf";
    env.retain(|(k, _)| *k != "DB_SECRET_ARN");
    env.push(("DB_SECRET_ARN", missing));
    let out = invoke_once(
        Path::new(env!("CARGO_BIN_EXE_version-check")),
        &env,
        json!({}),
    );
    assert_eq!(error_type(&out), "SecretUnavailable");
}

/// The query is the user's and one database is production: it runs in a
/// read-only transaction (a query that writes is refused, nothing written),
/// and the session stays usable afterwards.
#[tokio::test]
async fn the_version_query_cannot_write() {
    let (prod, staging) = (
        database("vro_prod", &[7]).await,
        database("vro_stage", &[7]).await,
    );
    // A write, a write hidden in a CTE, and statements that try to leave the
    // read-only transaction: each refused by name, nothing written.
    for writing in [
        "insert into schema_migrations values (8) returning version::text",
        "with w as (insert into schema_migrations values (8) returning version) select version::text from w",
        "select '7'; commit; insert into schema_migrations values (8)",
        "commit; insert into schema_migrations values (8) returning version::text",
    ] {
        let src = SqlSource::new(handle(&prod.url), handle(&staging.url), writing.into());
        let e = version_check::handle(&src, json!({})).await.unwrap_err();
        assert!(
            ["ConfigurationError", "DatabaseError"].contains(&e.name()),
            "{writing}: {e}"
        );
    }
    let rows: i64 = prod
        .client()
        .await
        .query_one("select count(*) from schema_migrations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 1, "nothing written");
    // The same handles answer the next (good) query.
    let src = SqlSource::new(handle(&prod.url), handle(&staging.url), QUERY.into());
    assert!(
        version_check::handle(&src, json!({}))
            .await
            .unwrap()
            .in_sync
    );
}
