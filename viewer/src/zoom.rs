//! The time views and what they share: the shown window of the trace's clock (zoomed
//! and panned in step on the time track and the power chart) and the selected range,
//! with what it cost (the same [`RangeCost`] as `eprof show --from --to`).
//!
//! Mouse: the wheel zooms around the pointer, a drag selects a range, a shift-drag
//! pans, a click picks the token under it, a double click shows the whole run.
//! Keys (anywhere but a text field): `+`/`-` zoom, `0` shows the whole run, the
//! arrows move the token, Esc clears the range and the token.

use std::sync::Arc;

use eprof_format::layout::Measure;
use eprof_format::range::RangeCost;
use leptos::prelude::*;
use wasm_bindgen::JsCast;

use crate::charts::{self, POWER_LEFT, POWER_PLOT};
use crate::ctx::Ctx;
use crate::data::{PowerSeries, TraceView, fmt_joules, fmt_ns};

/// The narrowest window a zoom goes to (ns).
const MIN_SPAN: u64 = 2_000;

/// The time views' shared state.
#[derive(Clone, Copy)]
struct Time {
    ctx: Ctx,
    /// The whole pipeline, the window when nothing is zoomed.
    full: (u64, u64),
    /// A drag in progress: where it started (ns, client x, plot width in px), the
    /// window then, and whether it pans (shift held) rather than selects.
    drag: StoredValue<Option<Drag>>,
}

#[derive(Clone, Copy)]
struct Drag {
    t: u64,
    x: f64,
    px: f64,
    window: (u64, u64),
    pan: bool,
    moved: bool,
}

impl Time {
    fn window(&self) -> (u64, u64) {
        self.ctx.zoom.get().unwrap_or(self.full)
    }

    fn window_untracked(&self) -> (u64, u64) {
        self.ctx.zoom.get_untracked().unwrap_or(self.full)
    }

    /// Show `[a, b]`, kept inside the pipeline and no narrower than [`MIN_SPAN`].
    fn show(&self, a: f64, b: f64) {
        let (s, e) = (self.full.0 as f64, self.full.1 as f64);
        let mut w = (b - a).clamp((MIN_SPAN as f64).min(e - s), e - s);
        // Zooming out to within rounding of the whole run is the whole run.
        if w > (e - s) * 0.999 {
            w = e - s;
        }
        let a = a.clamp(s, e - w);
        let (a, b) = (a.round() as u64, (a + w).round() as u64);
        self.ctx.zoom.set(((a, b) != self.full).then_some((a, b)));
    }

    /// Zoom by `factor` (< 1 in) keeping the time at `frac` of the plot in place.
    fn zoom(&self, factor: f64, frac: f64) {
        let (a, b) = self.window_untracked();
        let (a, b) = (a as f64, b as f64);
        let at = a + frac * (b - a);
        let w = (b - a) * factor;
        self.show(at - frac * w, at - frac * w + w);
    }

    /// Where a pointer event falls: the fraction of the plot, the time there, and
    /// the plot's width in CSS pixels.
    fn at(&self, ev: &web_sys::MouseEvent) -> Option<(f64, u64, f64)> {
        let el: web_sys::Element = ev.target()?.dyn_into().ok()?;
        let svg = el.closest("svg").ok()??;
        let r = svg.get_bounding_client_rect();
        if r.width() <= 0.0 {
            return None;
        }
        let x = (f64::from(ev.client_x()) - r.left()) / r.width() * 1000.0;
        let frac = ((x - POWER_LEFT) / POWER_PLOT).clamp(0.0, 1.0);
        let (a, b) = self.window_untracked();
        let t = a as f64 + frac * (b - a) as f64;
        Some((frac, t.round() as u64, r.width() * POWER_PLOT / 1000.0))
    }
}

