//! The Step Functions adapter. IAM: `states:StartExecution` and
//! `states:ListExecutions` on the state machine.

use aws_sdk_sfn::{types::ExecutionStatus, Client};
use dbsync_workflow::{
    ports::{Executions, Start},
    StepError,
};

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

    pub fn from_conf(sdk: &crate::SdkConfig, arn: String) -> Self {
        Self::new(Client::new(sdk), arn)
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
            .map_err(|e| crate::classify("ListExecutions", &e))?;
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
            Err(e) if crate::error_code(&e) == Some("ExecutionAlreadyExists") => {
                Ok(Start::AlreadyExists)
            }
            Err(e) => Err(crate::classify("StartExecution", &e)),
        }
    }
}
