//! The DMS fake driven by the real SDK client and by `dbsync_aws::dms::DmsTask`,
//! copying between two real databases of a throwaway cluster.

use std::time::{Duration, Instant};

use aws_config::Region;
use aws_credential_types::Credentials;
use aws_sdk_databasemigration::{
    types::{Filter, StartReplicationTaskTypeValue},
    Client,
};
use dbsync_aws::{dms::DmsTask, error_code};
use dbsync_db::{verify, DbConfig, Selection};
use dbsync_dmsfake::{DmsFake, Endpoint, FakeTask, Fault, MigrationType, Op};
use dbsync_testpg::{Cluster, TestDb};
use dbsync_workflow::{
    ports::{
        DescribeTask, StartKind, StartRefusal, StartTask, StopTask, TaskState, TaskStatus,
        FULL_LOAD_FINISHED,
    },
    StepError,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SCHEMA: &str = "
CREATE SCHEMA app;
CREATE TABLE app.customers (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE app.orders (id int PRIMARY KEY, customer_id int NOT NULL, total numeric(10,2));
CREATE TABLE app.notes (id serial PRIMARY KEY, body text);
";

const PROD_DATA: &str = "
INSERT INTO app.customers SELECT g, 'customer ' || g FROM generate_series(1, 300) g;
INSERT INTO app.orders SELECT g, 1 + g % 300, g * 1.5 FROM generate_series(1, 2000) g;
INSERT INTO app.notes (body) SELECT 'note ' || g FROM generate_series(1, 40) g;
";

/// A prod and a staging database with the same (FK-free) tables, different rows.
async fn databases() -> (TestDb, TestDb) {
    let cluster = Cluster::shared();
    let (prod, staging) = (
        cluster.create_db("fake_prod").await,
        cluster.create_db("fake_staging").await,
    );
    let p = prod.client().await;
    p.batch_execute(SCHEMA).await.unwrap();
    p.batch_execute(PROD_DATA).await.unwrap();
    let s = staging.client().await;
    s.batch_execute(SCHEMA).await.unwrap();
    s.batch_execute("INSERT INTO app.customers VALUES (1, 'stale')")
        .await
        .unwrap();
    (prod, staging)
}

fn config(db: &TestDb) -> DbConfig {
    DbConfig::from_url(&db.url).unwrap()
}

async fn task(prod: &TestDb, staging: &TestDb) -> FakeTask {
    FakeTask::new(config(prod), config(staging))
}

/// The real SDK client, pointed at the fake, with dbsync's HTTP client and retry policy.
async fn client(fake: &DmsFake) -> Client {
    let conf = dbsync_aws::config_loader()
        .endpoint_url(fake.endpoint())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "static"))
        .load()
        .await;
    Client::new(&conf)
}

