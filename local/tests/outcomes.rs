//! Through the CLI, as a new user meets it: a drifted staging is refused
//! before anything changes; every outcome is one clear line (or, with
//! `--json`, one document) and a true exit code; Ctrl-C puts staging back.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Output, Stdio},
};

use dbsync_testpg::{Cluster, TestDb};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_dbsync");

/// Production's schema; each drift case changes staging's copy of it.
const BASE: &str = "
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, visits int, age int);
CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id int CONSTRAINT orders_customer REFERENCES customers, note text);
";

fn rows(n: i64) -> String {
    format!(
        "INSERT INTO customers SELECT g, 'c' || g, g % 7, 20 + g % 50 FROM generate_series(1, {n}) g;
         INSERT INTO orders (customer_id, note) SELECT 1 + g % {n}, repeat('n', 50) FROM generate_series(1, {n} * 4) g;"
    )
}

struct Pair {
    prod: TestDb,
    staging: TestDb,
}

/// Production with `BASE` and `n` customers; staging with `BASE`, then
/// `drift`, then a few rows, opted in through the CLI.
async fn pair(n: i64, drift: &str) -> Pair {
    let c = Cluster::shared();
    let (prod, staging) = (c.create_db("oprod").await, c.create_db("ostag").await);
    prod.client()
        .await
        .batch_execute(&format!("{BASE}{}", rows(n)))
        .await
        .unwrap();
    staging
        .client()
        .await
        .batch_execute(&format!(
            "{BASE}INSERT INTO customers (id, name) VALUES (1, 'old'), (2, 'old');
             INSERT INTO orders (customer_id) VALUES (1), (2);{drift}"
        ))
        .await
        .unwrap();
    let out = cli(&["init-target", "--target", &staging.url]);
    assert!(out.status.success(), "{}", text(&out));
    Pair { prod, staging }
}

