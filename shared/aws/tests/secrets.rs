//! Connection settings from Secrets Manager (moto) to a real PostgreSQL server:
//! a good secret, malformed ones, a missing one, and a rotated password.

use std::sync::Arc;

use aws_sdk_secretsmanager::Client;
use dbsync_aws::secrets::SecretsManager;
use dbsync_awstest::{unique, Moto};
use dbsync_db::{secrets, Db, DbConfig, TlsMode};
use dbsync_testpg::{Cluster, PASSWORD, PASSWORD_USER};

async fn sm() -> Client {
    Client::new(&Moto::shared().sdk_config().await)
}

async fn secret(client: &Client, value: &str) -> String {
    client
        .create_secret()
        .name(unique("dbsync/staging"))
        .secret_string(value)
        .send()
        .await
        .unwrap()
        .arn()
        .unwrap()
        .to_owned()
}

fn rds_json(password: &str) -> String {
    format!(
        r#"{{"engine":"postgres","host":"127.0.0.1","port":{},"username":"{PASSWORD_USER}","password":"{password}","dbname":"postgres","dbInstanceIdentifier":"staging"}}"#,
        Cluster::shared().port
    )
}

fn db(client: &Client, arn: &str) -> Db {
    // The throwaway server speaks no TLS; RDS secrets default to `require`.
    let finish: secrets::Finish = Arc::new(|c: DbConfig| c.with_tls(TlsMode::Disable, None));
    Db::with_loader(secrets::loader(
        arn.to_owned(),
        Arc::new(SecretsManager::new(client.clone())),
        finish,
    ))
}

#[tokio::test]
async fn a_good_secret_connects() {
    let c = sm().await;
    let arn = secret(&c, &rds_json(PASSWORD)).await;
    let db = db(&c, &arn);
    let row = db
        .client()
        .await
        .unwrap()
        .query_one("select current_user::text", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), PASSWORD_USER);
}

/// An RDS-managed master user secret holds only `username` and `password`:
/// the endpoint comes from the deployment (TargetDbHost, …).
#[tokio::test]
async fn an_rds_managed_secret_connects_with_the_deployments_endpoint() {
    let c = sm().await;
    let arn = secret(
        &c,
        &format!(r#"{{"username":"{PASSWORD_USER}","password":"{PASSWORD}"}}"#),
    )
    .await;
    let endpoint = dbsync_db::Endpoint {
        host: Some("127.0.0.1".into()),
        port: Some(Cluster::shared().port),
        dbname: Some("postgres".into()),
    };
    let finish: secrets::Finish = Arc::new(|c: DbConfig| c.with_tls(TlsMode::Disable, None));
    let db = Db::with_loader(secrets::loader_at(
        arn,
        Arc::new(SecretsManager::new(c.clone())),
        endpoint,
        finish,
    ));
    let row = db
        .client()
        .await
        .unwrap()
        .query_one("select current_user::text, current_database()::text", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), PASSWORD_USER);
    assert_eq!(row.get::<_, String>(1), "postgres");
}

#[tokio::test]
async fn malformed_secrets_are_named_without_leaking() {
    let c = sm().await;
    for (value, why) in [
        (
            r#"{"username":"app","password":"TOPSECRET-1","host":"#.to_owned(),
            "not valid JSON",
        ),
        (
            r#"{"username":"app","password":"TOPSECRET-1"}"#.to_owned(),
            "holds no host",
        ),
        (
            r#"{"host":"h","password":"TOPSECRET-1"}"#.to_owned(),
            "missing field `username`",
        ),
        (
            r#"{"host":"h","username":"app","password":"TOPSECRET-1","port":"fifty"}"#.to_owned(),
            "port",
        ),
        ("TOPSECRET-1".to_owned(), "not valid JSON"),
    ] {
        let arn = secret(&c, &value).await;
        let e = db(&c, &arn).client().await.map(|_| ()).unwrap_err();
        assert_eq!(e.name(), "SecretInvalid", "{value}: {e}");
        let msg = e.to_string();
        assert!(msg.contains(why) && msg.contains(&arn), "{value}: {msg}");
        assert!(!msg.contains("TOPSECRET"), "{msg}");
    }
}

#[tokio::test]
async fn a_missing_secret_is_named() {
    let c = sm().await;
    let arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:dbsync/none-AbCdEf";
    let e = db(&c, arn).client().await.map(|_| ()).unwrap_err();
    assert_eq!(e.name(), "SecretUnavailable");
    assert!(
        e.to_string().contains(arn) && e.to_string().contains("ResourceNotFoundException"),
        "{e}"
    );
}

#[tokio::test]
async fn a_rotated_password_is_fetched_again() {
    let c = sm().await;
    let arn = secret(&c, &rds_json("stale-password")).await;
    let db = db(&c, &arn);
    // Wrong everywhere: refused by name, without the password.
    let e = db.client().await.map(|_| ()).unwrap_err();
    assert_eq!(e.name(), "DatabaseAuthenticationFailed");
    assert!(!e.to_string().contains("stale-password"), "{e}");

    // Rotation: the next session reads the secret again after the refusal.
    c.put_secret_value()
        .secret_id(&arn)
        .secret_string(rds_json(PASSWORD))
        .send()
        .await
        .unwrap();
    let row = db
        .client()
        .await
        .unwrap()
        .query_one("select 1", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 1);
}
