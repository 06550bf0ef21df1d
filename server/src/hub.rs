//! Fan-out of run events to WebSocket clients, each with a bounded buffer.
//!
//! Publishing never waits: the recording thread appends the (already serialized)
//! message to every client's queue and wakes its task. A client that reads too slowly
//! first loses its oldest `power_sample` messages (the next message it gets says how
//! many); if its queue still outgrows the hard limit (it has stopped reading
//! altogether), it is disconnected. Either way the run and the other clients go on
//! at full speed.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use eprof_format::sync::lock;

use tokio::sync::Notify;

/// One message for the clients.
#[derive(Debug, Clone)]
pub struct Msg {
    pub json: Arc<str>,
    /// A `power_sample`: the kind a slow client may lose.
    pub droppable: bool,
}

#[derive(Debug, Default)]
pub struct Pending {
    pub msgs: VecDeque<Msg>,
    bytes: usize,
    /// Power samples dropped since the client last got a message.
    pub dropped: u64,
    /// Set when the client fell too far behind and must be disconnected.
    pub overflowed: bool,
}

#[derive(Debug, Default)]
pub struct Client {
    pending: Mutex<Pending>,
    pub notify: Notify,
}

impl Client {
    /// Everything queued for this client, leaving the queue empty.
    pub fn take(&self) -> Pending {
        std::mem::take(&mut *lock(&self.pending))
    }
}

#[derive(Debug)]
pub struct Hub {
    clients: Mutex<Vec<Arc<Client>>>,
    /// Above this many queued bytes, a client's oldest power samples are dropped.
    soft_bytes: usize,
    /// Above this, the client is disconnected.
    hard_bytes: usize,
}

impl Hub {
    pub fn new(soft_bytes: usize, hard_bytes: usize) -> Self {
        Hub {
            clients: Mutex::new(Vec::new()),
            soft_bytes,
            hard_bytes: hard_bytes.max(soft_bytes),
        }
    }

    /// A new client, first sent `hello`.
    pub fn join(&self, hello: Msg) -> Arc<Client> {
        let c = Arc::new(Client::default());
        push(&c, hello, self.soft_bytes, self.hard_bytes);
        lock(&self.clients).push(Arc::clone(&c));
        c
    }

    pub fn leave(&self, c: &Arc<Client>) {
        lock(&self.clients).retain(|x| !Arc::ptr_eq(x, c));
    }

    pub fn clients(&self) -> usize {
        lock(&self.clients).len()
    }

    /// Queue a message for every client; never blocks on a client.
    pub fn publish(&self, msg: Msg) {
        for c in lock(&self.clients).iter() {
            push(c, msg.clone(), self.soft_bytes, self.hard_bytes);
        }
    }
}

fn push(c: &Client, msg: Msg, soft: usize, hard: usize) {
    {
        let mut p = lock(&c.pending);
        if p.overflowed {
            return;
        }
        p.bytes += msg.json.len();
        p.msgs.push_back(msg);
        while p.bytes > soft {
            let Some(i) = p.msgs.iter().position(|m| m.droppable) else {
                break;
            };
            if let Some(m) = p.msgs.remove(i) {
                p.bytes -= m.json.len();
                p.dropped += 1;
            }
        }
        if p.bytes > hard {
            p.msgs.clear();
            p.bytes = 0;
            p.overflowed = true;
        }
    }
    c.notify.notify_one();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(s: &str, droppable: bool) -> Msg {
        Msg {
            json: s.into(),
            droppable,
        }
    }

    #[test]
    fn a_slow_client_loses_power_samples_first_then_is_cut_off() {
        let hub = Hub::new(100, 800);
        let slow = hub.join(msg("hello", false));
        for _ in 0..20 {
            hub.publish(msg(&"p".repeat(10), true));
        }
        hub.publish(msg(&"t".repeat(10), false));
        let p = slow.take();
        assert!(p.dropped > 0, "power samples dropped");
        assert!(p.msgs.iter().map(|m| m.json.len()).sum::<usize>() <= 100);
        assert_eq!(
            p.msgs.front().unwrap().json.as_ref(),
            "hello",
            "others kept"
        );
        assert!(p.msgs.back().is_some_and(|m| !m.droppable));
        assert!(!p.overflowed);
        // Non-droppable messages beyond the hard limit cut the client off.
        for _ in 0..100 {
            hub.publish(msg(&"t".repeat(10), false));
        }
        assert!(slow.take().overflowed);
        hub.leave(&slow);
        assert_eq!(hub.clients(), 0);
    }
}