/// The pointer handlers of a zoomable plot (wheel, mouse down, move, up), for the
/// element that holds its SVG.
#[allow(clippy::type_complexity)]
fn handlers(
    t: Time,
    v: Arc<TraceView>,
) -> (
    impl Fn(web_sys::WheelEvent) + Clone + 'static,
    impl Fn(web_sys::MouseEvent) + Clone + 'static,
    impl Fn(web_sys::MouseEvent) + Clone + 'static,
    impl Fn(web_sys::MouseEvent) + Clone + 'static,
) {
    let on_wheel = move |ev: web_sys::WheelEvent| {
        let Some((frac, _, px)) = t.at(&ev) else {
            return;
        };
        ev.prevent_default();
        let (dx, dy) = (ev.delta_x(), ev.delta_y());
        if ev.shift_key() || dx.abs() > dy.abs() {
            let (a, b) = t.window_untracked();
            let d = if dx.abs() > dy.abs() { dx } else { dy };
            let shift = d / px.max(1.0) * (b - a) as f64;
            t.show(a as f64 + shift, b as f64 + shift);
        } else if dy != 0.0 {
            t.zoom(if dy > 0.0 { 1.25 } else { 0.8 }, frac);
        }
    };
    let on_down = move |ev: web_sys::MouseEvent| {
        if ev.button() != 0 {
            return;
        }
        let Some((_, at, px)) = t.at(&ev) else {
            return;
        };
        ev.prevent_default();
        t.drag.set_value(Some(Drag {
            t: at,
            x: f64::from(ev.client_x()),
            px,
            window: t.window_untracked(),
            pan: ev.shift_key(),
            moved: false,
        }));
    };
    let on_move = move |ev: web_sys::MouseEvent| {
        let Some(mut d) = t.drag.get_value() else {
            return;
        };
        let dx = f64::from(ev.client_x()) - d.x;
        if dx.abs() < 3.0 && !d.moved {
            return;
        }
        d.moved = true;
        t.drag.set_value(Some(d));
        if d.pan {
            let (a, b) = d.window;
            let shift = -dx / d.px.max(1.0) * (b - a) as f64;
            t.show(a as f64 + shift, b as f64 + shift);
        } else if let Some((_, now, _)) = t.at(&ev) {
            t.ctx.range.set(Some((d.t.min(now), d.t.max(now))));
        }
    };
    let on_up = move |ev: web_sys::MouseEvent| {
        let Some(d) = t.drag.get_value() else {
            return;
        };
        t.drag.set_value(None);
        if !d.moved && !d.pan {
            // A click: the token whose step is under the pointer.
            let step = t.at(&ev).and_then(|(_, at, _)| {
                v.trace
                    .steps()
                    .into_iter()
                    .find(|s| s.start_ns <= at && at <= s.end_ns)
                    .map(|s| s.index)
            });
            if step.is_some() {
                t.ctx.step.set(step);
            }
        }
    };
    (on_wheel, on_down, on_move, on_up)
}