/// Describes until `done` holds (at most 60 s).
async fn wait_for(
    dms: &DmsTask,
    arn: &str,
    done: impl Fn(&TaskState) -> bool,
) -> (TaskState, Vec<TaskStatus>) {
    let end = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    loop {
        let state = dms.describe(arn).await.unwrap();
        if seen.last() != Some(&state.status) {
            seen.push(state.status.clone());
        }
        if done(&state) {
            return (state, seen);
        }
        assert!(
            Instant::now() < end,
            "the task never got there: {state:?}, statuses {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn ended(s: &TaskState) -> bool {
    matches!(s.status, TaskStatus::Stopped | TaskStatus::Failed)
}

async fn assert_same_rows(prod: &TestDb, staging: &TestDb) {
    let all = Selection::all();
    let (p, s) = (
        verify::table_checksums(&prod.client().await, &all)
            .await
            .unwrap(),
        verify::table_checksums(&staging.client().await, &all)
            .await
            .unwrap(),
    );
    assert_eq!(p, s, "staging differs from prod");
    assert_eq!(p.len(), 3);
}

#[tokio::test]
async fn a_full_load_runs_to_completion_and_a_second_run_needs_reload_target() {
    let (prod, staging) = databases().await;
    let fake = DmsFake::start(task(&prod, &staging).await);
    let dms = DmsTask::new(client(&fake).await).with_table_statistics();
    let arn = fake.task_arn();

    let before = dms.describe(&arn).await.unwrap();
    assert_eq!(before.status, TaskStatus::Ready);
    assert!(!before.ever_started && before.started_at.is_none());

    dms.start(&arn, StartKind::StartReplication).await.unwrap();
    let (done, seen) = wait_for(&dms, &arn, ended).await;
    assert_eq!(seen.first(), Some(&TaskStatus::Starting), "{seen:?}");
    assert_eq!(done.status, TaskStatus::Stopped, "{done:?}");
    assert_eq!(done.stop_reason.as_deref(), Some(FULL_LOAD_FINISHED));
    assert_eq!(
        (done.tables_loaded, done.tables_errored, done.tables_queued),
        (3, 0, 0)
    );
    assert_eq!(done.full_load_progress_percent, Some(100));
    assert_eq!(done.last_failure_message, None);
    assert!(done.ever_started && done.started_at.is_some());
    // Rows summed over DescribeTableStatistics (the poll step's summary).
    assert_eq!(done.rows_loaded, Some(2340));
    assert_same_rows(&prod, &staging).await;

    // The raw answer: dates the SDK parsed from epoch seconds.
    let raw = client(&fake)
        .await
        .describe_replication_tasks()
        .filters(
            Filter::builder()
                .name("replication-task-arn")
                .values(&arn)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let t = &raw.replication_tasks()[0];
    let stats = t.replication_task_stats().unwrap();
    assert!(
        t.replication_task_start_date().is_some() && t.replication_task_creation_date().is_some()
    );
    for d in [
        stats.start_date(),
        stats.fresh_start_date(),
        stats.stop_date(),
        stats.full_load_start_date(),
        stats.full_load_finish_date(),
    ] {
        assert!(d.is_some(), "{stats:?}");
    }
    assert!(stats.stop_date().unwrap() >= stats.start_date().unwrap());

    // DMS's rule: start-replication only for the first run.
    assert_eq!(
        dms.start(&arn, StartKind::StartReplication).await,
        Err(StartRefusal::WrongStartKind)
    );
    prod.client()
        .await
        .batch_execute("INSERT INTO app.notes (body) VALUES ('new in prod')")
        .await
        .unwrap();
    dms.start(&arn, StartKind::ReloadTarget).await.unwrap();
    let (again, _) = wait_for(&dms, &arn, ended).await;
    assert_eq!(again.stop_reason.as_deref(), Some(FULL_LOAD_FINISHED));
    assert_same_rows(&prod, &staging).await;
    assert_eq!(
        fake.start_kinds(),
        ["start-replication", "start-replication", "reload-target"]
    );
}

/// A `StartReplicationTask` of `kind` the fake must refuse.
async fn refused_start(
    c: &Client,
    fake: &DmsFake,
    kind: StartReplicationTaskTypeValue,
) -> aws_sdk_databasemigration::error::SdkError<
    aws_sdk_databasemigration::operation::start_replication_task::StartReplicationTaskError,
> {
    c.start_replication_task()
        .replication_task_arn(fake.task_arn())
        .start_replication_task_type(kind)
        .send()
        .await
        .unwrap_err()
}

#[tokio::test]
async fn the_wrong_start_kind_is_refused_with_dms_code_and_message() {
    let (prod, staging) = databases().await;
    let fake = DmsFake::start(
        task(&prod, &staging)
            .await
            .ever_started(true)
            .status("stopped"),
    );
    let c = client(&fake).await;
    let err = refused_start(&c, &fake, StartReplicationTaskTypeValue::StartReplication).await;
    // The fake sends `com.amazonaws.dms#Code`; the SDK hands over the bare code.
    assert_eq!(
        error_code(&err),
        Some("InvalidParameterCombinationException")
    );
    assert!(dbsync_aws::error_message(&err)
        .unwrap()
        .contains("valid only for tasks running for the first time"));
    assert_eq!(fake.status(), TaskStatus::Stopped, "nothing started");
}

/// Start types as AWS documents them (StartReplicationTask, StartReplication):
/// a first run takes `start-replication` only; a serverless `full-load`
/// config never takes `resume-processing`; a later run takes the one type
/// the fake is told to accept (AWS does not say which).
#[tokio::test]
async fn start_types_follow_the_documented_first_run_rule() {
    let (prod, staging) = databases().await;
    let kinds = |fake: &DmsFake| fake.start_kinds();
    // A task's first run.
    let fake = DmsFake::start(task(&prod, &staging).await);
    let c = client(&fake).await;
    let err = refused_start(&c, &fake, StartReplicationTaskTypeValue::ReloadTarget).await;
    assert_eq!(
        error_code(&err),
        Some("InvalidParameterCombinationException")
    );
    assert_eq!(fake.status(), TaskStatus::Ready, "nothing started");
    // A serverless config: first run, then a later one that takes start-replication only.
    let fake = DmsFake::start(
        task(&prod, &staging)
            .await
            .serverless(Duration::ZERO)
            .later_runs_start_with("start-replication"),
    );
    let c = client(&fake).await;
    let start = |kind: &'static str| {
        let c = c.clone();
        let arn = fake.task_arn();
        async move {
            c.start_replication()
                .replication_config_arn(arn)
                .start_replication_type(kind)
                .send()
                .await
                .map_err(|e| error_code(&e).map(str::to_owned))
        }
    };
    assert_eq!(
        start("reload-target").await.unwrap_err().as_deref(),
        Some("InvalidParameterCombinationException")
    );
    start("start-replication").await.unwrap();
    let end = Instant::now() + Duration::from_secs(60);
    while fake.status() != TaskStatus::Stopped {
        assert!(
            Instant::now() < end,
            "the load never ended: {}",
            fake.status()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for refused in ["resume-processing", "reload-target"] {
        assert_eq!(
            start(refused).await.unwrap_err().as_deref(),
            Some("InvalidParameterCombinationException"),
            "{refused}"
        );
    }
    start("start-replication").await.unwrap();
    assert_eq!(
        kinds(&fake),
        [
            "reload-target",
            "start-replication",
            "resume-processing",
            "reload-target",
            "start-replication"
        ]
    );
}

#[tokio::test]
async fn a_start_while_running_is_refused_and_the_status_can_be_flipped_by_hand() {
    let (prod, staging) = databases().await;
    let fake = DmsFake::start(task(&prod, &staging).await.status("running"));
    let dms = DmsTask::new(client(&fake).await);
    let arn = fake.task_arn();
    let state = dms.describe(&arn).await.unwrap();
    assert_eq!(state.status, TaskStatus::Running);
    assert!(state.ever_started);
    match dms.start(&arn, StartKind::ReloadTarget).await {
        Err(StartRefusal::Failed(StepError::ReplicationTaskNotReady(m))) => {
            assert!(m.contains("invalid state"), "{m}")
        }
        other => panic!("expected InvalidResourceStateFault, got {other:?}"),
    }
    // Someone stops it in the console; then a reload is accepted.
    fake.set_status("stopped");
    assert_eq!(
        dms.describe(&arn).await.unwrap().status,
        TaskStatus::Stopped
    );
    dms.start(&arn, StartKind::ReloadTarget).await.unwrap();
    let (done, _) = wait_for(&dms, &arn, ended).await;
    assert_eq!(done.stop_reason.as_deref(), Some(FULL_LOAD_FINISHED));
    // And someone starts it by hand again.
    fake.set_status("running");
    let c = client(&fake).await;
    let err = c
        .start_replication_task()
        .replication_task_arn(&arn)
        .start_replication_task_type(StartReplicationTaskTypeValue::ReloadTarget)
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), Some("InvalidResourceStateFault"));
}

#[tokio::test]
async fn a_stuck_task_stays_running_until_stopped_by_the_user() {
    let (prod, staging) = databases().await;
    let fake = DmsFake::start(task(&prod, &staging).await.stopping_describes(2));
    let c = client(&fake).await;
    let dms = DmsTask::new(c.clone());
    let arn = fake.task_arn();
    // Stopping a task that is not running: InvalidResourceStateFault (DmsTask takes it as done).
    let err = c
        .stop_replication_task()
        .replication_task_arn(&arn)
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), Some("InvalidResourceStateFault"));
    dms.stop(&arn).await.unwrap();

    fake.inject(Op::StartReplicationTask, Fault::Stuck);
    dms.start(&arn, StartKind::StartReplication).await.unwrap();
    // The copy itself is done quickly, but the task never finishes.
    assert!(fake.wait_idle(Duration::from_secs(30)).await);
    for _ in 0..20 {
        let s = dms.describe(&arn).await.unwrap();
        assert!(s.status.is_active(), "{s:?}");
        assert!(s.full_load_progress_percent.unwrap_or(0) <= 99);
    }
    dms.stop(&arn).await.unwrap();
    let (stopped, seen) = wait_for(&dms, &arn, ended).await;
    assert_eq!(seen, [TaskStatus::Stopping, TaskStatus::Stopped]);
    assert_eq!(
        stopped.stop_reason.as_deref(),
        Some("Stop Reason STOPPED_BY_USER")
    );
    let calls = fake.calls();
    assert_eq!(
        calls
            .iter()
            .filter(|c| c.fault == Some(Fault::Stuck))
            .count(),
        1
    );
}

