//! A fake of the AWS DMS API **at the HTTP layer** (test support, never
//! shipped). The real `aws-sdk-databasemigration` client — and so
//! `dbsync_aws::dms::DmsTask` — talks to it exactly as to AWS: awsJson1_1
//! (`POST /`, `X-Amz-Target: AmazonDMSv20160101.<Operation>`, JSON bodies,
//! timestamps as epoch seconds, errors as `{"__type", "message"}` with the
//! code in its `#`-namespaced form, which the SDK strips). moto's DMS fakes
//! statuses and sends timestamps the Rust SDK cannot parse; this replaces it.
//!
//! One replication task, whose full load is done for real by the **local
//! replicator** (`dbsync_replicate::LocalReplicator`, a fresh one per run)
//! from the task's source to its target database, selecting tables with the
//! task's own table mappings.
//!
//! # API
//! - [`FakeTask::new`]`(source, target)`: the task, with builder methods for
//!   the ARN, identifier, [`MigrationType`], task settings JSON, table
//!   mappings JSON, the two [`Endpoint`]s (default: from the `DbConfig`s),
//!   initial status, whether it ever ran, a previous `LastFailureMessage`,
//!   how many describes `starting` and `stopping` last, the copy parallelism.
//! - [`DmsFake::start`]`(FakeTask) -> DmsFake`: serves on `127.0.0.1:<free
//!   port>` until dropped (call inside a tokio runtime).
//! - [`DmsFake::endpoint`] `http://127.0.0.1:PORT`, for the SDK's `endpoint_url`;
//!   [`DmsFake::task_arn`], [`DmsFake::source_endpoint_arn`],
//!   [`DmsFake::target_endpoint_arn`].
//! - [`DmsFake::inject`]`(Op, Fault)`: queue a fault for the next call of
//!   that operation (faults of one operation are consumed in order, one per
//!   call; a run fault — [`Fault::Stuck`], [`Fault::FailMidLoad`] — only by a
//!   start that does start a run, so a refused start leaves it queued).
//! - [`DmsFake::set_status`]: flip the task's status by hand (someone used
//!   the console); it holds until the next start or stop.
//! - [`DmsFake::status`], [`DmsFake::calls`] (every request: operation, parsed
//!   JSON, the fault applied), [`DmsFake::calls_of`], [`DmsFake::start_kinds`],
//!   [`DmsFake::wait_idle`] (until no copy is in flight).
//!
//! # Operations
//! `DescribeReplicationTasks` (Filters `replication-task-arn`,
//! `replication-task-id`, `migration-type`, `endpoint-arn`; `WithoutSettings`
//! false or absent adds `ReplicationTaskSettings` and `TableMappings`),
//! `StartReplicationTask`, `StopReplicationTask`, `DescribeTableStatistics`
//! (Filters `schema-name`, `table-name`, `table-state`; `MaxRecords` 10–500,
//! `Marker`), `DescribeEndpoints` (Filters `endpoint-arn`, `endpoint-id`,
//! `endpoint-type`, `engine-name`; `MaxRecords` 20–100, `Marker`). Anything
//! else: 400 `InvalidParameterValueException`. A filter matching nothing:
//! `ResourceNotFoundFault`, as DMS answers.
//!
//! **DMS Serverless** ([`FakeTask::serverless`]): the config is served by
//! `DescribeReplicationConfigs` (Filters `replication-config-arn`,
//! `replication-config-id`), `DescribeReplications` (Filter
//! `replication-config-arn`; a config never started shows `created`),
//! `StartReplication`, `StopReplication` (also while provisioning) and
//! `DescribeReplicationTableStatistics`. After a start the replication goes
//! through `initializing` … `provisioning_capacity`, `replication_starting`
//! for the configured provisioning time, and only then does the copy begin;
//! `FreshStartDate`/`StartDate` appear once capacity is provisioned. With
//! [`FakeTask::deprovisions_after`], a stopped run's capacity is released
//! (`deprovisioning`, then `deprovisioned`): its start dates go, and
//! `DescribeReplicationTableStatistics` answers `InvalidResourceStateFault`
//! (AWS: DMS Serverless limitations; the API reference says the statistics
//! cover provisioned replications).
//!
//! # Life cycle
//! `ready` → start → `starting` for N describes (default 1) → `running` while
//! the replicator copies → `stopped` with `Stop Reason
//! FULL_LOAD_ONLY_FINISHED`, with `TablesErrored` > 0, that table in `Table
//! error` and `LastFailureMessage` set when a table failed (DMS finishes the
//! other tables and stops "normally": the trap poll-dms must not fall into);
//! `failed` with `Stop Reason FATAL_ERROR` when the whole run failed (e.g.
//! the source is unreachable). `full-load-and-cdc` stays `running` after the
//! load (CDC goes on); `cdc` copies nothing and stays `running`. Stop:
//! `stopping` for M describes (default 1) **and until no table copy is in
//! flight** (the local replicator's stop does not cancel copies that already
//! began, so `stopped` here always means nothing writes any more) → `stopped`
//! with `Stop Reason STOPPED_BY_USER`.
//!
//! DMS's rules: `start-replication` only on a task never started
//! (`InvalidParameterCombinationException` "… valid only for tasks running
//! for the first time"); any start while `starting`/`running`/`stopping`/… →
//! `InvalidResourceStateFault`; stop when not `running` →
//! `InvalidResourceStateFault`. AWS says `reload-target` and
//! `resume-processing` on a first run "result in data errors"; the fake loads
//! everything then. `resume-processing` on a full-load task reloads the
//! tables the previous run did not complete. `LastFailureMessage` survives a
//! later successful run (AWS keeps it) and is replaced by a new failure.

