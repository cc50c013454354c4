//! Starting and stopping runs (task and serverless): which start types a
//! task's history allows, the replicator's run, and the stop.

use super::*;

impl Inner {
    pub(super) async fn start(&self, req: &Value, call: usize) -> Result<Value, ApiError> {
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
    pub(super) fn refuse_start_kind(&self, kind: &str, ran_before: bool) -> Option<ApiError> {
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
    pub(super) async fn start_run(
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

    pub(super) async fn stop(&self, req: &Value) -> Result<Value, ApiError> {
        self.stop_run(req["ReplicationTaskArn"].as_str()).await?;
        let s = self.state();
        Ok(json!({"ReplicationTask": self.task_json(&s, true)}))
    }

    pub(super) async fn stop_run(&self, arn: Option<&str>) -> Result<(), ApiError> {
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
}
