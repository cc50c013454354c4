//! Data rules, `after_sync` and the verification summary on real PostgreSQL:
//! each rule's meaning, in flight (the copy's select) and set-based (the AWS
//! step) alike; uniqueness under a unique index; key columns refused by name;
//! masked values never the source's; masking resumed after running out of
//! time; `after_sync` order and failure.

use std::time::Duration;

use dbsync_db::{
    after_load,
    mask::{self, MaskPlan},
    target, Budget, DbConfig, Selection, Timeouts,
};
use dbsync_testpg::{Cluster, TestDb};
use dbsync_workflow::sync_config::SyncConfig;
use tokio_postgres::Client;

const LIMITS: Timeouts = Timeouts {
    statement: Duration::from_secs(60),
    lock: Duration::from_secs(5),
};

/// People with personal data, a partitioned table, keys of every kind.
const SCHEMA: &str = "
CREATE SCHEMA app;
CREATE TABLE app.users (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email      text NOT NULL UNIQUE,
    phone      text UNIQUE,
    token      text,
    initial    char(1),
    age        smallint,
    born       date,
    last_seen  timestamptz,
    last_ip    inet,
    nick       varchar(20),
    note       text,
    name       text,
    country    text NOT NULL DEFAULT 'NL',
    handle     text GENERATED ALWAYS AS (lower(name)) STORED,
    referrer   bigint REFERENCES app.users
);
CREATE TABLE app.accounts (code text PRIMARY KEY, owner_email text);
CREATE TABLE app.logins (
    user_id bigint REFERENCES app.users,
    at      timestamptz NOT NULL,
    ip      inet
) PARTITION BY RANGE (at);
CREATE TABLE app.logins_old PARTITION OF app.logins FOR VALUES FROM ('2000-01-01') TO ('2025-01-01');
CREATE TABLE app.logins_new PARTITION OF app.logins FOR VALUES FROM ('2025-01-01') TO ('2030-01-01');
CREATE TABLE app.audit (id serial PRIMARY KEY, what text);
CREATE FUNCTION app.audit_user() RETURNS trigger LANGUAGE plpgsql AS
  $$BEGIN INSERT INTO app.audit (what) VALUES (TG_OP); RETURN NEW; END$$;
CREATE TRIGGER users_audit AFTER UPDATE ON app.users FOR EACH ROW EXECUTE FUNCTION app.audit_user();
";

fn data(n: i64) -> String {
    format!(
        "INSERT INTO app.users (email, phone, token, initial, age, born, last_seen, last_ip, nick, note, name)
           SELECT 'person' || g || '@corp.example', '+31 6 ' || g, md5(g::text), 'q', 42, DATE '2000-02-02',
                  TIMESTAMPTZ '2030-01-01', '10.1.2.3', 'nick' || g, 'note ' || g, 'Name ' || g
           FROM generate_series(1, {n}) g;
         INSERT INTO app.accounts SELECT 'acct-' || g, 'person' || g || '@corp.example' FROM generate_series(1, 20) g;
         INSERT INTO app.logins SELECT 1 + g % {n}, TIMESTAMPTZ '2024-06-01' + g * INTERVAL '1 day', '192.168.0.1'
           FROM generate_series(1, 400) g;"
    )
}

const RULES: &str = r#"
data_rules:
  email: unique_email
  users.phone: unique_phone
  app.users.token: unique_secret
  initial: random_letter
  age: random_int
  born: random_date
  last_seen: random_time
  "*_ip": random_ip
  nick: random_string
  users.note: null
  users.name: untouched
  users.country: {value: XX}
  owner_email: {statement: "'owner of ' || code"}
  logins.ip: {value: 127.0.0.1}
"#;

async fn setup(prefix: &str, rows: i64) -> (TestDb, Client) {
    let db = Cluster::shared().create_db(prefix).await;
    let mut c = connect(&db).await;
    c.batch_execute(SCHEMA).await.unwrap();
    c.batch_execute(&data(rows)).await.unwrap();
    target::init_target(&mut c).await.unwrap();
    (db, c)
}

async fn connect(db: &TestDb) -> Client {
    DbConfig::from_url(&db.url)
        .unwrap()
        .connect()
        .await
        .unwrap()
}

fn rules(text: &str) -> SyncConfig {
    SyncConfig::parse("dbsync.yml", text).unwrap()
}

async fn plan(c: &Client, text: &str) -> Result<MaskPlan, dbsync_workflow::StepError> {
    mask::plan(c, &Selection::all(), &rules(text)).await
}

