//! Start and Stop, the request's settings, and the run's status.

use std::sync::Arc;

use eprof_format::sync::lock;
use leptos::prelude::*;
use leptos::task::spawn_local;
use serde_json::json;

use super::client::*;
use super::inbox::*;

#[component]
pub(super) fn Controls(inbox: Shared, live: Live) -> impl IntoView {
    let form = Form::new();
    let status = RwSignal::new(String::new());
    // The run this panel started: its status follows the run's events (running,
    // then how it ended), not only the answer to the POST.
    let posted = RwSignal::new(String::new());
    {
        let inbox = Arc::clone(&inbox);
        Effect::new(move |_| {
            live.version.track();
            live.finished.track();
            let id = posted.get_untracked();
            if id.is_empty() {
                return;
            }
            // Not started yet: it waits in the queue, as the POST's answer said.
            let Some(text) = run_status(&inbox, &id) else {
                return;
            };
            if status.get_untracked() != text {
                status.set(text);
            }
        });
    }
    let models: RwSignal<Vec<(String, bool)>> = RwSignal::new(Vec::new());
    let sources: RwSignal<Vec<(String, bool, String)>> = RwSignal::new(Vec::new());
    load_choices(form.model, models, sources);
    let inbox_start = Arc::clone(&inbox);
    let start = move |_| {
        let inbox_start = Arc::clone(&inbox_start);
        let body = form.body();
        status.set("sending…".into());
        spawn_local(async move {
            status.set(
                match api("POST", "/api/profiling/generate", Some(body.to_string())).await {
                    Ok((202, v)) => {
                        let id = v["id"].as_str().unwrap_or_default();
                        posted.set(id.to_string());
                        // A short run may have ended before this answer came.
                        if let Some(t) = run_status(&inbox_start, id) {
                            return status.set(t);
                        }
                        match v["queue_position"].as_u64() {
                            Some(0) | None => format!("run {id} starting"),
                            Some(n) => format!("run {id} queued: {n} ahead of it"),
                        }
                    }
                    Ok((_, v)) => format!("refused: {}", error_text(&v)),
                    Err(e) => e,
                },
            );
        });
    };
    let stop = move |_| {
        let run = lock(&inbox).run.clone();
        if run.run_id.is_empty() || run.finished.is_some() {
            status.set("no run is running".into());
            return;
        }
        let inbox = Arc::clone(&inbox);
        spawn_local(async move {
            status.set(
                match api(
                    "DELETE",
                    &format!("/api/profiling/run/{}", run.run_id),
                    None,
                )
                .await
                {
                    // The run may have ended (its status set) before this answer.
                    Ok((202, _)) => match run_status(&inbox, &run.run_id) {
                        Some(t) if t.contains(" finished: ") => t,
                        _ => format!("stopping run {}…", run.run_id),
                    },
                    Ok((_, v)) => format!("stop refused: {}", error_text(&v)),
                    Err(e) => e,
                },
            );
        });
    };
    view! {
        <section id="live-controls">
            <h2>"Profile a prompt"</h2>
            {fields(form, models, sources)}
            <div class="controls">
                <button id="live-start" on:click=start>"Start"</button>
                <button id="live-stop" on:click=stop>"Stop"</button>
                <span id="live-status" aria-live="polite">{move || status.get()}</span>
                <span id="live-queue" class="hint">{move || live.queue_text.get()}</span>
                <span id="live-dropped" class="hint">
                    {move || {
                        let d = live.dropped.get();
                        (d > 0).then(|| format!("{d} power samples dropped (this page fell behind)"))
                    }}
                </span>
            </div>
        </section>
    }
}

/// The request's settings, as the form holds them.
#[derive(Clone, Copy)]
struct Form {
    prompt: RwSignal<String>,
    model: RwSignal<String>,
    depth: RwSignal<String>,
    max_tokens: RwSignal<String>,
    temperature: RwSignal<String>,
    top_k: RwSignal<String>,
    top_p: RwSignal<String>,
    seed: RwSignal<String>,
    power: RwSignal<String>,
    tags: RwSignal<String>,
    experiment: RwSignal<String>,
}

impl Form {
    fn new() -> Form {
        Form {
            prompt: RwSignal::new("Give me three tips for staying healthy.".to_string()),
            model: RwSignal::new(String::new()),
            depth: RwSignal::new("module".to_string()),
            max_tokens: RwSignal::new("64".to_string()),
            temperature: RwSignal::new("0".to_string()),
            top_k: RwSignal::new(String::new()),
            top_p: RwSignal::new(String::new()),
            seed: RwSignal::new("299792458".to_string()),
            power: RwSignal::new("auto".to_string()),
            tags: RwSignal::new(String::new()),
            experiment: RwSignal::new(String::new()),
        }
    }

