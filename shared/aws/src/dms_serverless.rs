//! The DMS Serverless adapter: a replication config driven through the same
//! ports as a replication task (`DescribeTask`, `StartTask`, `StopTask`,
//! `InspectTask`), with the same meaning, so preflight, start-dms, poll-dms and
//! the compensation's stop-and-wait need no other code.
//!
//! What differs from a task, and how it maps:
//! - Statuses: a replication goes `initializing` → `preparing_metadata_resources`
//!   → `testing_connection` → `fetching_metadata` → `calculating_capacity` →
//!   `provisioning_capacity` → `replication_starting` → `running` → `stopped`
//!   (or `failed`); the provisioning ones map to `starting` with
//!   [`TaskState::provisioning`] set, so poll-dms waits for capacity on its
//!   own schedule and counts it in `MAX_REPLICATION_SECONDS`.
//! - A config that never ran has no replication yet (or one in `created`): `ready`.
//! - Statistics: `DescribeReplicationTableStatistics`, while the replication
//!   is provisioned; once it deprovisions they are gone (AWS: DMS Serverless
//!   limitations), and the counts are reported unknown, not zero.
//! - Whose run it is: `FreshStartDate`/`StartDate` after the execution began,
//!   or, once they are gone, `ReplicationLastStopTime` after it (see
//!   `run_is_since`); the poll remembers a run it has seen (`runSeen`).
//! - Settings: `DescribeReplicationConfigs` (`ReplicationSettings`,
//!   `ReplicationType`, `TableMappings`).
//!
//! IAM: `dms:DescribeReplications`, `dms:DescribeReplicationConfigs`,
//! `dms:DescribeReplicationTableStatistics`, `dms:DescribeEndpoints`,
//! `dms:StartReplication`, `dms:StopReplication`.

use aws_sdk_databasemigration::{
    types::{Filter, Replication},
    Client,
};
use dbsync_workflow::{
    ports::{
        DescribeTask, EndpointInfo, InspectTask, StartKind, StartRefusal, StartTask, StopTask,
        TaskConfig, TaskState, TaskStatus,
    },
    StepError,
};

use crate::{
    classify,
    dms::{describe_endpoint, start_refusal, stop_outcome, system_time, TableStatistics},
    error_code,
};

/// The statuses of a replication that is getting capacity before it loads.
pub const PROVISIONING_STATUSES: &[&str] = &[
    "initializing",
    "preparing_metadata_resources",
    "testing_connection",
    "fetching_metadata",
    "calculating_capacity",
    "provisioning_capacity",
    "replication_starting",
];

/// A replication's status as the task ports name it, and whether it is still
/// provisioning.
pub fn status_of(raw: &str) -> (TaskStatus, bool) {
    if PROVISIONING_STATUSES.contains(&raw) {
        return (TaskStatus::Starting, true);
    }
    let status = match raw {
        // A config that has not run (or whose last run was cleaned up).
        "created" | "ready" => TaskStatus::Ready,
        // Capacity released after a run: not writing, the run's outcome kept.
        "deprovisioning" | "deprovisioned" => TaskStatus::Stopped,
        other => TaskStatus::from(other),
    };
    (status, false)
}

/// One DMS Serverless replication config, reached through the SDK.
#[derive(Debug, Clone)]
pub struct DmsServerless {
    client: Client,
    row_counts: bool,
}

impl DmsServerless {
    pub fn new(client: Client) -> Self {
        Self {
            client,
            row_counts: false,
        }
    }

    /// Also read the table statistics once a run has ended (see `DmsTask`).
    pub fn with_table_statistics(mut self) -> Self {
        self.row_counts = true;
        self
    }

    fn filter(config: &str) -> Result<Filter, StepError> {
        Filter::builder()
            .name("replication-config-arn")
            .values(config)
            .build()
            .map_err(|e| StepError::Configuration(format!("cannot build the DMS filter: {e}")))
    }

    /// The config's replication, if it has one.
    async fn replication(&self, config: &str) -> Result<Option<Replication>, StepError> {
        match self
            .client
            .describe_replications()
            .filters(Self::filter(config)?)
            .send()
            .await
        {
            Ok(out) => Ok(out
                .replications()
                .iter()
                .find(|r| r.replication_config_arn() == Some(config))
                .cloned()),
            // No replication yet: the config has never been started.
            Err(e) if error_code(&e) == Some("ResourceNotFoundFault") => Ok(None),
            Err(e) => Err(classify("DescribeReplications", &e)),
        }
    }

    /// The replication's table statistics; `None` when DMS no longer has
    /// them (capacity released: `InvalidResourceStateFault`, or the
    /// replication gone: `ResourceNotFoundFault`), or reports none.
    async fn table_statistics(&self, config: &str) -> Result<Option<TableStatistics>, StepError> {
        let mut pages = self
            .client
            .describe_replication_table_statistics()
            .replication_config_arn(config)
            .max_records(500)
            .into_paginator()
            .send();
        let mut stats = TableStatistics::default();
        while let Some(page) = pages.next().await {
            let page = match page {
                Ok(p) => p,
                Err(e)
                    if matches!(
                        error_code(&e),
                        Some("InvalidResourceStateFault" | "ResourceNotFoundFault")
                    ) =>
                {
                    tracing::info!(code = ?error_code(&e), "the replication's table statistics are gone (capacity released)");
                    return Ok(None);
                }
                Err(e) => return Err(classify("DescribeReplicationTableStatistics", &e)),
            };
            for t in page.replication_table_statistics() {
                stats.add(t);
            }
        }
        Ok(Some(stats).filter(|s| !(s.per_table.is_empty() && s.failed.is_empty())))
    }
}