fn cli(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("run dbsync")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

impl Pair {
    fn run(&self, extra: &[&str]) -> Output {
        let mut args = vec![
            "run",
            "--source",
            &self.prod.url,
            "--target",
            &self.staging.url,
            "--version-query",
            "SELECT '1'",
        ];
        args.extend_from_slice(extra);
        cli(&args)
    }

    fn plan(&self, extra: &[&str]) -> Output {
        let mut args = vec![
            "plan",
            "--source",
            &self.prod.url,
            "--target",
            &self.staging.url,
        ];
        args.extend_from_slice(extra);
        cli(&args)
    }
}

/// `--json`'s stdout: exactly one JSON document.
fn doc(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {}", text(out)))
}

/// What must not change when a run is refused: every table's rows and
/// every FK constraint, by oid (a dropped and re-added key gets a new one).
async fn state(db: &TestDb) -> (Vec<String>, Vec<String>) {
    let c = db.client().await;
    let column = |q: String| {
        let c = &c;
        async move {
            let rows = c.query(&q, &[]).await.unwrap();
            rows.iter()
                .map(|r| r.get::<_, String>(0))
                .collect::<Vec<_>>()
        }
    };
    let mut rows = Vec::new();
    for t in column(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1".into(),
    )
    .await
    {
        rows.extend(
            column(format!(
                "SELECT '{t}:' || coalesce(string_agg(x::text, ';' ORDER BY x::text), '') FROM {t} x"
            ))
            .await,
        );
    }
    let fks = column(
        "SELECT conname || ':' || oid::text FROM pg_constraint WHERE contype = 'f' ORDER BY 1"
            .into(),
    )
    .await;
    (rows, fks)
}

#[tokio::test]
async fn drifted_staging_is_refused_before_any_change_in_run_plan_and_json() {
    let cases = [
        (
            "ALTER TABLE customers ALTER visits TYPE real;",
            "public.customers.visits: production integer / staging real",
        ),
        (
            "ALTER TABLE customers ALTER visits TYPE date USING NULL;",
            "public.customers.visits: production integer / staging date",
        ),
        (
            "ALTER TABLE customers ALTER visits TYPE bigint;",
            "public.customers.visits: production integer / staging bigint",
        ),
        (
            "ALTER TABLE orders DROP COLUMN note;",
            "public.orders.note: production text / staging missing column",
        ),
        (
            "ALTER TABLE orders ALTER note TYPE varchar(5);",
            "public.orders.note: production text / staging character varying(5)",
        ),
        (
            "ALTER TABLE customers ADD COLUMN tier text NOT NULL DEFAULT 'x'; ALTER TABLE customers ALTER tier DROP DEFAULT;",
            "public.customers.tier: production missing column / staging text NOT NULL without a default",
        ),
        (
            "DROP TABLE orders;",
            "public.orders: production table / staging missing",
        ),
    ];
    for (drift, expected) in cases {
        let p = pair(30, drift).await;
        let before = state(&p.staging).await;
        let out = p.run(&["--json"]);
        assert_eq!(out.status.code(), Some(1), "{drift}: {}", text(&out));
        let d = doc(&out);
        assert_eq!(d["status"], "FAILED", "{d:#}");
        assert_eq!(d["error"], "SchemaMismatch", "{d:#}");
        let cause = d["cause"]["errorMessage"].as_str().unwrap_or_default();
        assert!(
            cause.contains(expected),
            "{drift}: {expected:?} not in {cause}"
        );
        assert_eq!(d["tables"]["refreshed"], serde_json::json!([]));
        assert_eq!(state(&p.staging).await, before, "{drift}: staging changed");

        // The readable run says it once, names it, and lists no refreshed table.
        let out = p.run(&[]);
        assert_eq!(out.status.code(), Some(1));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.starts_with("sync FAILED: SchemaMismatch") && stdout.contains(expected),
            "{stdout}"
        );
        assert_eq!(
            text(&out).matches(expected).count(),
            1,
            "one failure, said once: {}",
            text(&out)
        );

        // plan names it too, and exits non-zero: a run would be refused.
        let out = p.plan(&[]);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        assert!(text(&out).contains(expected), "{}", text(&out));
        let d = doc(&p.plan(&["--json"]));
        assert_eq!(d["wouldRefuse"][0]["error"], "SchemaMismatch", "{d:#}");
        assert!(d["schemaDifferences"]
            .as_array()
            .is_some_and(|a| !a.is_empty()));
        assert_eq!(state(&p.staging).await, before);
    }
}

#[tokio::test]
async fn a_lossless_change_copies_through_a_cast_when_opted_in_and_column_order_does_not_matter() {
    // Staging widened `visits` and has its columns in another order.
    let p = pair(
        40,
        "ALTER TABLE customers ALTER visits TYPE bigint;
         ALTER TABLE customers DROP COLUMN age; ALTER TABLE customers ADD COLUMN age int;",
    )
    .await;
    let out = p.run(&["--json"]);
    assert_eq!(doc(&out)["error"], "SchemaMismatch");
    let out = p.run(&["--json", "--allow-lossless-casts"]);
    assert!(out.status.success(), "{}", text(&out));
    let q = "SELECT string_agg(id || ':' || visits || ':' || age || ':' || name, ',' ORDER BY id) FROM customers";
    let read = |db: &TestDb| {
        let db = db.clone();
        async move {
            db.client()
                .await
                .query_one(q, &[])
                .await
                .unwrap()
                .get::<_, String>(0)
        }
    };
    assert_eq!(read(&p.prod).await, read(&p.staging).await);
}