#[tokio::test]
async fn throttling_and_server_errors_are_absorbed_by_the_sdk_retries() {
    let (prod, staging) = databases().await;
    let fake = DmsFake::start(task(&prod, &staging).await);
    let dms = DmsTask::new(client(&fake).await);
    let arn = fake.task_arn();

    fake.inject(Op::DescribeReplicationTasks, Fault::Throttle);
    fake.inject(Op::DescribeReplicationTasks, Fault::ServerError);
    assert_eq!(dms.describe(&arn).await.unwrap().status, TaskStatus::Ready);
    let faults: Vec<_> = fake.calls().into_iter().map(|c| c.fault).collect();
    assert_eq!(
        faults,
        [Some(Fault::Throttle), Some(Fault::ServerError), None]
    );

    // More failures than the SDK's attempts: a transient error by name.
    for _ in 0..dbsync_aws::MAX_ATTEMPTS {
        fake.inject(Op::DescribeReplicationTasks, Fault::ServerError);
    }
    match dms.describe(&arn).await {
        Err(StepError::AwsTransient(m)) => assert!(m.contains("InternalFailure"), "{m}"),
        other => panic!("expected AwsTransientError, got {other:?}"),
    }
}

#[tokio::test]
async fn an_ambiguous_start_is_retried_by_the_sdk_and_refused_while_the_task_runs() {
    let (prod, staging) = databases().await;
    let fake = DmsFake::start(task(&prod, &staging).await);
    let dms = DmsTask::new(client(&fake).await);
    let arn = fake.task_arn();
    fake.inject(Op::StartReplicationTask, Fault::ServerErrorAfterApplying);
    let refused = dms.start(&arn, StartKind::StartReplication).await;
    // The first attempt started the task; the SDK's retry finds it starting.
    assert!(
        matches!(
            refused,
            Err(StartRefusal::Failed(StepError::ReplicationTaskNotReady(_)))
        ),
        "{refused:?}"
    );
    assert_eq!(fake.start_kinds().len(), 2);
    let (done, _) = wait_for(&dms, &arn, ended).await;
    assert_eq!(done.stop_reason.as_deref(), Some(FULL_LOAD_FINISHED));
    assert_same_rows(&prod, &staging).await;
}

