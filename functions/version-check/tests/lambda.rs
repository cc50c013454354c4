//! The `version-check` binary driven through the Lambda Runtime API, with S3
//! on moto and files on disk.

use std::path::Path;

use aws_sdk_s3::primitives::ByteStream;
use dbsync_awstest::{unique, Moto};
use dbsync_lambda_test::{error_type, invoke_once, Outcome};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_version-check");

fn sample() -> Value {
    serde_json::from_str(include_str!("../../../events/version-check.json")).unwrap()
}

fn with<'a>(
    base: &'a [(&'static str, String)],
    extra: &[(&'static str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    base.iter()
        .map(|(k, v)| (*k, v.as_str()))
        .chain(extra.iter().copied())
        .collect()
}

#[tokio::test]
async fn answers_from_s3() {
    let moto = Moto::shared();
    let conf = aws_sdk_s3::config::Builder::from(&moto.sdk_config().await)
        .force_path_style(true)
        .build();
    let s3 = aws_sdk_s3::Client::from_conf(conf);
    let bucket = unique("lambda-versions");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    for (key, v) in [
        ("schema-version/production", "7"),
        ("schema-version/staging", "7\n"),
    ] {
        s3.put_object()
            .bucket(&bucket)
            .key(key)
            .body(ByteStream::from_static(v.as_bytes()))
            .send()
            .await
            .unwrap();
    }
    let base = moto.env();
    let env = with(
        &base,
        &[("VERSION_SOURCE", "s3"), ("VERSION_BUCKET", &bucket)],
    );
    let out = invoke_once(Path::new(BIN), &env, sample());
    assert_eq!(
        out,
        Outcome::Response(json!({"inSync": true, "prodVersion": "7", "stagingVersion": "7"}))
    );

    let env = with(
        &base,
        &[("VERSION_BUCKET", &bucket), ("STAGING_VERSION_KEY", "nope")],
    );
    assert_eq!(
        error_type(&invoke_once(Path::new(BIN), &env, sample())),
        "VersionUnavailable"
    );
}

#[test]
fn answers_from_files_and_names_configuration_errors() {
    let dir = std::env::temp_dir().join(format!("dbsync-vc-lambda-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("production"), "8").unwrap();
    std::fs::write(dir.join("staging"), "7").unwrap();
    let d = dir.to_str().unwrap();
    let out = invoke_once(
        Path::new(BIN),
        &[("VERSION_SOURCE", "file"), ("VERSION_DIR", d)],
        sample(),
    );
    assert_eq!(
        out,
        Outcome::Response(json!({"inSync": false, "prodVersion": "8", "stagingVersion": "7"}))
    );
    let _ = std::fs::remove_dir_all(&dir);

    for env in [
        &[("VERSION_SOURCE", "s3")][..],
        &[("VERSION_SOURCE", "ftp")],
        &[("VERSION_SOURCE", "file")],
        &[
            ("VERSION_SOURCE", "sql"),
            ("DATABASE_URL", "postgres://u@h/db"),
        ],
        &[
            ("VERSION_SOURCE", "s3"),
            ("VERSION_BUCKET", "b"),
            ("S3_FORCE_PATH_STYLE", "yes"),
        ],
    ] {
        assert_eq!(
            error_type(&invoke_once(Path::new(BIN), env, sample())),
            "ConfigurationError",
            "{env:?}"
        );
    }
}
