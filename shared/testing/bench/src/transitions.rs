//! Row 5: Step Functions cost. The deployed definition runs in the local
//! engine on virtual time, with the real start and poll handlers against a
//! simulated DMS load of 1 minute, 1 hour and 8 hours; dbsync's adaptive waits
//! against a fixed 60-second poll. Counts state transitions (what AWS bills)
//! and how late the end of the load is noticed.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use dbsync_asl::{run, Clock, InstantClock, RunOptions, StateMachine, TaskError, TaskRequest};
use dbsync_workflow::{
    naming,
    ports::{
        DescribeTask, StartKind, StartRefusal, StartTask, StopTask, TaskState, TaskStatus,
        FULL_LOAD_FINISHED,
    },
    steps::{poll_dms, replication::PollConfig, start_dms},
    StepError,
};
use serde_json::{json, Value};

use crate::Row;

const ARN: &str = "arn:aws:dms:us-east-1:123456789012:task:bench";
const DMS_STARTUP: Duration = Duration::from_secs(45);

/// DMS Serverless getting capacity before a load (AWS documents minutes to
/// tens of minutes: initializing … provisioning_capacity).
const SERVERLESS_PROVISIONING: Duration = Duration::from_secs(20 * 60);

/// A DMS task whose full load progresses linearly after a start-up delay
/// (or a serverless replication after provisioning, which says so).
struct SimulatedLoad {
    duration: Duration,
    clock: Arc<InstantClock>,
    started: Mutex<Option<SystemTime>>,
    serverless: bool,
}

impl SimulatedLoad {
    fn startup(&self) -> Duration {
        if self.serverless {
            SERVERLESS_PROVISIONING
        } else {
            DMS_STARTUP
        }
    }
}

impl DescribeTask for SimulatedLoad {
    async fn describe(&self, _task: &str) -> Result<TaskState, StepError> {
        let Some(t0) = *self.started.lock().unwrap() else {
            return Ok(TaskState {
                status: TaskStatus::Ready,
                ..Default::default()
            });
        };
        let t = self.clock.now().duration_since(t0).unwrap_or_default();
        let startup = self.startup();
        let end = startup + self.duration;
        Ok(if t < startup {
            TaskState {
                status: TaskStatus::Starting,
                ever_started: true,
                started_at: Some(t0),
                provisioning: self.serverless,
                detail: self.serverless.then(|| "provisioning_capacity".into()),
                ..Default::default()
            }
        } else if t < end {
            TaskState {
                status: TaskStatus::Running,
                ever_started: true,
                started_at: Some(t0),
                full_load_progress_percent: Some(
                    ((t - startup).as_secs_f64() * 100.0 / self.duration.as_secs_f64()) as i32,
                ),
                // Serverless reports when its load began; the task simulation does not.
                load_started_at: self.serverless.then(|| t0 + startup),
                ..Default::default()
            }
        } else {
            TaskState {
                status: TaskStatus::Stopped,
                stop_reason: Some(FULL_LOAD_FINISHED.into()),
                ever_started: true,
                started_at: Some(t0),
                full_load_progress_percent: Some(100),
                tables_loaded: 10,
                ..Default::default()
            }
        })
    }
}

impl StartTask for SimulatedLoad {
    async fn start(&self, _task: &str, _kind: StartKind) -> Result<(), StartRefusal> {
        *self.started.lock().unwrap() = Some(self.clock.now());
        Ok(())
    }
}

impl StopTask for SimulatedLoad {
    async fn stop(&self, _task: &str) -> Result<(), StepError> {
        Ok(())
    }
}

