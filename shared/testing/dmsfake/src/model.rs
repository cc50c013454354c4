//! The task model: its life cycle, the runs of the local replicator, and the
//! five operations (each takes the request's JSON and answers JSON or an
//! [`ApiError`]).

use std::{
    sync::{Arc, Mutex, MutexGuard},
    time::{SystemTime, UNIX_EPOCH},
};

use dbsync_db::Selection;
use dbsync_replicate::{LocalReplicator, Progress, ReplicateOptions, TableCopy};
use dbsync_workflow::ports::{StartKind, StartTask, StopTask, TaskStatus, FULL_LOAD_FINISHED};
use serde_json::{json, Map, Value};

use crate::{
    Call, FakeTask, Fault, Faults, MigrationType, Op, NOT_FIRST_RUN, WRONG_SERVERLESS_START,
};

const STOPPED_BY_USER: &str = "Stop Reason STOPPED_BY_USER";
const FATAL_ERROR: &str = "Stop Reason FATAL_ERROR";

/// An error answer: HTTP status, DMS's error code, message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn bad(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status: 400,
            code,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::bad("InvalidParameterValueException", message)
    }

    pub fn throttled() -> ApiError {
        ApiError::bad("ThrottlingException", "Rate exceeded")
    }

    pub fn internal() -> ApiError {
        ApiError {
            status: 500,
            code: "InternalFailure",
            message: "An internal error has occurred. Please try your request again.".into(),
        }
    }
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| (d.as_millis() as f64) / 1000.0)
        .unwrap_or(0.0)
}

/// One run of the task.
struct Run {
    /// `None`: nothing to copy (a `cdc` task, or a resume with every table done).
    replicator: Option<Arc<LocalReplicator>>,
    /// The tables of this run, in the order the replicator takes them.
    plan: Vec<TableCopy>,
    stuck: bool,
    stopped_by_user: bool,
    /// Serverless: starts the copy once capacity is provisioned (aborted by a stop).
    provisioner: Option<tokio::task::JoinHandle<()>>,
}

impl Run {
    fn progress(&self) -> Progress {
        self.replicator
            .as_ref()
            .map(|r| r.progress())
            .unwrap_or(Progress {
                finished: true,
                ever_started: true,
                ..Progress::default()
            })
    }

    /// No table copy in flight, and none will begin (a stopped replicator
    /// reports `stopping` until its aborted workers are gone).
    fn quiet(&self) -> bool {
        let p = self.progress();
        if p.running {
            return false;
        }
        p.tables_loading == 0 && (p.tables_total == 0 || p.results.len() >= p.tables_total)
    }

    /// Per table of the plan: (table, state, rows).
    fn table_states(&self, ended: bool) -> Vec<(&TableCopy, &'static str, u64)> {
        let p = self.progress();
        let taken = p.results.len() + p.tables_loading;
        self.plan
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let q = t.qualified();
                let state = match p.results.iter().find(|r| r.table == q) {
                    Some(r) if r.error.is_some() => ("Table error", 0),
                    Some(r) => ("Table completed", r.rows),
                    None if ended || self.stopped_by_user => ("Table cancelled", 0),
                    None if i < taken => ("Full load", 0),
                    None => ("Before load", 0),
                };
                (t, state.0, state.1)
            })
            .collect()
    }
}

struct State {
    status: TaskStatus,
    /// Set by hand: holds until the next start or stop.
    manual: bool,
    ever_started: bool,
    starting_left: u32,
    stopping_left: u32,
    stop_reason: Option<String>,
    last_failure: Option<String>,
    task_start_date: Option<f64>,
    fresh_start_date: Option<f64>,
    start_date: Option<f64>,
    stop_date: Option<f64>,
    full_load_start: Option<f64>,
    full_load_finish: Option<f64>,
    run: Option<Run>,
    /// Serverless: provisioning began / ends (while `starting`).
    provision_from: Option<f64>,
    provision_until: Option<f64>,
    last_start_kind: Option<String>,
}

pub(crate) struct Inner {
    pub task: FakeTask,
    pub faults: Faults,
    pub calls: Mutex<Vec<Call>>,
    state: Mutex<State>,
    /// Serializes starts and stops (they await between checking and committing).
    ops: tokio::sync::Mutex<()>,
    created: f64,
}

