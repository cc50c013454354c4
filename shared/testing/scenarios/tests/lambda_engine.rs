//! Scenarios of the deployed definition with `CopyEngine: lambda`: the plan
//! and copy-piece handlers in DMS's place (see `common/mod.rs`), the rest as
//! deployed. Each asserts staging's end state, and what a Lambda that died or
//! failed mid-copy left behind.

mod common;

use std::{
    sync::{
        atomic::{AtomicBool, AtomicI64, Ordering},
        Arc,
    },
    time::Duration,
};

use common::{Harness, StepFault, PROD_ORDERS};
use dbsync_db::verify;
use dbsync_workflow::sync_config::SyncConfig;

const KB: i64 = 1024;

/// Enough events on production that their table is copied in several pieces
/// and a piece's COPY lasts long enough to be cut off.
async fn grow_events(h: &Harness, rows: i64) {
    h.prod
        .client()
        .await
        .batch_execute(&format!(
            "INSERT INTO app.events (at, customer_id, kind)
             SELECT TIMESTAMPTZ '2026-02-01' + g * INTERVAL '1 second', 1 + g % 100, repeat('k', 40)
             FROM generate_series(1, {rows}) g;
             ANALYZE app.events_2026;"
        ))
        .await
        .expect("more events on prod");
}

/// Every queued piece of the last run is done, and their rows add up to production's.
async fn assert_queue_done(h: &Harness) -> (i64, i64) {
    let s = h.staging.client().await;
    let row = s
        .query_one(
            "SELECT count(*), count(*) FILTER (WHERE NOT done), coalesce(sum(rows), 0)::int8 FROM dbsync.copy_piece",
            &[],
        )
        .await
        .unwrap();
    let (pieces, left, rows): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    assert_eq!(left, 0, "pieces left undone");
    (pieces, rows)
}

async fn index_inventory(h: &Harness) -> verify::ForeignKeys {
    verify::indexes(&h.staging.client().await).await.unwrap()
}

#[tokio::test]
async fn the_lambda_engine_syncs_without_any_dms_call_splitting_tables_larger_than_a_piece() {
    // Pieces of 8 KB: every table of more than one page is copied in ranges.
    let h = Harness::lambda_engine(SyncConfig::default(), 8 * KB).await;
    let indexes = index_inventory(&h).await;
    let ex = h.run().await;
    ex.assert_succeeded();
    h.assert_synced().await;
    assert_eq!(h.staging_rows("app.orders").await, PROD_ORDERS);
    assert_eq!(h.staging_rows("qa.notes").await, 5, "staging's own table");
    assert_eq!(
        index_inventory(&h).await,
        indexes,
        "every index back as it was"
    );
    let out = ex.result.output.as_ref().unwrap();
    let plan = &out["copyPlan"]["result"];
    assert!(plan["keyRanged"].as_u64().unwrap() >= 2, "{plan}");
    assert!(
        plan["pieces"].as_u64().unwrap() > plan["tables"].as_u64().unwrap(),
        "{plan}"
    );
    assert_eq!(plan["lanes"], serde_json::json!([1, 2]));
    let replication = &out["replication"]["result"];
    assert_eq!(replication["status"], "succeeded");
    assert_eq!(replication["tablesLoaded"], 7, "{replication}");
    // The copied counts fed verification, and matched.
    let verification = &out["verification"]["result"];
    assert_eq!(verification["flaggedTotal"], 0, "{verification}");
    assert_eq!(verification["perTableUnavailable"], false, "{verification}");
    let (pieces, rows) = assert_queue_done(&h).await;
    assert_eq!(pieces as u64, plan["pieces"].as_u64().unwrap());
    assert_eq!(Some(rows), replication["rowsLoaded"].as_i64());
    // No DMS at all.
    assert!(h.dms.start_kinds().is_empty());
    let steps: Vec<String> = h.invocations().into_iter().map(|(s, _)| s).collect();
    assert!(!steps.iter().any(|s| s.ends_with("-dms")), "{steps:?}");
    assert!(steps.iter().filter(|s| *s == "copy-piece").count() >= 2);

    // Production moves on; the next run plans again and carries it over.
    h.prod
        .client()
        .await
        .batch_execute("INSERT INTO app.orders (customer_id) VALUES (1); DELETE FROM app.shipments WHERE id = 1;")
        .await
        .unwrap();
    h.run().await.assert_succeeded();
    h.assert_synced().await;
    assert_eq!(h.staging_rows("app.orders").await, PROD_ORDERS + 1);
}

