//! The routes: REST handlers, the WebSocket stream, the viewer page.

use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, middleware};
use eprof_core::paths::DataDir;
use eprof_format::{Energies, Summary, Trace, export};
use eprof_index::{Index, RunFilter, RunRow, SortKey};
use eprof_record::{
    ModelCatalog, ModelChoice, ProbeSelection, RecordError, RecordRequest, is_valid_run_id,
    new_run_id,
};
use serde::Deserialize;
use serde_json::json;

use crate::error::{ApiError, ApiResult};
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::options::ServeOptions;
use crate::security::{Security, guard};
use crate::worker::{Cancel, Job, Queue, queue_message};

pub struct App {
    pub data: DataDir,
    pub catalog: ModelCatalog,
    pub probe_names: Vec<String>,
    pub power_names: Vec<&'static str>,
    pub opts: ServeOptions,
    pub queue: Arc<Queue>,
    pub hub: Arc<Hub>,
    pub metrics: Arc<Metrics>,
}

type AppState = State<Arc<App>>;

/// Run blocking work (SQLite, file reads, decoding) off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("worker failed: {e}"),
        )
    })?
}

pub fn router(app: Arc<App>, security: Arc<Security>) -> Router {
    let limit = security.max_body_bytes;
    // The page learns it is served by `eprof serve` (and shows the live dashboard and
    // the run history) from this marker, put where `eprof view --html` puts traces.
    let html: Option<Arc<str>> = app.opts.viewer_html.map(|h| {
        h.replacen(
            TRACE_SLOT,
            "<script>window.eprofServer = {api: \"/api\", ws: \"/ws/profiling\"};</script>",
            1,
        )
        .into()
    });
    Router::new()
        .route("/", get(move || page(html.clone())))
        .route("/api/profiling/generate", axum::routing::post(generate))
        .route("/api/profiling/runs", get(runs))
        .route("/api/profiling/run/{id}", get(run_trace).delete(delete_run))
        .route("/api/profiling/run/{id}/summary", get(run_summary))
        .route("/api/profiling/run/{id}/pipeline", get(run_pipeline))
        .route("/api/profiling/export/{id}", get(export_run))
        .route("/api/models", get(models))
        .route("/api/power", get(power))
        .route("/ws/profiling", get(ws))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .with_state(app)
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(security, guard))
}

pub fn view_router(
    html: &'static str,
    traces: Vec<(String, Vec<u8>)>,
    security: Arc<Security>,
) -> Router {
    let traces = Arc::new(traces);
    Router::new()
        .route("/", get(move || page(Some(html.into()))))
        .route(
            "/trace/{i}/{name}",
            get(move |Path((i, _name)): Path<(usize, String)>| {
                let traces = Arc::clone(&traces);
                async move {
                    match traces.get(i) {
                        Some((_, bytes)) => octets(bytes.clone()),
                        None => not_found().await.into_response(),
                    }
                }
            }),
        )
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(security, guard))
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such endpoint")
        .hint("the API is under /api/profiling/ and /api/models, /api/power; see docs/api.md")
}

/// Where the viewer page takes what the server adds (`eprof view --html` puts traces
/// there).
pub const TRACE_SLOT: &str = "<!--EPROF-TRACES-->";

async fn page(html: Option<Arc<str>>) -> Response {
    match html {
        Some(h) => (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            h.to_string(),
        )
            .into_response(),
        None => ApiError::new(
            StatusCode::NOT_FOUND,
            "this eprof was built without the viewer",
        )
        .hint("run `cargo xtask viewer`, then rebuild eprof; the API works without it")
        .into_response(),
    }
}

fn octets(bytes: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/octet-stream"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        bytes,
    )
        .into_response()
}