impl Inner {
    pub fn new(task: FakeTask) -> Inner {
        let created = now() - 86_400.0;
        let earlier = task.ever_started.then_some(created + 3_600.0);
        let active = task.status.is_active();
        let state = State {
            status: task.status.clone(),
            manual: active,
            ever_started: task.ever_started,
            starting_left: 0,
            stopping_left: 0,
            stop_reason: (task.status == TaskStatus::Stopped && task.ever_started)
                .then(|| FULL_LOAD_FINISHED.to_owned()),
            last_failure: task.last_failure_message.clone(),
            task_start_date: earlier,
            fresh_start_date: earlier,
            start_date: earlier,
            stop_date: earlier.filter(|_| !active).map(|t| t + 60.0),
            full_load_start: earlier,
            full_load_finish: earlier.filter(|_| !active).map(|t| t + 60.0),
            run: None,
            provision_from: None,
            provision_until: None,
            last_start_kind: task.ever_started.then(|| "start-replication".to_owned()),
        };
        Inner {
            task,
            faults: Mutex::new(Vec::new()),
            calls: Mutex::new(Vec::new()),
            state: Mutex::new(state),
            ops: tokio::sync::Mutex::new(()),
            created,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("task state")
    }

    /// Takes the first queued fault for `op`, when it is one of the call
    /// (not the run) faults. A run fault waits for a start that starts a run.
    pub fn take_call_fault(&self, op: Op) -> Option<Fault> {
        self.take_fault(op, |f| !is_run_fault(f))
    }

    fn take_fault(&self, op: Op, kind: impl Fn(&Fault) -> bool) -> Option<Fault> {
        let mut faults = self.faults.lock().expect("faults");
        let i = faults.iter().position(|(o, _)| *o == op)?;
        kind(&faults[i].1).then(|| faults.remove(i).1)
    }

    pub fn set_status(&self, status: TaskStatus) {
        let mut s = self.state();
        if status.is_active() {
            s.ever_started = true;
            let t = now();
            s.task_start_date = Some(t);
            s.start_date = Some(t);
            s.stop_reason = None;
        }
        s.status = status;
        s.manual = true;
        s.starting_left = 0;
        s.stopping_left = 0;
    }

    pub fn peek_status(&self) -> TaskStatus {
        let mut s = self.state();
        self.advance(&mut s, false);
        s.status.clone()
    }

    pub fn copies_quiet(&self) -> bool {
        self.state().run.as_ref().is_none_or(Run::quiet)
    }

    /// Moves the status on from what the current run has done. `describe`:
    /// this is a `DescribeReplicationTasks`, which counts down `starting` and `stopping`.
    fn advance(&self, s: &mut State, describe: bool) {
        if s.manual {
            return;
        }
        if s.status == TaskStatus::Starting {
            if let Some(until) = s.provision_until {
                // Serverless: capacity first, then the copy (started by the provisioner).
                let begun = s
                    .run
                    .as_ref()
                    .and_then(|r| r.replicator.as_ref())
                    .is_none_or(|r| r.progress().ever_started);
                if now() < until || !begun {
                    return;
                }
                s.provision_until = None;
                s.full_load_start = Some(until);
            } else if s.starting_left > 0 {
                if describe {
                    s.starting_left -= 1;
                }
                return;
            }
            s.status = TaskStatus::Running;
        }
        if s.status == TaskStatus::Stopping {
            if s.stopping_left > 0 {
                if describe {
                    s.stopping_left -= 1;
                }
                return;
            }
            if s.run.as_ref().is_none_or(Run::quiet) {
                s.status = TaskStatus::Stopped;
                s.stop_reason = Some(STOPPED_BY_USER.into());
                s.stop_date = Some(now());
            }
            return;
        }
        if s.status != TaskStatus::Running || s.full_load_finish.is_some() {
            return;
        }
        let Some(run) = &s.run else { return };
        if run.stuck || self.task.migration_type == MigrationType::Cdc {
            return;
        }
        let p = run.progress();
        if p.running {
            return;
        }
        let t = now();
        s.full_load_finish = Some(t);
        let first_error = p
            .results
            .iter()
            .find_map(|r| r.error.as_ref().map(|e| format!("{}: {e}", r.table)));
        if let Some(failure) = p.failure.clone() {
            s.status = TaskStatus::Failed;
            s.stop_reason = Some(FATAL_ERROR.into());
            s.last_failure = Some(failure);
            s.stop_date = Some(t);
            return;
        }
        if let Some(e) = first_error {
            s.last_failure = Some(e);
        }
        if self.task.migration_type == MigrationType::FullLoad {
            s.status = TaskStatus::Stopped;
            s.stop_reason = Some(FULL_LOAD_FINISHED.into());
            s.stop_date = Some(t);
        }
        // full-load-and-cdc: the load is done, CDC goes on (`running`).
    }

    fn task_json(&self, s: &State, with_settings: bool) -> Value {
        let t = &self.task;
        let mut task = Map::new();
        let mut put = |k: &str, v: Value| {
            task.insert(k.to_owned(), v);
        };
        put("ReplicationTaskIdentifier", json!(t.identifier));
        put("SourceEndpointArn", json!(t.source_endpoint.arn));
        put("TargetEndpointArn", json!(t.target_endpoint.arn));
        put(
            "ReplicationInstanceArn",
            json!(format!(
                "arn:aws:dms:{}:rep:DBSYNCINSTANCE",
                crate::REGION_ACCOUNT
            )),
        );
        put("MigrationType", json!(t.migration_type.as_str()));
        if with_settings {
            put("TableMappings", json!(t.table_mappings));
            put("ReplicationTaskSettings", json!(t.settings));
        }
        put("Status", json!(s.status.as_str()));
        if let Some(m) = &s.last_failure {
            put("LastFailureMessage", json!(m));
        }
        if let Some(r) = &s.stop_reason {
            put("StopReason", json!(r));
        }
        put("ReplicationTaskCreationDate", json!(self.created));
        if let Some(d) = s.task_start_date {
            put("ReplicationTaskStartDate", json!(d));
        }
        put("ReplicationTaskArn", json!(t.arn));
        put("ReplicationTaskStats", self.stats_json(s));
        Value::Object(task)
    }

    fn stats_json(&self, s: &State) -> Value {
        let (mut percent, mut loaded, mut loading, mut queued, mut errored) = (0, 0, 0, 0, 0);
        if let (Some(run), false) = (&s.run, s.status == TaskStatus::Starting) {
            let p = run.progress();
            percent = p.percent();
            if run.stuck {
                percent = percent.min(99);
            }
            loaded = p.tables_loaded();
            loading = p.tables_loading;
            errored = p.tables_errored();
            let total = p.tables_total.max(run.plan.len());
            queued = total.saturating_sub(p.results.len() + p.tables_loading);
            if !s.status.is_active() && s.status != TaskStatus::Stopping {
                // The run is over: what never began was cancelled, not queued.
                queued = 0;
                loading = 0;
            }
        }
        let end = s.stop_date.unwrap_or_else(now);
        let elapsed = s.start_date.map_or(0.0, |st| (end - st).max(0.0));
        let mut stats = json!({
            "FullLoadProgressPercent": percent,
            "ElapsedTimeMillis": (elapsed * 1000.0) as i64,
            "TablesLoaded": loaded,
            "TablesLoading": loading,
            "TablesQueued": queued,
            "TablesErrored": errored,
        });
        for (k, v) in [
            ("FreshStartDate", s.fresh_start_date),
            ("StartDate", s.start_date),
            ("StopDate", s.stop_date),
            ("FullLoadStartDate", s.full_load_start),
            ("FullLoadFinishDate", s.full_load_finish),
        ] {
            if let Some(v) = v {
                stats[k] = json!(v);
            }
        }
        stats
    }

    fn check_task(&self, arn: Option<&str>) -> Result<(), ApiError> {
        match arn {
            None => Err(ApiError::invalid("ReplicationTaskArn is required")),
            Some(a) if a == self.task.arn => Ok(()),
            Some(a) => Err(ApiError::bad(
                "ResourceNotFoundFault",
                format!("Replication Task {a} not found"),
            )),
        }
    }

    // ---------------------------------------------------------------- operations

    /// Runs one operation; `call` is its index in the record (a start notes
    /// there the run fault it consumed).
    pub async fn call(&self, op: Op, req: &Value, call: usize) -> Result<Value, ApiError> {
        self.check_kind(op)?;
        match op {
            Op::DescribeReplicationTasks => self.describe_tasks(req),
            Op::StartReplicationTask => self.start(req, call).await,
            Op::StopReplicationTask => self.stop(req).await,
            Op::DescribeTableStatistics => self.table_statistics(req),
            Op::DescribeEndpoints => self.endpoints(req),
            Op::DescribeReplicationConfigs => self.describe_configs(req),
            Op::DescribeReplications => self.describe_replications(req),
            Op::StartReplication => {
                self.start_run(
                    op,
                    req["ReplicationConfigArn"].as_str(),
                    req["StartReplicationType"].as_str(),
                    call,
                )
                .await?;
                let s = self.state();
                Ok(json!({"Replication": self.replication_json(&s)}))
            }
            Op::StopReplication => {
                self.stop_run(req["ReplicationConfigArn"].as_str()).await?;
                let s = self.state();
                Ok(json!({"Replication": self.replication_json(&s)}))
            }
            Op::DescribeReplicationTableStatistics => {
                self.check_task(req["ReplicationConfigArn"].as_str())?;
                if self.released(&self.state()).is_some() {
                    return Err(ApiError {
                        status: 400,
                        code: "InvalidResourceStateFault",
                        message:
                            "Replication statistics are available for provisioned replications only"
                                .into(),
                    });
                }
                let (page, marker) = self.statistics_page(req)?;
                let mut out = json!({"ReplicationConfigArn": self.task.arn, "ReplicationTableStatistics": page});
                if let Some(m) = marker {
                    out["Marker"] = json!(m);
                }
                Ok(out)
            }
        }
    }

    /// Only a serverless fake serves the serverless operations, and only a task fake the task ones.
    fn check_kind(&self, op: Op) -> Result<(), ApiError> {
        let serverless_op = matches!(
            op,
            Op::DescribeReplicationConfigs
                | Op::DescribeReplications
                | Op::StartReplication
                | Op::StopReplication
                | Op::DescribeReplicationTableStatistics
        );
        match (serverless_op, self.task.provisioning.is_some(), op) {
            (_, _, Op::DescribeEndpoints) => Ok(()),
            (true, false, _) => Err(ApiError::bad(
                "ResourceNotFoundFault",
                "No replication configs found matching the filter",
            )),
            (false, true, _) => Err(ApiError::bad(
                "ResourceNotFoundFault",
                "No Tasks found matching the filter",
            )),
            _ => Ok(()),
        }
    }

    /// Whether a stopped serverless run's capacity has been released (its
    /// start dates and statistics gone), and whether it is still going.
    fn released(&self, s: &State) -> Option<bool> {
        let after = self.task.deprovision_after?.as_secs_f64();
        let stopped = s.stop_date.filter(|_| !s.status.is_active())?;
        let since = now() - stopped;
        (since >= after).then_some(since < after * 2.0)
    }

    /// Whether a serverless start's capacity is in place (its start dates show).
    fn provisioned(&self, s: &State) -> bool {
        s.provision_until.is_none_or(|until| now() >= until)
    }

    /// A serverless replication's status: the provisioning stages by how far
    /// provisioning has come, else the task status in DMS Serverless's words.
    fn serverless_status(&self, s: &State) -> &'static str {
        match self.released(s) {
            Some(true) => return "deprovisioning",
            Some(false) => return "deprovisioned",
            None => {}
        }
        const STAGES: [&str; 7] = [
            "initializing",
            "preparing_metadata_resources",
            "testing_connection",
            "fetching_metadata",
            "calculating_capacity",
            "provisioning_capacity",
            "replication_starting",
        ];
        match &s.status {
            TaskStatus::Starting => match (s.provision_from, s.provision_until) {
                (Some(from), Some(until)) if until > from => {
                    let f = ((now() - from) / (until - from)).clamp(0.0, 0.999);
                    STAGES[(f * STAGES.len() as f64) as usize]
                }
                _ => "replication_starting",
            },
            TaskStatus::Running => "running",
            TaskStatus::Stopping => "stopping",
            TaskStatus::Stopped => "stopped",
            TaskStatus::Failed => "failed",
            TaskStatus::Ready if s.ever_started => "stopped",
            _ => "created",
        }
    }

