//! Deterministic data rules on real PostgreSQL: the same value masks the
//! same way on every run and in every table, another salt gives other
//! values, nothing is masked to itself, unique indexes hold, and the copy's
//! select (local) and the after-load update (AWS) give identical rows.

mod common;

use std::time::Duration;

use dbsync_db::{
    mask::{self, MaskPlan},
    target, Budget, Selection, Timeouts,
};
use dbsync_testpg::{Cluster, TestDb};
use dbsync_workflow::sync_config::SyncConfig;
use tokio_postgres::Client;

const SCHEMA: &str = "
CREATE SCHEMA app;
CREATE TABLE app.users (id bigint PRIMARY KEY, email text NOT NULL UNIQUE, phone text UNIQUE, token text,
                        initial char(1), age smallint, born date, last_seen timestamptz, last_ip inet, nick varchar(20));
CREATE TABLE app.contacts (code text PRIMARY KEY, email text UNIQUE);
";

const ROWS: i64 = 2000;

fn data() -> String {
    format!(
        "INSERT INTO app.users SELECT g, 'person' || g || '@corp.example', CASE WHEN g % 10 = 0 THEN NULL ELSE '+31 6 ' || g END,
                md5(g::text), chr(65 + g % 26), g % 101, DATE '1970-01-01' + g % 10000,
                TIMESTAMPTZ '2025-06-01' - g * INTERVAL '1 hour', ('10.0.' || g % 250 || '.1')::inet, 'nick' || g
           FROM generate_series(1, {ROWS}) g;
         INSERT INTO app.contacts SELECT 'c' || g, 'person' || g || '@corp.example' FROM generate_series(1, 300) g;"
    )
}

const RULES: &str = "
deterministic: true
data_rules:
  email: unique_email
  phone: unique_phone
  token: unique_secret
  initial: random_letter
  age: random_int
  born: random_date
  last_seen: random_time
  last_ip: random_ip
  nick: random_string
";

async fn connect(db: &TestDb) -> Client {
    common::dbsync_client(db).await
}

async fn plan(c: &Client, salt: &str) -> MaskPlan {
    let config = SyncConfig::parse("dbsync.yml", RULES)
        .unwrap()
        .with_salt(Some(salt), "test")
        .unwrap();
    mask::plan(c, &Selection::all(), &config).await.unwrap()
}