#[tokio::test]
async fn a_table_failing_mid_load_errors_and_the_failure_message_outlives_the_next_run() {
    let (prod, staging) = databases().await;
    let fake = DmsFake::start(task(&prod, &staging).await);
    let c = client(&fake).await;
    let dms = DmsTask::new(c.clone());
    let arn = fake.task_arn();
    // A refused start does not consume the run fault.
    fake.inject(
        Op::StartReplicationTask,
        Fault::FailMidLoad("app.orders".into()),
    );
    fake.set_status("running");
    assert!(dms.start(&arn, StartKind::StartReplication).await.is_err());
    fake.set_status("stopped");
    dms.start(&arn, StartKind::ReloadTarget).await.unwrap();
    let (failed, _) = wait_for(&dms, &arn, ended).await;
    // DMS finishes the other tables and stops "normally", with an errored table.
    assert_eq!(failed.status, TaskStatus::Stopped);
    assert_eq!(failed.stop_reason.as_deref(), Some(FULL_LOAD_FINISHED));
    assert_eq!((failed.tables_errored, failed.tables_loaded), (1, 2));
    let message = failed.last_failure_message.clone().unwrap();
    assert!(
        message.contains("orders") && message.contains("injected failure"),
        "{message}"
    );

    let stats = c
        .describe_table_statistics()
        .replication_task_arn(&arn)
        .send()
        .await
        .unwrap();
    let mut states: Vec<_> = stats
        .table_statistics()
        .iter()
        .map(|t| {
            assert_eq!(t.validation_state(), Some("Not enabled"));
            (
                format!("{}.{}", t.schema_name().unwrap(), t.table_name().unwrap()),
                t.table_state().unwrap().to_owned(),
                t.full_load_rows(),
            )
        })
        .collect();
    states.sort();
    assert_eq!(
        states,
        [
            ("app.customers".into(), "Table completed".into(), 300),
            ("app.notes".into(), "Table completed".into(), 40),
            ("app.orders".into(), "Table error".into(), 0),
        ]
    );

    // resume-processing reloads only what did not complete.
    c.start_replication_task()
        .replication_task_arn(&arn)
        .start_replication_task_type(StartReplicationTaskTypeValue::ResumeProcessing)
        .send()
        .await
        .unwrap();
    let (resumed, _) = wait_for(&dms, &arn, ended).await;
    assert_eq!((resumed.tables_loaded, resumed.tables_errored), (1, 0));
    assert_same_rows(&prod, &staging).await;
    // AWS keeps the last failure message after a successful run.
    assert_eq!(
        resumed.last_failure_message.as_deref(),
        Some(message.as_str())
    );
    assert_eq!(resumed.stop_reason.as_deref(), Some(FULL_LOAD_FINISHED));
}

