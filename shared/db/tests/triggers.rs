//! User triggers on the AWS path, on real PostgreSQL: drop-fks switches the
//! synced tables' user triggers off (partition clones included), saved with
//! their modes in the FK snapshot's transaction; restore puts each back in
//! its own mode exactly once; a repeated drop or restore changes nothing more.

mod common;

use common::{budget, restore_opts, select, setup, LIMITS};
use dbsync_db::fks::{self, OrphanPolicy};
use tokio_postgres::Client;

const SCHEMA: &str = "
CREATE SCHEMA app;
CREATE TABLE app.orders (id int PRIMARY KEY, total int);
CREATE TABLE app.audit (id serial PRIMARY KEY, what text);
CREATE FUNCTION app.log() RETURNS trigger LANGUAGE plpgsql AS
  $$BEGIN INSERT INTO app.audit (what) VALUES (TG_TABLE_NAME || ' ' || TG_OP); RETURN NEW; END$$;
CREATE TRIGGER orders_audit AFTER INSERT ON app.orders FOR EACH ROW EXECUTE FUNCTION app.log();
CREATE TRIGGER orders_replica BEFORE INSERT ON app.orders FOR EACH ROW EXECUTE FUNCTION app.log();
ALTER TABLE app.orders ENABLE REPLICA TRIGGER orders_replica;
CREATE TRIGGER orders_always AFTER UPDATE ON app.orders FOR EACH ROW EXECUTE FUNCTION app.log();
ALTER TABLE app.orders ENABLE ALWAYS TRIGGER orders_always;
CREATE TRIGGER orders_off AFTER DELETE ON app.orders FOR EACH ROW EXECUTE FUNCTION app.log();
ALTER TABLE app.orders DISABLE TRIGGER orders_off;
CREATE TABLE app.events (id int, at date) PARTITION BY RANGE (at);
CREATE TABLE app.events_2025 PARTITION OF app.events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TRIGGER events_audit AFTER INSERT ON app.events FOR EACH ROW EXECUTE FUNCTION app.log();
CREATE SCHEMA other;
CREATE TABLE other.notes (id int);
CREATE TRIGGER notes_audit AFTER INSERT ON other.notes FOR EACH ROW EXECUTE FUNCTION app.log();
";

/// Every user trigger: `table.trigger = mode`.
async fn modes(c: &Client) -> Vec<String> {
    c.query(
        "SELECT t.tgrelid::regclass::text || '.' || t.tgname || '=' || t.tgenabled::text
         FROM pg_trigger t WHERE NOT t.tgisinternal ORDER BY 1",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

#[tokio::test]
async fn user_triggers_are_off_for_the_load_and_back_in_their_modes() {
    let (_db, mut c) = setup(SCHEMA, true).await;
    let before = modes(&c).await;
    let app = select(&["app"]);
    let out = fks::drop_fks(&mut c, &app, LIMITS, budget()).await.unwrap();
    // orders: three enabled (origin, replica, always); events and its
    // partition's clone; app.audit has none; other.notes is not synced.
    assert_eq!(out.triggers_disabled, 5, "{:?}", modes(&c).await);
    let off = modes(&c).await;
    for t in off.iter().filter(|t| t.starts_with("app.")) {
        assert!(t.ends_with("=D"), "{t} still fires during the load");
    }
    assert!(off.contains(&"other.notes.notes_audit=O".to_owned()));
    // A load writes nothing into the audit table.
    c.batch_execute(
        "INSERT INTO app.orders VALUES (1, 10); INSERT INTO app.events VALUES (1, '2025-05-05')",
    )
    .await
    .unwrap();
    assert_eq!(common::count(&c, "SELECT count(*) FROM app.audit").await, 0);

    // A retried drop saves nothing twice and keeps the original modes.
    let again = fks::drop_fks(&mut c, &app, LIMITS, budget()).await.unwrap();
    assert_eq!(again.triggers_disabled, 0);

    let restored = fks::restore_fks(&mut c, restore_opts(OrphanPolicy::Fail), budget())
        .await
        .unwrap();
    assert_eq!(restored.triggers_restored, 5);
    assert_eq!(
        modes(&c).await,
        before,
        "every trigger back in its own mode"
    );
    assert_eq!(
        common::count(&c, "SELECT count(*) FROM dbsync.saved_trigger").await,
        0
    );
    // Exactly once: a second restore touches no trigger.
    let twice = fks::restore_fks(&mut c, restore_opts(OrphanPolicy::Fail), budget())
        .await
        .unwrap();
    assert_eq!(twice.triggers_restored, 0);
    assert_eq!(modes(&c).await, before);
}

#[tokio::test]
async fn a_trigger_dropped_meanwhile_is_forgotten_not_an_error() {
    let (_db, mut c) = setup(SCHEMA, true).await;
    let app = select(&["app"]);
    fks::drop_fks(&mut c, &app, LIMITS, budget()).await.unwrap();
    c.batch_execute("DROP TRIGGER orders_audit ON app.orders")
        .await
        .unwrap();
    let restored = fks::restore_fks(&mut c, restore_opts(OrphanPolicy::Fail), budget())
        .await
        .unwrap();
    assert_eq!(restored.triggers_restored, 4);
    assert_eq!(
        common::count(&c, "SELECT count(*) FROM dbsync.saved_trigger").await,
        0
    );
}
