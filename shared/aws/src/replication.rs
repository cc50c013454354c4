//! The replication dbsync drives, whichever kind the deployment names: a DMS
//! replication task (`REPLICATION_TASK_ARN`) or a DMS Serverless replication
//! config (`REPLICATION_CONFIG_ARN`). One type behind every DMS port, so the
//! functions pick the adapter once, at cold start, from the ARN.

use dbsync_workflow::{
    ports::{
        DescribeTask, EndpointInfo, InspectTask, StartKind, StartRefusal, StartTask, StopTask,
        TaskConfig, TaskState,
    },
    steps::replication::ReplicationKind,
    StepError,
};

use crate::{dms::DmsTask, dms_serverless::DmsServerless};

/// A DMS task or a DMS Serverless replication config.
#[derive(Debug, Clone)]
pub enum Replication {
    Task(DmsTask),
    Serverless(DmsServerless),
}

impl Replication {
    /// The adapter for `kind`, on one SDK client.
    pub fn new(kind: ReplicationKind, client: aws_sdk_databasemigration::Client) -> Self {
        match kind {
            ReplicationKind::Task => Self::Task(DmsTask::new(client)),
            ReplicationKind::Serverless => Self::Serverless(DmsServerless::new(client)),
        }
    }

    pub fn from_conf(kind: ReplicationKind, config: &aws_config::SdkConfig) -> Self {
        Self::new(kind, aws_sdk_databasemigration::Client::new(config))
    }

    /// Also read the table statistics once a run has ended.
    pub fn with_table_statistics(self) -> Self {
        match self {
            Self::Task(t) => Self::Task(t.with_table_statistics()),
            Self::Serverless(s) => Self::Serverless(s.with_table_statistics()),
        }
    }
}

impl DescribeTask for Replication {
    async fn describe(&self, arn: &str) -> Result<TaskState, StepError> {
        match self {
            Self::Task(t) => t.describe(arn).await,
            Self::Serverless(s) => s.describe(arn).await,
        }
    }
}

impl StartTask for Replication {
    async fn start(&self, arn: &str, kind: StartKind) -> Result<(), StartRefusal> {
        match self {
            Self::Task(t) => t.start(arn, kind).await,
            Self::Serverless(s) => s.start(arn, kind).await,
        }
    }
}

impl StopTask for Replication {
    async fn stop(&self, arn: &str) -> Result<(), StepError> {
        match self {
            Self::Task(t) => t.stop(arn).await,
            Self::Serverless(s) => s.stop(arn).await,
        }
    }
}

impl InspectTask for Replication {
    async fn task_config(&self, arn: &str) -> Result<TaskConfig, StepError> {
        match self {
            Self::Task(t) => t.task_config(arn).await,
            Self::Serverless(s) => s.task_config(arn).await,
        }
    }

    async fn endpoint(&self, arn: &str) -> Result<EndpointInfo, StepError> {
        match self {
            Self::Task(t) => t.endpoint(arn).await,
            Self::Serverless(s) => s.endpoint(arn).await,
        }
    }
}
