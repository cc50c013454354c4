//! End to end through the `dbsync` CLI: the deployed state machine, the real
//! steps and the local replicator, on real PostgreSQL databases.

use std::{
    path::PathBuf,
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use dbsync_testpg::{Cluster, TestDb};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_dbsync");

/// A schema unlike the demo's: composite and self references, a partitioned
/// table, identity and serial keys, a staging-only table pointing at synced rows.
const SCHEMA: &str = r#"
CREATE SCHEMA crm;
CREATE TABLE crm.accounts (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, region text NOT NULL DEFAULT 'eu',
                           parent_id int REFERENCES crm.accounts, UNIQUE (id, region));
CREATE TABLE crm.contacts (id bigserial PRIMARY KEY, account_id int, region text,
                           FOREIGN KEY (account_id, region) REFERENCES crm.accounts (id, region) MATCH FULL ON DELETE CASCADE);
CREATE TABLE crm.activity (id bigserial, at date NOT NULL DEFAULT '2025-03-01', contact_id bigint REFERENCES crm.contacts,
                           PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE crm.activity_2025 PARTITION OF crm.activity FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
"#;

fn data(n: i64) -> String {
    format!(
        "INSERT INTO crm.accounts (region, parent_id) SELECT CASE WHEN g % 2 = 0 THEN 'eu' ELSE 'us' END, NULL FROM generate_series(1, {n}) g;
         UPDATE crm.accounts SET parent_id = id - 1 WHERE id > 1;
         INSERT INTO crm.contacts (account_id, region) SELECT a.id, a.region FROM crm.accounts a, generate_series(1, 3);
         INSERT INTO crm.activity (at, contact_id) SELECT DATE '2025-01-01' + (g % 300), 1 + g % ({n} * 3) FROM generate_series(1, {n} * 5) g;"
    )
}

const MAPPINGS: &str = r#"{"rules": [{"rule-type": "selection", "rule-id": "1", "rule-name": "crm",
  "object-locator": {"schema-name": "crm", "table-name": "%"}, "rule-action": "include"}]}"#;

