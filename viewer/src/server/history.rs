//! The run history: pages of finished runs, opened in the views by a click.

use std::collections::BTreeSet;

use leptos::prelude::*;
use leptos::task::spawn_local;
use serde_json::Value;
use wasm_bindgen::prelude::*;

use super::client::*;
use crate::charts::esc;
use crate::ctx::{Ctx, data_of};
use crate::data::fmt_joules;

pub(super) const PAGE: u64 = 20;

#[component]
pub(super) fn History(finished: RwSignal<u64>) -> impl IntoView {
    let ctx: Ctx = expect_context();
    let model = RwSignal::new(String::new());
    let tag = RwSignal::new(String::new());
    let experiment = RwSignal::new(String::new());
    let prompt = RwSignal::new(String::new());
    let sort = RwSignal::new("created".to_string());
    let offset = RwSignal::new(0u64);
    let reload = RwSignal::new(0u64);
    let rows: RwSignal<Vec<Value>> = RwSignal::new(Vec::new());
    let total = RwSignal::new(0u64);
    let selected: RwSignal<BTreeSet<String>> = RwSignal::new(BTreeSet::new());
    let message = RwSignal::new(String::new());
    Effect::new(move |_| {
        finished.track();
        reload.track();
        let mut q = vec![
            format!("sort={}", sort.get()),
            format!("limit={PAGE}"),
            format!("offset={}", offset.get()),
        ];
        for (k, s) in [
            ("model", model),
            ("tag", tag),
            ("experiment", experiment),
            ("prompt", prompt),
        ] {
            let v = s.get();
            if !v.trim().is_empty() {
                q.push(format!(
                    "{k}={}",
                    js_sys::encode_uri_component(v.trim())
                        .as_string()
                        .unwrap_or_default()
                ));
            }
        }
        let path = format!("/api/profiling/runs?{}", q.join("&"));
        spawn_local(async move {
            match api("GET", &path, None).await {
                Ok((200, v)) => {
                    total.set(v["total"].as_u64().unwrap_or(0));
                    rows.set(v["runs"].as_array().cloned().unwrap_or_default());
                }
                Ok((_, v)) => message.set(error_text(&v)),
                Err(e) => message.set(e),
            }
        });
    });
    let table = move || history_table(&rows.get(), &selected.get());
    let on_click = move |ev: web_sys::MouseEvent| {
        if let Some(id) = data_of(&ev, "open") {
            open_runs(ctx, vec![id], None);
        } else if let Some(id) = data_of(&ev, "sel") {
            selected.update(|s| {
                if !s.remove(&id) {
                    s.insert(id);
                }
            });
        } else if let Some(id) = data_of(&ev, "del") {
            let ok = window()
                .confirm_with_message(&format!("Delete run {id} and its trace?"))
                .unwrap_or(false);
            if !ok {
                return;
            }
            spawn_local(async move {
                match api("DELETE", &format!("/api/profiling/run/{id}"), None).await {
                    Ok((200 | 202, _)) => {
                        message.set(format!("deleted {id}"));
                        selected.update(|s| {
                            s.remove(&id);
                        });
                        ctx.traces
                            .update(|t| t.retain(|v| v.name != format!("{id}.eprof")));
                        reload.update(|r| *r += 1);
                    }
                    Ok((_, v)) => message.set(error_text(&v)),
                    Err(e) => message.set(e),
                }
            });
        }
    };
    let filter = |id: &'static str, label: &'static str, sig: RwSignal<String>| {
        view! {
            <label>
                {label}
                " "
                <input id=id size="12" prop:value=move || sig.get() on:change=move |ev| { offset.set(0); sig.set(event_target_value(&ev)); }/>
            </label>
        }
    };
    view! {
        <section id="history">
            <h2>"Run history"</h2>
            <div class="controls">
                {filter("hist-model", "Model", model)}
                {filter("hist-tag", "Tag", tag)}
                {filter("hist-experiment", "Experiment", experiment)}
                {filter("hist-prompt", "Prompt", prompt)}
                <label>
                    "Sort "
                    <select id="hist-sort" prop:value=move || sort.get() on:change=move |ev| { offset.set(0); sort.set(event_target_value(&ev)); }>
                        <option value="created">"date"</option>
                        <option value="energy">"energy"</option>
                        <option value="duration">"duration"</option>
                        <option value="j_per_token">"J/token"</option>
                    </select>
                </label>
                <button id="hist-prev" disabled=move || offset.get() == 0 on:click=move |_| offset.update(|o| *o = o.saturating_sub(PAGE))>"‹ newer"</button>
                <button id="hist-next" disabled=move || offset.get() + PAGE >= total.get() on:click=move |_| offset.update(|o| *o += PAGE)>"older ›"</button>
                <span id="hist-total" class="hint">
                    {move || format!("{} runs; showing {}–{}", total.get(), (offset.get() + 1).min(total.get()), (offset.get() + PAGE).min(total.get()))}
                </span>
                <button
                    id="hist-compare"
                    disabled=move || selected.with(|s| s.len() < 2)
                    on:click=move |_| open_runs(ctx, selected.get_untracked().into_iter().collect(), None)
                >
                    "Compare selected"
                </button>
                <span id="hist-message" class="hint">{move || message.get()}</span>
            </div>
            <div id="hist-table" inner_html=table on:click=on_click></div>
        </section>
    }
}