/// Runs one execution; returns (transitions, detection delay).
async fn execution(load: Duration, fixed_poll: Option<u64>, serverless: bool) -> (u64, Duration) {
    let machine = StateMachine::from_json(
        &naming::substitute(
            include_str!("../../../../statemachine/db-sync.asl.json"),
            "us-east-1:123456789012",
        )
        .unwrap(),
    )
    .expect("valid definition");
    // Virtual time starts at the real time: start-dms stamps the run with the wall clock.
    let clock = Arc::new(InstantClock::starting_at(SystemTime::now()));
    let sim = Arc::new(SimulatedLoad {
        duration: load,
        clock: clock.clone(),
        started: Mutex::new(None),
        serverless,
    });
    // Production defaults (template.yaml): 30 s minimum, 2 h maximum.
    let config = PollConfig {
        min_wait: Duration::from_secs(30),
        max_wait: Duration::from_secs(7200),
        max_duration: Duration::from_secs(12 * 3600),
    };
    let seen = Arc::new(Mutex::new(None));
    let (s2, c2, seen2) = (sim.clone(), clock.clone(), seen.clone());
    let handler = move |req: TaskRequest| {
        let (sim, clock, seen) = (s2.clone(), c2.clone(), seen2.clone());
        async move {
            let step = req.input["FunctionName"]
                .as_str()
                .unwrap_or("")
                .rsplit(':')
                .next()
                .unwrap_or("")
                .to_owned();
            let payload = req.input["Payload"].clone();
            let now = clock.now();
            let mut out: Value = match step.as_str() {
                "preflight" => {
                    json!({"taskArn": ARN, "target": {"server": "staging", "port": 5432, "database": "app"}, "tableMappings": "{}", "warnings": [], "notifyOnSuccess": false})
                }
                "lease" => json!({"done": true, "tables": 10}),
                "version-check" => {
                    json!({"inSync": true, "prodVersion": "1", "stagingVersion": "1"})
                }
                "drop-fks" => json!({"tables": 10, "dropped": 10, "saved": 10}),
                "start-dms" => serde_json::to_value(
                    start_dms::handle(&*sim, ARN, &config, payload)
                        .await
                        .unwrap(),
                )
                .unwrap(),
                "poll-dms" => {
                    let v = serde_json::to_value(
                        poll_dms::handle_at(&*sim, ARN, &config, payload, now)
                            .await
                            .unwrap(),
                    )
                    .unwrap();
                    if v["status"] == "succeeded" {
                        *seen.lock().unwrap() = Some(now);
                    }
                    v
                }
                "restore-fks" => {
                    json!({"added": 10, "validated": 10, "skippedExisting": 0, "remaining": 0, "deletedOrphanRows": 0, "keptNotValid": []})
                }
                "fix-sequences" => json!({"sequences": 10, "changed": 10}),
                "refresh-views" => {
                    json!({"views": 2, "refreshed": 2, "concurrently": 1, "remaining": 0})
                }
                // Masking, verification and after_sync, each done in one invocation.
                "after-load" => {
                    json!({"tables": 10, "columns": 4, "rows": 1000, "rowsTotal": 1000, "remaining": 0,
                           "rowsCopied": 1000, "rowsInTarget": 1000, "flagged": [], "flaggedTotal": 0,
                           "statements": 2, "ran": 2})
                }
                other => {
                    return Err(TaskError::new(
                        "States.TaskFailed",
                        format!("no step {other}"),
                    ))
                }
            };
            if let (Some(secs), Some(w)) = (fixed_poll, out.get_mut("waitSeconds")) {
                *w = json!(secs);
            }
            Ok::<Value, TaskError>(json!({"Payload": out, "StatusCode": 200}))
        }
    };
    let result = run(
        &machine,
        json!({}),
        Arc::new(handler),
        RunOptions::default().with_clock(clock.clone()),
    )
    .await;
    assert_eq!(
        result.status,
        dbsync_asl::Status::Succeeded,
        "{:?}",
        result.to_json()
    );
    let t0 = sim.started.lock().unwrap().expect("started");
    let end = t0 + sim.startup() + load;
    let seen = seen.lock().unwrap().expect("success seen");
    (
        result.state_transitions,
        seen.duration_since(end).unwrap_or_default(),
    )
}

pub async fn measure(notes: &mut Vec<String>) -> Vec<Row> {
    let mut rows = Vec::new();
    for (label, load) in [
        ("1 min", Duration::from_secs(60)),
        ("1 h", Duration::from_secs(3600)),
        ("8 h", Duration::from_secs(8 * 3600)),
    ] {
        let (ours, late) = execution(load, None, false).await;
        let (fixed, fixed_late) = execution(load, Some(60), false).await;
        let late_pct = late.as_secs_f64() * 100.0 / load.as_secs_f64();
        rows.push(Row {
            section: "5",
            what: format!("state transitions, {label} DMS load (noticed after)"),
            dbsync: format!("{ours} ({} s late, {late_pct:.1}%)", late.as_secs()),
            reference: format!("{fixed} ({} s late)", fixed_late.as_secs()),
            ratio: format!("{:.1}× fewer", fixed as f64 / ours as f64),
            // 40 for the load itself, 4 for the safety checks (preflight, lease taken and
            // released), 2 for the views, 6 after the load (mask, verify, after_sync and
            // their loops), 1 for the success-notification choice.
            goal: "≤ 53, within 5%".into(),
            met: Some(ours <= 53 && (late_pct <= 5.0 || late <= Duration::from_secs(30))),
        });
    }
    for (label, load) in [
        ("1 h", Duration::from_secs(3600)),
        ("8 h", Duration::from_secs(8 * 3600)),
    ] {
        let (ours, late) = execution(load, None, true).await;
        let (fixed, fixed_late) = execution(load, Some(60), true).await;
        let late_pct = late.as_secs_f64() * 100.0 / load.as_secs_f64();
        rows.push(Row {
            section: "5",
            what: format!(
                "state transitions, DMS Serverless: {} min provisioning, then a {label} load (noticed after)",
                SERVERLESS_PROVISIONING.as_secs() / 60
            ),
            dbsync: format!("{ours} ({} s late, {late_pct:.1}%)", late.as_secs()),
            reference: format!("{fixed} ({} s late)", fixed_late.as_secs()),
            ratio: format!("{:.1}× fewer", fixed as f64 / ours as f64),
            // The task budget plus the provisioning polls (half the time so far, at most 5 min).
            goal: "≤ 80, within 5%".into(),
            met: Some(ours <= 80 && late_pct <= 5.0),
        });
    }
    notes.push(format!(
        "Transitions: the deployed definition in the local engine on virtual time with the real start-dms/poll-dms handlers (POLL_MIN_SECONDS 30, POLL_MAX_SECONDS 7200); the simulated task spends {} s starting, then reports FullLoadProgressPercent linearly. For loads shorter than the minimum wait, \"within 5%\" is bounded by the 30 s minimum.",
        DMS_STARTUP.as_secs()
    ));
    rows
}