struct Env {
    prod: TestDb,
    staging: TestDb,
    dir: PathBuf,
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn env(rows: i64, opt_in: bool) -> Env {
    let c = Cluster::shared();
    let (prod, staging) = (c.create_db("prod").await, c.create_db("staging").await);
    prod.client()
        .await
        .batch_execute(&format!("{SCHEMA}{}", data(rows)))
        .await
        .unwrap();
    let s = staging.client().await;
    s.batch_execute(&format!("{SCHEMA}{}", data(7)))
        .await
        .unwrap();
    // Staging's own notes about accounts: not synced, their FK must survive.
    s.batch_execute(
        "CREATE TABLE public.qa_notes (id serial PRIMARY KEY, account_id int CONSTRAINT qa_account REFERENCES crm.accounts);
         INSERT INTO public.qa_notes (account_id) VALUES (1), (2);",
    )
    .await
    .unwrap();
    let dir = std::env::temp_dir().join(format!(
        "dbsync-e2e-{}-{}",
        std::process::id(),
        staging.name
    ));
    std::fs::create_dir_all(dir.join("versions")).unwrap();
    std::fs::write(dir.join("versions/production"), "42\n").unwrap();
    std::fs::write(dir.join("versions/staging"), "42\n").unwrap();
    std::fs::write(dir.join("mappings.json"), MAPPINGS).unwrap();
    let e = Env { prod, staging, dir };
    if opt_in {
        let out = cli(&["init-target", "--target", &e.staging.url]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    e
}

fn cli(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("run dbsync")
}

impl Env {
    fn run_args(&self, extra: &[&str]) -> Vec<String> {
        let mut a: Vec<String> = [
            "run",
            "--source",
            &self.prod.url,
            "--target",
            &self.staging.url,
            "--versions",
            self.dir.join("versions").to_str().unwrap(),
            "--table-mappings",
            self.dir.join("mappings.json").to_str().unwrap(),
            "--json",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    }

    /// Runs a sync; returns (exit success, the printed JSON).
    fn run(&self, extra: &[&str]) -> (bool, Value) {
        let args = self.run_args(extra);
        // Logs on (warnings and up) into a pipe: they must come without colour codes.
        let out = Command::new(BIN)
            .args(&args)
            .env("DBSYNC_LOG", "info")
            .output()
            .expect("run dbsync");
        assert!(
            !out.stderr.contains(&0x1b),
            "colour codes in logs written to a pipe: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let doc = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
            serde_json::json!({"stdout": String::from_utf8_lossy(&out.stdout), "stderr": String::from_utf8_lossy(&out.stderr)})
        });
        (out.status.success(), doc)
    }
}

/// Every FK of a database: definition (empty search path) and flags.
async fn fks(db: &TestDb) -> dbsync_db::verify::ForeignKeys {
    dbsync_db::verify::foreign_keys(&db.client().await)
        .await
        .unwrap()
}

/// Every index of a database, with what a rebuild must bring back.
async fn indexes(db: &TestDb) -> dbsync_db::verify::ForeignKeys {
    dbsync_db::verify::indexes(&db.client().await)
        .await
        .unwrap()
}

/// Row count and checksum of every synced table.
async fn contents(db: &TestDb) -> dbsync_db::verify::Checksums {
    let selection = dbsync_db::Selection::from_json(MAPPINGS).unwrap();
    dbsync_db::verify::table_checksums(&db.client().await, &selection)
        .await
        .unwrap()
}

/// New rows get keys past the copied data.
async fn sequences_work(db: &TestDb) {
    let c = db.client().await;
    c.batch_execute(
        "BEGIN;
         INSERT INTO crm.accounts DEFAULT VALUES;
         INSERT INTO crm.contacts DEFAULT VALUES;
         INSERT INTO crm.activity DEFAULT VALUES;
         INSERT INTO public.qa_notes DEFAULT VALUES;
         ROLLBACK;",
    )
    .await
    .unwrap_or_else(|e| panic!("a sequence is behind the data: {e:?}"));
}

#[tokio::test]
async fn happy_path_then_idempotent_second_run() {
    let e = env(300, true).await;
    let before = fks(&e.staging).await;
    let before_indexes = indexes(&e.staging).await;
    let (ok, doc) = e.run(&[]);
    assert!(ok, "{doc:#}");
    assert_eq!(doc["status"], "SUCCEEDED");
    assert_eq!(contents(&e.prod).await, contents(&e.staging).await);
    assert_eq!(fks(&e.staging).await, before, "FKs come back exactly");
    assert_eq!(indexes(&e.staging).await, before_indexes, "indexes too");
    let out = &doc["output"];
    // Loaded without the indexes of the tables it empties, rebuilt after.
    let dropped = out["dropFks"]["result"]["indexesDropped"].as_u64().unwrap();
    assert!(dropped >= 3, "{}", out["dropFks"]);
    assert_eq!(out["restore"]["result"]["indexesRebuilt"], dropped);
    assert_eq!(out["restore"]["result"]["remaining"], 0);
    assert!(out["replication"]["result"]["rowsLoaded"].as_i64().unwrap() > 1000);

    let (ok, doc) = e.run(&[]);
    assert!(ok, "{doc:#}");
    assert_eq!(contents(&e.prod).await, contents(&e.staging).await);
    assert_eq!(fks(&e.staging).await, before);
    assert_eq!(
        doc["output"]["sequences"]["result"]["changed"], 0,
        "a second sync moves no sequence"
    );
    sequences_work(&e.staging).await;
}

#[tokio::test]
async fn version_mismatch_changes_nothing() {
    let e = env(50, true).await;
    std::fs::write(e.dir.join("versions/staging"), "41\n").unwrap();
    let (before_fks, before_rows) = (fks(&e.staging).await, contents(&e.staging).await);
    let (ok, doc) = e.run(&[]);
    assert!(!ok);
    assert_eq!(doc["status"], "FAILED");
    assert_eq!(doc["error"], "SchemaVersionMismatch");
    assert_eq!(fks(&e.staging).await, before_fks);
    assert_eq!(contents(&e.staging).await, before_rows);
}

#[tokio::test]
async fn replication_failure_is_compensated() {
    let e = env(100, true).await;
    let before = fks(&e.staging).await;
    let (ok, doc) = e.run(&["--inject-copy-failure", "crm.activity_2025"]);
    assert!(!ok);
    assert_eq!(doc["status"], "FAILED");
    assert_eq!(doc["error"], "ReplicationFailed", "{doc:#}");
    assert!(
        doc["cause"]["errorMessage"]
            .as_str()
            .unwrap()
            .contains("injected failure"),
        "{doc:#}"
    );
    assert_eq!(
        fks(&e.staging).await,
        before,
        "compensation restored every FK"
    );
    let saved: i64 = e
        .staging
        .client()
        .await
        .query_one("SELECT count(*) FROM dbsync.saved_fk", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(saved, 0);
    // The next run completes the job.
    let (ok, doc) = e.run(&[]);
    assert!(ok, "{doc:#}");
    assert_eq!(contents(&e.prod).await, contents(&e.staging).await);
    assert_eq!(fks(&e.staging).await, before);
}

#[tokio::test]
async fn orphans_follow_the_policy() {
    // Staging's own note points at an account production does not have.
    let e = env(50, true).await;
    e.staging
        .client()
        .await
        .batch_execute("INSERT INTO public.qa_notes (account_id) VALUES (7)")
        .await
        .unwrap();
    e.prod.client().await.batch_execute("DELETE FROM crm.activity; DELETE FROM crm.contacts; DELETE FROM crm.accounts WHERE id > 5").await.unwrap();

    let (ok, doc) = e.run(&[]);
    assert!(!ok);
    assert_eq!(doc["error"], "OrphanRowsFound", "{doc:#}");
    assert!(
        doc["cause"]["errorMessage"]
            .as_str()
            .unwrap()
            .contains("qa_account"),
        "{doc:#}"
    );

    let (ok, doc) = e.run(&["--orphan-policy", "keep-not-valid"]);
    assert!(ok, "{doc:#}");
    assert_eq!(
        doc["output"]["restore"]["result"]["keptNotValid"][0]["orphanRows"],
        1
    );

    // `delete` deletes orphans of synced tables only: staging's own note is the user's to fix.
    let (ok, doc) = e.run(&["--orphan-policy", "delete"]);
    assert!(!ok);
    assert_eq!(doc["error"], "OrphanRowsFound", "{doc:#}");
    let notes: i64 = e
        .staging
        .client()
        .await
        .query_one(
            "SELECT count(*) FROM public.qa_notes WHERE account_id = 7",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(notes, 1, "a staging-only row is never deleted");
}

#[tokio::test]
async fn a_target_that_was_not_opted_in_is_refused_untouched() {
    let e = env(50, false).await;
    let (before_fks, before_rows) = (fks(&e.staging).await, contents(&e.staging).await);
    let (ok, doc) = e.run(&[]);
    assert!(!ok);
    assert_eq!(doc["error"], "TargetNotOptedIn", "{doc:#}");
    assert_eq!(fks(&e.staging).await, before_fks);
    assert_eq!(contents(&e.staging).await, before_rows);
}

#[tokio::test]
async fn a_second_run_at_the_same_time_is_refused() {
    let e = env(50, true).await;
    // Hold the run lock the way a running sync does (the key is engine.rs's RUN_LOCK_KEY).
    let holder = dbsync_db::DbConfig::from_url(&e.staging.url)
        .unwrap()
        .connect()
        .await
        .unwrap();
    holder
        .query_one("SELECT pg_try_advisory_lock(110374006910564)", &[])
        .await
        .unwrap();
    let (before_fks, before_rows) = (fks(&e.staging).await, contents(&e.staging).await);
    let out = Command::new(BIN).args(e.run_args(&[])).output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("SyncInProgress"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(fks(&e.staging).await, before_fks);
    assert_eq!(contents(&e.staging).await, before_rows);
}

#[tokio::test]
async fn killed_at_random_moments_then_rerun_ends_exactly_right() {
    let e = env(4000, true).await;
    let before = fks(&e.staging).await;
    let before_indexes = indexes(&e.staging).await;
    // How long a whole run takes here, to aim the kills inside it.
    let t = Instant::now();
    let (ok, doc) = e.run(&[]);
    assert!(ok, "{doc:#}");
    let full = t.elapsed();
    let seed = std::process::id() as u64 ^ Instant::now().elapsed().as_nanos() as u64;
    for i in 0..4u64 {
        let at = Duration::from_nanos(
            (seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(i * 1442695040888963407)
                >> 11)
                % full.as_nanos().max(1) as u64,
        );
        let mut child = Command::new(BIN)
            .args(e.run_args(&[]))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(at);
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        eprintln!("killed after {at:?} of ~{full:?}");
    }
    let (ok, doc) = e.run(&[]);
    assert!(ok, "{doc:#}");
    assert_eq!(
        fks(&e.staging).await,
        before,
        "original FK definitions after crashes and a rerun"
    );
    assert_eq!(
        indexes(&e.staging).await,
        before_indexes,
        "every index back, exactly, after crashes and a rerun"
    );
    assert_eq!(contents(&e.prod).await, contents(&e.staging).await);
    sequences_work(&e.staging).await;
}

#[tokio::test]
async fn asl_run_prints_status_and_output() {
    let dir = std::env::temp_dir().join(format!("dbsync-asl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let def = dir.join("m.json");
    std::fs::write(
        &def,
        r#"{"StartAt": "A", "States": {
            "A": {"Type": "Pass", "Parameters": {"sum.$": "States.MathAdd($.x, 1)"}, "ResultPath": "$.r", "Next": "B"},
            "B": {"Type": "Choice", "Choices": [{"Variable": "$.r.sum", "NumericGreaterThan": 5, "Next": "Big"}], "Default": "Small"},
            "Big": {"Type": "Succeed"},
            "Small": {"Type": "Fail", "Error": "TooSmall", "Cause": "sum <= 5"}}}"#,
    )
    .unwrap();
    let run = |input: &str| {
        let out = cli(&[
            "asl",
            "run",
            "--definition",
            def.to_str().unwrap(),
            "--input",
            input,
        ]);
        (
            out.status.success(),
            serde_json::from_slice::<Value>(&out.stdout).unwrap(),
        )
    };
    assert_eq!(
        run(r#"{"x": 9}"#),
        (
            true,
            serde_json::json!({"status": "SUCCEEDED", "output": {"x": 9, "r": {"sum": 10}}})
        )
    );
    assert_eq!(
        run(r#"{"x": 1}"#),
        (
            false,
            serde_json::json!({"status": "FAILED", "error": "TooSmall", "cause": "sum <= 5"})
        )
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn readme_diagram_matches_the_definition() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = cli(&[
        "asl",
        "diagram",
        "--definition",
        root.join("statemachine/db-sync.asl.json").to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let generated = String::from_utf8(out.stdout).unwrap();
    assert!(
        readme.contains(&format!("```mermaid\n{generated}```")),
        "README.md's diagram is stale: regenerate it with `dbsync asl diagram --definition statemachine/db-sync.asl.json`"
    );
}

#[tokio::test]
async fn the_opt_in_sql_makes_a_target_and_cli_errors_name_their_flag() {
    let out = cli(&["init-target", "--print-sql"]);
    assert!(out.status.success());
    let sql = String::from_utf8(out.stdout).unwrap();
    let db = Cluster::shared().create_db("printed_opt_in").await;
    db.client().await.batch_execute(&sql).await.unwrap();
    let mut c = db.client().await;
    assert!(
        dbsync_db::target::is_target(&mut c).await.unwrap(),
        "the printed SQL opts in"
    );
    db.client()
        .await
        .batch_execute(&sql)
        .await
        .expect("and runs twice");

    // A bad URL says which flag; the error is one line with its name.
    let out = cli(&[
        "run",
        "--source",
        "postgres://u@h:notaport/db",
        "--target",
        &db.url,
        "--versions",
        "/nonexistent",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ConfigurationError") && err.contains("--source"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    // One of --versions / --version-query is required, and help says so.
    let out = cli(&["run", "--source", &db.url, "--target", &db.url]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--versions"));
    let help = String::from_utf8_lossy(&cli(&["run", "--help"]).stdout).to_string();
    for flag in [
        "--source",
        "--target",
        "--versions",
        "--version-query",
        "--table-mappings",
        "--orphan-policy",
        "--json",
        "--parallelism",
    ] {
        let lines: Vec<&str> = help.lines().collect();
        let i = lines
            .iter()
            .position(|l| l.trim_start().starts_with(flag))
            .unwrap_or_else(|| panic!("{flag} in help"));
        // Its description: after the flag on its line, or on the next line (long help).
        let rest = lines[i].trim_start()[flag.len()..].trim();
        let rest = rest.split_once('>').map_or(rest, |(_, r)| r).trim();
        let next = lines.get(i + 1).map_or("", |l| l.trim());
        let documented = !rest.is_empty() || (!next.is_empty() && !next.starts_with('-'));
        assert!(documented, "{flag} has help text: {help}");
    }
    assert!(
        help.contains("DBSYNC_SOURCE_URL") && help.contains("PGPASSWORD"),
        "{help}"
    );
}

#[tokio::test]
async fn urls_and_passwords_come_from_the_environment_and_plan_reads_as_text() {
    let e = env(20, true).await;
    // The password-only role of the test cluster: its password comes from PGPASSWORD.
    let url = |db: &TestDb| {
        db.url.replace(
            "postgres://postgres@",
            &format!("postgres://{}@", dbsync_testpg::PASSWORD_USER),
        )
    };
    let out = Command::new(BIN)
        .args(["plan"])
        .env("DBSYNC_TARGET_URL", url(&e.staging))
        .env("DBSYNC_SOURCE_URL", url(&e.prod))
        .env("PGPASSWORD", dbsync_testpg::PASSWORD)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("opted in")
            && text.contains("foreign keys to lift")
            && text.contains("tables to copy ("),
        "{text}"
    );
    assert!(!text.contains("null"), "{text}");
    let out = Command::new(BIN)
        .args(["plan", "--target", &e.staging.url])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("not known without --source"), "{text}");
    let out = Command::new(BIN)
        .args(["plan", "--json", "--target", &e.staging.url])
        .output()
        .unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["optedIn"], true);
}

/// `demo --keep` leaves its server running and prints a command that removes
/// everything it made.
#[tokio::test]
async fn demo_keep_prints_a_clean_up_that_removes_everything() {
    let out = cli(&["demo", "--scale", "0.005", "--keep"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cleanup = text
        .lines()
        .find_map(|l| l.strip_prefix("remove it all with: "))
        .unwrap_or_else(|| panic!("no clean-up command: {text}"));
    let dir = cleanup
        .rsplit("rm -rf '")
        .next()
        .and_then(|d| d.strip_suffix('\''))
        .expect("the directory it removes")
        .to_owned();
    assert!(std::path::Path::new(&dir).join("data").is_dir(), "{dir}");
    let status = Command::new("sh").arg("-c").arg(cleanup).status().unwrap();
    assert!(status.success());
    assert!(!std::path::Path::new(&dir).exists(), "{dir} is gone");
}

/// `--config`: the data rules are applied while copying (staging never holds
/// a raw value), after_sync runs at the end, and the run reports each table's
/// counts; a bad file is refused before anything changes.
#[tokio::test]
async fn data_rules_mask_in_flight_and_the_run_reports_table_by_table() {
    let e = env(200, true).await;
    for db in [&e.prod, &e.staging] {
        db.client()
            .await
            .batch_execute(
                "ALTER TABLE crm.contacts ADD COLUMN email text UNIQUE;
                 UPDATE crm.contacts SET email = 'person' || id || '@corp.example';",
            )
            .await
            .unwrap();
    }
    let config = e.dir.join("dbsync.yml");
    std::fs::write(
        &config,
        "data_rules:\n  contacts.email: unique_email\nafter_sync:\n  - CREATE TABLE public.after_sync_ran AS SELECT count(*) AS n FROM crm.contacts\n",
    )
    .unwrap();
    let config = config.to_str().unwrap();

    // A rule on a key column: refused by name, staging untouched.
    let bad = e.dir.join("bad.yml");
    std::fs::write(&bad, "data_rules:\n  contacts.account_id: null\n").unwrap();
    let before = contents(&e.staging).await;
    let (ok, doc) = e.run(&["--config", bad.to_str().unwrap()]);
    assert!(!ok);
    assert_eq!(doc["error"], "SyncConfigInvalid", "{doc:#}");
    assert_eq!(contents(&e.staging).await, before, "nothing changed");

    let (ok, doc) = e.run(&["--config", config]);
    assert!(ok, "{doc:#}");
    let s = e.staging.client().await;
    let leaked: i64 = s
        .query_one(
            "SELECT count(*) FROM crm.contacts WHERE email IS DISTINCT FROM 'email' || id || '@example.org'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(leaked, 0, "every email masked");
    let ran: i64 = s
        .query_one("SELECT n FROM public.after_sync_ran", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(ran, 600, "after_sync saw the loaded rows");
    let out = &doc["output"];
    assert_eq!(out["masking"]["result"]["inFlight"], true, "{out:#}");
    let v = &out["verification"]["result"];
    assert_eq!(v["flaggedTotal"], 0, "{v:#}");
    assert_eq!(
        v["tables"], 3,
        "accounts, contacts, the activity partition: {v:#}"
    );
    assert_eq!(v["rowsCopied"], v["rowsInTarget"]);

    // Without --json: the summary as a table.
    let args = e.run_args(&["--config", config]);
    let args: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| *a != "--json")
        .collect();
    let s = e.staging.client().await;
    s.batch_execute("DROP TABLE public.after_sync_ran")
        .await
        .unwrap();
    let out = cli(&args);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("masked 1 column(s) in 1 table(s) while copying"),
        "{text}"
    );
    assert!(text.contains("crm.contacts"), "{text}");
    assert!(
        text.contains("3 table(s): 1800 row(s) copied, 1800 in staging; every table matches"),
        "{text}"
    );
    assert!(text.contains("after_sync: 1 statement(s) run"), "{text}");
}

#[tokio::test]
async fn the_lambda_engine_runs_in_process_and_ends_exactly_like_the_replicator() {
    let e = env(30000, true).await;
    let before = fks(&e.staging).await;
    let before_indexes = indexes(&e.staging).await;
    // Pieces of 1 MB: the larger tables are cut into key ranges.
    let (ok, doc) = e.run(&[
        "--engine",
        "lambda",
        "--piece-mb",
        "1",
        "--parallelism",
        "3",
    ]);
    assert!(ok, "{doc:#}");
    assert_eq!(doc["status"], "SUCCEEDED");
    assert_eq!(contents(&e.prod).await, contents(&e.staging).await);
    assert_eq!(fks(&e.staging).await, before, "FKs come back exactly");
    assert_eq!(indexes(&e.staging).await, before_indexes, "indexes too");
    sequences_work(&e.staging).await;
    let out = &doc["output"];
    let plan = &out["copyPlan"]["result"];
    assert!(
        plan["pieces"].as_u64().unwrap() > plan["tables"].as_u64().unwrap(),
        "{plan}"
    );
    assert_eq!(out["replication"]["result"]["status"], "succeeded");
    assert_eq!(
        out["verification"]["result"]["flaggedTotal"], 0,
        "{}",
        out["verification"]
    );
    // A bad value is one clear line and a usage exit code.
    let bad = Command::new(BIN)
        .args(e.run_args(&["--engine", "glue"]))
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--engine"));
    let bad = Command::new(BIN)
        .args(e.run_args(&["--piece-mb", "0"]))
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}