/// The copy's select (what the local replicator sends production), as rows of text.
async fn in_flight(
    c: &Client,
    p: &MaskPlan,
    table: &str,
    cols: &[&str],
    order: &str,
) -> Vec<String> {
    p.set_salt(c).await.unwrap();
    let cols: Vec<String> = cols.iter().map(|s| s.to_string()).collect();
    let list = p.select_list("app", table, &cols, &Default::default());
    c.query(
        &format!("SELECT x::text FROM (SELECT {list} FROM ONLY app.{table} ORDER BY {order}) x"),
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

const USER_COLS: [&str; 10] = [
    "id",
    "email",
    "phone",
    "token",
    "initial",
    "age",
    "born",
    "last_seen",
    "last_ip",
    "nick",
];

#[tokio::test]
async fn one_salt_gives_the_same_values_on_every_run_and_in_every_table() {
    let db = Cluster::shared().create_db("det_src").await;
    let c = connect(&db).await;
    c.batch_execute(&format!("{SCHEMA}{}", data()))
        .await
        .unwrap();
    let salt = "a salt of sixteen or more characters";
    let p = plan(&c, salt).await;
    let first = in_flight(&c, &p, "users", &USER_COLS, "id").await;
    // Another run: a new session, the plan made again.
    let c2 = connect(&db).await;
    let again = in_flight(&c2, &plan(&c2, salt).await, "users", &USER_COLS, "id").await;
    assert_eq!(first, again, "byte-identical on a second run");

    // The same emails in another table mask to the same values (joins keep working).
    let joined: i64 = c
        .query_one(
            &format!(
                "SELECT count(*) FROM (SELECT {} FROM app.users) u JOIN (SELECT {} FROM app.contacts) k USING (email)",
                p.select_list("app", "users", &["email".into()], &Default::default()),
                p.select_list("app", "contacts", &["email".into()], &Default::default()),
            ),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(joined, 300);

    // Another salt: other values.
    let other = in_flight(
        &c,
        &plan(&c, "another salt, just as long").await,
        "users",
        &USER_COLS,
        "id",
    )
    .await;
    let same = first.iter().zip(&other).filter(|(a, b)| a == b).count();
    assert_eq!(same, 0, "rows equal under another salt");

    // Nothing masked to its own value; NULL stays NULL; unique columns stay unique.
    p.set_salt(&c).await.unwrap();
    let all: Vec<String> = USER_COLS.iter().map(|s| s.to_string()).collect();
    let list = p.select_list("app", "users", &all, &Default::default());
    // Every column but the key is masked.
    for &col in &USER_COLS[1..] {
        let row = c
            .query_one(
                &format!(
                    "SELECT count(*) FILTER (WHERE m.{col}::text = s.{col}::text),
                            count(*) FILTER (WHERE (m.{col} IS NULL) <> (s.{col} IS NULL)),
                            count(DISTINCT m.{col}), count(DISTINCT s.{col})
                     FROM app.users s JOIN (SELECT {list} FROM app.users) m USING (id)"
                ),
                &[],
            )
            .await
            .unwrap();
        let (equal, nulls): (i64, i64) = (row.get(0), row.get(1));
        assert_eq!(equal, 0, "{col}: a value masked to itself");
        assert_eq!(nulls, 0, "{col}: NULL must stay NULL and only NULL");
        if ["email", "phone", "token"].contains(&col) {
            assert_eq!(row.get::<_, i64>(2), row.get::<_, i64>(3), "{col} unique");
        }
    }
    // The salt is never in the plan's debug output, nor the SQL the copy sends.
    assert!(!format!("{p:?}").contains(salt));
    assert!(!list.contains(salt));
}

#[tokio::test]
async fn the_copys_select_and_the_after_load_update_give_identical_rows() {
    let c0 = Cluster::shared();
    let src = c0.create_db("det_a").await;
    let a = connect(&src).await;
    a.batch_execute(&format!("{SCHEMA}{}", data()))
        .await
        .unwrap();
    drop(a);
    let copy = format!("{}_b", src.name);
    connect(&src)
        .await
        .batch_execute(&format!("CREATE DATABASE {copy} TEMPLATE {}", src.name))
        .await
        .unwrap();
    let staged = TestDb {
        url: src.url.replace(&src.name, &copy),
        name: copy,
    };
    let a = connect(&src).await;
    let mut b = connect(&staged).await;
    target::init_target(&mut b).await.unwrap();
    let salt = "the same salt on both paths";
    let expected = in_flight(&a, &plan(&a, salt).await, "users", &USER_COLS, "id").await;
    // AWS: DMS wrote raw rows; the after-load step updates them, block range by block range.
    let p = plan(&b, salt).await;
    let out = mask::mask(
        &mut b,
        &p,
        Some("det"),
        Timeouts {
            statement: Duration::from_secs(60),
            lock: Duration::from_secs(5),
        },
        Budget::from_now(Duration::from_secs(120)),
        Duration::from_secs(1),
        4,
    )
    .await
    .unwrap();
    assert_eq!(out.remaining, 0);
    let cols = USER_COLS.join(", ");
    let updated: Vec<String> = b
        .query(
            &format!("SELECT x::text FROM (SELECT {cols} FROM app.users ORDER BY id) x"),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(updated.len(), ROWS as usize);
    assert_eq!(
        updated, expected,
        "in flight and after the load: the same rows"
    );
}

#[tokio::test]
async fn strict_mode_names_every_unclassified_column() {
    let db = Cluster::shared().create_db("det_strict").await;
    let c = connect(&db).await;
    c.batch_execute(SCHEMA).await.unwrap();
    let config = SyncConfig::parse(
        "dbsync.yml",
        "strict: true\ndata_rules:\n  email: unique_email\n  \"app.users.*\": untouched\n",
    )
    .unwrap();
    let p = mask::plan(&c, &Selection::all(), &config).await.unwrap();
    // users: every column covered (the wildcard after email); contacts.code is its key.
    assert_eq!(p.unclassified, Vec::<String>::new());
    c.batch_execute("ALTER TABLE app.contacts ADD COLUMN tax_id text; ALTER TABLE app.users ADD COLUMN phone2 text")
        .await
        .unwrap();
    let config = SyncConfig::parse(
        "dbsync.yml",
        "strict: true\ndata_rules:\n  email: unique_email\n  \"app.users.*\": untouched\n",
    )
    .unwrap();
    let p = mask::plan(&c, &Selection::all(), &config).await.unwrap();
    assert_eq!(p.unclassified, vec!["app.contacts.tax_id".to_owned()]);
    let e = p.require_classified("dbsync.yml").unwrap_err();
    assert_eq!(e.name(), "UnclassifiedColumns");
    assert!(e.to_string().contains("app.contacts.tax_id"), "{e}");
}
