//! Test helpers (feature `test-util`): DMS answers for `aws-smithy-mocks`
//! rules, as `DescribeReplicationTasks` would return them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_databasemigration::{
    error::ErrorMetadata,
    operation::describe_replication_tasks::DescribeReplicationTasksOutput,
    types::{ReplicationTask, ReplicationTaskStats},
};
use aws_smithy_types::DateTime;

/// The task every mocked answer describes.
pub const TASK: &str = "arn:aws:dms:us-east-1:123456789012:task:DBSYNCFULLLOAD";

/// A task's state as DMS reports it.
#[derive(Debug, Clone, Default)]
pub struct Task {
    pub status: &'static str,
    pub stop_reason: Option<&'static str>,
    pub failure: Option<&'static str>,
    /// Seconds ago the current run started (`None`: never started).
    pub started_secs_ago: Option<u64>,
    pub percent: i32,
    pub loaded: i32,
    pub loading: i32,
    pub queued: i32,
    pub errored: i32,
}

impl Task {
    pub fn new(status: &'static str) -> Self {
        Self {
            status,
            ..Default::default()
        }
    }

    pub fn output(&self) -> DescribeReplicationTasksOutput {
        let mut t = ReplicationTask::builder()
            .replication_task_arn(TASK)
            .replication_task_identifier("dbsync-full-load")
            .status(self.status);
        if let Some(r) = self.stop_reason {
            t = t.stop_reason(r);
        }
        if let Some(m) = self.failure {
            t = t.last_failure_message(m);
        }
        let mut stats = ReplicationTaskStats::builder()
            .full_load_progress_percent(self.percent)
            .tables_loaded(self.loaded)
            .tables_loading(self.loading)
            .tables_queued(self.queued)
            .tables_errored(self.errored)
            .elapsed_time_millis(0);
        if let Some(ago) = self.started_secs_ago {
            let at = SystemTime::now() - Duration::from_secs(ago);
            let at = DateTime::from_secs(at.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64);
            t = t.replication_task_start_date(at);
            stats = stats.start_date(at).fresh_start_date(at);
        }
        DescribeReplicationTasksOutput::builder()
            .replication_tasks(t.replication_task_stats(stats.build()).build())
            .build()
    }
}

/// The DMS adapter over a client answering with `rules` (aws-smithy-mocks),
/// with the production retry policy, only faster.
pub fn mocked_task(rules: &[&aws_smithy_mocks::Rule]) -> crate::dms::DmsTask {
    crate::dms::DmsTask::new(aws_smithy_mocks::mock_client!(
        aws_sdk_databasemigration,
        aws_smithy_mocks::RuleMode::MatchAny,
        rules,
        |b| b.retry_config(crate::retry_config().with_initial_backoff(Duration::from_millis(1)))
    ))
}

/// An error answer with DMS's code and message.
pub fn error(code: &str, message: &str) -> ErrorMetadata {
    ErrorMetadata::builder().code(code).message(message).build()
}

/// DMS's answer to `start-replication` on a task that ran before.
pub const NOT_FIRST_RUN: &str =
    "Start Type : START_REPLICATION, valid only for tasks running for the first time";

/// `$$.Execution.StartTime` of an execution that started `ago` seconds ago.
pub fn execution_started(ago: u64) -> String {
    let at = SystemTime::now() - Duration::from_secs(ago);
    DateTime::from(at)
        .fmt(aws_smithy_types::date_time::Format::DateTime)
        .expect("a valid time")
}

/// The serverless replication config every mocked serverless answer describes.
pub const CONFIG: &str = "arn:aws:dms:us-east-1:123456789012:replication-config:DBSYNCSERVERLESS";

/// A serverless replication's state as `DescribeReplications` reports it.
#[derive(Debug, Clone, Default)]
pub struct Serverless {
    pub status: &'static str,
    pub stop_reason: Option<&'static str>,
    pub failure: Option<&'static str>,
    /// Seconds ago the current run started (`None`: never started).
    pub started_secs_ago: Option<u64>,
    /// Seconds ago its full load began (after provisioning).
    pub load_started_secs_ago: Option<u64>,
    pub percent: i32,
    pub loaded: i32,
    pub errored: i32,
}

impl Serverless {
    pub fn new(status: &'static str) -> Self {
        Self {
            status,
            ..Default::default()
        }
    }

    pub fn output(
        &self,
    ) -> aws_sdk_databasemigration::operation::describe_replications::DescribeReplicationsOutput
    {
        use aws_sdk_databasemigration::types::{Replication, ReplicationStats};
        let ago = |secs: u64| {
            let at = SystemTime::now() - Duration::from_secs(secs);
            DateTime::from_secs(at.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64)
        };
        let mut r = Replication::builder()
            .replication_config_arn(CONFIG)
            .replication_config_identifier("dbsync-serverless")
            .status(self.status);
        if let Some(reason) = self.stop_reason {
            r = r.stop_reason(reason);
        }
        if let Some(m) = self.failure {
            r = r.failure_messages(m);
        }
        if let Some(started) = self.started_secs_ago {
            let mut stats = ReplicationStats::builder()
                .full_load_progress_percent(self.percent)
                .tables_loaded(self.loaded)
                .tables_errored(self.errored)
                .start_date(ago(started))
                .fresh_start_date(ago(started));
            if let Some(load) = self.load_started_secs_ago {
                stats = stats.full_load_start_date(ago(load));
            }
            r = r.replication_stats(stats.build());
        }
        aws_sdk_databasemigration::operation::describe_replications::DescribeReplicationsOutput::builder()
            .replications(r.build())
            .build()
    }
}

/// The serverless adapter over a client answering with `rules`.
pub fn mocked_serverless(
    rules: &[&aws_smithy_mocks::Rule],
) -> crate::dms_serverless::DmsServerless {
    crate::dms_serverless::DmsServerless::new(aws_smithy_mocks::mock_client!(
        aws_sdk_databasemigration,
        aws_smithy_mocks::RuleMode::MatchAny,
        rules,
        |b| b.retry_config(crate::retry_config().with_initial_backoff(Duration::from_millis(1)))
    ))
}