/// Check a request body against what this server allows over HTTP.
fn admit(app: &App, mut req: RecordRequest) -> ApiResult<RecordRequest> {
    req.check()?;
    let n = req.prompt.chars().count();
    if n > app.opts.max_prompt_chars {
        return Err(ApiError::bad(format!(
            "the prompt has {n} characters; this server takes at most {}",
            app.opts.max_prompt_chars
        )));
    }
    if req.max_tokens == 0 || req.max_tokens > app.opts.max_tokens {
        return Err(ApiError::bad(format!(
            "max_tokens must be 1 to {}",
            app.opts.max_tokens
        )));
    }
    if req.out.is_some() {
        return Err(ApiError::bad(
            "a request cannot choose where the trace is written: the server keeps traces in its data directory",
        ));
    }
    let files = req.power.path_args();
    if !files.is_empty() {
        return Err(ApiError::bad(format!(
            "power option(s) {} name files; a request cannot make the server open files",
            files.join(", ")
        ))
        .hint("start `eprof serve` on a machine whose power source works without them"));
    }
    if req.power.name != "auto" && !app.power_names.iter().any(|n| *n == req.power.name) {
        return Err(
            ApiError::bad(format!("unknown power source {:?}", req.power.name)).hint(format!(
                "power sources: auto, {} (GET /api/power)",
                app.power_names.join(", ")
            )),
        );
    }
    if let ProbeSelection::Only(names) = &req.probes
        && let Some(bad) = names.iter().find(|n| !app.probe_names.contains(n))
    {
        return Err(ApiError::bad(format!("unknown probe {bad:?}"))
            .hint(format!("probes here: {}", app.probe_names.join(", "))));
    }
    match &req.model {
        ModelChoice::Default => {}
        ModelChoice::Id(id) => {
            if app.catalog.resolve_model(&req.model).is_err() {
                if app.opts.allow_model_paths && std::path::Path::new(id).exists() {
                    req.model = ModelChoice::Path(id.into());
                } else {
                    return Err(ApiError::new(
                        StatusCode::NOT_FOUND,
                        format!("no model with id {id:?}"),
                    )
                    .hint("GET /api/models lists the models this server can run"));
                }
            }
        }
        ModelChoice::Path(_) if !app.opts.allow_model_paths => {
            return Err(
                ApiError::bad("this server runs models by id, not by path").hint(
                    "GET /api/models lists the ids; `eprof serve --allow-model-paths` allows paths",
                ),
            );
        }
        ModelChoice::Path(_) => {}
    }
    Ok(req)
}

async fn generate(
    State(app): AppState,
    body: Result<Json<RecordRequest>, JsonRejection>,
) -> ApiResult<Response> {
    let Json(req) = body.map_err(|r| {
        let status = r.status();
        let msg = r.body_text();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(status, "the request body is too large")
                .hint(format!("at most {} bytes", app.opts.max_body_bytes))
        } else {
            // axum answers 422 for JSON of the wrong shape; both are a bad request.
            ApiError::bad(msg).hint("the body is a JSON RecordRequest; see docs/api.md")
        }
    })?;
    let req = admit(&app, req)?;
    let id = new_run_id();
    let ahead = app
        .queue
        .push(Job {
            id: id.clone(),
            req,
        })
        .ok_or_else(|| {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the run queue is full")
                .hint("wait for runs to finish, or DELETE queued ones")
        })?;
    app.hub.publish(queue_message(&app.queue.view()));
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, format!("/api/profiling/run/{id}"))],
        Json(json!({
            "id": id,
            "status": if ahead == 0 { "starting" } else { "queued" },
            "queue_position": ahead,
        })),
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
struct RunsQuery {
    model: Option<String>,
    tag: Option<String>,
    experiment: Option<String>,
    prompt: Option<String>,
    group: Option<String>,
    sort: Option<String>,
    limit: Option<u32>,
    offset: Option<u32>,
}