/// The table of runs, each with its selection box, links and buttons.
fn history_table(rows: &[Value], selected: &BTreeSet<String>) -> String {
    let mut o = String::from(
        "<table class=\"history\"><thead><tr><th></th><th>created</th><th>prompt</th><th>model</th><th>machine</th><th>tokens</th><th>energy</th><th>J/token</th><th>how obtained</th><th>stop</th><th></th></tr></thead><tbody>",
    );
    for r in rows {
        let id = r["id"].as_str().unwrap_or_default().to_string();
        let e = esc(&id);
        let tokens = r["generated_tokens"].as_u64().unwrap_or(0);
        let energy = r["total_j"].as_f64().map_or_else(|| "-".into(), fmt_joules);
        let jpt = r["decode_j_per_token"]
            .as_f64()
            .map_or_else(|| "-".into(), fmt_joules);
        let created = r["created_at_ms"].as_f64().map_or(String::new(), |ms| {
            js_sys::Date::new(&JsValue::from_f64(ms))
                .to_iso_string()
                .as_string()
                .unwrap_or_default()
                .replace('T', " ")[..16]
                .to_string()
        });
        // A link cannot send the Authorization header: on a server with a token
        // the query carries it (the server takes `?token=` on every guarded path).
        let auth_q = auth()
            .map(|t| {
                format!(
                    "&token={}",
                    esc(&js_sys::encode_uri_component(&t)
                        .as_string()
                        .unwrap_or_default())
                )
            })
            .unwrap_or_default();
        let exports = ["json", "chrome", "eprof", "csv&table=tokens"]
            .iter()
            .map(|f| {
                let name = f.split('&').next().unwrap_or(f);
                format!(r#"<a class="hist-export" href="/api/profiling/export/{e}?format={f}{auth_q}" download>{name}</a>"#)
            })
            .collect::<Vec<_>>()
            .join(" ");
        o.push_str(&format!(
            r#"<tr class="hist-row" data-id="{e}"><td><input type="checkbox" class="hist-sel" data-sel="{e}"{checked} aria-label="select {e}"></td><td>{created}</td><td>{prompt}</td><td>{model}</td><td>{host}</td><td>{tokens}</td><td>{energy}</td><td>{jpt}</td><td class="hist-labels">{labels}</td><td class="hist-stop">{stop}</td><td><button class="hist-open" data-open="{e}">open</button> {exports} <button class="hist-del" data-del="{e}">delete</button></td></tr>"#,
            checked = if selected.contains(&id) { " checked" } else { "" },
            prompt = esc(&eprof_format::units::clip(r["prompt"].as_str().unwrap_or_default(), 60)),
            model = esc(r["model"].as_str().unwrap_or_default()),
            host = esc(r["hostname"].as_str().unwrap_or_default()),
            labels = esc(r["label_mix"].as_str().or(r["energy_label"].as_str()).unwrap_or("-")),
            stop = esc(r["stop_reason"].as_str().unwrap_or("-")),
        ));
    }
    o.push_str("</tbody></table>");
    o
}
