//! The Step Functions adapter. IAM: `states:StartExecution` and
//! `states:ListExecutions` on the state machine.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `STATE_MACHINE_ARN` | the sync state machine | required |
//!
//! Plus the SDK's own variables (`AWS_REGION`, `AWS_ENDPOINT_URL`, …).

use aws_sdk_sfn::{types::ExecutionStatus, Client};
use dbsync_workflow::StepError;

use crate::{Executions, Start};

/// One state machine, reached through the SDK.
#[derive(Debug, Clone)]
pub struct StateMachine {
    client: Client,
    arn: String,
}

impl StateMachine {
    pub fn new(client: Client, arn: String) -> Self {
        Self { client, arn }
    }

    /// `STATE_MACHINE_ARN`.
    pub fn from_env(sdk: &dbsync_aws::SdkConfig) -> Result<Self, StepError> {
        let arn = std::env::var("STATE_MACHINE_ARN")
            .ok()
            .map(|v| v.trim().to_owned())
            .filter(|v| v.starts_with("arn:"))
            .ok_or_else(|| {
                StepError::Configuration(
                    "set STATE_MACHINE_ARN to the sync state machine's ARN".into(),
                )
            })?;
        Ok(Self::new(Client::new(sdk), arn))
    }
}

impl Executions for StateMachine {
    async fn running(&self) -> Result<Vec<String>, StepError> {
        let out = self
            .client
            .list_executions()
            .state_machine_arn(&self.arn)
            .status_filter(ExecutionStatus::Running)
            .max_results(10)
            .send()
            .await
            .map_err(|e| dbsync_aws::classify("ListExecutions", &e))?;
        Ok(out
            .executions()
            .iter()
            .map(|e| e.name().to_owned())
            .collect())
    }

    async fn start(&self, name: &str, input: &str) -> Result<Start, StepError> {
        match self
            .client
            .start_execution()
            .state_machine_arn(&self.arn)
            .name(name)
            .input(input)
            .send()
            .await
        {
            Ok(out) => Ok(Start::Started {
                execution_arn: out.execution_arn().to_owned(),
            }),
            Err(e) if dbsync_aws::error_code(&e) == Some("ExecutionAlreadyExists") => {
                Ok(Start::AlreadyExists)
            }
            Err(e) => Err(dbsync_aws::classify("StartExecution", &e)),
        }
    }
}