async fn runs(
    State(app): AppState,
    q: Result<Query<RunsQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<serde_json::Value>> {
    let Query(q) = q.map_err(|e| ApiError::bad(e.body_text()))?;
    let filter = RunFilter {
        model: q.model,
        tag: q.tag,
        experiment: q.experiment,
        prompt_contains: q.prompt,
        group: q.group,
        sort: match q.sort.as_deref() {
            None => SortKey::default(),
            Some(s) => SortKey::parse(s)?,
        },
        limit: Some(q.limit.unwrap_or(50).min(1000)),
        offset: q.offset,
    };
    let index = app.data.index();
    blocking(move || {
        let idx = Index::open(&index)?;
        let total = idx.count_matching(&filter)?;
        let rows = idx.list(&filter)?;
        Ok(Json(json!({
            "total": total,
            "offset": filter.offset.unwrap_or(0),
            "limit": filter.limit,
            "runs": rows,
        })))
    })
    .await
}

/// The index row of a run id (or unique prefix), checked first.
fn find(app: &App, id: &str) -> ApiResult<RunRow> {
    if !is_valid_run_id(id) {
        return Err(ApiError::bad(format!("invalid run id {id:?}"))
            .hint("run ids are letters, digits, - and _ (GET /api/profiling/runs lists them)"));
    }
    let idx = Index::open(&app.data.index())?;
    idx.find(id).map_err(|e| {
        let e = ApiError::from(e);
        if app.queue.holds(id) {
            e.hint("the run is queued or running: its trace appears here when it finishes")
        } else {
            e
        }
    })
}

/// A run's trace: its bytes, and the decoded trace.
fn load(app: &App, id: &str) -> ApiResult<(RunRow, Vec<u8>, Trace)> {
    let row = find(app, id)?;
    let bytes = std::fs::read(&row.trace_path).map_err(|e| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("the trace of run {} cannot be read: {e}", row.id),
        )
        .hint("`eprof index rebuild` drops rows of vanished traces")
    })?;
    let trace = eprof_format::decode(&bytes)
        .map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("the trace of run {} is unreadable: {e}", row.id),
            )
        })?
        .trace;
    Ok((row, bytes, trace))
}

#[derive(Debug, Deserialize)]
struct FormatQuery {
    format: Option<String>,
    table: Option<String>,
}

async fn run_trace(
    State(app): AppState,
    Path(id): Path<String>,
    Query(q): Query<FormatQuery>,
) -> ApiResult<Response> {
    blocking(move || {
        let (_, bytes, trace) = load(&app, &id)?;
        match q.format.as_deref() {
            None | Some("eprof") => Ok(octets(bytes)),
            Some("json") => {
                let en = Energies::compute(&trace);
                let s = Summary::compute(&trace, &en);
                Ok(json_text(export::to_json(&trace, &en, &s)))
            }
            Some(other) => Err(ApiError::bad(format!(
                "unknown format {other:?}: use eprof (the default) or json"
            ))),
        }
    })
    .await
}

fn json_text(s: String) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], s).into_response()
}

async fn run_summary(State(app): AppState, Path(id): Path<String>) -> ApiResult<Response> {
    blocking(move || {
        let (_, _, trace) = load(&app, &id)?;
        let en = Energies::compute(&trace);
        Ok(Json(Summary::compute(&trace, &en)).into_response())
    })
    .await
}

async fn run_pipeline(State(app): AppState, Path(id): Path<String>) -> ApiResult<Response> {
    blocking(move || {
        let (row, _, trace) = load(&app, &id)?;
        let en = Energies::compute(&trace);
        let s = Summary::compute(&trace, &en);
        let sections: Vec<_> = trace
            .sections
            .iter()
            .zip(&en.sections)
            .map(|(sec, e)| {
                json!({
                    "phase": sec.phase,
                    "name": sec.name,
                    "step": sec.step,
                    "start_ns": sec.start_ns,
                    "end_ns": sec.end_ns,
                    "duration_ns": sec.duration_ns(),
                    "energy": e,
                })
            })
            .collect();
        Ok(Json(json!({
            "id": row.id,
            "duration_ns": s.duration_ns,
            "total": s.total,
            "phases": s.phases,
            "sections": sections,
        }))
        .into_response())
    })
    .await
}