/// The selected range's cost, or how to select one.
fn range_panel(v: &TraceView, range: Option<(u64, u64)>) -> String {
    use crate::charts::esc;
    let Some((a, b)) = range else {
        return r#"<p class="hint">Drag across the time track or the power chart to see what that stretch cost; the wheel zooms, shift-drag pans, a double click shows the whole run.</p>"#.into();
    };
    let r = RangeCost::of(&v.trace, &v.energies, a, b);
    let mut o = format!(
        r#"<div id="range-cost" data-from="{a}" data-to="{b}" data-joules="{j}" data-tokens="{tk}"><b>{from} to {to}</b> ({d})"#,
        j = r.total.map_or(String::from("-"), |e| e.joules.to_string()),
        tk = r.tokens.map_or(String::new(), |(f, l)| format!("{f}-{l}")),
        from = fmt_ns(a as f64),
        to = fmt_ns(b as f64),
        d = fmt_ns(r.duration_ns as f64),
    );
    match r.total {
        Some(e) => o.push_str(&format!(
            ": <b>{}</b> ({}), {} average",
            fmt_joules(e.joules),
            e.label.as_str(),
            r.avg_power_w.map_or("-".into(), eprof_format::units::watts)
        )),
        None => o.push_str(": no energy (the power source gave no readings)"),
    }
    let chans: Vec<String> = r
        .channels
        .iter()
        .filter_map(|c| {
            c.joules
                .map(|j| format!("{} {}", esc(&c.name), fmt_joules(j)))
        })
        .collect();
    if chans.len() > 1 {
        o.push_str(&format!(" · per channel: {}", chans.join(", ")));
    }
    if let (Some((f, l)), Some((sf, sl))) = (r.tokens, r.steps) {
        o.push_str(&format!(" · tokens #{f} to #{l} (steps {sf} to {sl})"));
    }
    if !r.phases.is_empty() {
        o.push_str(&format!(" · in {}", esc(&r.phases.join(", "))));
    }
    let mix: Vec<String> = r
        .label_mix
        .iter()
        .map(|(l, n)| format!("{} {n}", l.as_str()))
        .collect();
    if !mix.is_empty() {
        o.push_str(&format!(" · figures inside: {}", mix.join(" · ")));
    }
    o.push_str(&format!(
        r#"<br><span class="hint">The same figure from the command line: <code>eprof show {} --from {a} --to {b}</code></span></div>"#,
        esc(&v.trace.meta.id)
    ));
    o
}

/// The pipeline timeline: the time track (zoomable) and the breakdown by phase and
/// section (sized by the measure).
#[component]
pub fn TimelineSection(v: Arc<TraceView>, measure: RwSignal<Measure>) -> impl IntoView {
    let t = time(&v);
    let vv = v.clone();
    let track = Memo::new(move |_| {
        let (a, b) = t.window();
        charts::time_track(&vv, a, b, t.ctx.range.get(), t.ctx.step.get())
    });
    let vv = v.clone();
    let breakdown = Memo::new(move |_| charts::timeline(&vv, measure.get()));
    let (on_wheel, on_down, on_move, on_up) = handlers(t, v);
    let up2 = on_up.clone();
    view! {
        <section id="timeline">
            <h2>"Pipeline timeline"</h2>
            <ZoomBar t=t/>
            <div
                class="chart-box zoomable"
                id="track-box"
                inner_html=move || track.get()
                on:wheel=on_wheel
                on:mousedown=on_down
                on:mousemove=on_move
                on:mouseup=on_up
                on:mouseleave=up2
                on:dblclick=move |_| t.ctx.zoom.set(None)
            ></div>
            <h3>"Where the time (or energy) of each phase went"</h3>
            <div class="chart-box" id="breakdown-box" inner_html=move || breakdown.get()></div>
        </section>
    }
}

/// The zoom buttons and what is shown.
#[component]
fn ZoomBar(t: Time) -> impl IntoView {
    let shown = move || {
        let (a, b) = t.window();
        format!(
            "showing {} to {} ({})",
            fmt_ns(a as f64),
            fmt_ns(b as f64),
            fmt_ns((b - a) as f64)
        )
    };
    view! {
        <div class="controls zoom-bar">
            <button class="zoom-in" on:click=move |_| t.zoom(0.5, 0.5)>"+"</button>
            <button class="zoom-out" on:click=move |_| t.zoom(2.0, 0.5)>"−"</button>
            <button class="zoom-reset" on:click=move |_| t.ctx.zoom.set(None)>"whole run"</button>
            <button
                class="zoom-range"
                disabled=move || t.ctx.range.get().is_none()
                on:click=move |_| {
                    if let Some((a, b)) = t.ctx.range.get_untracked() {
                        t.show(a as f64, b as f64);
                    }
                }
            >"zoom to range"</button>
            <span class="zoom-shown">{shown}</span>
        </div>
    }
}