mod http;
mod model;

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use dbsync_db::{DbConfig, Selection};
use dbsync_workflow::ports::TaskStatus;
use serde_json::Value;

use crate::model::Inner;

/// The account and region of every ARN the fake makes up.
pub const REGION_ACCOUNT: &str = "us-east-1:123456789012";

/// The task settings a dbsync task should have (and the default).
pub const DEFAULT_SETTINGS: &str = r#"{"FullLoadSettings": {"TargetTablePrepMode": "TRUNCATE_BEFORE_LOAD"}, "TargetMetadata": {"SupportLobs": true, "FullLobMode": true, "LimitedSizeLobMode": false, "LobMaxSize": 0}, "ErrorBehavior": {"DataErrorPolicy": "LOG_ERROR"}}"#;

/// Every user table (the default table mappings).
pub const ALL_TABLES: &str = r#"{"rules": [{"rule-type": "selection", "rule-id": "1", "rule-name": "all", "object-locator": {"schema-name": "%", "table-name": "%"}, "rule-action": "include"}]}"#;

/// DMS's answer to `start-replication` on a task that ran before.
pub const NOT_FIRST_RUN: &str =
    "Start Type : START_REPLICATION, valid only for tasks running for the first time";

/// What the fake answers to a start type that does not fit the history of a
/// DMS Serverless config (AWS API reference, StartReplication: for
/// `full-load`, "the only valid value for the first run of the replication is
/// `start-replication`"; `resume-processing` "isn't applicable for a
/// full-load replication"). The message is the fake's own: AWS documents the
/// rule, not its wording.
pub const WRONG_SERVERLESS_START: &str =
    "StartReplicationType does not fit this replication's history";

/// A task's migration type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MigrationType {
    #[default]
    FullLoad,
    FullLoadAndCdc,
    Cdc,
}

impl MigrationType {
    /// DMS's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            MigrationType::FullLoad => "full-load",
            MigrationType::FullLoadAndCdc => "full-load-and-cdc",
            MigrationType::Cdc => "cdc",
        }
    }
}

/// A DMS endpoint (PostgreSQL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub arn: String,
    pub identifier: String,
    pub username: String,
    pub server_name: String,
    pub port: u16,
    pub database_name: String,
    /// `PostgreSQLSettings.AfterConnectScript`, e.g. `SET session_replication_role='replica'`.
    pub after_connect_script: Option<String>,
}

impl Endpoint {
    /// An endpoint naming the database `db` connects to.
    pub fn from_db(identifier: &str, db: &DbConfig) -> Endpoint {
        Endpoint {
            arn: format!(
                "arn:aws:dms:{REGION_ACCOUNT}:endpoint:{}",
                identifier.to_ascii_uppercase()
            ),
            identifier: identifier.to_owned(),
            username: db.user().unwrap_or_default(),
            server_name: db.host().unwrap_or_default(),
            port: db.port().unwrap_or(5432),
            database_name: db.database().unwrap_or_default(),
            after_connect_script: None,
        }
    }

    pub fn with_after_connect_script(mut self, script: &str) -> Endpoint {
        self.after_connect_script = Some(script.to_owned());
        self
    }
}