    fn replication_json(&self, s: &State) -> Value {
        let t = &self.task;
        let status = self.serverless_status(s);
        let mut r = json!({
            "ReplicationConfigIdentifier": t.identifier,
            "ReplicationConfigArn": t.arn,
            "SourceEndpointArn": t.source_endpoint.arn,
            "TargetEndpointArn": t.target_endpoint.arn,
            "ReplicationType": t.migration_type.as_str(),
            "Status": status,
            "ReplicationCreateTime": self.created,
            "ProvisionData": {
                "ProvisionState": if s.status.is_active() { "provisioned" } else { "deprovisioned" },
                "ProvisionedCapacityUnits": if s.status == TaskStatus::Running { 4 } else { 0 },
            },
        });
        if let Some(reason) = &s.stop_reason {
            r["StopReason"] = json!(reason);
        }
        if let Some(m) = &s.last_failure {
            r["FailureMessages"] = json!([m]);
        }
        if let Some(k) = &s.last_start_kind {
            r["StartReplicationType"] = json!(k);
        }
        if let Some(d) = s.stop_date {
            r["ReplicationLastStopTime"] = json!(d);
        }
        if s.ever_started {
            let mut stats = self.stats_json(s);
            // Start dates show once capacity is provisioned, and go with it.
            if !self.provisioned(s) || self.released(s).is_some() {
                if let Some(m) = stats.as_object_mut() {
                    m.remove("FreshStartDate");
                    m.remove("StartDate");
                    m.remove("FullLoadStartDate");
                }
            }
            r["ReplicationStats"] = stats;
        }
        r
    }

