//! Drop and restore foreign keys on a real PostgreSQL server.

mod common;

use std::time::Duration;

use common::*;
use dbsync_db::{fks, fks::OrphanPolicy, Budget, Selection};

/// Every FK shape the brief lists, plus tables outside the selection.
const KITCHEN_SINK: &str = r#"
CREATE SCHEMA app;
CREATE SCHEMA "Other Schema";
CREATE SCHEMA staging_only;
CREATE TABLE app.parent (id int PRIMARY KEY, a int NOT NULL, b int NOT NULL, UNIQUE (a, b));
CREATE TABLE app.child (
    id int PRIMARY KEY,
    parent_id int REFERENCES app.parent ON DELETE CASCADE ON UPDATE RESTRICT,
    a int, b int,
    CONSTRAINT child_ab_full FOREIGN KEY (a, b) REFERENCES app.parent (a, b) MATCH FULL ON UPDATE CASCADE,
    t int, u int,
    CONSTRAINT child_tu_setnull FOREIGN KEY (t, u) REFERENCES app.parent (a, b) ON DELETE SET NULL (t),
    d int DEFAULT 1 REFERENCES app.parent ON DELETE SET DEFAULT DEFERRABLE INITIALLY DEFERRED,
    e int
);
ALTER TABLE app.child ADD CONSTRAINT child_e_not_valid FOREIGN KEY (e) REFERENCES app.parent NOT VALID;
CREATE TABLE app.tree (id int PRIMARY KEY, parent_id int REFERENCES app.tree DEFERRABLE INITIALLY IMMEDIATE);
CREATE TABLE app.m1 (id int PRIMARY KEY, m2_id int);
CREATE TABLE app.m2 (id int PRIMARY KEY, m1_id int REFERENCES app.m1);
ALTER TABLE app.m1 ADD FOREIGN KEY (m2_id) REFERENCES app.m2;
CREATE TABLE "Other Schema"."Order Lines" (
    "select" int PRIMARY KEY,
    "Parent""Id" int CONSTRAINT "FK ""quoted"" ünïcødé" REFERENCES app.parent ON UPDATE SET NULL
);
CREATE TABLE app.x1 (id int PRIMARY KEY, p int CONSTRAINT same_name REFERENCES app.parent);
CREATE TABLE app.x2 (id int PRIMARY KEY, p int CONSTRAINT same_name REFERENCES app.parent);
CREATE TABLE app.t23456789012345678901234567890123456789012345678901234567890123 (
    id int PRIMARY KEY,
    p int CONSTRAINT c23456789012345678901234567890123456789012345678901234567890123 REFERENCES app.parent
);
CREATE TABLE app.events (id int, parent_id int REFERENCES app.parent, at date, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE app.events_2024 PARTITION OF app.events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE app.events_2025 PARTITION OF app.events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE app.accounts (id int, region text, PRIMARY KEY (id, region)) PARTITION BY LIST (region);
CREATE TABLE app.accounts_eu PARTITION OF app.accounts FOR VALUES IN ('eu');
CREATE TABLE app.accounts_us PARTITION OF app.accounts FOR VALUES IN ('us');
CREATE TABLE app.logins (id int PRIMARY KEY, account_id int, region text, FOREIGN KEY (account_id, region) REFERENCES app.accounts ON DELETE CASCADE);
CREATE TABLE staging_only.notes (id int PRIMARY KEY, parent_id int REFERENCES app.parent);
CREATE TABLE staging_only.a (id int PRIMARY KEY);
CREATE TABLE staging_only.b (a_id int CONSTRAINT untouched REFERENCES staging_only.a);

INSERT INTO app.parent SELECT g, g, g * 10 FROM generate_series(1, 20) g;
INSERT INTO app.child VALUES (1, 1, 2, 20, 3, 30, 1, 4), (2, NULL, NULL, NULL, NULL, NULL, 1, NULL);
INSERT INTO app.tree VALUES (1, NULL), (2, 1), (3, 2);
INSERT INTO app.m1 VALUES (1, NULL); INSERT INTO app.m2 VALUES (1, 1); UPDATE app.m1 SET m2_id = 1;
INSERT INTO "Other Schema"."Order Lines" VALUES (1, 5);
INSERT INTO app.events VALUES (1, 1, '2024-05-01'), (2, 2, '2025-05-01');
INSERT INTO app.accounts VALUES (1, 'eu'), (2, 'us');
INSERT INTO app.logins VALUES (1, 1, 'eu'), (2, 2, 'us');
INSERT INTO staging_only.notes VALUES (1, 3);
"#;

fn in_scope(snapshot: &FkSnapshot) -> usize {
    snapshot
        .keys()
        .filter(|(t, _)| !t.starts_with("staging_only.b"))
        .count()
}

#[tokio::test]
async fn round_trip_restores_every_definition_exactly() {
    let (_db, mut client) = setup(KITCHEN_SINK, true).await;
    let before = fk_snapshot(&client).await;
    assert!(
        before.len() >= 16,
        "fixture should hold many FKs: {before:#?}"
    );
    let sel = select(&["app", "Other Schema"]);

    let out = fks::drop_fks(&mut client, &sel, LIMITS, budget())
        .await
        .unwrap();
    let after_drop = fk_snapshot(&client).await;
    assert_eq!(
        after_drop.keys().collect::<Vec<_>>(),
        vec![&("staging_only.b".to_owned(), "untouched".to_owned())],
        "only the FK outside the scope survives"
    );
    assert_eq!(out.saved as usize, out.dropped as usize);
    assert!(out.dropped >= 14, "{out:?}");
    assert_eq!(saved_count(&client).await, out.saved as i64);

    // A second drop (a retry) changes nothing and loses nothing.
    let again = fks::drop_fks(&mut client, &sel, LIMITS, budget())
        .await
        .unwrap();
    assert_eq!(again.dropped, 0);
    assert_eq!(again.saved, out.saved);

    let restored = fks::restore_fks(&mut client, restore_opts(OrphanPolicy::Fail), budget())
        .await
        .unwrap();
    assert_eq!(restored.remaining, 0, "{restored:?}");
    assert!(restored.added > 0 && restored.validated > 0, "{restored:?}");
    // The counters add up: every saved key is counted once as put back,
    // keys validated on the spot (partitioned tables) included.
    assert_eq!(
        restored.added + restored.skipped_existing,
        out.saved,
        "{restored:?}"
    );
    assert_eq!(saved_count(&client).await, 0);
    let after = fk_snapshot(&client).await;
    assert_eq!(
        before, after,
        "definitions and flags must round-trip exactly"
    );
    assert!(
        after[&("app.child".to_owned(), "child_e_not_valid".to_owned())].contains("NOT VALID"),
        "a NOT VALID FK comes back NOT VALID"
    );
    assert_eq!(in_scope(&after), before.len() - 1);

    // Restore twice: nothing to do.
    let second = fks::restore_fks(&mut client, restore_opts(OrphanPolicy::Fail), budget())
        .await
        .unwrap();
    assert_eq!(
        (second.added, second.validated, second.remaining),
        (0, 0, 0)
    );
    assert_eq!(fk_snapshot(&client).await, before);
}

#[tokio::test]
async fn non_selected_referencing_table_is_lifted_too() {
    let (_db, mut client) = setup(KITCHEN_SINK, true).await;
    let sel = Selection::from_json(
        r#"{"rules":[{"rule-type":"selection","rule-id":"1","rule-name":"1","object-locator":{"schema-name":"app","table-name":"parent"},"rule-action":"include"}]}"#,
    )
    .unwrap();
    let before = fk_snapshot(&client).await;
    let out = fks::drop_fks(&mut client, &sel, LIMITS, budget())
        .await
        .unwrap();
    let after = fk_snapshot(&client).await;
    assert_eq!(out.tables, 1);
    // Every FK referencing app.parent is gone, from any schema; the others stay.
    assert!(!after
        .keys()
        .any(|(t, n)| t == "staging_only.notes" && n == "notes_parent_id_fkey"));
    assert!(
        !after.values().any(|d| d.contains("REFERENCES app.parent")),
        "{after:#?}"
    );
    assert!(after.contains_key(&("app.tree".to_owned(), "tree_parent_id_fkey".to_owned())));
    assert!(after.contains_key(&("app.m2".to_owned(), "m2_m1_id_fkey".to_owned())));
    fks::restore_fks(&mut client, restore_opts(OrphanPolicy::Fail), budget())
        .await
        .unwrap();
    assert_eq!(fk_snapshot(&client).await, before);
}

#[tokio::test]
async fn saved_sets_merge_across_drops() {
    let (_db, mut client) = setup(KITCHEN_SINK, true).await;
    let before = fk_snapshot(&client).await;
    let first = fks::drop_fks(&mut client, &select(&["Other Schema"]), LIMITS, budget())
        .await
        .unwrap();
    assert_eq!(first.dropped, 1);
    let second = fks::drop_fks(&mut client, &select(&["app"]), LIMITS, budget())
        .await
        .unwrap();
    assert_eq!(second.saved, first.saved + second.dropped);
    fks::restore_fks(&mut client, restore_opts(OrphanPolicy::Fail), budget())
        .await
        .unwrap();
    assert_eq!(fk_snapshot(&client).await, before);
}

#[tokio::test]
async fn half_restored_state_is_not_overwritten_by_a_new_drop() {
    // A run that failed during validation leaves FKs NOT VALID; the next drop
    // must keep the original (valid) definitions.
    let (_db, mut client) = setup(KITCHEN_SINK, true).await;
    let before = fk_snapshot(&client).await;
    let sel = select(&["app", "Other Schema"]);
    fks::drop_fks(&mut client, &sel, LIMITS, budget())
        .await
        .unwrap();
    let mut opts = restore_opts(OrphanPolicy::Fail);
    opts.min_slice = Duration::from_secs(3600); // add NOT VALID, validate nothing
    let partial = fks::restore_fks(&mut client, opts, budget()).await.unwrap();
    assert!(
        partial.remaining > 0 && partial.validated == 0,
        "{partial:?}"
    );
    fks::drop_fks(&mut client, &sel, LIMITS, budget())
        .await
        .unwrap();
    fks::restore_fks(&mut client, restore_opts(OrphanPolicy::Fail), budget())
        .await
        .unwrap();
    assert_eq!(fk_snapshot(&client).await, before);
}

#[tokio::test]
async fn restore_resumes_across_invocations() {
    let (_db, mut client) = setup(KITCHEN_SINK, true).await;
    let before = fk_snapshot(&client).await;
    let dropped = fks::drop_fks(&mut client, &select(&["app"]), LIMITS, budget())
        .await
        .unwrap()
        .dropped;
    let mut opts = restore_opts(OrphanPolicy::Fail);
    opts.min_slice = Duration::from_secs(3600);
    let first = fks::restore_fks(&mut client, opts, budget()).await.unwrap();
    assert!(first.remaining > 0);
    assert!(
        saved_count(&client).await > 0,
        "unvalidated definitions stay saved"
    );
    let second = fks::restore_fks(&mut client, restore_opts(OrphanPolicy::Fail), budget())
        .await
        .unwrap();
    assert_eq!(second.remaining, 0);
    // The second invocation re-adds only what must be added validated in one
    // step (partitioned tables); together every dropped key counts once.
    assert_eq!(first.added + second.added, dropped, "{first:?} {second:?}");
    assert_eq!(fk_snapshot(&client).await, before);
}

#[tokio::test]
async fn identical_existing_constraint_is_skipped_and_a_different_one_fails_loudly() {
    let (_db, mut client) = setup(KITCHEN_SINK, true).await;
    let before = fk_snapshot(&client).await;
    fks::drop_fks(&mut client, &select(&["app"]), LIMITS, budget())
        .await
        .unwrap();
    client
        .batch_execute("ALTER TABLE app.tree ADD CONSTRAINT tree_parent_id_fkey FOREIGN KEY (parent_id) REFERENCES app.tree DEFERRABLE")
        .await
        .unwrap();
    client
        .batch_execute("ALTER TABLE app.x1 ADD CONSTRAINT same_name FOREIGN KEY (p) REFERENCES app.parent ON DELETE CASCADE")
        .await
        .unwrap();
    let saved = saved_count(&client).await;
    let mid = fk_snapshot(&client).await;
    let err = fks::restore_fks(&mut client, restore_opts(OrphanPolicy::Fail), budget())
        .await
        .unwrap_err();
    assert_eq!(err.name(), "ConstraintConflict");
    assert!(err.to_string().contains("app.x1"), "{err}");
    assert!(
        !err.to_string().contains("ALTER"),
        "no SQL in messages: {err}"
    );
    assert_eq!(
        fk_snapshot(&client).await,
        mid,
        "a conflict changes nothing"
    );
    assert_eq!(saved_count(&client).await, saved);

    client
        .batch_execute("ALTER TABLE app.x1 DROP CONSTRAINT same_name")
        .await
        .unwrap();
    let out = fks::restore_fks(&mut client, restore_opts(OrphanPolicy::Fail), budget())
        .await
        .unwrap();
    assert_eq!(out.skipped_existing, 1, "{out:?}");
    assert_eq!(fk_snapshot(&client).await, before);
}

const ORPHANS: &str = r#"
CREATE TABLE parent (id int PRIMARY KEY, a int, b int, UNIQUE (a, b));
CREATE TABLE child (id int PRIMARY KEY, parent_id int CONSTRAINT child_parent REFERENCES parent);
CREATE TABLE full_child (id int PRIMARY KEY, a int, b int, CONSTRAINT full_fk FOREIGN KEY (a, b) REFERENCES parent (a, b) MATCH FULL);
CREATE TABLE tree (id int PRIMARY KEY, up int CONSTRAINT tree_up REFERENCES tree);
CREATE TABLE ev (id int, parent_id int CONSTRAINT ev_parent REFERENCES parent, at date, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE ev_1 PARTITION OF ev FOR VALUES FROM ('2000-01-01') TO ('3000-01-01');
INSERT INTO parent VALUES (1, 1, 1), (2, 2, 2);
INSERT INTO child VALUES (1, 1), (2, 2), (3, NULL);
INSERT INTO full_child VALUES (1, 1, 1), (2, NULL, NULL);
INSERT INTO tree VALUES (1, NULL), (2, 1), (3, 2);
INSERT INTO ev VALUES (1, 1, '2024-01-01');
"#;

/// What DMS can leave behind: children whose parents did not arrive.
const MAKE_ORPHANS: &str = "
INSERT INTO child VALUES (10, 99), (11, 98);
INSERT INTO full_child VALUES (10, 1, NULL), (11, 7, 7);
DELETE FROM tree WHERE id = 1;
INSERT INTO tree VALUES (4, 3);
INSERT INTO ev VALUES (10, 77, '2024-02-02');
";

#[tokio::test]
async fn orphans_fail_policy_reports_and_keeps_everything_saved() {
    let (_db, mut client) = setup(ORPHANS, true).await;
    let before = fk_snapshot(&client).await;
    fks::drop_fks(&mut client, &Selection::all(), LIMITS, budget())
        .await
        .unwrap();
    client.batch_execute(MAKE_ORPHANS).await.unwrap();
    let err = fks::restore_fks(&mut client, restore_opts(OrphanPolicy::Fail), budget())
        .await
        .unwrap_err();
    assert_eq!(err.name(), "OrphanRowsFound");
    let msg = err.to_string();
    for expected in [
        "public.child.\"child_parent\": 2 orphan row(s)",
        "public.full_child.\"full_fk\": 2 orphan row(s)",
        "public.tree.\"tree_up\": 1 orphan row(s)",
        "public.ev.\"ev_parent\": 1 orphan row(s)",
    ] {
        assert!(msg.contains(expected), "missing {expected} in {msg}");
    }
    assert!(!msg.contains("99"), "no row values in messages: {msg}");
    assert_eq!(saved_count(&client).await, 4, "nothing failed is forgotten");
    let nv = count(
        &client,
        "SELECT count(*) FROM pg_constraint WHERE conname = 'child_parent' AND NOT convalidated",
    )
    .await;
    assert_eq!(nv, 1, "the constraint stays, NOT VALID");

    // The operator fixes the data; the next restore completes the job exactly.
    client
        .batch_execute("DELETE FROM child WHERE id >= 10; DELETE FROM full_child WHERE id >= 10; DELETE FROM tree; DELETE FROM ev WHERE id = 10;")
        .await
        .unwrap();
    let out = fks::restore_fks(&mut client, restore_opts(OrphanPolicy::Fail), budget())
        .await
        .unwrap();
    assert_eq!(out.remaining, 0);
    assert_eq!(fk_snapshot(&client).await, before);
    assert_eq!(saved_count(&client).await, 0);
}

#[tokio::test]
async fn orphans_delete_policy_deletes_them_and_validates() {
    let (_db, mut client) = setup(ORPHANS, true).await;
    let before = fk_snapshot(&client).await;
    fks::drop_fks(&mut client, &Selection::all(), LIMITS, budget())
        .await
        .unwrap();
    client.batch_execute(MAKE_ORPHANS).await.unwrap();
    let out = fks::restore_fks(&mut client, restore_opts(OrphanPolicy::Delete), budget())
        .await
        .unwrap();
    // child: 2, full_child: 2, tree: 2 then 3's child 4 => 3 rows in a chain, ev: 1.
    assert_eq!(out.deleted_orphan_rows, 2 + 2 + 3 + 1, "{out:?}");
    assert_eq!(out.remaining, 0);
    assert_eq!(fk_snapshot(&client).await, before);
    assert_eq!(
        count(&client, "SELECT count(*) FROM child").await,
        3,
        "valid rows and NULL keys stay"
    );
    assert_eq!(count(&client, "SELECT count(*) FROM full_child").await, 2);
    assert_eq!(count(&client, "SELECT count(*) FROM tree").await, 0);
}

#[tokio::test]
async fn orphans_keep_not_valid_policy_leaves_them_not_valid() {
    let (_db, mut client) = setup(ORPHANS, true).await;
    fks::drop_fks(&mut client, &select(&["public"]), LIMITS, budget())
        .await
        .unwrap();
    client
        .batch_execute("INSERT INTO child VALUES (10, 99)")
        .await
        .unwrap();
    let out = fks::restore_fks(
        &mut client,
        restore_opts(OrphanPolicy::KeepNotValid),
        budget(),
    )
    .await
    .unwrap();
    assert_eq!(out.remaining, 0);
    assert_eq!(out.kept_not_valid.len(), 1, "{out:?}");
    assert_eq!(
        out.kept_not_valid[0].constraint,
        "public.child.\"child_parent\""
    );
    assert_eq!(out.kept_not_valid[0].orphan_rows, 1);
    let nv = count(
        &client,
        "SELECT count(*) FROM pg_constraint WHERE conname = 'child_parent' AND NOT convalidated",
    )
    .await;
    assert_eq!(nv, 1);
    // Still saved as valid: the next sync will try to validate it again.
    assert_eq!(saved_count(&client).await, 1);
    let again = fks::restore_fks(
        &mut client,
        restore_opts(OrphanPolicy::KeepNotValid),
        budget(),
    )
    .await
    .unwrap();
    assert_eq!((again.added, again.validated, again.remaining), (0, 0, 0));
}

#[tokio::test]
async fn refused_without_opt_in_and_nothing_changes() {
    let (_db, mut client) = setup(KITCHEN_SINK, false).await;
    let before = fk_snapshot(&client).await;
    let err = fks::drop_fks(&mut client, &Selection::all(), LIMITS, budget())
        .await
        .unwrap_err();
    assert_eq!(err.name(), "TargetNotOptedIn");
    assert!(err.to_string().contains("init-target"), "{err}");
    let err = fks::restore_fks(&mut client, restore_opts(OrphanPolicy::Fail), budget())
        .await
        .unwrap_err();
    assert_eq!(err.name(), "TargetNotOptedIn");
    assert_eq!(
        dbsync_db::target::check_target(&mut client)
            .await
            .unwrap_err()
            .name(),
        "TargetNotOptedIn"
    );
    assert_eq!(fk_snapshot(&client).await, before);
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'dbsync'"
        )
        .await,
        0
    );

    // A marker naming another database (a restored copy) does not count either.
    dbsync_db::target::init_target(&mut client).await.unwrap();
    client
        .batch_execute("UPDATE dbsync.target SET database = 'prod'")
        .await
        .unwrap();
    assert!(
        !dbsync_db::target::is_target(&mut client).await.unwrap(),
        "plan must agree with the guard"
    );
    let err = fks::drop_fks(&mut client, &Selection::all(), LIMITS, budget())
        .await
        .unwrap_err();
    assert_eq!(err.name(), "TargetNotOptedIn");
    dbsync_db::target::init_target(&mut client).await.unwrap();
    dbsync_db::target::check_target(&mut client).await.unwrap();
    assert!(dbsync_db::target::is_target(&mut client).await.unwrap());
}