/// The one replication task the fake serves (a builder).
#[derive(Debug, Clone)]
pub struct FakeTask {
    pub(crate) arn: String,
    pub(crate) identifier: String,
    pub(crate) migration_type: MigrationType,
    pub(crate) settings: String,
    pub(crate) table_mappings: String,
    pub(crate) selection: Selection,
    pub(crate) source: DbConfig,
    pub(crate) target: DbConfig,
    pub(crate) source_endpoint: Endpoint,
    pub(crate) target_endpoint: Endpoint,
    pub(crate) status: TaskStatus,
    pub(crate) ever_started: bool,
    pub(crate) last_failure_message: Option<String>,
    pub(crate) starting_describes: u32,
    pub(crate) stopping_describes: u32,
    pub(crate) parallelism: usize,
    /// DMS Serverless: a replication config that spends this long getting
    /// capacity before it loads (`None`: a replication task).
    pub(crate) provisioning: Option<Duration>,
    /// DMS Serverless: this long after a run stops, its capacity is released
    /// (`deprovisioning`, then `deprovisioned`), and with it the
    /// replication's start dates and table statistics (AWS: "DMS Serverless
    /// limitations"; `DescribeReplicationTableStatistics` covers provisioned
    /// replications only). `None`: capacity kept.
    pub(crate) deprovision_after: Option<Duration>,
    /// DMS Serverless: the one start type a config that has run before
    /// accepts. AWS documents only the first run's (`start-replication`), so
    /// scenarios try both answers: `reload-target` (the default, as for a
    /// task) and `start-replication`.
    pub(crate) later_start: &'static str,
}

impl FakeTask {
    /// A `ready`, never started full-load task copying every user table from
    /// `source` to `target`, with [`DEFAULT_SETTINGS`].
    pub fn new(source: DbConfig, target: DbConfig) -> FakeTask {
        FakeTask {
            arn: format!("arn:aws:dms:{REGION_ACCOUNT}:task:DBSYNCFULLLOAD"),
            identifier: "dbsync-full-load".into(),
            migration_type: MigrationType::FullLoad,
            settings: DEFAULT_SETTINGS.into(),
            table_mappings: ALL_TABLES.into(),
            selection: Selection::all(),
            source_endpoint: Endpoint::from_db("source", &source),
            target_endpoint: Endpoint::from_db("target", &target),
            source,
            target,
            status: TaskStatus::Ready,
            ever_started: false,
            last_failure_message: None,
            starting_describes: 1,
            stopping_describes: 1,
            parallelism: 2,
            provisioning: None,
            deprovision_after: None,
            later_start: "reload-target",
        }
    }

    pub fn arn(mut self, arn: &str) -> FakeTask {
        self.arn = arn.into();
        self
    }

    pub fn identifier(mut self, id: &str) -> FakeTask {
        self.identifier = id.into();
        self
    }

    pub fn migration_type(mut self, t: MigrationType) -> FakeTask {
        self.migration_type = t;
        self
    }

    /// `ReplicationTaskSettings` (JSON text, returned as given).
    pub fn settings(mut self, json: &str) -> FakeTask {
        self.settings = json.into();
        self
    }

    /// `TableMappings`: also what the replicator copies. Panics when the
    /// selection rules are invalid (DMS would refuse such a task at creation).
    pub fn table_mappings(mut self, json: &str) -> FakeTask {
        self.selection = Selection::from_json(json)
            .unwrap_or_else(|e| panic!("the fake task's table mappings are invalid: {e}"));
        self.table_mappings = json.into();
        self
    }

    pub fn source_endpoint(mut self, e: Endpoint) -> FakeTask {
        self.source_endpoint = e;
        self
    }

    pub fn target_endpoint(mut self, e: Endpoint) -> FakeTask {
        self.target_endpoint = e;
        self
    }

    /// The target endpoint names this database (what it advertises, not
    /// where the replicator copies): a task set up for another database.
    pub fn target_database(mut self, name: &str) -> FakeTask {
        self.target_endpoint.database_name = name.into();
        self
    }

    /// The status before any call (`running`/`starting` also mark the task
    /// as started before; nothing copies then: someone else's run).
    pub fn status(mut self, status: &str) -> FakeTask {
        self.status = TaskStatus::from(status);
        if self.status.is_active() {
            self.ever_started = true;
        }
        self
    }

    /// Whether the task ran before (then only `reload-target` and
    /// `resume-processing` are accepted).
    pub fn ever_started(mut self, yes: bool) -> FakeTask {
        self.ever_started = yes;
        self
    }

