//! Schema compatibility on real PostgreSQL: every kind of drift between
//! production and staging is named, column by column; what is the same
//! (whatever the column order) passes; a lossless type change passes only
//! when opted in.

use dbsync_db::{schema, Selection};
use dbsync_testpg::{Cluster, TestDb};
use dbsync_workflow::StepError;

async fn pair(prod_sql: &str, staging_sql: &str) -> (TestDb, TestDb) {
    let c = Cluster::shared();
    let (prod, staging) = (c.create_db("sprod").await, c.create_db("sstag").await);
    prod.client().await.batch_execute(prod_sql).await.unwrap();
    staging
        .client()
        .await
        .batch_execute(staging_sql)
        .await
        .unwrap();
    (prod, staging)
}

async fn gate(
    prod: &TestDb,
    staging: &TestDb,
    selection: &Selection,
    casts: bool,
) -> Result<schema::Compatibility, StepError> {
    schema::gate(
        &prod.client().await,
        &staging.client().await,
        selection,
        casts,
    )
    .await
}

/// The refusal's message, failing the test when the gate passes.
async fn refusal(prod_sql: &str, staging_sql: &str) -> String {
    let (prod, staging) = pair(prod_sql, staging_sql).await;
    match gate(&prod, &staging, &Selection::all(), false).await {
        Err(e @ StepError::SchemaMismatch(_)) => e.to_string(),
        other => panic!("expected SchemaMismatch for\n{prod_sql}\n{staging_sql}\ngot {other:?}"),
    }
}

#[tokio::test]
async fn each_kind_of_drift_is_named() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "CREATE TABLE t (id int PRIMARY KEY, v int)",
            "CREATE TABLE t (id int PRIMARY KEY, v real)",
            "public.t.v: production integer / staging real",
        ),
        (
            "CREATE TABLE t (id int PRIMARY KEY, v int)",
            "CREATE TABLE t (id int PRIMARY KEY, v date)",
            "public.t.v: production integer / staging date",
        ),
        (
            "CREATE TABLE t (id int PRIMARY KEY, v int)",
            "CREATE TABLE t (id int PRIMARY KEY, v bigint)",
            "public.t.v: production integer / staging bigint (lossless",
        ),
        (
            "CREATE TABLE t (id int PRIMARY KEY, v text)",
            "CREATE TABLE t (id int PRIMARY KEY, v varchar(5))",
            "public.t.v: production text / staging character varying(5)",
        ),
        (
            "CREATE TABLE t (id int PRIMARY KEY, v numeric)",
            "CREATE TABLE t (id int PRIMARY KEY, v numeric(10,2))",
            "public.t.v: production numeric / staging numeric(10,2)",
        ),
        (
            "CREATE TABLE t (id int PRIMARY KEY, v int, w text)",
            "CREATE TABLE t (id int PRIMARY KEY, v int)",
            "public.t.w: production text / staging missing column",
        ),
        (
            "CREATE TABLE t (id int PRIMARY KEY)",
            "CREATE TABLE t (id int PRIMARY KEY, must text NOT NULL)",
            "public.t.must: production missing column / staging text NOT NULL without a default",
        ),
        (
            "CREATE TABLE t (id int PRIMARY KEY); CREATE TABLE \"New Table\" (id int)",
            "CREATE TABLE t (id int PRIMARY KEY)",
            "public.\"New Table\": production table / staging missing",
        ),
        (
            "CREATE TYPE mood AS ENUM ('ok', 'sad', 'happy'); CREATE TABLE t (id int, m mood)",
            "CREATE TYPE mood AS ENUM ('ok', 'sad'); CREATE TABLE t (id int, m mood)",
            "public.t.m: production public.mood (enum: ok, sad, happy) / staging public.mood (enum: ok, sad)",
        ),
        (
            "CREATE DOMAIN email AS text CHECK (VALUE LIKE '%@%'); CREATE TABLE t (id int, e email)",
            "CREATE DOMAIN email AS varchar(20) CHECK (VALUE LIKE '%@%'); CREATE TABLE t (id int, e email)",
            "public.t.e: production public.email (domain over text",
        ),
        (
            "CREATE TABLE t (id int, a int[])",
            "CREATE TABLE t (id int, a bigint[])",
            "public.t.a: production integer[] / staging bigint[]",
        ),
        (
            "CREATE TYPE mood AS ENUM ('ok', 'sad', 'happy'); CREATE TABLE t (id int, a mood[])",
            "CREATE TYPE mood AS ENUM ('ok', 'sad'); CREATE TABLE t (id int, a mood[])",
            "(array of public.mood (enum: ok, sad, happy))",
        ),
        (
            "CREATE TABLE t (id int, a int, b int)",
            "CREATE TABLE t (id int, a int, b int GENERATED ALWAYS AS (a * 2) STORED)",
            "public.t.b: production integer plain column / staging integer generated",
        ),
        (
            "CREATE TABLE t (id int, a int, b int GENERATED ALWAYS AS (a * 2) STORED)",
            "CREATE TABLE t (id int, a int, b int)",
            "public.t.b: production integer generated / staging integer plain column",
        ),
        (
            "CREATE TABLE t (id int, name text)",
            "CREATE COLLATION ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
             CREATE TABLE t (id int, name text COLLATE ci)",
            "(nondeterministic)",
        ),
        (
            "CREATE TABLE \"Mixed\" (\"Id\" int, \"Val\" smallint)",
            "CREATE TABLE \"Mixed\" (\"Id\" int, \"Val\" boolean)",
            "public.\"Mixed\".\"Val\": production smallint / staging boolean",
        ),
    ];
    for (prod, staging, expected) in cases {
        let m = refusal(prod, staging).await;
        assert!(
            m.contains(expected),
            "{prod} / {staging}: {expected:?} not in\n{m}"
        );
        assert!(m.contains("nothing was changed"), "{m}");
    }
}

