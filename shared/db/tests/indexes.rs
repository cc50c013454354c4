//! Indexes off for the load and back after it, on real PostgreSQL: every
//! kind a real schema has comes back exactly; what must stay, stays; a
//! build cut short by the invocation's end or a killed session loses
//! nothing and the next restore finishes.

mod common;

use std::time::Duration;

use common::{budget, restore_opts, restore_until_done, setup, LIMITS};
use dbsync_db::{
    fks::{self, OrphanPolicy, RestoreOptions},
    indexes::{IndexDrop, MaskedColumns},
    verify, Budget, DbConfig, Selection,
};

const SCHEMA: &str = "
CREATE SCHEMA shop;
CREATE COLLATION shop.ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
CREATE TABLE shop.customers (
    id int PRIMARY KEY,
    email text NOT NULL,
    handle text,
    region text NOT NULL,
    profile jsonb,
    seen tsrange,
    CONSTRAINT customers_email_key UNIQUE (email) DEFERRABLE INITIALLY DEFERRED
);
COMMENT ON CONSTRAINT customers_email_key ON shop.customers IS 'one account per address';
ALTER TABLE shop.customers ADD CONSTRAINT customers_handle_key UNIQUE NULLS NOT DISTINCT (handle) INCLUDE (region);
CREATE UNIQUE INDEX customers_region_id ON shop.customers (region, id);
ALTER TABLE shop.customers REPLICA IDENTITY USING INDEX customers_region_id;
CREATE INDEX customers_lower_email ON shop.customers (lower(email) text_pattern_ops) WITH (fillfactor = 70);
ALTER INDEX shop.customers_lower_email ALTER COLUMN 1 SET STATISTICS 500;
COMMENT ON INDEX shop.customers_lower_email IS 'login lookups';
CREATE INDEX customers_profile ON shop.customers USING gin (profile jsonb_path_ops) WITH (fastupdate = off);
CREATE INDEX customers_active ON shop.customers (region COLLATE \"C\" DESC NULLS LAST) WHERE handle IS NOT NULL;
CREATE INDEX customers_region_hash ON shop.customers USING hash (region);
CREATE INDEX customers_id_brin ON shop.customers USING brin (id) WITH (pages_per_range = 16);
ALTER TABLE shop.customers CLUSTER ON customers_region_id;
-- Exclusion constraints stay (no USING INDEX form).
CREATE EXTENSION IF NOT EXISTS btree_gist;
ALTER TABLE shop.customers ADD CONSTRAINT customers_no_overlap EXCLUDE USING gist (region WITH =, seen WITH &&);

CREATE TABLE shop.orders (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id int NOT NULL REFERENCES shop.customers,
    note text COLLATE shop.ci,
    total numeric(10,2)
);
CREATE INDEX orders_customer ON shop.orders (customer_id) INCLUDE (total);
CREATE INDEX orders_note ON shop.orders (note);

-- A view grouping by a primary key leans on it: that key stays.
CREATE TABLE shop.products (id int PRIMARY KEY, name text NOT NULL, sku text NOT NULL UNIQUE);
CREATE VIEW shop.product_names AS SELECT id, name FROM shop.products GROUP BY id;

-- A table the run does not touch references a synced one: that key stays.
CREATE SCHEMA qa;
CREATE TABLE qa.favourites (product_id int REFERENCES shop.products (id));

-- Partitioned: its indexes stay.
CREATE TABLE shop.events (id int, at date NOT NULL, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE shop.events_2025 PARTITION OF shop.events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE INDEX events_at ON shop.events (at);

INSERT INTO shop.customers
SELECT g, 'user' || g || '@example.com', CASE WHEN g = 1 THEN NULL ELSE 'h' || g END,
       CASE WHEN g % 2 = 0 THEN 'eu' ELSE 'us' END, jsonb_build_object('n', g),
       tsrange('2025-01-01'::timestamp + g * interval '1 day', '2025-01-01'::timestamp + (g + 1) * interval '1 day')
FROM generate_series(1, 3000) g;
INSERT INTO shop.orders (customer_id, note, total) SELECT 1 + g % 3000, 'n' || g, g FROM generate_series(1, 9000) g;
INSERT INTO shop.products SELECT g, 'p' || g, 'sku' || g FROM generate_series(1, 100) g;
INSERT INTO shop.events SELECT g, DATE '2025-01-01' + g % 300 FROM generate_series(1, 1000) g;
";

fn shop() -> Selection {
    Selection::from_json(
        r#"{"rules": [{"rule-type": "selection", "rule-id": "1", "rule-name": "shop",
            "object-locator": {"schema-name": "shop", "table-name": "%"}, "rule-action": "include"}]}"#,
    )
    .unwrap()
}

fn live(rows: &verify::ForeignKeys) -> Vec<String> {
    rows.keys().map(|(t, i)| format!("{t}.{i}")).collect()
}