    /// A `LastFailureMessage` left by an earlier run.
    pub fn last_failure_message(mut self, m: &str) -> FakeTask {
        self.last_failure_message = Some(m.into());
        self
    }

    /// How many `DescribeReplicationTasks` see `starting` after a start.
    pub fn starting_describes(mut self, n: u32) -> FakeTask {
        self.starting_describes = n;
        self
    }

    /// How many `DescribeReplicationTasks` at least see `stopping` after a stop.
    pub fn stopping_describes(mut self, n: u32) -> FakeTask {
        self.stopping_describes = n;
        self
    }

    /// Tables the replicator copies at once.
    pub fn parallelism(mut self, n: usize) -> FakeTask {
        self.parallelism = n.max(1);
        self
    }

    /// A DMS Serverless replication config instead of a task: served by the
    /// serverless operations, with its own ARN; each start spends
    /// `provisioning` in the provisioning statuses before the copy begins.
    pub fn serverless(mut self, provisioning: Duration) -> FakeTask {
        self.arn = format!("arn:aws:dms:{REGION_ACCOUNT}:replication-config:DBSYNCSERVERLESS");
        self.identifier = "dbsync-serverless".into();
        self.provisioning = Some(provisioning);
        self
    }

    /// DMS Serverless: release the capacity `after` a run stops, losing the
    /// start dates and table statistics (see the field).
    pub fn deprovisions_after(mut self, after: Duration) -> FakeTask {
        self.deprovision_after = Some(after);
        self
    }

    /// DMS Serverless: after its first run, the config accepts only `kind`
    /// (`reload-target` or `start-replication`; see the field).
    pub fn later_runs_start_with(mut self, kind: &'static str) -> FakeTask {
        assert!(
            ["reload-target", "start-replication"].contains(&kind),
            "a later run starts with reload-target or start-replication"
        );
        self.later_start = kind;
        self
    }
}

/// The operations the fake serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    DescribeReplicationTasks,
    StartReplicationTask,
    StopReplicationTask,
    DescribeTableStatistics,
    DescribeEndpoints,
    DescribeReplicationConfigs,
    DescribeReplications,
    StartReplication,
    StopReplication,
    DescribeReplicationTableStatistics,
}

impl Op {
    pub const ALL: [Op; 10] = [
        Op::DescribeReplicationTasks,
        Op::StartReplicationTask,
        Op::StopReplicationTask,
        Op::DescribeTableStatistics,
        Op::DescribeEndpoints,
        Op::DescribeReplicationConfigs,
        Op::DescribeReplications,
        Op::StartReplication,
        Op::StopReplication,
        Op::DescribeReplicationTableStatistics,
    ];

    /// The operation's name (the part of `X-Amz-Target` after the dot).
    pub fn as_str(self) -> &'static str {
        match self {
            Op::DescribeReplicationTasks => "DescribeReplicationTasks",
            Op::StartReplicationTask => "StartReplicationTask",
            Op::StopReplicationTask => "StopReplicationTask",
            Op::DescribeTableStatistics => "DescribeTableStatistics",
            Op::DescribeEndpoints => "DescribeEndpoints",
            Op::DescribeReplicationConfigs => "DescribeReplicationConfigs",
            Op::DescribeReplications => "DescribeReplications",
            Op::StartReplication => "StartReplication",
            Op::StopReplication => "StopReplication",
            Op::DescribeReplicationTableStatistics => "DescribeReplicationTableStatistics",
        }
    }

    pub fn from_name(name: &str) -> Option<Op> {
        Op::ALL.into_iter().find(|op| op.as_str() == name)
    }
}

/// A fault for one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// 400 `ThrottlingException`; nothing applied (the SDK retries it).
    Throttle,
    /// 500 `InternalFailure`; nothing applied (the SDK retries it).
    ServerError,
    /// The operation takes effect (the task does start), then 500
    /// `InternalFailure`: an ambiguous call the SDK will retry.
    ServerErrorAfterApplying,
    /// Only for [`Op::StartReplicationTask`]: the run copies, but the task
    /// stays `running` forever (at most 99%) until stopped.
    Stuck,
    /// Only for [`Op::StartReplicationTask`]: the copy of this table
    /// (`schema.table`) fails after its truncate (the replicator's `fail_table`).
    FailMidLoad(String),
}

/// One request the fake received.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// The operation named by `X-Amz-Target` (as sent, known or not).
    pub operation: String,
    /// The parsed JSON body (`null` when it was not JSON).
    pub request: Value,
    /// The fault this call consumed.
    pub fault: Option<Fault>,
}