#[tokio::test]
async fn every_difference_is_listed_at_once() {
    let m = refusal(
        "CREATE TABLE a (id int, v int, gone text); CREATE TABLE b (id int); CREATE TABLE c (id int)",
        "CREATE TABLE a (id int, v real, must int NOT NULL); CREATE TABLE b (id bigint)",
    )
    .await;
    for part in [
        "public.a.v: production integer / staging real",
        "public.a.gone: production text / staging missing column",
        "public.a.must: production missing column",
        "public.b.id: production integer / staging bigint",
        "public.c: production table / staging missing",
    ] {
        assert!(m.contains(part), "{part:?} not in\n{m}");
    }
    let lines: Vec<&str> = m.lines().filter(|l| l.starts_with("  ")).collect();
    assert_eq!(lines.len(), 5, "{m}");
    assert!(
        m.starts_with("staging's schema differs from production's — 5 difference(s)"),
        "{m}"
    );
    assert!(
        m.contains("1 of them can be copied through a lossless cast"),
        "{m}"
    );
}

#[tokio::test]
async fn the_same_columns_in_another_order_and_staging_tables_pass() {
    let (prod, staging) = pair(
        "CREATE TYPE mood AS ENUM ('ok', 'sad');
         CREATE TABLE t (id int PRIMARY KEY, v varchar(10), m mood, tags mood[], n numeric(10,2), gen int GENERATED ALWAYS AS (id * 2) STORED);",
        "CREATE TYPE mood AS ENUM ('ok', 'sad');
         CREATE TABLE t (n numeric(10,2), tags mood[], m mood, gen int GENERATED ALWAYS AS (id + 1) STORED, v varchar(10), id int PRIMARY KEY,
                         note text, added_at timestamptz NOT NULL DEFAULT now());
         CREATE SCHEMA qa; CREATE TABLE qa.notes (id int PRIMARY KEY);",
    )
    .await;
    let c = gate(&prod, &staging, &Selection::all(), false)
        .await
        .expect("compatible");
    assert_eq!(c.differences.len(), 1, "{:?}", c.differences);
    assert!(
        c.differences[0].note_only,
        "staging's own table: said, not refused"
    );
    let f = &c.formats[&("public".to_owned(), "t".to_owned())];
    assert!(f.binary, "enums and enum arrays travel in binary");
    assert!(f.casts.is_empty());
}

