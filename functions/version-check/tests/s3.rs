//! version-check against real S3 calls (moto).

use aws_sdk_s3::{primitives::ByteStream, Client};
use dbsync_aws::s3::S3Source;
use dbsync_awstest::{unique, Moto};
use dbsync_workflow::steps::version_check;
use serde_json::json;

async fn s3() -> Client {
    let conf = aws_sdk_s3::config::Builder::from(&Moto::shared().sdk_config().await)
        .force_path_style(true)
        .build();
    Client::from_conf(conf)
}

async fn bucket(client: &Client, objects: &[(&str, &[u8])]) -> String {
    let bucket = unique("versions");
    client.create_bucket().bucket(&bucket).send().await.unwrap();
    for (key, body) in objects {
        client
            .put_object()
            .bucket(&bucket)
            .key(*key)
            .body(ByteStream::from(body.to_vec()))
            .send()
            .await
            .unwrap();
    }
    bucket
}

fn source(client: &Client, bucket: &str) -> S3Source {
    S3Source::new(
        client.clone(),
        bucket.into(),
        "schema/production".into(),
        "schema/staging".into(),
    )
}

#[tokio::test]
async fn present_versions_compare() {
    let c = s3().await;
    let b = bucket(
        &c,
        &[
            ("schema/production", b"2025.11.0042\n"),
            ("schema/staging", b" 2025.11.0042 "),
        ],
    )
    .await;
    let out = version_check::handle(&source(&c, &b), json!({}))
        .await
        .unwrap();
    assert_eq!(
        serde_json::to_value(out).unwrap(),
        json!({"inSync": true, "prodVersion": "2025.11.0042", "stagingVersion": "2025.11.0042"})
    );
}

#[tokio::test]
async fn mismatched_versions_are_reported_not_failed() {
    let c = s3().await;
    let b = bucket(
        &c,
        &[("schema/production", b"43"), ("schema/staging", b"42")],
    )
    .await;
    let out = version_check::handle(&source(&c, &b), json!({}))
        .await
        .unwrap();
    assert!(!out.in_sync);
    assert_eq!(
        (out.prod_version.as_str(), out.staging_version.as_str()),
        ("43", "42")
    );
}

#[tokio::test]
async fn a_missing_object_fails_closed() {
    let c = s3().await;
    let b = bucket(&c, &[("schema/production", b"43")]).await;
    let e = version_check::handle(&source(&c, &b), json!({}))
        .await
        .unwrap_err();
    assert_eq!(e.name(), "VersionUnavailable");
    assert!(
        e.to_string().contains(&format!("s3://{b}/schema/staging")),
        "{e}"
    );

    // A missing bucket too.
    let e = version_check::handle(&source(&c, "no-such-bucket-dbsync"), json!({}))
        .await
        .unwrap_err();
    assert_eq!(e.name(), "VersionUnavailable", "{e}");
}

#[tokio::test]
async fn garbled_versions_fail_closed() {
    let c = s3().await;
    let big = vec![b'7'; 10_000];
    for (staging, why) in [
        (&b""[..], "empty"),
        (b"42\n43\n", "more than one line"),
        (&big[..], "10000 bytes"),
        (b"\xc3\x28", "not UTF-8"),
    ] {
        let b = bucket(
            &c,
            &[("schema/production", b"42"), ("schema/staging", staging)],
        )
        .await;
        let e = version_check::handle(&source(&c, &b), json!({}))
            .await
            .unwrap_err();
        assert_eq!(e.name(), "VersionInvalid", "{e}");
        assert!(
            e.to_string().contains(why) && e.to_string().contains("staging"),
            "{e}"
        );
    }
}