/// Power over time, zoomable with the time track, and the selected range's cost.
#[component]
pub fn PowerSection(v: Arc<TraceView>) -> impl IntoView {
    let t = time(&v);
    let hover: RwSignal<Option<usize>> = RwSignal::new(None);
    let readout = RwSignal::new(String::new());
    let vv = v.clone();
    let series = Memo::new(move |_| match t.ctx.zoom.get() {
        None => vv.power.clone(),
        Some((a, b)) => PowerSeries::window(&vv, a, b, 400),
    });
    let vv = v.clone();
    let power = Memo::new(move |_| {
        series.with(|ps| charts::power(&vv, ps.as_ref(), hover.get(), t.ctx.range.get()))
    });
    let vv = v.clone();
    let panel = Memo::new(move |_| range_panel(&vv, t.ctx.range.get()));
    let (on_wheel, on_down, on_move, on_up) = handlers(t, v);
    let hover_move = move |ev: web_sys::MouseEvent| {
        on_move(ev.clone());
        if let Some((frac, _, _)) = t.at(&ev) {
            series.with_untracked(|ps| {
                if let Some(ps) = ps {
                    let (i, text) = ps.readout(frac);
                    hover.set(Some(i));
                    readout.set(text);
                }
            });
        }
    };
    let up2 = on_up.clone();
    view! {
        <section id="power">
            <h2>"Power over time"</h2>
            <p class="readout" aria-live="polite">{move || readout.get()}</p>
            <div
                class="chart-box zoomable"
                id="power-box"
                inner_html=move || power.get()
                on:wheel=on_wheel
                on:mousedown=on_down
                on:mousemove=hover_move
                on:mouseup=on_up
                on:mouseleave=move |ev| {
                    up2(ev);
                    hover.set(None);
                }
                on:dblclick=move |_| t.ctx.zoom.set(None)
            ></div>
            <div class="range-panel" inner_html=move || panel.get()></div>
            <button class="range-clear" on:click=move |_| t.ctx.range.set(None)>"clear range"</button>
        </section>
    }
}

fn time(v: &TraceView) -> Time {
    let ctx = expect_context::<Ctx>();
    Time {
        ctx,
        full: v.trace.pipeline_bounds().unwrap_or((0, 1)),
        drag: StoredValue::new(None),
    }
}

/// The keys of the time views and the token selection, on the whole page while a
/// trace is shown (not in text fields and menus).
pub fn keys(v: Arc<TraceView>) {
    let t = time(&v);
    let handle = window_event_listener(leptos::ev::keydown, move |ev| {
        if let Some(el) = ev
            .target()
            .and_then(|x| x.dyn_into::<web_sys::Element>().ok())
        {
            let tag = el.tag_name().to_ascii_lowercase();
            if matches!(tag.as_str(), "input" | "select" | "textarea") {
                return;
            }
        }
        if ev.ctrl_key() || ev.meta_key() || ev.alt_key() {
            return;
        }
        let steps = &v.steps.step;
        let row = t.ctx.step.get_untracked().and_then(|s| v.steps.row(s));
        match ev.key().as_str() {
            "+" | "=" => t.zoom(0.5, 0.5),
            "-" | "_" => t.zoom(2.0, 0.5),
            "0" => t.ctx.zoom.set(None),
            "Escape" => {
                t.ctx.range.set(None);
                t.ctx.step.set(None);
            }
            "ArrowRight" => {
                let next = row.map_or(0, |r| (r + 1).min(steps.len().saturating_sub(1)));
                t.ctx.step.set(steps.get(next).copied());
            }
            "ArrowLeft" => {
                let prev = row.map_or(0, |r| r.saturating_sub(1));
                t.ctx.step.set(steps.get(prev).copied());
            }
            _ => return,
        }
        ev.prevent_default();
    });
    on_cleanup(move || handle.remove());
}