/// A running fake DMS. Stops serving when dropped.
pub struct DmsFake {
    addr: SocketAddr,
    inner: Arc<Inner>,
    server: tokio::task::JoinHandle<()>,
}

impl DmsFake {
    /// Serves `task` on a free loopback port. Must be called inside a tokio runtime.
    pub fn start(task: FakeTask) -> DmsFake {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("the DMS fake cannot bind a loopback port: {e}"));
        listener
            .set_nonblocking(true)
            .expect("a non-blocking listener");
        let addr = listener.local_addr().expect("the listener's address");
        let listener = tokio::net::TcpListener::from_std(listener)
            .expect("DmsFake::start must be called inside a tokio runtime");
        let inner = Arc::new(Inner::new(task));
        let server = tokio::spawn(http::serve(listener, inner.clone()));
        DmsFake {
            addr,
            inner,
            server,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn task_arn(&self) -> String {
        self.inner.task.arn.clone()
    }

    pub fn source_endpoint_arn(&self) -> String {
        self.inner.task.source_endpoint.arn.clone()
    }

    pub fn target_endpoint_arn(&self) -> String {
        self.inner.task.target_endpoint.arn.clone()
    }

    /// Queues `fault` for the next call of `op` (run faults: the next start
    /// that starts a run).
    /// Panics for [`Fault::Stuck`] / [`Fault::FailMidLoad`] with another
    /// operation than a start ([`Op::StartReplicationTask`], [`Op::StartReplication`]).
    pub fn inject(&self, op: Op, fault: Fault) {
        if matches!(fault, Fault::Stuck | Fault::FailMidLoad(_)) {
            assert!(
                matches!(op, Op::StartReplicationTask | Op::StartReplication),
                "{fault:?} changes a run: inject it for a start"
            );
        }
        self.inner.faults.lock().expect("faults").push((op, fault));
    }

    /// Sets the task's status by hand (someone used the console): it holds
    /// until the next start or stop. `starting`/`running` also mark the task
    /// as started before; no copy runs for such a status.
    pub fn set_status(&self, status: &str) {
        self.inner.set_status(TaskStatus::from(status));
    }

    /// The status the next describe would start from (no describe is counted).
    pub fn status(&self) -> TaskStatus {
        self.inner.peek_status()
    }

    /// Every request so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.inner.calls.lock().expect("calls").clone()
    }

    /// The parsed requests of one operation, in order.
    pub fn calls_of(&self, op: Op) -> Vec<Value> {
        self.calls()
            .into_iter()
            .filter(|c| c.operation == op.as_str())
            .map(|c| c.request)
            .collect()
    }

    /// The start type of every start request (task or serverless), in order.
    pub fn start_kinds(&self) -> Vec<String> {
        self.calls()
            .into_iter()
            .filter_map(|c| match Op::from_name(&c.operation) {
                Some(Op::StartReplicationTask) => c.request["StartReplicationTaskType"]
                    .as_str()
                    .map(str::to_owned),
                Some(Op::StartReplication) => c.request["StartReplicationType"]
                    .as_str()
                    .map(str::to_owned),
                _ => None,
            })
            .collect()
    }

    /// Waits (at most `limit`) until no table copy of any run is in flight;
    /// returns whether that happened.
    pub async fn wait_idle(&self, limit: Duration) -> bool {
        let end = tokio::time::Instant::now() + limit;
        loop {
            if self.inner.copies_quiet() {
                return true;
            }
            if tokio::time::Instant::now() > end {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for DmsFake {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Queued faults, in injection order.
pub(crate) type Faults = Mutex<Vec<(Op, Fault)>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_default_to_the_databases_the_replicator_uses() {
        let db = DbConfig::from_url("postgres://app:secret@db.internal:6543/staging").unwrap();
        let e = Endpoint::from_db("target", &db);
        assert_eq!(
            (
                e.username.as_str(),
                e.server_name.as_str(),
                e.port,
                e.database_name.as_str()
            ),
            ("app", "db.internal", 6543, "staging")
        );
        assert_eq!(e.arn, "arn:aws:dms:us-east-1:123456789012:endpoint:TARGET");
        assert_eq!(e.after_connect_script, None);
    }

    #[test]
    fn operations_are_named_as_in_x_amz_target() {
        for op in Op::ALL {
            assert_eq!(Op::from_name(op.as_str()), Some(op));
        }
        assert_eq!(Op::from_name("DeleteReplicationTask"), None);
    }
}