#[tokio::test]
async fn early_failures_print_one_json_document_and_one_line() {
    let p = pair(5, "").await;
    let dir = std::env::temp_dir().join(format!("dbsync-outcomes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let typo = dir.join("typo.json");
    std::fs::write(
        &typo,
        r#"{"rules": [{"rule-type": "selection", "rule-id": "7", "rule-name": "x", "object-locator": {"schema-name": "public", "table-name": "orderz"}, "rule-action": "include"}]}"#,
    )
    .unwrap();
    let bad_yaml = dir.join("bad.yml");
    std::fs::write(&bad_yaml, "data_rules: [\n").unwrap();
    let missing_db = p.prod.url.replace(&p.prod.name, "no_such_db");
    let typo_arg = typo.to_str().unwrap();
    let yaml_arg = bad_yaml.to_str().unwrap();
    let same = [
        "run",
        "--source",
        &p.staging.url,
        "--target",
        &p.staging.url,
    ];
    let swapped = ["run", "--source", &p.staging.url, "--target", &p.prod.url];
    let no_db = ["run", "--source", &missing_db, "--target", &p.staging.url];
    let normal = ["run", "--source", &p.prod.url, "--target", &p.staging.url];
    let cases: Vec<(Vec<&str>, &str, &str)> = vec![
        (same.to_vec(), "SameDatabase", "same database"),
        (swapped.to_vec(), "SourceTargetSwapped", "did you swap"),
        (no_db.to_vec(), "ConfigurationError", "no_such_db"),
        (
            [&normal[..], &["--table-mappings", typo_arg]].concat(),
            "NothingSelected",
            "rule 7 (public.orderz)",
        ),
        (
            [&normal[..], &["--config", yaml_arg]].concat(),
            "SyncConfigInvalid",
            "not YAML",
        ),
    ];
    for (args, name, says) in cases {
        let before = state(&p.staging).await;
        let args = [&args[..], &["--version-query", "SELECT '1'"]].concat();
        let out = cli(&[&args[..], &["--json"]].concat());
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", text(&out));
        let d = doc(&out);
        assert_eq!(d["status"], "FAILED", "{d:#}");
        assert_eq!(d["error"], name, "{d:#}");
        assert!(d.to_string().contains(says), "{says:?} not in {d:#}");
        let out = cli(&args);
        assert_eq!(out.status.code(), Some(1));
        let all = text(&out);
        assert_eq!(all.matches(says).count(), 1, "said once: {all}");
        assert!(!all.contains("CloudWatch") && !all.contains("SNS"), "{all}");
        assert_eq!(state(&p.staging).await, before, "{args:?} changed staging");
    }
    // A server that wants a password, and none given: an authentication
    // failure that says where a password goes, not "database unavailable".
    let no_password = p.prod.url.replace(
        "postgres://postgres@",
        &format!("postgres://{}@", dbsync_testpg::PASSWORD_USER),
    );
    let out = Command::new(BIN)
        .args(["run", "--source", &no_password, "--target", &p.staging.url])
        .args(["--version-query", "SELECT '1'", "--json"])
        .env_remove("PGPASSWORD")
        .env("PGPASSFILE", "/nonexistent/pgpass")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let d = doc(&out);
    assert_eq!(d["error"], "DatabaseAuthenticationFailed", "{d:#}");
    let cause = d["cause"].as_str().unwrap_or_default();
    assert!(
        cause.contains("--source") && cause.contains("PGPASSWORD"),
        "{cause}"
    );

    // plan refuses the same config file the run does.
    let out = p.plan(&["--config", yaml_arg]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("SyncConfigInvalid"), "{}", text(&out));
    let out = p.plan(&["--config", "/nonexistent/dbsync.yml", "--json"]);
    assert_eq!(doc(&out)["error"], "SyncConfigInvalid");
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn plan_lists_masked_columns_and_a_closed_pipe_is_quiet() {
    let p = pair(5, "").await;
    let cfg = std::env::temp_dir().join(format!("dbsync-plan-{}.yml", std::process::id()));
    std::fs::write(&cfg, "data_rules:\n  customers.name: random_letter\n").unwrap();
    let out = p.plan(&["--config", cfg.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let t = text(&out);
    assert!(
        t.contains("masked columns (1)") && t.contains("random_letter"),
        "{t}"
    );
    // A rule on a key column is refused by plan as by run.
    std::fs::write(&cfg, "data_rules:\n  orders.customer_id: random_int\n").unwrap();
    let out = p.plan(&["--config", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("SyncConfigInvalid"), "{}", text(&out));
    std::fs::remove_file(&cfg).ok();

    let sh = format!(
        "'{BIN}' plan --source '{}' --target '{}' | head -1",
        p.prod.url, p.staging.url
    );
    let out = Command::new("sh").arg("-c").arg(&sh).output().unwrap();
    assert!(!text(&out).contains("panicked"), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);

    // init-target again: it says so, and what to do next.
    let out = cli(&["init-target", "--target", &p.staging.url]);
    assert!(out.status.success());
    let t = text(&out);
    assert!(
        t.contains("already a dbsync target") && t.contains("next:"),
        "{t}"
    );
}

#[tokio::test]
async fn a_copied_staging_names_the_database_its_marker_is_for() {
    let p = pair(5, "").await;
    let copy = format!("{}_copy", p.staging.name);
    p.prod
        .client()
        .await
        .batch_execute(&format!(
            "CREATE DATABASE \"{copy}\" TEMPLATE \"{}\"",
            p.staging.name
        ))
        .await
        .unwrap();
    let url = p.staging.url.replace(&p.staging.name, &copy);
    let out = cli(&[
        "run",
        "--source",
        &p.prod.url,
        "--target",
        &url,
        "--version-query",
        "SELECT '1'",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let t = text(&out);
    assert!(
        t.contains("TargetNotOptedIn")
            && t.contains(&format!("names the database \"{}\"", p.staging.name)),
        "{t}"
    );
}

#[tokio::test]
async fn a_masking_rule_that_breaks_a_check_names_the_rule() {
    // 300 rows: random_int (0–100) breaks age >= 18 on some row, whatever the draw.
    let p = pair(
        300,
        "ALTER TABLE customers ADD CONSTRAINT adult CHECK (age >= 18);",
    )
    .await;
    let cfg = std::env::temp_dir().join(format!("dbsync-check-{}.yml", std::process::id()));
    std::fs::write(&cfg, "data_rules:\n  customers.age: random_int\n").unwrap();
    let out = p.run(&["--config", cfg.to_str().unwrap()]);
    std::fs::remove_file(&cfg).ok();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let t = String::from_utf8_lossy(&out.stdout);
    assert!(
        t.contains("data rule `customers.age` (random_int) on column age") && t.contains("adult"),
        "{t}"
    );
    assert!(
        t.contains("not refreshed"),
        "a failed run lists what it did not refresh: {t}"
    );
}

/// Starts a run whose progress lines are read, and interrupts it (once or
/// twice) when `trigger` is printed. Returns the exit code and everything said.
fn interrupt_at(p: &Pair, trigger: &str, twice: bool) -> (Option<i32>, String) {
    let mut child = Command::new(BIN)
        .args([
            "run",
            "--source",
            &p.prod.url,
            "--target",
            &p.staging.url,
            "--version-query",
            "SELECT '1'",
            "--parallelism",
            "1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    let stderr = child.stderr.take().unwrap();
    let mut said = String::new();
    let mut sent = false;
    for line in BufReader::new(stderr).lines() {
        let line = line.unwrap_or_default();
        said.push_str(&line);
        said.push('\n');
        if !sent && line.contains(trigger) {
            sent = true;
            let _ = Command::new("kill").args(["-INT", &pid]).status();
            if twice {
                std::thread::sleep(std::time::Duration::from_millis(50));
                let _ = Command::new("kill").args(["-INT", &pid]).status();
            }
        }
    }
    let out = child.wait_with_output().unwrap();
    said.push_str(&String::from_utf8_lossy(&out.stdout));
    (out.status.code(), said)
}

/// Saved keys and the lease, as the next run finds them.
async fn leftovers(db: &TestDb) -> (i64, i64) {
    let c = db.client().await;
    let saved: i64 = c
        .query_one("SELECT count(*) FROM dbsync.saved_fk", &[])
        .await
        .unwrap()
        .get(0);
    let leases: i64 = c
        .query_one("SELECT count(*) FROM dbsync.lease", &[])
        .await
        .unwrap()
        .get(0);
    (saved, leases)
}

#[tokio::test]
async fn ctrl_c_at_several_points_puts_staging_back() {
    for trigger in [
        "AcquireLease",
        "DropForeignKeys",
        "PollReplication",
        "VerifyCopy",
    ] {
        let p = pair(60_000, "").await;
        let before = dbsync_db::verify::foreign_keys(&p.staging.client().await)
            .await
            .unwrap();
        let (code, said) = interrupt_at(&p, trigger, false);
        // Up to the copy the run cannot be over before the signal lands; after
        // the verification it may be (then it simply succeeded). Either way
        // nothing is left behind.
        if code == Some(130) || trigger != "VerifyCopy" {
            assert_eq!(code, Some(130), "{trigger}: {said}");
            assert!(said.contains("sync FAILED: Interrupted"), "{said}");
            assert!(said.contains("were put back"), "{said}");
        } else {
            assert_eq!(code, Some(0), "{trigger}: {said}");
        }
        let after = dbsync_db::verify::foreign_keys(&p.staging.client().await)
            .await
            .unwrap();
        if said.contains("left NOT VALID") {
            // Stopped after one table was refreshed and before its parent
            // was: the key is back NOT VALID, still saved, nothing deleted.
            assert_ne!(after, before, "{trigger}: {said}");
            assert!(
                after.values().any(|d| d.contains("NOT VALID")),
                "{trigger}: {after:?}"
            );
            assert_eq!(leftovers(&p.staging).await.1, 0, "{trigger}: the lease");
        } else {
            assert_eq!(
                after, before,
                "{trigger}: foreign keys back as they were\n{said}"
            );
            assert_eq!(leftovers(&p.staging).await, (0, 0), "{trigger}: {said}");
        }
        let out = p.run(&[]);
        assert!(
            out.status.success(),
            "{trigger}: the next run: {}",
            text(&out)
        );
        // Whatever the interruption left, the next run ends exactly right.
        assert_eq!(
            dbsync_db::verify::foreign_keys(&p.staging.client().await)
                .await
                .unwrap(),
            before,
            "{trigger}: after the next run"
        );
        assert_eq!(
            leftovers(&p.staging).await,
            (0, 0),
            "{trigger}: after the next run"
        );
    }
}

#[tokio::test]
async fn a_second_ctrl_c_exits_at_once_and_the_next_run_recovers() {
    let p = pair(60_000, "").await;
    let before = dbsync_db::verify::foreign_keys(&p.staging.client().await)
        .await
        .unwrap();
    let (code, said) = interrupt_at(&p, "DropForeignKeys", true);
    assert_eq!(code, Some(130), "{said}");
    if said.contains("exiting at once") {
        assert!(said.contains("the next `dbsync run`"), "{said}");
    } else {
        // The failure path finished before the second signal landed.
        assert!(said.contains("were put back"), "{said}");
    }
    let (saved, _) = leftovers(&p.staging).await;
    if saved > 0 {
        let out = p.plan(&[]);
        let t = text(&out);
        assert!(
            t.contains("waiting:") && t.contains("run lease: held"),
            "{t}"
        );
    }
    let out = p.run(&[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        dbsync_db::verify::foreign_keys(&p.staging.client().await)
            .await
            .unwrap(),
        before
    );
    assert_eq!(leftovers(&p.staging).await, (0, 0));
}

#[tokio::test]
async fn strict_mode_refuses_a_new_column_and_deterministic_runs_repeat_themselves() {
    let add = "ALTER TABLE customers ADD COLUMN phone2 text;";
    let p = pair(50, add).await;
    p.prod
        .client()
        .await
        .batch_execute(&format!(
            "{add} UPDATE customers SET phone2 = '+1 555 ' || id;"
        ))
        .await
        .unwrap();
    let cfg = std::env::temp_dir().join(format!("dbsync-strict-{}.yml", std::process::id()));
    let rules = "strict: true\ndeterministic: true\ndata_rules:\n  customers.name: random_string\n  \
                 customers.visits: untouched\n  customers.age: untouched\n  orders.note: untouched\n";
    std::fs::write(&cfg, rules).unwrap();
    let run = |salt: &str| {
        Command::new(BIN)
            .args(["run", "--source", &p.prod.url, "--target", &p.staging.url])
            .args(["--version-query", "SELECT '1'", "--json", "--config"])
            .arg(&cfg)
            .env("DBSYNC_MASK_SALT", salt)
            .output()
            .unwrap()
    };
    let before = state(&p.staging).await;
    let out = run("sixteen characters or more");
    let d = doc(&out);
    assert_eq!(d["error"], "UnclassifiedColumns", "{d:#}");
    assert!(d.to_string().contains("public.customers.phone2"), "{d:#}");
    assert_eq!(state(&p.staging).await, before, "refused before any change");
    let out = p.plan(&["--config", cfg.to_str().unwrap()]);
    assert!(text(&out).contains("UnclassifiedColumns"), "{}", text(&out));

    std::fs::write(&cfg, format!("{rules}  customers.phone2: unique_phone\n")).unwrap();
    let masked = |db: TestDb| async move {
        db.client()
            .await
            .query_one(
                "SELECT string_agg(id || ':' || name || ':' || phone2, ',' ORDER BY id) FROM customers",
                &[],
            )
            .await
            .unwrap()
            .get::<_, String>(0)
    };
    assert!(run("sixteen characters or more").status.success());
    let first = masked(p.staging.clone()).await;
    assert!(run("sixteen characters or more").status.success());
    assert_eq!(
        masked(p.staging.clone()).await,
        first,
        "byte-identical again"
    );
    // The Lambda engine's copy applies the very same masks, in flight.
    let lambda = Command::new(BIN)
        .args(["run", "--source", &p.prod.url, "--target", &p.staging.url])
        .args([
            "--version-query",
            "SELECT '1'",
            "--json",
            "--engine",
            "lambda",
            "--config",
        ])
        .arg(&cfg)
        .env("DBSYNC_MASK_SALT", "sixteen characters or more")
        .output()
        .unwrap();
    assert!(lambda.status.success(), "{}", text(&lambda));
    assert_eq!(
        masked(p.staging.clone()).await,
        first,
        "the Lambda engine masks byte for byte as the local copy does"
    );
    assert!(run("another salt of sixteen+").status.success());
    assert_ne!(
        masked(p.staging.clone()).await,
        first,
        "another salt, other values"
    );
    let source = masked(p.prod.clone()).await;
    for (m, s) in first.split(',').zip(source.split(',')) {
        let (m, s): (Vec<&str>, Vec<&str>) = (m.split(':').collect(), s.split(':').collect());
        assert_eq!(m[0], s[0]);
        assert!(
            m[1] != s[1] && m[2] != s[2],
            "masked to itself: {m:?} / {s:?}"
        );
    }
    // No salt: refused by name, before anything changes.
    let out = Command::new(BIN)
        .args(["run", "--source", &p.prod.url, "--target", &p.staging.url])
        .args(["--version-query", "SELECT '1'", "--config"])
        .arg(&cfg)
        .env_remove("DBSYNC_MASK_SALT")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("DBSYNC_MASK_SALT"), "{}", text(&out));
    std::fs::remove_file(&cfg).ok();
}