#[tokio::test]
async fn table_statistics_are_paginated_within_dms_bounds() {
    let cluster = Cluster::shared();
    let (prod, staging) = (
        cluster.create_db("fake_prod").await,
        cluster.create_db("fake_staging").await,
    );
    let ddl: String = (0..23)
        .map(|i| format!("CREATE TABLE public.t{i:02} (id int PRIMARY KEY);"))
        .collect();
    for db in [&prod, &staging] {
        db.client().await.batch_execute(&ddl).await.unwrap();
    }
    let fake = DmsFake::start(task(&prod, &staging).await);
    let c = client(&fake).await;
    let dms = DmsTask::new(c.clone()).with_table_statistics();
    let arn = fake.task_arn();
    // Never started: no statistics.
    let none = c
        .describe_table_statistics()
        .replication_task_arn(&arn)
        .send()
        .await
        .unwrap();
    assert!(none.table_statistics().is_empty());
    dms.start(&arn, StartKind::StartReplication).await.unwrap();
    let (done, _) = wait_for(&dms, &arn, ended).await;
    assert_eq!((done.tables_loaded, done.rows_loaded), (23, Some(0)));

    let mut pages = c
        .describe_table_statistics()
        .replication_task_arn(&arn)
        .max_records(10)
        .into_paginator()
        .send();
    let mut sizes = Vec::new();
    let mut names = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.unwrap();
        sizes.push(page.table_statistics().len());
        names.extend(
            page.table_statistics()
                .iter()
                .map(|t| t.table_name().unwrap().to_owned()),
        );
    }
    assert_eq!(sizes, [10, 10, 3]);
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 23);

    let filtered = c
        .describe_table_statistics()
        .replication_task_arn(&arn)
        .filters(
            Filter::builder()
                .name("table-name")
                .values("t07")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(filtered.table_statistics().len(), 1);

    let err = c
        .describe_table_statistics()
        .replication_task_arn(&arn)
        .max_records(5)
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), Some("InvalidParameterValueException"));
    let err = c
        .describe_table_statistics()
        .replication_task_arn("arn:aws:dms:us-east-1:123456789012:task:OTHER")
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), Some("ResourceNotFoundFault"));
}