async fn mask_all(
    c: &mut Client,
    plan: &MaskPlan,
    run: &str,
    chunk: i64,
) -> dbsync_workflow::io::MaskOutput {
    mask::mask(
        c,
        plan,
        Some(run),
        LIMITS,
        Budget::from_now(Duration::from_secs(120)),
        Duration::from_secs(1),
        chunk,
    )
    .await
    .unwrap()
}

/// Every row of `users` obeys what each rule means.
async fn assert_rules_hold(c: &Client, rows: i64) {
    let bad = |cond: &'static str| async move {
        let n: i64 = c
            .query_one(
                &format!("SELECT count(*) FROM app.users WHERE NOT ({cond})"),
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 0, "rows breaking: {cond}");
    };
    bad("email = 'email' || id || '@example.org'").await;
    bad("phone = (id + 1000000000)::text").await;
    bad("token = 'secret' || id").await;
    bad("initial BETWEEN 'A' AND 'Z'").await;
    bad("age BETWEEN 0 AND 100").await;
    bad("born BETWEEN DATE '1970-01-01' AND DATE '1970-01-01' + 10000").await;
    bad("last_seen BETWEEN now() - interval '100000000 seconds' - interval '1 day' AND now()")
        .await;
    bad("host(last_ip) ~ '^([1-9][0-9]?|1[0-9][0-9]|2[0-4][0-9]|25[0-5])\\.0\\.0\\.1$'").await;
    bad("nick ~ '^[0-9a-f]{10}$'").await;
    bad("note IS NULL").await;
    bad("name = 'Name ' || id").await;
    bad("country = 'XX'").await;
    bad("handle = lower(name)").await;
    let n: i64 = c
        .query_one("SELECT count(*) FROM app.users", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, rows);
    // Random rules are random: not one constant for every row.
    let distinct: i64 = c
        .query_one(
            "SELECT count(DISTINCT (initial, age, born, last_ip, nick)) FROM app.users",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        distinct > rows / 2,
        "{distinct} distinct random tuples in {rows} rows"
    );
    let owners: i64 = c
        .query_one(
            "SELECT count(*) FROM app.accounts WHERE owner_email <> 'owner of ' || code",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(owners, 0);
    let ips: Vec<String> = c
        .query("SELECT DISTINCT host(ip) FROM app.logins", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(ips, ["127.0.0.1"], "both partitions");
}

#[tokio::test]
async fn set_based_masking_gives_every_rule_its_meaning_resumably_and_quietly() {
    let rows = 3000;
    let (db, mut c) = setup("mask_aws", rows).await;
    let before: Vec<(i64, String, String)> = c
        .query("SELECT id, email, token FROM app.users ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let p = plan(&c, RULES).await.unwrap();
    mask::check(&mut c, &p, "dbsync.yml").await.unwrap();
    // Users, accounts and both logins partitions.
    assert_eq!(p.tables.len(), 4, "{:?}", p.tables.keys());
    // Two blocks per statement: many statements, a unique index holding after each.
    let out = mask_all(&mut c, &p, "run-1", 2).await;
    assert_eq!(out.remaining, 0);
    assert!(out.rows_total >= rows as u64 + 20 + 400, "{out:?}");
    assert_rules_hold(&c, rows).await;
    // Never the source's value.
    for (id, email, token) in &before {
        let r = c
            .query_one("SELECT email, token FROM app.users WHERE id = $1", &[id])
            .await
            .unwrap();
        assert_ne!(&r.get::<_, String>(0), email);
        assert_ne!(&r.get::<_, String>(1), token);
    }
    // The users' audit trigger stayed quiet, and is still on.
    let audited: i64 = c
        .query_one("SELECT count(*) FROM app.audit", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(audited, 0);
    let enabled: String = c
        .query_one(
            "SELECT tgenabled::text FROM pg_trigger WHERE tgname = 'users_audit'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(enabled, "O");
    // Bookkeeping forgotten once done.
    let left: i64 = c
        .query_one("SELECT count(*) FROM dbsync.mask_progress", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
    drop(db);
}

#[tokio::test]
async fn masking_out_of_time_goes_on_where_it_stopped() {
    let rows = 60_000;
    let (_db, mut c) = setup("mask_resume", rows).await;
    let p = plan(
        &c,
        "data_rules:\n  email: unique_email\n  users.note: {value: gone}\n",
    )
    .await
    .unwrap();
    // One block per statement and a budget far too short for them all.
    let first = mask::mask(
        &mut c,
        &p,
        Some("run-r"),
        LIMITS,
        Budget::from_now(Duration::from_millis(300)),
        Duration::from_millis(50),
        1,
    )
    .await
    .unwrap();
    assert!(first.remaining > 0, "{first:?}");
    let masked: i64 = c
        .query_one("SELECT count(*) FROM app.users WHERE note = 'gone'", &[])
        .await
        .unwrap()
        .get(0);
    assert!(
        masked > 0 && masked < rows,
        "{masked} of {rows} after the first invocation"
    );
    let mut calls = 1;
    let mut last = first;
    while last.remaining > 0 {
        last = mask_all(&mut c, &p, "run-r", 64).await;
        calls += 1;
        assert!(calls < 10);
    }
    let unmasked: i64 = c
        .query_one(
            "SELECT count(*) FROM app.users WHERE note IS DISTINCT FROM 'gone' OR email <> 'email' || id || '@example.org'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(unmasked, 0, "after {calls} invocations");
    assert!(last.rows_total >= rows as u64, "{last:?}");
}

#[tokio::test]
async fn in_flight_select_gives_the_same_meaning() {
    let rows = 500;
    let (src, c) = setup("mask_src", rows).await;
    let dst = Cluster::shared().create_db("mask_dst").await;
    let d = connect(&dst).await;
    d.batch_execute(SCHEMA).await.unwrap();
    // Tables in any order, as the replicator with its FKs dropped.
    d.batch_execute("SET session_replication_role = replica")
        .await
        .unwrap();
    let p = plan(&c, RULES).await.unwrap();
    // The copy's own select, table by table, through binary COPY as the replicator does.
    for ((schema, table), _) in p.tables.iter() {
        let cols: Vec<String> = c
            .query(
                "SELECT attname::text FROM pg_attribute WHERE attrelid = ($1 || '.' || $2)::regclass \
                 AND attnum > 0 AND NOT attisdropped AND attgenerated = '' ORDER BY attnum",
                &[schema, table],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        let list = p.select_list(schema, table, &cols, &Default::default());
        let quoted: Vec<String> = cols.iter().map(|c| format!("\"{c}\"")).collect();
        let sink_sql = format!(
            "COPY {schema}.{table} ({}) FROM STDIN (FORMAT binary)",
            quoted.join(", ")
        );
        let out = c
            .copy_out(&format!(
                "COPY (SELECT {list} FROM ONLY {schema}.{table}) TO STDOUT (FORMAT binary)"
            ))
            .await
            .unwrap();
        let sink = d.copy_in::<_, bytes::Bytes>(&sink_sql).await.unwrap();
        futures_util::pin_mut!(out);
        futures_util::pin_mut!(sink);
        use futures_util::SinkExt;
        sink.send_all(&mut out).await.unwrap();
        sink.as_mut().finish().await.unwrap();
    }
    // Binary COPY takes exactly the columns' types: every cast fitted.
    assert_rules_hold(&d, rows).await;
    drop(src);
}

#[tokio::test]
async fn rules_that_would_break_the_copy_are_refused_by_their_key() {
    let (_db, mut c) = setup("mask_refuse", 10).await;
    for (text, says) in [
        (
            "data_rules:\n  users.id: random_int\n",
            "data_rules.users.id covers app.users.id, a primary- or foreign-key column",
        ),
        (
            "data_rules:\n  referrer: null\n",
            "data_rules.referrer covers app.users.referrer",
        ),
        (
            "data_rules:\n  logins.user_id: null\n",
            "data_rules.logins.user_id",
        ),
        (
            "data_rules:\n  accounts.code: random_string\n",
            "data_rules.accounts.code",
        ),
        ("data_rules:\n  handle: null\n", "a generated column"),
        (
            "data_rules:\n  logins.ip: unique_email\n",
            "app.logins has no single-column primary key",
        ),
        (
            "data_rules:\n  accounts.owner_email: unique_phone\n",
            "unique_phone needs an integer primary key",
        ),
        (
            "data_rules:\n  users.emial: null\n",
            "data_rules.users.emial matches no column",
        ),
        (
            "data_rules:\n  nosuch.*: null\n",
            "data_rules.nosuch.* matches no column",
        ),
    ] {
        let e = plan(&c, text).await.unwrap_err();
        assert_eq!(e.name(), "SyncConfigInvalid", "{text}");
        assert!(e.to_string().contains(says), "{text}: {e}");
    }
    // Untouched on a key is allowed, and shields it from a wildcard after it.
    let p = plan(
        &c,
        "data_rules:\n  users.id: untouched\n  users.referrer: untouched\n  users.*: untouched\n",
    )
    .await
    .unwrap();
    assert!(p.is_empty());
    // Parsed by PostgreSQL before anything changes: bad SQL, bad casts.
    for (text, says) in [
        (
            "data_rules:\n  note: {statement: \"no_such_function(id)\"}\n",
            "data_rules.note does not work on \"app\".\"users\".note",
        ),
        (
            "data_rules:\n  age: {value: lots}\n",
            "data_rules.age does not work",
        ),
        (
            "data_rules:\n  note: {statement: \"missing_column\"}\n",
            "missing_column",
        ),
    ] {
        let p = plan(&c, text).await.unwrap();
        let e = mask::check(&mut c, &p, "dbsync.yml").await.unwrap_err();
        assert_eq!(e.name(), "SyncConfigInvalid", "{text}");
        assert!(e.to_string().contains(says), "{text}: {e}");
        assert!(!e.to_string().contains("CAST("), "no SQL: {e}");
    }
}

#[tokio::test]
async fn after_sync_runs_in_order_and_a_failure_names_its_position() {
    let (_db, mut c) = setup("after_sync", 5).await;
    c.batch_execute("CREATE TABLE app.steps (n int, at timestamptz DEFAULT clock_timestamp())")
        .await
        .unwrap();
    let statements: Vec<String> = [
        "INSERT INTO app.steps (n) VALUES (1)",
        "UPDATE app.users SET note = 'staging copy'",
        "INSERT INTO app.steps (n) SELECT 1 / (count(*) - count(*))::int FROM app.users",
        "INSERT INTO app.steps (n) VALUES (4)",
    ]
    .map(String::from)
    .to_vec();
    let budget = || Budget::from_now(Duration::from_secs(60));
    let slice = Duration::from_secs(1);
    let e = after_load::after_sync(
        &mut c,
        &statements,
        Some("run-a"),
        LIMITS,
        budget(),
        slice,
        None,
    )
    .await
    .unwrap_err();
    assert_eq!(e.name(), "AfterSyncFailed");
    assert!(
        e.to_string().contains("statement 3 of 4: division by zero"),
        "{e}"
    );
    assert!(!e.to_string().contains("count(*)"), "no SQL: {e}");
    let ran: Vec<i32> = c
        .query("SELECT n FROM app.steps ORDER BY at", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(ran, [1], "1 and 2 committed, 3 rolled back, 4 never ran");
    // Fixed, the same execution goes on from statement 3.
    let mut fixed = statements.clone();
    fixed[2] = "INSERT INTO app.steps (n) VALUES (3)".into();
    let out = after_load::after_sync(&mut c, &fixed, Some("run-a"), LIMITS, budget(), slice, None)
        .await
        .unwrap();
    assert_eq!((out.statements, out.ran, out.remaining), (4, 2, 0));
    let ran: Vec<i32> = c
        .query("SELECT n FROM app.steps ORDER BY at", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(ran, [1, 3, 4]);
    // A database never opted in is refused before any statement runs.
    let other = Cluster::shared().create_db("after_sync_no").await;
    let mut o = connect(&other).await;
    let e = after_load::after_sync(&mut o, &fixed, Some("run-b"), LIMITS, budget(), slice, None)
        .await
        .unwrap_err();
    assert_eq!(e.name(), "TargetNotOptedIn");
}

#[tokio::test]
async fn verification_flags_tables_whose_counts_differ() {
    let (_db, mut c) = setup("verify_counts", 30).await;
    let copied = [
        ("app.users", 30),
        ("app.accounts", 21),
        ("app.logins_old", 213),
        ("app.gone", 5),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let out = after_load::verify(
        &mut c,
        Some(&copied),
        &[],
        Some("run-v"),
        LIMITS,
        Budget::from_now(Duration::from_secs(60)),
        Duration::from_secs(1),
    )
    .await
    .unwrap();
    assert_eq!(out.tables, 4);
    assert_eq!(out.rows_copied, Some(30 + 21 + 213 + 5));
    let flagged: Vec<&str> = out.flagged.iter().map(|f| f.table.as_str()).collect();
    assert_eq!(flagged, ["app.accounts", "app.gone"], "{out:?}");
    assert_eq!(out.flagged[1].target, None, "a table the target lacks");
    assert_eq!(out.flagged_total, 2);
    assert_eq!(out.counts.len(), 4);
}
