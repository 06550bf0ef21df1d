//! The run queue and the thread that records: one run at a time (the model and the
//! power source are not shared), in arrival order. The HTTP side only queues jobs and
//! flips cancel flags; it never waits for inference.

use std::collections::VecDeque;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use eprof_format::sync::lock;

use eprof_record::{
    DeviceSpec, ModelChoice, ModelHandle, Profiler, RecordRequest, RunEvent, RunSink,
};
use serde::Serialize;

use crate::hub::{Hub, Msg};
use crate::metrics::Metrics;

pub struct Job {
    pub id: String,
    pub req: RecordRequest,
}

struct Running {
    id: String,
    cancel: Arc<AtomicBool>,
}

#[derive(Default)]
struct State {
    running: Option<Running>,
    waiting: VecDeque<Job>,
    shutdown: bool,
}

/// The queue shared by the HTTP handlers and the recording thread.
pub struct Queue {
    state: Mutex<State>,
    wake: Condvar,
    max_waiting: usize,
}

/// What the queue holds, as sent to WebSocket clients (`{"type": "queue", ...}`).
#[derive(Debug, Clone, Serialize)]
pub struct QueueView {
    pub running: Option<String>,
    pub queued: Vec<String>,
}

/// What DELETE did to a run the queue holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancel {
    /// It is running: it stops at the next step boundary, its trace is kept.
    Cancelling,
    /// It was waiting and is gone.
    Dequeued,
    NotQueued,
}

impl Queue {
    pub fn new(max_waiting: usize) -> Self {
        Queue {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            max_waiting,
        }
    }

    /// Add a job; returns how many runs are ahead of it (0: it starts now), or `None`
    /// when the queue is full.
    pub fn push(&self, job: Job) -> Option<usize> {
        let mut st = lock(&self.state);
        if st.waiting.len() >= self.max_waiting {
            return None;
        }
        let ahead = st.waiting.len() + usize::from(st.running.is_some());
        st.waiting.push_back(job);
        self.wake.notify_all();
        Some(ahead)
    }

    pub fn view(&self) -> QueueView {
        let st = lock(&self.state);
        QueueView {
            running: st.running.as_ref().map(|r| r.id.clone()),
            queued: st.waiting.iter().map(|j| j.id.clone()).collect(),
        }
    }

    /// Whether a run with this exact id is running or waiting.
    pub fn holds(&self, id: &str) -> bool {
        let st = lock(&self.state);
        st.running.as_ref().is_some_and(|r| r.id == id) || st.waiting.iter().any(|j| j.id == id)
    }

    pub fn cancel(&self, id: &str) -> Cancel {
        let mut st = lock(&self.state);
        if let Some(r) = st.running.as_ref().filter(|r| r.id == id) {
            r.cancel.store(true, Ordering::Release);
            return Cancel::Cancelling;
        }
        let before = st.waiting.len();
        st.waiting.retain(|j| j.id != id);
        if st.waiting.len() < before {
            Cancel::Dequeued
        } else {
            Cancel::NotQueued
        }
    }

    /// Stop the worker after the current run (which is cancelled).
    pub fn shutdown(&self) {
        let mut st = lock(&self.state);
        st.shutdown = true;
        if let Some(r) = &st.running {
            r.cancel.store(true, Ordering::Release);
        }
        self.wake.notify_all();
    }

    /// Wait for the next job and mark it running.
    fn next(&self) -> Option<(Job, Arc<AtomicBool>)> {
        let mut st = lock(&self.state);
        loop {
            if st.shutdown {
                return None;
            }
            if let Some(job) = st.waiting.pop_front() {
                let cancel = Arc::new(AtomicBool::new(false));
                st.running = Some(Running {
                    id: job.id.clone(),
                    cancel: Arc::clone(&cancel),
                });
                return Some((job, cancel));
            }
            st = self.wake.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn done(&self) {
        lock(&self.state).running = None;
    }
}

/// Serialize for the clients.
pub fn message<T: Serialize>(v: &T, droppable: bool) -> Msg {
    Msg {
        json: serde_json::to_string(v)
            .unwrap_or_else(|e| format!("{{\"type\":\"error\",\"message\":\"{e}\"}}"))
            .into(),
        droppable,
    }
}

pub fn queue_message(q: &QueueView) -> Msg {
    #[derive(Serialize)]
    struct M<'a> {
        r#type: &'static str,
        #[serde(flatten)]
        q: &'a QueueView,
    }
    message(&M { r#type: "queue", q }, false)
}

/// A run event for the clients, with its run's id: `run_started`,
/// `inference_complete` and `error` carry it themselves; the others (power samples,
/// sections, tokens, metrics, notes) get it here, so a client that connects mid-run,
/// or watches queued runs, knows whose event it is.
pub fn run_message(e: &RunEvent, run_id: &str) -> Msg {
    let droppable = matches!(e, RunEvent::PowerSample { .. });
    let mut m = message(e, droppable);
    let has_id = matches!(
        e,
        RunEvent::RunStarted(_) | RunEvent::InferenceComplete { .. } | RunEvent::Error { .. }
    );
    // Serialized as `{"type":...}`: the id (letters, digits, `-`, `_`: nothing to
    // escape) goes first.
    if !has_id && m.json.starts_with('{') && eprof_record::is_valid_run_id(run_id) {
        m.json = format!("{{\"run_id\":\"{run_id}\",{}", &m.json[1..]).into();
    }
    m
}

/// Sends each event to the hub; `Break` once the run is cancelled.
struct HubSink<'a> {
    hub: &'a Hub,
    metrics: &'a Metrics,
    cancel: &'a Arc<AtomicBool>,
    run_id: &'a str,
}

impl RunSink for HubSink<'_> {
    fn event(&mut self, e: &RunEvent) -> ControlFlow<()> {
        self.metrics.observe(e);
        self.hub.publish(run_message(e, self.run_id));
        if self.cancel.load(Ordering::Acquire) {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }

    fn cancel_flag(&self) -> Option<Arc<AtomicBool>> {
        Some(Arc::clone(self.cancel))
    }
}

/// The recording thread's loop: runs jobs until shutdown. The last model stays
/// loaded for the next run that asks for the same one.
pub fn run(profiler: Profiler, queue: Arc<Queue>, hub: Arc<Hub>, metrics: Arc<Metrics>) {
    let mut cached: Option<(ModelChoice, DeviceSpec, ModelHandle)> = None;
    while let Some((job, cancel)) = queue.next() {
        hub.publish(queue_message(&queue.view()));
        let mut sink = HubSink {
            hub: &hub,
            metrics: &metrics,
            cancel: &cancel,
            run_id: &job.id,
        };
        let same = cached
            .as_ref()
            .is_some_and(|(m, d, _)| *m == job.req.model && *d == job.req.device);
        if !same {
            cached = None;
            match profiler.load_model(&job.req.model, job.req.device) {
                Ok(h) => cached = Some((job.req.model.clone(), job.req.device, h)),
                Err(e) => {
                    let _ = sink.event(&eprof_record::error_event(&job.id, &e));
                }
            }
        }
        if let Some((_, _, model)) = cached.as_mut() {
            // Failures reach the clients as an `error` event from `record` itself, a
            // panic too (it catches them); a model a run panicked on is reloaded.
            if let Err(e) = profiler.record(model, &job.req, &job.id, &mut sink)
                && e.panicked
            {
                cached = None;
            }
        }
        metrics.job_done();
        queue.done();
        hub.publish(queue_message(&queue.view()));
    }
}