#[tokio::test]
async fn lock_held_elsewhere_gives_a_named_retryable_error_and_changes_nothing() {
    let (db, mut client) = setup(KITCHEN_SINK, true).await;
    let before = fk_snapshot(&client).await;
    let blocker = db.client().await;
    blocker
        .batch_execute("BEGIN; LOCK TABLE app.tree IN ACCESS SHARE MODE;")
        .await
        .unwrap();
    let limits = dbsync_db::Timeouts {
        lock: Duration::from_millis(300),
        ..LIMITS
    };
    let err = fks::drop_fks(&mut client, &select(&["app"]), limits, budget())
        .await
        .unwrap_err();
    assert_eq!(err.name(), "LockTimeout");
    assert!(err.is_transient());
    assert_eq!(fk_snapshot(&client).await, before);
    assert_eq!(saved_count(&client).await, 0);
    blocker.batch_execute("COMMIT").await.unwrap();
    fks::drop_fks(&mut client, &select(&["app"]), limits, budget())
        .await
        .unwrap();
}

#[tokio::test]
async fn crash_between_capture_and_drop_loses_nothing() {
    // The drop blocks on a lock after the capture was written; its backend is
    // then killed, as when a Lambda dies mid-step.
    let (db, mut client) = setup(KITCHEN_SINK, true).await;
    let before = fk_snapshot(&client).await;
    let blocker = db.client().await;
    blocker
        .batch_execute("BEGIN; LOCK TABLE app.tree IN ACCESS SHARE MODE;")
        .await
        .unwrap();
    let limits = dbsync_db::Timeouts {
        lock: Duration::from_secs(30),
        ..LIMITS
    };
    let sel = select(&["app"]);
    let dropper =
        tokio::spawn(async move { fks::drop_fks(&mut client, &sel, limits, budget()).await });
    let killer = db.client().await;
    let mut killed = false;
    for _ in 0..200 {
        let n: i64 = killer
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                 WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE 'ALTER TABLE%'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if n > 0 {
            killed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(killed, "the drop never blocked on the lock");
    let err = dropper.await.unwrap().unwrap_err();
    assert_eq!(err.name(), "DatabaseUnavailable", "{err}");
    blocker.batch_execute("COMMIT").await.unwrap();
    assert_eq!(
        fk_snapshot(&killer).await,
        before,
        "rolled back: every FK still there"
    );
    assert_eq!(saved_count(&killer).await, 0, "and no half-written capture");

    let mut client = dbsync_client(&db).await;
    fks::drop_fks(&mut client, &select(&["app"]), LIMITS, budget())
        .await
        .unwrap();
    fks::restore_fks(&mut client, restore_opts(OrphanPolicy::Fail), budget())
        .await
        .unwrap();
    assert_eq!(fk_snapshot(&client).await, before);
}

#[tokio::test]
async fn validation_longer_than_a_whole_budget_is_named() {
    let (_db, mut client) = setup(
        "CREATE TABLE p (id int PRIMARY KEY);
         CREATE TABLE c (id int, p_id int CONSTRAINT c_p REFERENCES p);
         INSERT INTO p SELECT generate_series(1, 300000);
         INSERT INTO c SELECT g, g FROM generate_series(1, 300000) g;",
        true,
    )
    .await;
    fks::drop_fks(&mut client, &Selection::all(), LIMITS, budget())
        .await
        .unwrap();
    let mut opts = restore_opts(OrphanPolicy::Fail);
    opts.min_slice = Duration::from_millis(1);
    let err = fks::restore_fks(
        &mut client,
        opts,
        Budget::from_now(Duration::from_millis(40)),
    )
    .await
    .unwrap_err();
    assert_eq!(err.name(), "ValidationTimeout", "{err}");
    assert_eq!(
        saved_count(&client).await,
        1,
        "still saved for the next attempt"
    );
    let out = fks::restore_fks(&mut client, restore_opts(OrphanPolicy::Fail), budget())
        .await
        .unwrap();
    assert_eq!((out.validated, out.remaining), (1, 0));
}

#[tokio::test]
async fn plan_lists_without_changing() {
    let (_db, mut client) = setup(KITCHEN_SINK, false).await;
    let before = fk_snapshot(&client).await;
    let plan = fks::plan(&mut client, &select(&["Other Schema"]))
        .await
        .unwrap();
    assert_eq!(
        plan,
        vec![(
            "\"Other Schema\".\"Order Lines\"".to_owned(),
            "FK \"quoted\" ünïcødé".to_owned(),
            "app.parent".to_owned()
        )]
    );
    assert_eq!(fk_snapshot(&client).await, before);
}

#[tokio::test]
async fn drop_sends_the_same_number_of_statements_for_10_or_300_fks() {
    let mut sent = Vec::new();
    for n in [10, 300] {
        let mut schema =
            String::from("CREATE SCHEMA many; CREATE TABLE many.p (id int PRIMARY KEY);\n");
        for i in 0..n {
            schema.push_str(&format!(
                "CREATE TABLE many.c{i} (id int PRIMARY KEY, p int REFERENCES many.p);\n"
            ));
        }
        let (db, _) = setup(&schema, true).await;
        let (out, statements) = statements_sent(&db, |mut c| async move {
            fks::drop_fks(&mut c, &select(&["many"]), LIMITS, budget())
                .await
                .unwrap()
        })
        .await;
        assert_eq!(out.dropped, n);
        sent.push(statements);
    }
    assert_eq!(sent[0], sent[1], "statements sent for 10 vs 300 FKs");
    // BEGIN, prelude, upgrade, tables, FK capture, check capture, trigger
    // capture, drops, count, COMMIT.
    assert!(sent[0] <= 10, "{sent:?}");
}

#[tokio::test]
async fn comments_on_the_dropped_keys_come_back() {
    let (_db, mut client) = setup(
        "CREATE SCHEMA c;
         CREATE TABLE c.parent (id int PRIMARY KEY);
         CREATE TABLE c.child (id int PRIMARY KEY, parent_id int CONSTRAINT child_parent REFERENCES c.parent,
                               other_id int CONSTRAINT child_other REFERENCES c.parent);
         COMMENT ON CONSTRAINT child_parent ON c.child IS 'every child has a parent; it''s the law';",
        true,
    )
    .await;
    let before = fk_snapshot(&client).await;
    assert!(
        before.values().any(|d| d.contains("it's the law")),
        "{before:?}"
    );
    fks::drop_fks(&mut client, &select(&["c"]), LIMITS, budget())
        .await
        .unwrap();
    fks::restore_fks(&mut client, restore_opts(OrphanPolicy::Fail), budget())
        .await
        .unwrap();
    assert_eq!(fk_snapshot(&client).await, before);
}

/// A `CHECK … NOT VALID` whose old rows break it: production holds such rows
/// (that is what NOT VALID allowed), so the load must not meet the check.
#[tokio::test]
async fn not_valid_checks_are_lifted_for_the_load_and_come_back_exactly() {
    let (db, mut client) = setup(
        "CREATE SCHEMA nv;
         CREATE TABLE nv.items (id int PRIMARY KEY, qty int, CONSTRAINT qty_valid CHECK (qty >= 0));
         CREATE TABLE nv.parts (id int, at date, w int) PARTITION BY RANGE (at);
         CREATE TABLE nv.parts_a PARTITION OF nv.parts FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
         INSERT INTO nv.items VALUES (1, 5);
         ALTER TABLE nv.items ADD CONSTRAINT qty_small CHECK (qty < 100) NOT VALID;
         ALTER TABLE nv.parts_a ADD CONSTRAINT w_positive CHECK (w > 0) NOT VALID;
         COMMENT ON CONSTRAINT qty_small ON nv.items IS 'new rows only';",
        true,
    )
    .await;
    let before = dbsync_db::verify::check_constraints(&client).await.unwrap();
    let planned = fks::plan_checks(&mut client, &select(&["nv"]))
        .await
        .unwrap();
    assert_eq!(planned.len(), 2, "{planned:?}");
    let out = fks::drop_fks(&mut client, &select(&["nv"]), LIMITS, budget())
        .await
        .unwrap();
    assert_eq!(out.checks_dropped, 2);
    // The load: rows production was allowed to keep.
    let setup_client = db.client().await;
    setup_client
        .batch_execute("INSERT INTO nv.items VALUES (2, 500); INSERT INTO nv.parts VALUES (1, '2025-03-01', -1);")
        .await
        .expect("no NOT VALID check refuses the load");
    // A crash before restore loses nothing: the definitions are saved.
    assert_eq!(
        count(&client, "SELECT count(*) FROM dbsync.saved_check").await,
        2
    );
    let out = fks::restore_fks(&mut client, restore_opts(OrphanPolicy::Fail), budget())
        .await
        .unwrap();
    assert_eq!(out.checks_restored, 2);
    assert_eq!(
        dbsync_db::verify::check_constraints(&client).await.unwrap(),
        before,
        "names, definitions, NOT VALID and comments as before"
    );
    assert_eq!(
        count(&client, "SELECT count(*) FROM dbsync.saved_check").await,
        0
    );
    // Restore again: nothing to do, nothing breaks.
    fks::restore_fks(&mut client, restore_opts(OrphanPolicy::Fail), budget())
        .await
        .unwrap();
    // Still enforced for new rows.
    assert!(setup_client
        .batch_execute("INSERT INTO nv.items VALUES (3, 1000)")
        .await
        .is_err());
}

/// Partition clones come back under their own names: one a partition had
/// before ATTACH (adopted by the parent's FK), and clones of an FK to a
/// partitioned table whose names history changed.
#[tokio::test]
async fn partition_clone_names_come_back_exactly() {
    let (_db, mut client) = setup(
        "CREATE SCHEMA pc;
         CREATE TABLE pc.p (id int PRIMARY KEY);
         INSERT INTO pc.p VALUES (1), (150);
         CREATE TABLE pc.t (id int, pid int) PARTITION BY RANGE (id);
         CREATE TABLE pc.t1 (id int, pid int, CONSTRAINT t1_own_fk FOREIGN KEY (pid) REFERENCES pc.p);
         ALTER TABLE pc.t ADD CONSTRAINT t_pid_fk FOREIGN KEY (pid) REFERENCES pc.p;
         ALTER TABLE pc.t ATTACH PARTITION pc.t1 FOR VALUES FROM (0) TO (100);
         CREATE TABLE pc.t2 PARTITION OF pc.t FOR VALUES FROM (100) TO (200);
         INSERT INTO pc.t VALUES (1, 1), (150, 150);
         CREATE TABLE pc.rp (id int PRIMARY KEY) PARTITION BY RANGE (id);
         CREATE TABLE pc.rp1 PARTITION OF pc.rp FOR VALUES FROM (0) TO (100);
         CREATE TABLE pc.rp2 PARTITION OF pc.rp FOR VALUES FROM (100) TO (200);
         INSERT INTO pc.rp VALUES (5), (105);
         CREATE TABLE pc.c (id int, rid int CONSTRAINT c_rid_fk REFERENCES pc.rp);
         INSERT INTO pc.c VALUES (1, 5), (2, 105);
         ALTER TABLE pc.c RENAME CONSTRAINT c_rid_fkey TO c_rid_fkey_old;
         ALTER TABLE pc.c RENAME CONSTRAINT c_rid_fkey1 TO c_rid_fkey;
         ALTER TABLE pc.c RENAME CONSTRAINT c_rid_fkey_old TO c_rid_fkey1;",
        true,
    )
    .await;
    let before = fk_snapshot(&client).await;
    assert!(before.keys().any(|(_, n)| n == "t1_own_fk"), "{before:?}");
    fks::drop_fks(&mut client, &select(&["pc"]), LIMITS, budget())
        .await
        .unwrap();
    fks::restore_fks(&mut client, restore_opts(OrphanPolicy::Fail), budget())
        .await
        .unwrap();
    assert_eq!(
        fk_snapshot(&client).await,
        before,
        "every clone under its own name"
    );
    assert_eq!(
        count(&client, "SELECT count(*) FROM dbsync.saved_fk_clone").await,
        0
    );
}