    fn describe_configs(&self, req: &Value) -> Result<Value, ApiError> {
        let t = &self.task;
        let mut matches = true;
        for (name, values) in filters(req)? {
            let hit = |v: &str| values.iter().any(|x| x == v);
            matches &= match name.as_str() {
                "replication-config-arn" => hit(&t.arn),
                "replication-config-id" => hit(&t.identifier),
                other => return Err(ApiError::invalid(format!("Unknown filter name: {other}"))),
            };
        }
        if !matches {
            return Err(ApiError::bad(
                "ResourceNotFoundFault",
                "No replication configs found matching the filter",
            ));
        }
        Ok(json!({"ReplicationConfigs": [{
            "ReplicationConfigIdentifier": t.identifier,
            "ReplicationConfigArn": t.arn,
            "SourceEndpointArn": t.source_endpoint.arn,
            "TargetEndpointArn": t.target_endpoint.arn,
            "ReplicationType": t.migration_type.as_str(),
            "ComputeConfig": {"MinCapacityUnits": 1, "MaxCapacityUnits": 16, "MultiAZ": false},
            "ReplicationSettings": t.settings,
            "TableMappings": t.table_mappings,
            "ReplicationConfigCreateTime": self.created,
        }]}))
    }

    fn describe_replications(&self, req: &Value) -> Result<Value, ApiError> {
        for (name, values) in filters(req)? {
            let hit = values.contains(&self.task.arn);
            match name.as_str() {
                "replication-config-arn" if hit => {}
                "replication-config-arn" => {
                    return Err(ApiError::bad(
                        "ResourceNotFoundFault",
                        "No replications found matching the filter",
                    ))
                }
                other => return Err(ApiError::invalid(format!("Unknown filter name: {other}"))),
            }
        }
        let mut s = self.state();
        self.advance(&mut s, true);
        Ok(json!({"Replications": [self.replication_json(&s)]}))
    }

