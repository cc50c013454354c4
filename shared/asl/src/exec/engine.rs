//! The `Engine` of one execution (handler, clock, history, context object) and
//! its main loop: run a graph state by state, and run one state — enter it, hand it
//! to the code for its type, apply the payload limit and `Assign`, exit it.
//! The code for each family of state types is in a sibling module, as further
//! `impl Engine` / `impl Run` blocks.

use super::callbacks::{Observer, TaskHandler};
use super::failure::{Failure, Run, Stop};
use crate::clock::{BoxFuture, Clock};
use crate::definition::{Graph, Kind, State};
use crate::history::{EventType, HistoryEvent};
use crate::time;
use serde_json::{json, Map, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use tokio_util::sync::CancellationToken;

/// Workflow variables of one scope.
pub(super) type Vars = Map<String, Value>;

/// What a state hands on: its output, and the state to go to next (`None` ends the
/// graph).
pub(super) type Exit = (Value, Option<String>);

/// One execution's shared state.
pub(super) struct Engine {
    pub(super) handler: Arc<dyn TaskHandler>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) cancel: CancellationToken,
    pub(super) observer: Option<Arc<dyn Observer>>,
    pub(super) history: Mutex<Vec<HistoryEvent>>,
    pub(super) transitions: AtomicU64,
    pub(super) execution: Value,
    pub(super) state_machine: Value,
}

impl Engine {
    pub(super) fn emit(
        &self,
        ty: EventType,
        st: Option<&State>,
        fill: impl FnOnce(&mut HistoryEvent),
    ) -> u64 {
        let mut h = self.history.lock().expect("history lock");
        let id = h.len() as u64 + 1;
        let mut e = HistoryEvent::new(id, self.clock.now(), ty);
        if let Some(st) = st {
            e.state_name = Some(st.name.clone());
            e.state_type = Some(st.type_name);
        }
        fill(&mut e);
        if let Some(o) = &self.observer {
            o.on_event(&e);
        }
        h.push(e);
        id
    }

    pub(super) fn context(&self, st: &State, entered: SystemTime, retry: Option<u32>) -> Value {
        let mut state = Map::new();
        state.insert("EnteredTime".into(), time::format_time(entered).into());
        state.insert("Name".into(), st.name.clone().into());
        if let Some(r) = retry {
            state.insert("RetryCount".into(), r.into());
        }
        json!({
            "Execution": self.execution,
            "StateMachine": self.state_machine,
            "State": state,
        })
    }

    pub(super) fn run_graph(
        self: Arc<Self>,
        g: Arc<Graph>,
        input: Value,
        mut vars: Map<String, Value>,
    ) -> BoxFuture<'static, Result<(Value, Vars), Stop>> {
        Box::pin(async move {
            let mut cur = g.start_at.clone();
            let mut data = input;
            loop {
                if self.cancel.is_cancelled() {
                    return Err(Stop::Abort);
                }
                let st = g.states.get(&cur).expect("validated transition").clone();
                let (out, next) = self.clone().run_state(&st, data, &mut vars).await?;
                match next {
                    Some(n) => {
                        cur = n;
                        data = out;
                    }
                    None => return Ok((out, vars)),
                }
            }
        })
    }

    async fn run_state(
        self: Arc<Self>,
        st: &State,
        raw: Value,
        vars: &mut Map<String, Value>,
    ) -> Result<Exit, Stop> {
        let entered_at = self.clock.now();
        let entered_id = self.emit(EventType::StateEntered, Some(st), |e| {
            e.input = Some(raw.clone());
        });
        self.transitions.fetch_add(1, Ordering::Relaxed);
        let run = Run { st, entered_id };
        let retries = matches!(
            st.kind,
            Kind::Task { .. } | Kind::Parallel { .. } | Kind::Map(_)
        );
        let ctx = self.context(st, entered_at, retries.then_some(0));
        let mut pending = Vec::new();

        let (out, next) = match &st.kind {
            Kind::Pass { result } => run.pass(result.as_ref(), &raw, &ctx, vars, &mut pending)?,
            Kind::Succeed => run.succeed(&raw, &ctx, vars)?,
            Kind::Fail { error, cause } => {
                return Err(run
                    .fail(error.as_ref(), cause.as_ref(), &raw, &ctx, vars)?
                    .into())
            }
            Kind::Choice { choices, default } => {
                run.choice(choices, default.as_ref(), &raw, &ctx, vars, &mut pending)?
            }
            Kind::Wait(w) => self.wait(&run, w, &raw, &ctx, vars, &mut pending).await?,
            Kind::Task { .. } | Kind::Parallel { .. } | Kind::Map(_) => {
                return self.run_with_recovery(&run, raw, vars, entered_at).await;
            }
        };
        if too_large(&out) {
            return Err(data_limit(st));
        }
        for (k, v) in pending {
            vars.insert(k, v);
        }
        self.emit(EventType::StateExited, Some(st), |e| {
            e.output = Some(out.clone());
        });
        Ok((out, next))
    }
}

/// AWS's limit on any state's input or output: 256 KiB of UTF-8 JSON.
const MAX_PAYLOAD: usize = 256 * 1024;

pub(super) fn too_large(v: &Value) -> bool {
    serde_json::to_vec(v).is_ok_and(|b| b.len() > MAX_PAYLOAD)
}

pub(super) fn data_limit(st: &State) -> Stop {
    Failure::new(
        "States.DataLimitExceeded",
        Some(format!(
            "The state/task '{}' returned a result with a size exceeding the maximum number of bytes service limit.",
            st.name
        )),
    )
    .into()
}
