//! The task model: its life cycle, the runs of the local replicator, and the
//! operations (each takes the request's JSON and answers JSON or an
//! [`ApiError`]). Here: the state, its clock (`advance`) and the dispatch;
//! `runs` starts and stops runs, `describe` answers the task's documents,
//! `serverless` the replication config's, `paging` reads requests as DMS does.

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

mod describe;
mod paging;
mod runs;
mod serverless;

use paging::{explicit, filters, is_run_fault, page_size, paginate};

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
}