    fn describe_tasks(&self, req: &Value) -> Result<Value, ApiError> {
        page_size(req, 20, 100)?;
        let t = &self.task;
        let mut matches = true;
        for (name, values) in filters(req)? {
            let hit = |v: &str| values.iter().any(|x| x == v);
            matches &= match name.as_str() {
                "replication-task-arn" => hit(&t.arn),
                "replication-task-id" => hit(&t.identifier),
                "migration-type" => hit(t.migration_type.as_str()),
                "endpoint-arn" => hit(&t.source_endpoint.arn) || hit(&t.target_endpoint.arn),
                "replication-instance-arn" => true,
                other => return Err(ApiError::invalid(format!("Unknown filter name: {other}"))),
            };
        }
        if !matches {
            return Err(ApiError::bad(
                "ResourceNotFoundFault",
                "No Tasks found matching the filter",
            ));
        }
        let with_settings = !req["WithoutSettings"].as_bool().unwrap_or(false);
        let mut s = self.state();
        self.advance(&mut s, true);
        Ok(json!({"ReplicationTasks": [self.task_json(&s, with_settings)]}))
    }

    async fn start(&self, req: &Value, call: usize) -> Result<Value, ApiError> {
        self.start_run(
            Op::StartReplicationTask,
            req["ReplicationTaskArn"].as_str(),
            req["StartReplicationTaskType"].as_str(),
            call,
        )
        .await?;
        let s = self.state();
        Ok(json!({"ReplicationTask": self.task_json(&s, true)}))
    }

    /// Whether a start type fits the task's or config's history. Tasks (API
    /// reference, StartReplicationTask): `start-replication` only on the
    /// first run ("valid only for tasks running for the first time"); any
    /// other type on a first run "will result in data errors", which the
    /// fake refuses outright. Serverless (StartReplication): the first run
    /// takes only `start-replication`, a `full-load` config never takes
    /// `resume-processing`, and a later run takes [`FakeTask::later_start`].
    fn refuse_start_kind(&self, kind: &str, ran_before: bool) -> Option<ApiError> {
        let refuse = |message: &str| {
            Some(ApiError::bad(
                "InvalidParameterCombinationException",
                message.to_owned(),
            ))
        };
        let full_load = self.task.migration_type == MigrationType::FullLoad;
        if self.task.provisioning.is_none() {
            return match (kind, ran_before) {
                ("start-replication", true) => refuse(NOT_FIRST_RUN),
                ("start-replication", false) => None,
                (_, false) => {
                    refuse("Start Type : only START_REPLICATION is valid for a task's first run")
                }
                (_, true) => None,
            };
        }
        match (kind, ran_before) {
            ("start-replication", false) => None,
            (_, false) => refuse(WRONG_SERVERLESS_START),
            ("resume-processing", true) if full_load => refuse(WRONG_SERVERLESS_START),
            (k, true) if full_load && k != self.task.later_start => refuse(WRONG_SERVERLESS_START),
            _ => None,
        }
    }