/// Terminates the first staging session seen loading a piece (`COPY … FROM STDIN`).
fn kill_first_copy(h: &Harness) -> (Arc<AtomicBool>, tokio::task::JoinHandle<()>) {
    let killed = Arc::new(AtomicBool::new(false));
    let url = h.staging.url.clone();
    let flag = killed.clone();
    let task = tokio::spawn(async move {
        let probe = dbsync_db::DbConfig::from_url(&url)
            .unwrap()
            .connect()
            .await
            .unwrap();
        for _ in 0..20_000 {
            let n: i64 = probe
                .query_one(
                    "SELECT count(pg_terminate_backend(pid)) FROM (
                       SELECT pid FROM pg_stat_activity
                       WHERE datname = current_database() AND state = 'active'
                         AND query LIKE 'COPY %FROM STDIN%' AND pid <> pg_backend_pid()
                       LIMIT 1) one",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            if n > 0 {
                flag.store(true, Ordering::SeqCst);
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    });
    (killed, task)
}

#[tokio::test]
async fn a_piece_whose_session_dies_mid_copy_is_copied_again_without_duplicates() {
    let h = Harness::lambda_engine(SyncConfig::default(), 512 * KB).await;
    grow_events(&h, 60_000).await;
    let (killed, probe) = kill_first_copy(&h);
    let ex = h.run().await;
    probe.await.unwrap();
    assert!(
        killed.load(Ordering::SeqCst),
        "a piece's session was terminated mid-copy"
    );
    ex.assert_succeeded();
    h.assert_synced().await;
    assert_queue_done(&h).await;
    let failed: Vec<_> = h
        .invocations()
        .into_iter()
        .filter(|(s, e)| s == "copy-piece" && e.is_some())
        .collect();
    assert_eq!(
        failed,
        vec![(
            "copy-piece".to_string(),
            Some("DatabaseUnavailable".to_string())
        )],
        "the lane failed once, by name, and its retry finished the copy"
    );
}

#[tokio::test]
async fn lanes_cut_off_by_their_time_limit_or_lost_after_their_work_are_retried_without_duplicates()
{
    let h = Harness::lambda_engine(SyncConfig::default(), 512 * KB).await;
    grow_events(&h, 60_000).await;
    // Both lanes' first invocations are cut off mid-work, as Lambda does at its timeout.
    h.fail_step("copy-piece", StepFault::Timeout(Duration::from_millis(60)));
    h.fail_step("copy-piece", StepFault::Timeout(Duration::from_millis(90)));
    // And one that did its work and then died as Lambda reports it: Lambda.Unknown.
    h.fail_step(
        "copy-piece",
        StepFault::After("Lambda.Unknown".into(), "Unhandled".into()),
    );
    let ex = h.run().await;
    ex.assert_succeeded();
    h.assert_synced().await;
    assert_queue_done(&h).await;
    let failed = |name: &str| {
        h.invocations()
            .into_iter()
            .filter(|(s, e)| s == "copy-piece" && e.as_deref() == Some(name))
            .count()
    };
    assert_eq!(failed("Sandbox.Timedout"), 2, "{:?}", h.invocations());
    assert_eq!(failed("Lambda.Unknown"), 1, "{:?}", h.invocations());
}

#[tokio::test]
async fn staging_never_holds_a_raw_value_while_the_lambda_engine_copies() {
    let sync = SyncConfig::parse(
        "dbsync.yml",
        "data_rules:\n  email: unique_email\n  app.events.kind: {value: redacted}\n",
    )
    .unwrap();
    let h = Harness::lambda_engine(sync, 256 * KB).await;
    grow_events(&h, 30_000).await;
    // A marker only production's raw values carry (staging was seeded without it).
    h.prod
        .client()
        .await
        .batch_execute(
            "UPDATE app.customers SET email = 'RAWMARK' || id || '@example.com';
             UPDATE app.events SET kind = 'RAWMARK-kind' WHERE id % 7 = 0;",
        )
        .await
        .unwrap();
    // A probe without triggers: read staging over and over while the copy runs.
    let (stop, seen) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicI64::new(0)),
    );
    let probes = Arc::new(AtomicI64::new(0));
    let probe = {
        let (url, stop, seen, probes) = (
            h.staging.url.clone(),
            stop.clone(),
            seen.clone(),
            probes.clone(),
        );
        tokio::spawn(async move {
            let c = dbsync_db::DbConfig::from_url(&url)
                .unwrap()
                .connect()
                .await
                .unwrap();
            while !stop.load(Ordering::SeqCst) {
                let n: i64 = c
                    .query_one(
                        "SELECT (SELECT count(*) FROM app.customers WHERE email LIKE 'RAWMARK%')
                              + (SELECT count(*) FROM app.events WHERE kind LIKE 'RAWMARK%')",
                        &[],
                    )
                    .await
                    .unwrap()
                    .get(0);
                seen.fetch_max(n, Ordering::SeqCst);
                probes.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    let ex = h.run().await;
    stop.store(true, Ordering::SeqCst);
    probe.await.unwrap();
    ex.assert_succeeded();
    assert!(
        probes.load(Ordering::SeqCst) > 10,
        "the probe ran during the copy"
    );
    assert_eq!(
        seen.load(Ordering::SeqCst),
        0,
        "a raw value was visible in staging"
    );
    // Nor in staging's files, dead and uncommitted row versions included.
    let s = h.staging.client().await;
    s.batch_execute("CHECKPOINT").await.unwrap();
    let dir: String = s
        .query_one(
            "SELECT current_setting('data_directory') || '/base/' || oid FROM pg_database WHERE datname = current_database()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).expect("staging's database directory") {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap_or_default();
        files += 1;
        assert!(
            !bytes.windows(7).any(|w| w == b"RAWMARK"),
            "a raw value reached staging's storage"
        );
    }
    assert!(files > 10, "{files} files scanned in {dir}");
    let masked: i64 = s
        .query_one(
            "SELECT count(*) FROM app.events WHERE kind = 'redacted'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(masked, h.staging_rows("app.events").await);
    // The after-load step knew: nothing raw to update.
    let masking = &ex.result.output.as_ref().unwrap()["masking"]["result"];
    assert_eq!(masking["inFlight"], true, "{masking}");
}

#[tokio::test]
async fn a_piece_that_cannot_be_copied_stops_the_copy_and_puts_staging_back() {
    let sync = SyncConfig::parse(
        "dbsync.yml",
        // Events reference customers only (copied whole from production) and
        // nothing references them: the compensation leaves every key valid.
        "data_rules:\n  app.events.kind: {statement: \"(1 / (id - id))::text\"}\n",
    )
    .unwrap();
    let h = Harness::lambda_engine(sync, 8 * KB).await;
    let indexes = index_inventory(&h).await;
    let ex = h.run().await;
    let cause = ex.assert_failed_with("DatabaseError");
    assert!(
        cause.contains("division by zero") && cause.contains("app.events.kind"),
        "{cause}"
    );
    assert!(
        !cause.contains("1 / (id - id)"),
        "no SQL in the cause: {cause}"
    );
    let states = ex.states();
    for state in ["StopCopy", "CompensateRestoreForeignKeys", "NotifyFailure"] {
        assert!(states.iter().any(|s| s == state), "{state} in {states:?}");
    }
    // Every key is back and none waits saved. A key whose rows a partial
    // copy orphaned stays NOT VALID (the compensation never deletes rows),
    // as after a DMS load stopped midway; the next sync validates it.
    let valid_or_not = |fks: verify::ForeignKeys| -> Vec<(String, String)> {
        fks.into_iter()
            .map(|((t, n), d)| {
                (
                    format!("{t}.{n}"),
                    d.replace(" NOT VALID", "")
                        .replace("validated=f", "validated=t"),
                )
            })
            .collect()
    };
    let s = h.staging.client().await;
    assert_eq!(
        valid_or_not(verify::foreign_keys(&s).await.unwrap()),
        valid_or_not(h.fks_before().clone())
    );
    // Saved are only the NOT VALID ones, for the next run to validate.
    let (saved, not_valid): (i64, i64) = {
        let r = s
            .query_one(
                "SELECT (SELECT count(*) FROM dbsync.saved_fk),
                        (SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND NOT convalidated)",
                &[],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(saved, not_valid);
    assert_eq!(index_inventory(&h).await, indexes, "every index back");
    let stopped: bool = h
        .staging
        .client()
        .await
        .query_one("SELECT stopped FROM dbsync.copy_run", &[])
        .await
        .unwrap()
        .get(0);
    assert!(stopped, "no lane takes a piece after the stop");
}
