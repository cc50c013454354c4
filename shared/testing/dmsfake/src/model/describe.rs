//! The task's documents: `DescribeReplicationTasks`, table statistics (paged
//! as DMS pages them) and endpoints.

use super::*;

impl Inner {
    pub(super) fn task_json(&self, s: &State, with_settings: bool) -> Value {
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

    pub(super) fn stats_json(&self, s: &State) -> Value {
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

    pub(super) fn describe_tasks(&self, req: &Value) -> Result<Value, ApiError> {
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

    pub(super) fn table_statistics(&self, req: &Value) -> Result<Value, ApiError> {
        self.check_task(req["ReplicationTaskArn"].as_str())?;
        let (page, marker) = self.statistics_page(req)?;
        let mut out = json!({"ReplicationTaskArn": self.task.arn, "TableStatistics": page});
        if let Some(m) = marker {
            out["Marker"] = json!(m);
        }
        Ok(out)
    }

    /// One page of the current run's table statistics (both APIs' rows).
    pub(super) fn statistics_page(
        &self,
        req: &Value,
    ) -> Result<(Vec<Value>, Option<String>), ApiError> {
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

    pub(super) fn endpoints(&self, req: &Value) -> Result<Value, ApiError> {
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