    /// Starts a run (task or serverless); `op` is the call's operation (its
    /// queued run fault applies).
    async fn start_run(
        &self,
        op: Op,
        arn: Option<&str>,
        kind: Option<&str>,
        call: usize,
    ) -> Result<(), ApiError> {
        self.check_task(arn)?;
        let kind = match kind {
            Some(k @ ("start-replication" | "reload-target" | "resume-processing")) => k,
            Some(other) => {
                return Err(ApiError::invalid(format!(
                    "Invalid StartReplicationTaskType: {other}"
                )))
            }
            None => return Err(ApiError::invalid("StartReplicationTaskType is required")),
        };
        let _serial = self.ops.lock().await;
        // Check, and decide what this run copies.
        let (selection, run_fault) = {
            let mut s = self.state();
            self.advance(&mut s, false);
            if !matches!(
                s.status,
                TaskStatus::Ready | TaskStatus::Stopped | TaskStatus::Failed
            ) {
                return Err(ApiError::bad(
                    "InvalidResourceStateFault",
                    format!(
                        "Replication Task cannot be started, invalid state: {}",
                        s.status
                    ),
                ));
            }
            if let Some(refusal) = self.refuse_start_kind(kind, s.ever_started) {
                return Err(refusal);
            }
            // The start will happen: now it consumes a queued run fault.
            let run_fault = self.take_fault(op, is_run_fault);
            if let Some(f) = &run_fault {
                if let Some(c) = self.calls.lock().expect("calls").get_mut(call) {
                    c.fault = Some(f.clone());
                }
            }
            let selection = match (&s.run, kind, self.task.migration_type) {
                (_, _, MigrationType::Cdc) => None,
                (Some(prev), "resume-processing", MigrationType::FullLoad) => {
                    let ended = true;
                    let left: Vec<_> = prev
                        .table_states(ended)
                        .into_iter()
                        .filter(|(_, state, _)| *state != "Table completed")
                        .map(|(t, _, _)| (t.schema.clone(), t.name.clone()))
                        .collect();
                    explicit(&left)
                }
                _ => Some(self.task.selection.clone()),
            };
            (selection, run_fault)
        };
        let (stuck, fail_table) = match run_fault {
            Some(Fault::Stuck) => (true, None),
            Some(Fault::FailMidLoad(t)) => (false, Some(t)),
            _ => (false, None),
        };
        let mut run = Run {
            replicator: None,
            plan: Vec::new(),
            stuck,
            stopped_by_user: false,
            provisioner: None,
        };
        if let Some(selection) = selection {
            // The tables in the order the replicator takes them (for table statistics).
            if let Ok(source) = self.task.source.connect().await {
                run.plan = dbsync_replicate::plan(&source, &selection)
                    .await
                    .unwrap_or_default();
            }
            let replicator = Arc::new(LocalReplicator::new(ReplicateOptions {
                source: self.task.source.clone(),
                target: self.task.target.clone(),
                selection,
                parallelism: self.task.parallelism,
                fail_table,
                // DMS copies raw rows; masking is the workflow's business.
                sync: Default::default(),
                freeze: true,
            }));
            if let Some(provisioning) = self.task.provisioning {
                // Serverless: the copy begins once capacity is there.
                let (r, arn) = (replicator.clone(), self.task.arn.clone());
                run.provisioner = Some(tokio::spawn(async move {
                    tokio::time::sleep(provisioning).await;
                    let _ = r.start(&arn, StartKind::StartReplication).await;
                }));
            } else if let Err(e) = replicator
                // A fresh replicator always takes start-replication.
                .start(&self.task.arn, StartKind::StartReplication)
                .await
            {
                return Err(ApiError {
                    status: 500,
                    code: "InternalFailure",
                    message: format!("the local replicator refused to start: {e:?}"),
                });
            }
            run.replicator = Some(replicator);
        }
        let mut s = self.state();
        let t = now();
        s.status = TaskStatus::Starting;
        s.manual = false;
        s.ever_started = true;
        s.starting_left = self.task.starting_describes;
        s.stopping_left = 0;
        s.stop_reason = None;
        s.task_start_date = Some(t);
        s.fresh_start_date = Some(t);
        s.start_date = Some(t);
        s.stop_date = None;
        s.full_load_start = self.task.provisioning.is_none().then_some(t);
        s.full_load_finish = None;
        s.run = Some(run);
        s.last_start_kind = Some(kind.to_owned());
        if let Some(p) = self.task.provisioning {
            s.provision_from = Some(t);
            s.provision_until = Some(t + p.as_secs_f64());
        }
        Ok(())
    }

    async fn stop(&self, req: &Value) -> Result<Value, ApiError> {
        self.stop_run(req["ReplicationTaskArn"].as_str()).await?;
        let s = self.state();
        Ok(json!({"ReplicationTask": self.task_json(&s, true)}))
    }

    async fn stop_run(&self, arn: Option<&str>) -> Result<(), ApiError> {
        self.check_task(arn)?;
        let _serial = self.ops.lock().await;
        let replicator = {
            let mut s = self.state();
            self.advance(&mut s, false);
            // A serverless replication can be stopped while it provisions.
            let provisioning = s.provision_until.is_some() && s.status == TaskStatus::Starting;
            if s.status != TaskStatus::Running && !provisioning {
                return Err(ApiError::bad(
                    "InvalidResourceStateFault",
                    format!(
                        "Replication Task cannot be stopped, current status: {}",
                        s.status
                    ),
                ));
            }
            s.status = TaskStatus::Stopping;
            s.manual = false;
            s.stopping_left = self.task.stopping_describes;
            s.provision_until = None;
            match &mut s.run {
                Some(run) => {
                    run.stopped_by_user = true;
                    if let Some(p) = run.provisioner.take() {
                        p.abort();
                    }
                    run.replicator.clone()
                }
                None => None,
            }
        };
        if let Some(r) = replicator {
            let _ = r.stop(&self.task.arn).await;
        }
        Ok(())
    }