async fn drop_for_load(
    c: &mut tokio_postgres::Client,
    policy: IndexDrop,
    masked: &MaskedColumns,
) -> u64 {
    fks::drop_for_load(c, &shop(), LIMITS, budget(), policy, masked)
        .await
        .unwrap()
        .indexes_dropped
}

/// Every table's indexes dropped for a load (all of them in scope).
async fn drop_everything(c: &mut tokio_postgres::Client) -> dbsync_workflow::io::DropFksOutput {
    fks::drop_for_load(
        c,
        &Selection::all(),
        LIMITS,
        budget(),
        IndexDrop::All,
        &MaskedColumns::new(),
    )
    .await
    .unwrap()
}

fn detached(db: &dbsync_testpg::TestDb, jobs: usize) -> RestoreOptions {
    RestoreOptions {
        synced: shop(),
        detach: Some(DbConfig::from_url(&db.url).unwrap()),
        index_jobs: jobs,
        ..restore_opts(OrphanPolicy::Fail)
    }
}

#[tokio::test]
async fn every_kind_of_index_comes_back_exactly_and_what_must_stay_stays() {
    let (db, mut c) = setup(SCHEMA, true).await;
    let before = verify::indexes(&c).await.unwrap();
    let fks_before = verify::foreign_keys(&c).await.unwrap();

    let dropped = drop_for_load(&mut c, IndexDrop::All, &MaskedColumns::new()).await;
    let during = live(&verify::indexes(&c).await.unwrap());
    assert_eq!(
        during,
        [
            // exclusion constraint; the key a view groups by and an untouched table references;
            // the partitioned table's indexes and their partition's
            "shop.customers.customers_no_overlap",
            "shop.events.events_at",
            "shop.events.events_pkey",
            "shop.events_2025.events_2025_at_idx",
            "shop.events_2025.events_2025_pkey",
            "shop.products.products_pkey",
        ],
        "only what must stay stays"
    );
    assert_eq!(dropped, before.len() as u64 - during.len() as u64);

    // The load: the tables emptied and filled again.
    c.batch_execute(
        "CREATE TEMP TABLE o AS SELECT * FROM shop.orders; CREATE TEMP TABLE cu AS SELECT * FROM shop.customers;
         TRUNCATE shop.orders, shop.customers;
         INSERT INTO shop.customers SELECT * FROM cu;
         INSERT INTO shop.orders OVERRIDING SYSTEM VALUE SELECT * FROM o;",
    )
    .await
    .unwrap();

    let (_, rebuilt) =
        restore_until_done(&mut c, || detached(&db, 2), Duration::from_secs(30)).await;
    assert_eq!(rebuilt, dropped);
    assert_eq!(
        verify::indexes(&c).await.unwrap(),
        before,
        "exactly as before"
    );
    assert_eq!(verify::foreign_keys(&c).await.unwrap(), fks_before);
    for table in [
        "dbsync.saved_index",
        "dbsync.long_statement",
        "dbsync.saved_fk",
    ] {
        assert_eq!(
            common::count(&c, &format!("SELECT count(*) FROM {table}")).await,
            0,
            "{table}"
        );
    }
}

/// AWS keeps primary keys (DMS's full LOB mode looks rows up by them); a
/// unique index over a masked column stays so a colliding rule fails the
/// load by name; without a session to detach to, builds run one at a time.
#[tokio::test]
async fn primary_keys_and_masked_unique_columns_stay_when_told() {
    let (_db, mut c) = setup(SCHEMA, true).await;
    let before = verify::indexes(&c).await.unwrap();
    let masked: MaskedColumns = [("shop".into(), "customers".into(), "email".into())].into();
    drop_for_load(&mut c, IndexDrop::AllButPrimaryKeys, &masked).await;
    let during = live(&verify::indexes(&c).await.unwrap());
    for kept in [
        "shop.customers.customers_pkey",
        "shop.orders.orders_pkey",
        "shop.customers.customers_email_key",
    ] {
        assert!(during.iter().any(|i| i == kept), "{kept} kept: {during:?}");
    }
    for gone in [
        "shop.customers.customers_handle_key",
        "shop.customers.customers_lower_email",
        "shop.orders.orders_customer",
    ] {
        assert!(!during.iter().any(|i| i == gone), "{gone} dropped");
    }
    let (_, _) = restore_until_done(
        &mut c,
        || RestoreOptions {
            synced: shop(),
            ..restore_opts(OrphanPolicy::Fail)
        },
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(verify::indexes(&c).await.unwrap(), before);
    // Nothing dropped with IndexDrop::None.
    assert_eq!(drop_for_load(&mut c, IndexDrop::None, &masked).await, 0);
    assert_eq!(verify::indexes(&c).await.unwrap(), before);
}

const BIG: &str = "
CREATE TABLE big (id int PRIMARY KEY, a int, b text);
INSERT INTO big SELECT g, g % 1000, md5(g::text) FROM generate_series(1, 1500000) g;
CREATE INDEX big_a ON big (a);
CREATE INDEX big_b ON big (b);
CREATE INDEX big_ab ON big (a, b);
";

/// Builds longer than an invocation go on by themselves, two at a time;
/// their sessions killed mid-build lose nothing: the next restore builds
/// them again and finishes.
#[tokio::test]
async fn builds_outlive_invocations_and_killed_builds_are_redone() {
    let (db, mut c) = setup(BIG, true).await;
    let before = verify::indexes(&c).await.unwrap();
    let dropped = drop_everything(&mut c).await.indexes_dropped;
    assert_eq!(dropped, 4);
    let opts = || RestoreOptions {
        detach: Some(DbConfig::from_url(&db.url).unwrap()),
        index_jobs: 2,
        ..restore_opts(OrphanPolicy::Fail)
    };
    // One short invocation starts two builds and returns.
    let out = fks::restore_fks(&mut c, opts(), Budget::from_now(Duration::from_millis(150)))
        .await
        .unwrap();
    assert!(out.indexes_remaining > 0, "{out:?}");
    let builders: i64 = common::count(
        &c,
        "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'dbsync-long:%' \
         AND state = 'active' AND backend_type = 'client backend'",
    )
    .await;
    assert_eq!(builders, 2, "two at a time");
    // A crash of the server's side of the builds.
    c.batch_execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE 'dbsync-long:%'",
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        common::count(&c, "SELECT count(*) FROM dbsync.saved_index").await,
        4,
        "every definition still saved"
    );
    let (invocations, _) = restore_until_done(&mut c, opts, Duration::from_millis(300)).await;
    assert!(invocations >= 2, "fit one invocation: not a test");
    assert_eq!(verify::indexes(&c).await.unwrap(), before);
    assert_eq!(
        common::count(&c, "SELECT count(*) FROM dbsync.saved_index").await,
        0
    );
}