#[tokio::test]
async fn endpoints_name_the_databases_and_settings_come_with_the_task() {
    let (prod, staging) = databases().await;
    let target = Endpoint::from_db("staging", &config(&staging))
        .with_after_connect_script("SET session_replication_role='replica'");
    let mappings = r#"{"rules": [{"rule-type": "selection", "rule-id": "1", "rule-name": "app", "object-locator": {"schema-name": "app", "table-name": "%"}, "rule-action": "include"}]}"#;
    let fake = DmsFake::start(
        task(&prod, &staging)
            .await
            .target_endpoint(target)
            .table_mappings(mappings),
    );
    let c = client(&fake).await;
    let port = i32::from(Cluster::shared().port);

    let out = c
        .describe_endpoints()
        .filters(
            Filter::builder()
                .name("endpoint-arn")
                .values(fake.target_endpoint_arn())
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let [e] = out.endpoints() else {
        panic!("{out:?}")
    };
    // DMS answers in capitals, which the SDK keeps as an unknown variant's text.
    assert_eq!(e.endpoint_type().map(|t| t.as_str()), Some("TARGET"));
    assert_eq!(e.engine_name(), Some("postgres"));
    assert_eq!(e.server_name(), Some("127.0.0.1"));
    assert_eq!(e.port(), Some(port));
    assert_eq!(e.database_name(), Some(staging.name.as_str()));
    assert_eq!(
        e.postgre_sql_settings()
            .and_then(|p| p.after_connect_script()),
        Some("SET session_replication_role='replica'")
    );
    let both = c.describe_endpoints().send().await.unwrap();
    assert_eq!(both.endpoints().len(), 2);
    let source = both
        .endpoints()
        .iter()
        .find(|e| e.endpoint_arn() == Some(fake.source_endpoint_arn().as_str()))
        .unwrap();
    assert_eq!(source.database_name(), Some(prod.name.as_str()));
    assert!(source
        .postgre_sql_settings()
        .and_then(|p| p.after_connect_script())
        .is_none());
    let err = c
        .describe_endpoints()
        .filters(
            Filter::builder()
                .name("endpoint-arn")
                .values("arn:nope")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), Some("ResourceNotFoundFault"));

    // WithoutSettings=false: the settings and the mappings, as JSON text.
    let filter = Filter::builder()
        .name("replication-task-arn")
        .values(fake.task_arn())
        .build()
        .unwrap();
    let full = c
        .describe_replication_tasks()
        .filters(filter.clone())
        .without_settings(false)
        .send()
        .await
        .unwrap();
    let t = &full.replication_tasks()[0];
    let settings: serde_json::Value =
        serde_json::from_str(t.replication_task_settings().unwrap()).unwrap();
    assert_eq!(
        settings["FullLoadSettings"]["TargetTablePrepMode"],
        "TRUNCATE_BEFORE_LOAD"
    );
    assert_eq!(t.table_mappings(), Some(mappings));
    assert_eq!(t.migration_type().map(|m| m.as_str()), Some("full-load"));
    assert_eq!(
        t.source_endpoint_arn(),
        Some(fake.source_endpoint_arn().as_str())
    );
    let lean = c
        .describe_replication_tasks()
        .filters(filter)
        .without_settings(true)
        .send()
        .await
        .unwrap();
    let t = &lean.replication_tasks()[0];
    assert!(t.replication_task_settings().is_none() && t.table_mappings().is_none());
    let err = c
        .describe_replication_tasks()
        .filters(
            Filter::builder()
                .name("replication-task-arn")
                .values("arn:aws:dms:us-east-1:123456789012:task:OTHER")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), Some("ResourceNotFoundFault"));
}