async fn export_run(
    State(app): AppState,
    Path(id): Path<String>,
    Query(q): Query<FormatQuery>,
) -> ApiResult<Response> {
    blocking(move || {
        let (row, bytes, trace) = load(&app, &id)?;
        let en = Energies::compute(&trace);
        let format = match q.format.as_deref() {
            None => export::Format::Json,
            Some(f) => export::Format::parse(f).ok_or_else(|| {
                ApiError::bad(format!(
                    "unknown export format {f:?}: use json, csv, chrome or eprof"
                ))
            })?,
        };
        let (name, body): (String, Vec<u8>) = match format.render(&trace, &en) {
            export::Rendered::Text(text) => (format.file_name(&row.id, None), text.into_bytes()),
            export::Rendered::TraceFile => (format.file_name(&row.id, None), bytes),
            export::Rendered::Tables(tables) => {
                let names: Vec<String> = tables
                    .iter()
                    .map(|(n, _)| n.trim_end_matches(".csv").to_string())
                    .collect();
                let Some(want) = q.table.as_deref() else {
                    return Err(
                        ApiError::bad("format=csv needs table=NAME (one file per table)")
                            .hint(format!("tables: {}", names.join(", "))),
                    );
                };
                let Some((n, text)) = tables
                    .into_iter()
                    .find(|(n, _)| n.trim_end_matches(".csv") == want)
                else {
                    return Err(ApiError::bad(format!("no table {want:?}"))
                        .hint(format!("tables: {}", names.join(", "))));
                };
                (format.file_name(&row.id, Some(&n)), text.into_bytes())
            }
        };
        Ok((
            [
                (header::CONTENT_TYPE, format.media_type().to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{name}\""),
                ),
            ],
            body,
        )
            .into_response())
    })
    .await
}

async fn delete_run(State(app): AppState, Path(id): Path<String>) -> ApiResult<Response> {
    if !is_valid_run_id(&id) {
        return Err(ApiError::bad(format!("invalid run id {id:?}")));
    }
    match app.queue.cancel(&id) {
        Cancel::Cancelling => {
            return Ok((
                StatusCode::ACCEPTED,
                Json(json!({"id": id, "status": "cancelling",
                    "detail": "the run stops at the next token; its trace is kept with stop reason cancelled"})),
            )
                .into_response());
        }
        Cancel::Dequeued => {
            app.hub.publish(queue_message(&app.queue.view()));
            return Ok(Json(json!({"id": id, "status": "dequeued"})).into_response());
        }
        Cancel::NotQueued => {}
    }
    blocking(move || {
        let mut idx = Index::open(&app.data.index())?;
        let (row, deleted) = idx.delete_run(&id, &app.data.traces(), true)?;
        Ok(
            Json(json!({"id": row.id, "status": "deleted", "trace_deleted": deleted}))
                .into_response(),
        )
    })
    .await
}

async fn models(State(app): AppState) -> ApiResult<Json<serde_json::Value>> {
    let catalog = app.catalog.clone();
    blocking(move || Ok(Json(json!({ "models": catalog.models() })))).await
}

async fn power() -> ApiResult<Json<serde_json::Value>> {
    blocking(|| {
        let reg = eprof_core::Registry::discover().map_err(RecordError::from)?;
        let auto = reg
            .auto_power()
            .map(|(p, why)| json!({"source": p.name, "why": why}));
        Ok(Json(json!({
            "sources": eprof_record::power_sources(&reg),
            "auto": auto.unwrap_or_else(|e| json!({"error": e.to_string()})),
        })))
    })
    .await
}

/// Prometheus scrapes: OpenMetrics when the scraper accepts it, else text 0.0.4.
async fn metrics(State(app): AppState, headers: axum::http::HeaderMap) -> Response {
    let openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/openmetrics-text"));
    let (body, content_type) = app.metrics.render(openmetrics);
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

async fn ws(State(app): AppState, upgrade: WebSocketUpgrade) -> Response {
    upgrade.on_upgrade(move |socket| client(app, socket))
}

/// One WebSocket client: the queue state first, then every event as it is published.
async fn client(app: Arc<App>, mut socket: WebSocket) {
    let me = app.hub.join(queue_message(&app.queue.view()));
    'outer: loop {
        tokio::select! {
            () = me.notify.notified() => {
                let p = me.take();
                if p.overflowed {
                    let _ = socket
                        .send(Message::Close(Some(axum::extract::ws::CloseFrame {
                            code: 1008,
                            reason: "client too slow: its event buffer overflowed".into(),
                        })))
                        .await;
                    break;
                }
                if p.dropped > 0 {
                    let m = json!({"type": "dropped", "power_samples": p.dropped}).to_string();
                    if socket.send(Message::Text(m.into())).await.is_err() {
                        break;
                    }
                }
                for m in p.msgs {
                    if socket.send(Message::Text(m.json.as_ref().into())).await.is_err() {
                        break 'outer;
                    }
                }
            }
            incoming = socket.recv() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break,
                Some(Ok(_)) => {}
            },
        }
    }
    app.hub.leave(&me);
}