/// A unique index that cannot be built (duplicates arrived during the
/// load) is named; its definition stays saved for the next run.
#[tokio::test]
async fn an_index_that_cannot_be_built_is_named_and_stays_saved() {
    let (_db, mut c) = setup(
        "CREATE TABLE t (id int, code text CONSTRAINT t_code UNIQUE); INSERT INTO t VALUES (1, 'a');",
        true,
    )
    .await;
    drop_everything(&mut c).await;
    c.batch_execute("INSERT INTO t VALUES (2, 'a')")
        .await
        .unwrap();
    let e = fks::restore_fks(&mut c, restore_opts(OrphanPolicy::Fail), budget())
        .await
        .unwrap_err();
    assert_eq!(e.name(), "IndexRebuildFailed", "{e}");
    assert!(e.to_string().contains(r#""public"."t_code""#), "{e}");
    assert_eq!(
        common::count(&c, "SELECT count(*) FROM dbsync.saved_index").await,
        1
    );
    c.batch_execute("DELETE FROM t WHERE id = 2").await.unwrap();
    let out = fks::restore_fks(&mut c, restore_opts(OrphanPolicy::Fail), budget())
        .await
        .unwrap();
    assert_eq!((out.indexes_rebuilt, out.remaining), (1, 0));
}

/// A saved index someone re-created by hand with another definition, then
/// dropped again by the next load: the definition dropped last is the one
/// that comes back (nothing lost). One recorded as built but gone since is
/// built again.
#[tokio::test]
async fn the_definition_dropped_last_wins_and_a_vanished_build_is_redone() {
    let (_db, mut c) = setup(
        "CREATE TABLE t (id int PRIMARY KEY, a int, b int);
         CREATE INDEX t_a ON t (a); CREATE INDEX t_b ON t (b);
         INSERT INTO t SELECT g, g, g FROM generate_series(1, 1000) g;",
        true,
    )
    .await;
    drop_everything(&mut c).await;
    // Between runs: t_a comes back by hand, on another column.
    c.batch_execute("CREATE INDEX t_a ON t (b, a)")
        .await
        .unwrap();
    drop_everything(&mut c).await;
    // t_b recorded as built, then dropped by someone before the finish.
    c.batch_execute("UPDATE dbsync.saved_index SET built = true WHERE index_name = 't_b'")
        .await
        .unwrap();
    let out = fks::restore_fks(&mut c, restore_opts(OrphanPolicy::Fail), budget())
        .await
        .unwrap();
    assert_eq!(out.remaining, 0, "{out:?}");
    let defs = verify::indexes(&c).await.unwrap();
    let def = |name: &str| {
        defs.iter()
            .find(|((_, i), _)| i == name)
            .map(|(_, d)| d.split(" [").next().unwrap().to_owned())
            .unwrap_or_else(|| panic!("{name} is missing"))
    };
    assert_eq!(
        def("t_a"),
        "CREATE INDEX t_a ON public.t USING btree (b, a)"
    );
    assert_eq!(def("t_b"), "CREATE INDEX t_b ON public.t USING btree (b)");
    assert!(def("t_pkey").starts_with("CREATE UNIQUE INDEX t_pkey"));
}