#[tokio::test]
async fn a_full_load_and_cdc_task_keeps_running_after_the_load() {
    let (prod, staging) = databases().await;
    let fake = DmsFake::start(
        task(&prod, &staging)
            .await
            .migration_type(MigrationType::FullLoadAndCdc)
            .starting_describes(0),
    );
    let dms = DmsTask::new(client(&fake).await);
    let arn = fake.task_arn();
    dms.start(&arn, StartKind::StartReplication).await.unwrap();
    let (loaded, _) = wait_for(&dms, &arn, |s| s.full_load_progress_percent == Some(100)).await;
    assert_eq!(loaded.status, TaskStatus::Running);
    assert_same_rows(&prod, &staging).await;
    assert_eq!(
        dms.describe(&arn).await.unwrap().status,
        TaskStatus::Running
    );
}

/// Raw HTTP: several requests on one keep-alive connection; an unknown operation.
#[tokio::test]
async fn speaks_aws_json_1_1_over_keep_alive_connections() {
    let (prod, staging) = databases().await;
    let fake = DmsFake::start(task(&prod, &staging).await);
    let addr = fake.endpoint().trim_start_matches("http://").to_owned();
    let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let request = |target: &str, body: &str| {
        format!(
            "POST / HTTP/1.1\r\nHost: {addr}\r\nX-Amz-Target: {target}\r\n\
             Content-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let body = format!(
        r#"{{"Filters": [{{"Name": "replication-task-arn", "Values": ["{}"]}}], "WithoutSettings": true}}"#,
        fake.task_arn()
    );
    let mut answers = Vec::new();
    for (target, body) in [
        ("AmazonDMSv20160101.DescribeReplicationTasks", body.as_str()),
        ("AmazonDMSv20160101.DeleteReplicationTask", "{}"),
    ] {
        conn.write_all(request(target, body).as_bytes())
            .await
            .unwrap();
        answers.push(read_response(&mut conn).await);
    }
    let (status, headers, body) = &answers[0];
    assert_eq!(*status, 200);
    assert!(headers.contains("application/x-amz-json-1.1"), "{headers}");
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(v["ReplicationTasks"][0]["Status"], "ready");
    assert!(v["ReplicationTasks"][0]["ReplicationTaskCreationDate"].is_number());
    let (status, _, body) = &answers[1];
    assert_eq!(*status, 400);
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(
        v["__type"],
        "com.amazonaws.dms#InvalidParameterValueException"
    );
    assert_eq!(
        fake.calls()
            .iter()
            .map(|c| c.operation.as_str())
            .collect::<Vec<_>>(),
        ["DescribeReplicationTasks", "DeleteReplicationTask"]
    );
}

/// Reads one Content-Length framed response: (status, headers, body).
async fn read_response(conn: &mut tokio::net::TcpStream) -> (u16, String, String) {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        conn.read_exact(&mut byte).await.unwrap();
        buf.push(byte[0]);
    }
    let head = String::from_utf8(buf).unwrap().to_ascii_lowercase();
    let status = head[9..12].parse().unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let mut body = vec![0u8; len];
    conn.read_exact(&mut body).await.unwrap();
    (status, head, String::from_utf8(body).unwrap())
}
