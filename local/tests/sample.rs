//! A public sample database nobody here wrote, synced end to end through the
//! CLI against a stale copy of itself, with each engine: Chinook (data/chinook,
//! MIT licence).

use std::process::Command;

use dbsync_db::{verify, Selection};
use dbsync_testpg::{Cluster, TestDb};

const BIN: &str = env!("CARGO_BIN_EXE_dbsync");

/// The script without its database-level lines (the test gives it a database).
fn chinook() -> String {
    let text = include_str!("data/chinook/chinook.sql");
    let start = text
        .find("CREATE TABLE album")
        .expect("the Chinook script creates its tables");
    text[start..].to_owned()
}

async fn load(db: &TestDb) {
    db.client()
        .await
        .batch_execute(&chinook())
        .await
        .unwrap_or_else(|e| panic!("loading Chinook: {e:?}"));
}

#[tokio::test]
async fn chinook_syncs_into_a_stale_copy_of_itself() {
    let cluster = Cluster::shared();
    let (prod, staging) = (
        cluster.create_db("chinook_prod").await,
        cluster.create_db("chinook_staging").await,
    );
    load(&prod).await;
    load(&staging).await;
    // Production moved on; staging went stale in its own ways.
    prod.client()
        .await
        .batch_execute(
            "INSERT INTO artist (name) VALUES ('New Artist');
             INSERT INTO album (title, artist_id) SELECT 'New Album', max(artist_id) FROM artist;
             UPDATE track SET unit_price = unit_price + 0.10 WHERE genre_id = 1;
             DELETE FROM playlist_track WHERE playlist_id = 1 AND track_id < 100;",
        )
        .await
        .unwrap();
    staging
        .client()
        .await
        .batch_execute(
            "DELETE FROM invoice_line WHERE invoice_id > 300;
             DELETE FROM invoice WHERE invoice_id > 300;
             INSERT INTO genre (name) VALUES ('Staging only genre');
             COMMENT ON CONSTRAINT track_album_id_fkey ON track IS 'kept across syncs';",
        )
        .await
        .unwrap();
    let mut c = staging.client().await;
    dbsync_db::target::init_target(&mut c).await.unwrap();
    let fks_before = verify::foreign_keys(&c).await.unwrap();
    assert_eq!(fks_before.len(), 11);
    let indexes_before = verify::indexes(&c).await.unwrap();
    assert!(indexes_before.len() >= 11, "{indexes_before:?}");

    // Both engines, one after the other: the local replicator, then the
    // Lambda engine's handlers (after production moved on again).
    for (round, engine) in ["dms", "lambda"].into_iter().enumerate() {
        if round > 0 {
            prod.client()
                .await
                .batch_execute(
                    "INSERT INTO artist (name) VALUES ('Another Artist');
                     UPDATE track SET name = name || ' (remastered)' WHERE track_id % 50 = 0;
                     DELETE FROM playlist_track WHERE playlist_id = 2;",
                )
                .await
                .unwrap();
        }
        sync_and_check(&prod, &staging, engine, &fks_before, &indexes_before).await;
    }
}

/// One `dbsync run` with `engine`, then staging equals production row for
/// row with every FK, index and identity as before.
async fn sync_and_check(
    prod: &TestDb,
    staging: &TestDb,
    engine: &str,
    fks_before: &verify::ForeignKeys,
    indexes_before: &verify::ForeignKeys,
) {
    let c = staging.client().await;
    let dir = std::env::temp_dir().join(format!("dbsync-chinook-{engine}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("production"), "1.4.5\n").unwrap();
    std::fs::write(dir.join("staging"), "1.4.5\n").unwrap();
    let out = Command::new(BIN)
        .args([
            "run",
            "--source",
            &prod.url,
            "--target",
            &staging.url,
            "--versions",
        ])
        .arg(&dir)
        .args(["--json", "--engine", engine])
        .output()
        .expect("run dbsync");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let all = Selection::all();
    let (src, dst) = (
        verify::table_checksums(&prod.client().await, &all)
            .await
            .unwrap(),
        verify::table_checksums(&c, &all).await.unwrap(),
    );
    assert_eq!(src.len(), 11);
    assert_eq!(src, dst, "staging equals production row for row ({engine})");
    assert_eq!(
        verify::foreign_keys(&c).await.unwrap(),
        *fks_before,
        "every FK (and its comment) as before ({engine})"
    );
    assert_eq!(
        verify::indexes(&c).await.unwrap(),
        *indexes_before,
        "every index, dropped for the load and rebuilt, as before ({engine})"
    );
    assert_eq!(
        verify::sequences_ahead(&c).await.unwrap(),
        10,
        "every identity (all tables but playlist_track) is past the data"
    );
}