impl DescribeTask for DmsServerless {
    async fn describe(&self, config: &str) -> Result<TaskState, StepError> {
        let Some(r) = self.replication(config).await? else {
            return Ok(TaskState::default());
        };
        let raw = r.status().unwrap_or("unknown");
        let (status, provisioning) = status_of(raw);
        let stats = r.replication_stats();
        let started_at = stats
            .and_then(|s| s.fresh_start_date().or(s.start_date()))
            .and_then(system_time);
        // Deprovisioning loses a replication's table statistics (AWS, DMS
        // Serverless limitations), at any moment after the run stops: then
        // the counts are unknown — said so by the verification — never a
        // failure, nor zero rows per table.
        let (rows_loaded, failed_tables, table_rows) =
            if self.row_counts && matches!(status, TaskStatus::Stopped | TaskStatus::Failed) {
                match self.table_statistics(config).await? {
                    Some(s) => (Some(s.rows), s.failed, s.per_table),
                    None => (None, Vec::new(), Vec::new()),
                }
            } else {
                (None, Vec::new(), Vec::new())
            };
        Ok(TaskState {
            status,
            stopped_at: r.replication_last_stop_time().and_then(system_time),
            stop_reason: r.stop_reason().map(str::to_owned),
            last_failure_message: Some(r.failure_messages().join("; ")).filter(|m| !m.is_empty()),
            ever_started: started_at.is_some()
                || r.replication_last_stop_time().is_some()
                || !matches!(raw, "created" | "ready"),
            started_at,
            full_load_progress_percent: stats.map(|s| s.full_load_progress_percent()),
            tables_loaded: stats.map_or(0, |s| s.tables_loaded().into()),
            tables_loading: stats.map_or(0, |s| s.tables_loading().into()),
            tables_queued: stats.map_or(0, |s| s.tables_queued().into()),
            tables_errored: stats.map_or(0, |s| s.tables_errored().into()),
            rows_loaded,
            failed_tables,
            table_rows,
            provisioning,
            detail: Some(raw.to_owned()),
            load_started_at: stats
                .and_then(|s| s.full_load_start_date())
                .and_then(system_time),
        })
    }
}

impl InspectTask for DmsServerless {
    async fn task_config(&self, config: &str) -> Result<TaskConfig, StepError> {
        let out = match self
            .client
            .describe_replication_configs()
            .filters(Self::filter(config)?)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) if error_code(&e) == Some("ResourceNotFoundFault") => {
                return Err(StepError::ReplicationTaskNotFound(config.to_owned()))
            }
            Err(e) => return Err(classify("DescribeReplicationConfigs", &e)),
        };
        let c = out
            .replication_configs()
            .iter()
            .find(|c| c.replication_config_arn() == Some(config))
            .ok_or_else(|| StepError::ReplicationTaskNotFound(config.to_owned()))?;
        let settings = match c.replication_settings() {
            Some(text) => serde_json::from_str(text).map_err(|e| {
                StepError::ReplicationTaskMisconfigured(format!(
                    "its ReplicationSettings are not JSON ({e})"
                ))
            })?,
            None => serde_json::Value::Null,
        };
        let status = match self.replication(config).await? {
            Some(r) => status_of(r.status().unwrap_or("unknown")).0,
            None => TaskStatus::Ready,
        };
        Ok(TaskConfig {
            status,
            migration_type: c
                .replication_type()
                .map(|m| m.as_str().to_owned())
                .unwrap_or_default(),
            settings,
            table_mappings: c.table_mappings().map(str::to_owned),
            source_endpoint_arn: c.source_endpoint_arn().map(str::to_owned),
            target_endpoint_arn: c.target_endpoint_arn().map(str::to_owned),
        })
    }

    async fn endpoint(&self, arn: &str) -> Result<EndpointInfo, StepError> {
        describe_endpoint(&self.client, arn).await
    }
}

impl StartTask for DmsServerless {
    async fn start(&self, config: &str, kind: StartKind) -> Result<(), StartRefusal> {
        match self
            .client
            .start_replication()
            .replication_config_arn(config)
            .start_replication_type(kind.as_str())
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => Err(start_refusal("StartReplication", config, &e)),
        }
    }
}

impl StopTask for DmsServerless {
    async fn stop(&self, config: &str) -> Result<(), StepError> {
        match self
            .client
            .stop_replication()
            .replication_config_arn(config)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => stop_outcome("StopReplication", config, &e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provisioning_statuses_are_starting_and_the_rest_keep_their_meaning() {
        for s in PROVISIONING_STATUSES {
            assert_eq!(status_of(s), (TaskStatus::Starting, true), "{s}");
        }
        assert_eq!(status_of("created"), (TaskStatus::Ready, false));
        assert_eq!(status_of("running"), (TaskStatus::Running, false));
        assert_eq!(status_of("stopping"), (TaskStatus::Stopping, false));
        assert_eq!(status_of("stopped"), (TaskStatus::Stopped, false));
        assert_eq!(status_of("failed"), (TaskStatus::Failed, false));
        assert_eq!(status_of("deprovisioned"), (TaskStatus::Stopped, false));
        assert_eq!(
            status_of("something_new"),
            (TaskStatus::Other("something_new".into()), false)
        );
    }
}