    /// The body of `POST /api/profiling/generate`.
    fn body(&self) -> serde_json::Value {
        let num = |s: &str| s.trim().parse::<f64>().ok();
        let mut body = json!({
            "prompt": self.prompt.get_untracked(),
            "depth": self.depth.get_untracked(),
            "max_tokens": num(&self.max_tokens.get_untracked()).unwrap_or(64.0) as u64,
            "temperature": num(&self.temperature.get_untracked()).unwrap_or(0.0),
            "seed": num(&self.seed.get_untracked()).unwrap_or(299_792_458.0) as u64,
            "power": self.power.get_untracked(),
            "tags": self
                .tags
                .get_untracked()
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .collect::<Vec<_>>(),
        });
        let m = self.model.get_untracked();
        if !m.is_empty() {
            body["model"] = json!(m);
        }
        if let Some(k) = num(&self.top_k.get_untracked()) {
            body["top_k"] = json!(k as u64);
        }
        if let Some(p) = num(&self.top_p.get_untracked()) {
            body["top_p"] = json!(p);
        }
        let e = self.experiment.get_untracked();
        if !e.trim().is_empty() {
            body["experiment"] = json!(e.trim());
        }
        body
    }
}

/// Fill the model and power source choices from the server; the default model is
/// chosen.
fn load_choices(
    model: RwSignal<String>,
    models: RwSignal<Vec<(String, bool)>>,
    sources: RwSignal<Vec<(String, bool, String)>>,
) {
    spawn_local(async move {
        if let Ok((200, v)) = api("GET", "/api/models", None).await {
            let list: Vec<(String, bool)> = v["models"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|m| {
                    (
                        m["id"].as_str().unwrap_or_default().to_string(),
                        m["default"].as_bool().unwrap_or(false),
                    )
                })
                .collect();
            if let Some((id, _)) = list.iter().find(|m| m.1).or(list.first()) {
                model.set(id.clone());
            }
            models.set(list);
        }
        if let Ok((200, v)) = api("GET", "/api/power", None).await {
            sources.set(
                v["sources"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|s| {
                        (
                            s["name"].as_str().unwrap_or_default().to_string(),
                            s["available"].as_bool().unwrap_or(false),
                            s["detail"].as_str().unwrap_or_default().to_string(),
                        )
                    })
                    .collect(),
            );
        }
    });
}

/// The form's fields: the prompt, and the settings in a row.
fn fields(
    form: Form,
    models: RwSignal<Vec<(String, bool)>>,
    sources: RwSignal<Vec<(String, bool, String)>>,
) -> impl IntoView {
    let text_input = |id: &'static str, label: &'static str, sig: RwSignal<String>, size: u32| {
        view! {
            <label>
                {label}
                " "
                <input
                    id=id
                    size=size.to_string()
                    prop:value=move || sig.get()
                    on:input=move |ev| sig.set(event_target_value(&ev))
                />
            </label>
        }
    };
    let Form {
        prompt,
        model,
        depth,
        max_tokens,
        temperature,
        top_k,
        top_p,
        seed,
        power,
        tags,
        experiment,
    } = form;
    view! {
            <textarea
                id="live-prompt"
                rows="3"
                cols="80"
                prop:value=move || prompt.get()
                on:input=move |ev| prompt.set(event_target_value(&ev))
            ></textarea>
            <div class="controls">
                <label>
                    "Model "
                    <select id="live-model" prop:value=move || model.get() on:change=move |ev| model.set(event_target_value(&ev))>
                        {move || {
                            models
                                .get()
                                .into_iter()
                                .map(|(id, _)| view! { <option value=id.clone()>{id.clone()}</option> })
                                .collect_view()
                        }}
                    </select>
                </label>
                <label>
                    "Depth "
                    <select id="live-depth" prop:value=move || depth.get() on:change=move |ev| depth.set(event_target_value(&ev))>
                        <option value="off">"off"</option>
                        <option value="module">"module"</option>
                        <option value="deep">"deep"</option>
                    </select>
                </label>
                <label>
                    "Power "
                    <select id="live-power" prop:value=move || power.get() on:change=move |ev| power.set(event_target_value(&ev))>
                        <option value="auto">"auto"</option>
                        {move || {
                            sources
                                .get()
                                .into_iter()
                                .map(|(name, ok, detail)| {
                                    let label = if ok { name.clone() } else { format!("{name} (unavailable)") };
                                    view! { <option value=name.clone() disabled=!ok title=detail>{label}</option> }
                                })
                                .collect_view()
                        }}
                    </select>
                </label>
                {text_input("live-max-tokens", "Max tokens", max_tokens, 5)}
                {text_input("live-temperature", "Temperature", temperature, 4)}
                {text_input("live-top-k", "Top-k", top_k, 4)}
                {text_input("live-top-p", "Top-p", top_p, 4)}
                {text_input("live-seed", "Seed", seed, 10)}
                {text_input("live-tags", "Tags", tags, 12)}
                {text_input("live-experiment", "Experiment", experiment, 12)}
            </div>
    }
}
