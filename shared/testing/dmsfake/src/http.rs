//! The HTTP side: HTTP/1.1 with keep-alive (hyper), awsJson1_1 framing,
//! fault injection, and the record of every call.

use std::{convert::Infallible, sync::Arc};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{body::Incoming, server::conn::http1, service::service_fn, Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::{net::TcpListener, task::JoinSet};

use crate::{model::ApiError, model::Inner, Call, Fault, Op};

/// The `X-Amz-Target` prefix of DMS's operations.
const TARGET_PREFIX: &str = "AmazonDMSv20160101.";
/// The namespace the error codes carry in `__type` (the SDK strips it).
const ERROR_NAMESPACE: &str = "com.amazonaws.dms";

/// Accepts connections until the task is aborted (which drops, and so
/// aborts, every connection it serves).
pub(crate) async fn serve(listener: TcpListener, inner: Arc<Inner>) {
    let mut connections = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        while connections.try_join_next().is_some() {}
        let inner = inner.clone();
        connections.spawn(async move {
            let service = service_fn(move |req| {
                let inner = inner.clone();
                async move { Ok::<_, Infallible>(handle(&inner, req).await) }
            });
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn handle(inner: &Inner, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let target = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return error(&ApiError::invalid(format!("cannot read the body: {e}"))),
    };
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let name = target.strip_prefix(TARGET_PREFIX).unwrap_or(&target);
    let op = Op::from_name(name).filter(|_| target.starts_with(TARGET_PREFIX));
    let fault = op.and_then(|op| inner.take_call_fault(op));
    let index = {
        let mut calls = inner.calls.lock().expect("calls");
        calls.push(Call {
            operation: name.to_owned(),
            request: request.clone(),
            fault: fault.clone(),
        });
        calls.len() - 1
    };
    let Some(op) = op else {
        return error(&ApiError::invalid(format!(
            "Unknown operation: X-Amz-Target {target:?}"
        )));
    };
    if !request.is_object() {
        return error(&ApiError::invalid("the body must be a JSON object"));
    }
    tracing::debug!(operation = op.as_str(), ?fault, "DMS fake call");
    let result = match fault {
        Some(Fault::Throttle) => return error(&ApiError::throttled()),
        Some(Fault::ServerError) => return error(&ApiError::internal()),
        Some(Fault::ServerErrorAfterApplying) => {
            let _ = inner.call(op, &request, index).await;
            return error(&ApiError::internal());
        }
        _ => inner.call(op, &request, index).await,
    };
    match result {
        Ok(v) => respond(200, &v),
        Err(e) => error(&e),
    }
}

fn respond(status: u16, body: &Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amzn-requestid", request_id())
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("a valid response")
}

fn error(e: &ApiError) -> Response<Full<Bytes>> {
    respond(
        e.status,
        &json!({"__type": format!("{ERROR_NAMESPACE}#{}", e.code), "message": e.message}),
    )
}

fn request_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "00000000-0000-4000-8000-{:012x}",
        N.fetch_add(1, Ordering::Relaxed)
    )
}