    fn table_statistics(&self, req: &Value) -> Result<Value, ApiError> {
        self.check_task(req["ReplicationTaskArn"].as_str())?;
        let (page, marker) = self.statistics_page(req)?;
        let mut out = json!({"ReplicationTaskArn": self.task.arn, "TableStatistics": page});
        if let Some(m) = marker {
            out["Marker"] = json!(m);
        }
        Ok(out)
    }

    /// One page of the current run's table statistics (both APIs' rows).
    fn statistics_page(&self, req: &Value) -> Result<(Vec<Value>, Option<String>), ApiError> {
        let size = page_size(req, 10, 500)?;
        let filters = filters(req)?;
        let mut s = self.state();
        self.advance(&mut s, false);
        let ended = !s.status.is_active() && s.status != TaskStatus::Stopping;
        let mut rows = Vec::new();
        if let Some(run) = &s.run {
            for (t, state, count) in run.table_states(ended) {
                let mut keep = true;
                for (name, values) in &filters {
                    let hit = |v: &str| values.iter().any(|x| x == v);
                    keep &= match name.as_str() {
                        "schema-name" => hit(&t.schema),
                        "table-name" => hit(&t.name),
                        "table-state" => hit(state),
                        other => {
                            return Err(ApiError::invalid(format!("Unknown filter name: {other}")))
                        }
                    };
                }
                if keep {
                    rows.push(json!({
                        "SchemaName": t.schema,
                        "TableName": t.name,
                        "Inserts": 0, "Deletes": 0, "Updates": 0, "Ddls": 0,
                        "FullLoadRows": count,
                        "FullLoadCondtnlChkFailedRows": 0,
                        "FullLoadErrorRows": 0,
                        "TableState": state,
                        "ValidationPendingRecords": 0,
                        "ValidationFailedRecords": 0,
                        "ValidationSuspendedRecords": 0,
                        "ValidationState": "Not enabled",
                        "LastUpdateTime": now(),
                    }));
                }
            }
        }
        paginate(rows, req, size)
    }

    fn endpoints(&self, req: &Value) -> Result<Value, ApiError> {
        let size = page_size(req, 20, 100)?;
        let filters = filters(req)?;
        let mut rows = Vec::new();
        for (e, kind) in [
            (&self.task.source_endpoint, "SOURCE"),
            (&self.task.target_endpoint, "TARGET"),
        ] {
            let mut keep = true;
            for (name, values) in &filters {
                let hit = |v: &str| values.iter().any(|x| x.eq_ignore_ascii_case(v));
                keep &= match name.as_str() {
                    "endpoint-arn" => hit(&e.arn),
                    "endpoint-id" => hit(&e.identifier),
                    "endpoint-type" => hit(kind),
                    "engine-name" => hit("postgres"),
                    other => {
                        return Err(ApiError::invalid(format!("Unknown filter name: {other}")))
                    }
                };
            }
            if !keep {
                continue;
            }
            let mut pg = json!({
                "DatabaseName": e.database_name,
                "Port": e.port,
                "ServerName": e.server_name,
                "Username": e.username,
            });
            if let Some(script) = &e.after_connect_script {
                pg["AfterConnectScript"] = json!(script);
            }
            rows.push(json!({
                "EndpointIdentifier": e.identifier,
                "EndpointType": kind,
                "EngineName": "postgres",
                "EngineDisplayName": "PostgreSQL",
                "Username": e.username,
                "ServerName": e.server_name,
                "Port": e.port,
                "DatabaseName": e.database_name,
                "Status": "active",
                "EndpointArn": e.arn,
                "SslMode": "none",
                "PostgreSQLSettings": pg,
            }));
        }
        if rows.is_empty() {
            return Err(ApiError::bad(
                "ResourceNotFoundFault",
                "No Endpoints found matching the filter",
            ));
        }
        let (page, marker) = paginate(rows, req, size)?;
        let mut out = json!({"Endpoints": page});
        if let Some(m) = marker {
            out["Marker"] = json!(m);
        }
        Ok(out)
    }
}

fn is_run_fault(f: &Fault) -> bool {
    matches!(f, Fault::Stuck | Fault::FailMidLoad(_))
}