#[tokio::test]
async fn a_lossless_change_is_cast_only_when_allowed() {
    let (prod, staging) = pair(
        "CREATE TABLE t (id int PRIMARY KEY, n int, s varchar(5), d numeric(8,2))",
        "CREATE TABLE t (id int PRIMARY KEY, n bigint, s text, d numeric(12,2))",
    )
    .await;
    let all = Selection::all();
    let e = gate(&prod, &staging, &all, false).await.unwrap_err();
    assert_eq!(e.name(), "SchemaMismatch");
    let c = gate(&prod, &staging, &all, true).await.expect("allowed");
    let casts = &c.formats[&("public".to_owned(), "t".to_owned())].casts;
    assert_eq!(casts.get("n").map(String::as_str), Some("bigint"));
    assert_eq!(casts.get("s").map(String::as_str), Some("text"));
    assert_eq!(casts.get("d").map(String::as_str), Some("numeric(12,2)"));
    // Narrowing is never a cast, opted in or not.
    let (prod, staging) = pair(
        "CREATE TABLE t (id int PRIMARY KEY, n bigint)",
        "CREATE TABLE t (id int PRIMARY KEY, n int)",
    )
    .await;
    assert!(gate(&prod, &staging, &all, true).await.is_err());
}

#[tokio::test]
async fn composite_columns_travel_as_text() {
    let (prod, staging) = pair(
        "CREATE TYPE pair AS (a int, b text); CREATE TABLE t (id int, p pair)",
        "CREATE TYPE pair AS (a int, b text); CREATE TABLE t (id int, p pair)",
    )
    .await;
    let c = gate(&prod, &staging, &Selection::all(), false)
        .await
        .unwrap();
    assert!(!c.formats[&("public".to_owned(), "t".to_owned())].binary);
    let m = refusal(
        "CREATE TYPE pair AS (a int, b text); CREATE TABLE t (id int, p pair)",
        "CREATE TYPE pair AS (a int, b varchar(3)); CREATE TABLE t (id int, p pair)",
    )
    .await;
    assert!(m.contains("(composite: a integer, b text)"), "{m}");
}

#[tokio::test]
async fn one_database_twice_and_selections_of_nothing_are_refused() {
    let (prod, staging) = pair(
        "CREATE TABLE orders (id int)",
        "CREATE TABLE orders (id int)",
    )
    .await;
    let all = Selection::all();
    let e = gate(&staging, &staging, &all, false).await.unwrap_err();
    assert_eq!(e.name(), "SameDatabase", "{e}");
    // Another session, another connection string: still the same database.
    assert!(
        schema::same_database(&prod.client().await, &prod.client().await)
            .await
            .unwrap()
    );
    assert!(
        !schema::same_database(&prod.client().await, &staging.client().await)
            .await
            .unwrap()
    );
    let typo = Selection::from_json(r#"{"rules": [
        {"rule-type": "selection", "rule-id": "1", "rule-name": "a", "object-locator": {"schema-name": "public", "table-name": "orders"}, "rule-action": "include"},
        {"rule-type": "selection", "rule-id": "2", "rule-name": "b", "object-locator": {"schema-name": "public", "table-name": "orderz"}, "rule-action": "include"}
    ]}"#)
    .unwrap();
    let e = gate(&prod, &staging, &typo, false).await.unwrap_err();
    assert_eq!(e.name(), "NothingSelected");
    assert!(e.to_string().contains("rule 2 (public.orderz)"), "{e}");
    let (empty_prod, empty_staging) = pair("SELECT 1", "SELECT 1").await;
    let e = gate(&empty_prod, &empty_staging, &all, false)
        .await
        .unwrap_err();
    assert_eq!(e.name(), "NothingSelected", "{e}");
}
