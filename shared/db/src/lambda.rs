//! The Lambda entry point shared by the database steps: read the
//! configuration once, keep the session across invocations, turn each event
//! into a call of the step's handler with the time left before its deadline.

use std::future::Future;

use dbsync_workflow::StepError;
use lambda_runtime::{service_fn, LambdaEvent};
use serde::Serialize;
use serde_json::Value;

use crate::{env::StepEnv, Budget};

/// Runs a database step under the Lambda runtime until the runtime stops it.
///
/// A configuration error does not crash the cold start: every invocation
/// answers with it (`ConfigurationError`), so Step Functions sees a name.
pub async fn serve<F, Fut, O>(app: &'static str, step: F) -> Result<(), lambda_runtime::Error>
where
    F: Fn(&'static StepEnv, Value, Budget) -> Fut,
    Fut: Future<Output = Result<O, StepError>>,
    O: Serialize,
{
    lambda_runtime::tracing::init_default_subscriber();
    // Lives for the whole process: leaking it lets handlers borrow it across awaits.
    let env: &'static Result<StepEnv, StepError> = Box::leak(Box::new(StepEnv::from_env(app)));
    let step = &step;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let env = env.as_ref().map_err(Clone::clone)?;
        let budget = env.budget(event.context.deadline);
        let result = step(env, event.payload, budget).await;
        if matches!(result, Err(StepError::DatabaseUnavailable(_))) {
            env.db.reset().await;
        }
        result
    }))
    .await
}
