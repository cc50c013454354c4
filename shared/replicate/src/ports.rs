//! The replicator behind the workflow's DMS ports: the local run's task.

use std::{
    sync::{Arc, Mutex},
    time::SystemTime,
};

use dbsync_workflow::{
    ports::{DescribeTask, StartKind, StartRefusal, StartTask, StopTask, TaskState, TaskStatus},
    StepError,
};
use tokio::task::JoinHandle;

use crate::{replicate, Progress, ReplicateOptions};

/// A local stand-in for one DMS task.
pub struct LocalReplicator {
    opts: ReplicateOptions,
    progress: Arc<Mutex<Progress>>,
    job: Mutex<Option<JoinHandle<()>>>,
}

impl LocalReplicator {
    pub fn new(opts: ReplicateOptions) -> Self {
        Self {
            opts,
            progress: Arc::new(Mutex::new(Progress::default())),
            job: Mutex::new(None),
        }
    }

    /// A copy of the current progress.
    pub fn progress(&self) -> Progress {
        self.progress.lock().expect("progress lock").clone()
    }
}

impl DescribeTask for LocalReplicator {
    async fn describe(&self, _task: &str) -> Result<TaskState, StepError> {
        let mut state = self.progress().task_state();
        // Like DMS: a stopped copy reports `stopping` until its workers are really gone.
        let winding_down = self
            .job
            .lock()
            .expect("job lock")
            .as_ref()
            .is_some_and(|j| !j.is_finished());
        if state.status == TaskStatus::Stopped && winding_down {
            state.status = TaskStatus::Stopping;
        }
        Ok(state)
    }
}

impl StartTask for LocalReplicator {
    async fn start(&self, _task: &str, kind: StartKind) -> Result<(), StartRefusal> {
        {
            let mut p = self.progress.lock().expect("progress lock");
            // Mirror DMS's rule so the start step's fallback is exercised locally too.
            if (kind == StartKind::StartReplication) == p.ever_started {
                return Err(StartRefusal::WrongStartKind);
            }
            if p.running {
                return Err(StartRefusal::Failed(StepError::Configuration(
                    "the local replicator is already running".into(),
                )));
            }
            *p = Progress {
                running: true,
                ever_started: true,
                started_at: Some(SystemTime::now()),
                ..Progress::default()
            };
        }
        let (opts, progress) = (self.opts.clone(), self.progress.clone());
        let job = tokio::spawn(async move {
            let outcome = replicate(&opts, &progress).await;
            let mut p = progress.lock().expect("progress lock");
            if let Err(e) = outcome {
                p.failure = Some(e.to_string());
            }
            p.running = false;
            p.tables_loading = 0;
            p.finished = p.failure.is_none();
        });
        *self.job.lock().expect("job lock") = Some(job);
        Ok(())
    }
}

impl StopTask for LocalReplicator {
    async fn stop(&self, _task: &str) -> Result<(), StepError> {
        // Kept: `describe` says `stopping` until the aborted copy has ended.
        if let Some(job) = self.job.lock().expect("job lock").as_ref() {
            job.abort();
        }
        let mut p = self.progress.lock().expect("progress lock");
        if p.running {
            p.running = false;
            p.stopped_by_user = true;
        }
        Ok(())
    }
}