/// Selection rules for these tables (`None`: no table): `explicit` rules,
/// or, for a name holding DMS's only wildcard `%` (which explicit rules
/// refuse), an `include` rule — that may also take similarly named tables.
fn explicit(tables: &[(String, String)]) -> Option<Selection> {
    if tables.is_empty() {
        return None;
    }
    let rules: Vec<Value> = tables
        .iter()
        .enumerate()
        .map(|(i, (schema, table))| {
            let action = if schema.contains('%') || table.contains('%') {
                "include"
            } else {
                "explicit"
            };
            json!({"rule-type": "selection", "rule-id": (i + 1).to_string(), "rule-name": format!("resume-{i}"),
                   "object-locator": {"schema-name": schema, "table-name": table}, "rule-action": action})
        })
        .collect();
    Some(
        Selection::from_json(&json!({ "rules": rules }).to_string())
            .expect("selection rules made for a resume"),
    )
}

/// `Filters`: [(name, values)].
fn filters(req: &Value) -> Result<Vec<(String, Vec<String>)>, ApiError> {
    let Some(list) = req.get("Filters").filter(|f| !f.is_null()) else {
        return Ok(Vec::new());
    };
    let list = list
        .as_array()
        .ok_or_else(|| ApiError::invalid("Filters must be a list"))?;
    list.iter()
        .map(|f| {
            let name = f["Name"]
                .as_str()
                .ok_or_else(|| ApiError::invalid("a filter needs a Name"))?;
            let values = f["Values"]
                .as_array()
                .ok_or_else(|| ApiError::invalid("a filter needs Values"))?
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect();
            Ok((name.to_owned(), values))
        })
        .collect()
}

/// `MaxRecords` (default 100), within DMS's bounds for the operation.
fn page_size(req: &Value, min: u64, max: u64) -> Result<usize, ApiError> {
    match req.get("MaxRecords").filter(|v| !v.is_null()) {
        None => Ok(100.min(max) as usize),
        Some(v) => match v.as_u64() {
            Some(n) if (min..=max).contains(&n) => Ok(n as usize),
            _ => Err(ApiError::invalid(format!(
                "MaxRecords must be between {min} and {max}, got {v}"
            ))),
        },
    }
}

/// One page from `Marker` (an opaque offset), and the next marker.
fn paginate(
    rows: Vec<Value>,
    req: &Value,
    size: usize,
) -> Result<(Vec<Value>, Option<String>), ApiError> {
    let start = match req["Marker"].as_str() {
        None | Some("") => 0,
        Some(m) => m
            .strip_prefix("fake-marker-")
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| *n <= rows.len())
            .ok_or_else(|| ApiError::invalid(format!("Invalid Marker: {m}")))?,
    };
    let end = (start + size).min(rows.len());
    let next = (end < rows.len()).then(|| format!("fake-marker-{end}"));
    Ok((rows[start..end].to_vec(), next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_follow_opaque_markers_and_dms_bounds() {
        let rows: Vec<Value> = (0..23).map(|i| json!(i)).collect();
        let (first, m) = paginate(rows.clone(), &json!({}), 10).unwrap();
        assert_eq!((first.len(), m.as_deref()), (10, Some("fake-marker-10")));
        let (last, m) = paginate(rows.clone(), &json!({"Marker": "fake-marker-20"}), 10).unwrap();
        assert_eq!((last, m), (vec![json!(20), json!(21), json!(22)], None));
        assert!(paginate(rows, &json!({"Marker": "garbage"}), 10).is_err());
        assert_eq!(page_size(&json!({}), 10, 500).unwrap(), 100);
        assert_eq!(
            page_size(&json!({"MaxRecords": 500}), 10, 500).unwrap(),
            500
        );
        let e = page_size(&json!({"MaxRecords": 501}), 10, 500).unwrap_err();
        assert_eq!(e.code, "InvalidParameterValueException");
    }

    #[test]
    fn a_resume_selects_exactly_the_tables_left() {
        let left = [
            ("app".to_owned(), "orders".to_owned()),
            ("x".to_owned(), "Odd%Name".to_owned()),
        ];
        let s = explicit(&left).unwrap();
        assert!(s.matches("app", "orders") && s.matches("x", "Odd%Name"));
        assert!(!s.matches("app", "customers") && !s.matches("app", "orders2"));
        // `%` is DMS's wildcard: the rule for Odd%Name takes OddName too.
        assert!(s.matches("x", "OddName"));
        assert!(explicit(&[]).is_none());
    }

    #[test]
    fn filters_are_read_as_dms_sends_them() {
        let req = json!({"Filters": [{"Name": "endpoint-arn", "Values": ["a", "b"]}]});
        assert_eq!(
            filters(&req).unwrap(),
            [(
                "endpoint-arn".to_owned(),
                vec!["a".to_owned(), "b".to_owned()]
            )]
        );
        assert!(filters(&json!({})).unwrap().is_empty());
        assert!(filters(&json!({"Filters": [{"Values": []}]})).is_err());
    }
}
