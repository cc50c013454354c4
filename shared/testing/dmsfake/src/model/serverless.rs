//! DMS Serverless: a replication config's statuses (provisioning, running,
//! deprovisioning), its replication document, and its Describe operations.

use super::*;

impl Inner {
    /// Whether a stopped serverless run's capacity has been released (its
    /// start dates and statistics gone), and whether it is still going.
    pub(super) fn released(&self, s: &State) -> Option<bool> {
        let after = self.task.deprovision_after?.as_secs_f64();
        let stopped = s.stop_date.filter(|_| !s.status.is_active())?;
        let since = now() - stopped;
        (since >= after).then_some(since < after * 2.0)
    }

    /// Whether a serverless start's capacity is in place (its start dates show).
    pub(super) fn provisioned(&self, s: &State) -> bool {
        s.provision_until.is_none_or(|until| now() >= until)
    }

    /// A serverless replication's status: the provisioning stages by how far
    /// provisioning has come, else the task status in DMS Serverless's words.
    pub(super) fn serverless_status(&self, s: &State) -> &'static str {
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

    pub(super) fn replication_json(&self, s: &State) -> Value {
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

    pub(super) fn describe_configs(&self, req: &Value) -> Result<Value, ApiError> {
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

    pub(super) fn describe_replications(&self, req: &Value) -> Result<Value, ApiError> {
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
}
