//! Execution history, shaped after AWS `GetExecutionHistory` events.

use serde_json::{Map, Value};
use std::fmt;
use std::time::SystemTime;

/// What happened. State events combine with the state type for their AWS name
/// (`StateEntered` of a Pass state is `PassStateEntered`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    ExecutionStarted,
    ExecutionSucceeded,
    ExecutionFailed,
    ExecutionAborted,
    ExecutionTimedOut,
    StateEntered,
    StateExited,
    StateAborted,
    TaskScheduled,
    TaskStarted,
    TaskSucceeded,
    TaskFailed,
    TaskTimedOut,
    ParallelStateStarted,
    ParallelStateSucceeded,
    ParallelStateFailed,
    MapStateStarted,
    MapStateSucceeded,
    MapStateFailed,
    MapRunStarted,
    MapIterationStarted,
    MapIterationSucceeded,
    MapIterationFailed,
}

/// One history event. Fields that do not apply to the event type are `None`.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryEvent {
    /// 1-based, in recording order (as AWS numbers events).
    pub id: u64,
    pub timestamp: SystemTime,
    pub event_type: EventType,
    pub state_name: Option<String>,
    /// `Pass`, `Task`, … for state events.
    pub state_type: Option<&'static str>,
    pub input: Option<Value>,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub cause: Option<String>,
    /// Task resource for task events.
    pub resource: Option<String>,
    /// Attempt number (0 = first) on `TaskScheduled` and `ParallelStateStarted`.
    pub retry_count: Option<u32>,
    /// Map iteration index.
    pub index: Option<usize>,
    /// Extra details (e.g. Map item count).
    pub detail: Option<Value>,
}

impl HistoryEvent {
    pub(crate) fn new(id: u64, timestamp: SystemTime, event_type: EventType) -> HistoryEvent {
        HistoryEvent {
            id,
            timestamp,
            event_type,
            state_name: None,
            state_type: None,
            input: None,
            output: None,
            error: None,
            cause: None,
            resource: None,
            retry_count: None,
            index: None,
            detail: None,
        }
    }

    /// The AWS event type name, e.g. `PassStateEntered`, `TaskScheduled`.
    pub fn type_name(&self) -> String {
        match self.event_type {
            EventType::StateEntered | EventType::StateExited | EventType::StateAborted => {
                let suffix = match self.event_type {
                    EventType::StateEntered => "StateEntered",
                    EventType::StateExited => "StateExited",
                    _ => "StateAborted",
                };
                format!("{}{suffix}", self.state_type.unwrap_or(""))
            }
            other => format!("{other:?}"),
        }
    }

    /// A JSON rendering (for printing or logs).
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("id".into(), self.id.into());
        m.insert("type".into(), self.type_name().into());
        m.insert(
            "timestamp".into(),
            crate::time::format_time(self.timestamp).into(),
        );
        let mut put = |k: &str, v: Option<Value>| {
            if let Some(v) = v {
                m.insert(k.into(), v);
            }
        };
        put("name", self.state_name.clone().map(Value::from));
        put("input", self.input.clone());
        put("output", self.output.clone());
        put("error", self.error.clone().map(Value::from));
        put("cause", self.cause.clone().map(Value::from));
        put("resource", self.resource.clone().map(Value::from));
        put("retryCount", self.retry_count.map(Value::from));
        put("index", self.index.map(Value::from));
        put("detail", self.detail.clone());
        Value::Object(m)
    }
}

impl fmt::Display for HistoryEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{} {}", self.id, self.type_name())?;
        if let Some(n) = &self.state_name {
            write!(f, " '{n}'")?;
        }
        if let Some(i) = self.index {
            write!(f, " [{i}]")?;
        }
        if let Some(r) = self.retry_count.filter(|r| *r > 0) {
            write!(f, " (retry {r})")?;
        }
        if let Some(e) = &self.error {
            write!(f, " error={e}")?;
        }
        if let Some(c) = &self.cause {
            write!(f, " cause={c}")?;
        }
        if let Some(v) = &self.input {
            write!(f, " input={v}")?;
        }
        if let Some(v) = &self.output {
            write!(f, " output={v}")?;
        }
        Ok(())
    }
}
