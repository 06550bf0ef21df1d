//! End-to-end: a real `eprof serve` on a free loopback port, driven over HTTP and the
//! WebSocket stream, with the built-in tiny model and a synthetic power source (and
//! the real SmolLM2 at deep depth). Every loop here is bounded and stops by itself.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use eprof_tests::{HttpResponse, eprof_bin, http, served_url};
use serde_json::{Value, json};
use tungstenite::{Message, WebSocket};

struct Server {
    dir: tempfile::TempDir,
    child: Child,
    port: u16,
}

impl Server {
    fn start(extra: &[&str]) -> Server {
        Server::start_in(tempfile::tempdir().unwrap(), extra)
    }
    /// A server on an existing data directory (a previous server's).
    fn start_in(dir: tempfile::TempDir, extra: &[&str]) -> Server {
        let mut child = Command::new(eprof_bin())
            .args(["serve", "--port", "0"])
            .args(extra)
            .env("EPROF_HOME", dir.path())
            .env("HOME", dir.path())
            .env_remove("EPROF_MODEL")
            .env_remove("EPROF_TOKEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let (_, port) = served_url(&mut child);
        Server { dir, child, port }
    }
    fn data(&self) -> &Path {
        self.dir.path()
    }
    fn get(&self, path: &str) -> HttpResponse {
        http(self.port, "GET", path, &[], b"")
    }
    fn post(&self, path: &str, body: &Value) -> HttpResponse {
        http(
            self.port,
            "POST",
            path,
            &[("Content-Type", "application/json")],
            body.to_string().as_bytes(),
        )
    }
    fn delete(&self, path: &str) -> HttpResponse {
        http(self.port, "DELETE", path, &[], b"")
    }
    /// The eprof CLI on this server's data directory.
    fn cli(&self, args: &[&str]) -> String {
        let o = Command::new(eprof_bin())
            .args(args)
            .env("EPROF_HOME", self.data())
            .env("HOME", self.data())
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "eprof {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }
    fn ws(&self) -> Ws {
        let stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(120)))
            .unwrap();
        tungstenite::client(format!("ws://127.0.0.1:{}/ws/profiling", self.port), stream)
            .unwrap()
            .0
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

type Ws = WebSocket<TcpStream>;

/// The next JSON message (within the socket's read timeout).
fn next(ws: &mut Ws) -> Value {
    loop {
        match ws.read().expect("a message before the timeout") {
            Message::Text(t) => return serde_json::from_str(&t).unwrap(),
            Message::Close(c) => panic!("closed: {c:?}"),
            _ => {}
        }
    }
}

/// Messages until `inference_complete` (or `error`) of run `id`, at most `limit`.
fn until_complete(ws: &mut Ws, id: &str, limit: usize) -> Vec<Value> {
    let mut out = Vec::new();
    for _ in 0..limit {
        let m = next(ws);
        let done =
            matches!(m["type"].as_str(), Some("inference_complete" | "error")) && m["run_id"] == id;
        out.push(m);
        if done {
            return out;
        }
    }
    panic!("no inference_complete for {id} within {limit} messages");
}

fn tiny_run(tokens: u32) -> Value {
    json!({"prompt": "Give me three tips for staying healthy.", "max_tokens": tokens,
           "power": "synthetic", "idle_ms": 0, "depth": "module", "tags": ["live"]})
}

fn kinds(msgs: &[Value]) -> Vec<&str> {
    msgs.iter().map(|m| m["type"].as_str().unwrap()).collect()
}

#[test]
fn endpoints_answer_with_the_right_codes_and_refuse_hostile_requests() {
    let s = Server::start(&["--model", "builtin:tiny-llama", "--max-body", "4096"]);
    let models = s.get("/api/models");
    assert_eq!(models.status, 200);
    assert_eq!(models.json()["models"][0]["id"], "builtin:tiny-llama");
    let power = s.get("/api/power").json();
    assert!(
        power["sources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "synthetic" && p["available"] == true),
        "{power}"
    );

    // Bad bodies: 400 with a message and a hint; too large: 413.
    let gen_path = "/api/profiling/generate";
    let raw = |body: &[u8]| {
        http(
            s.port,
            "POST",
            gen_path,
            &[("Content-Type", "application/json")],
            body,
        )
    };
    for (body, expect) in [
        (&b"{not json"[..], "JSON"),
        (br#"{"promt":"typo"}"#, "unknown field"),
        (br#"{"prompt":"x","depth":"deeper"}"#, "depth"),
        (br#"{"prompt":"   "}"#, "empty"),
        (
            br#"{"prompt":"x","out":"/tmp/x.eprof"}"#,
            "where the trace is written",
        ),
        (
            br#"{"prompt":"x","model":{"path":"/etc/passwd"}}"#,
            "by id, not by path",
        ),
        (
            br#"{"prompt":"x","power":"replay:/etc/passwd"}"#,
            "name files",
        ),
        (
            br#"{"prompt":"x","power":"nvml:lib=/tmp/evil.so"}"#,
            "name files",
        ),
        (br#"{"prompt":"x","probes":["nope"]}"#, "unknown probe"),
        (
            br#"{"prompt":"x","power":"wattmeter"}"#,
            "unknown power source",
        ),
        (br#"{"prompt":"x","max_tokens":0}"#, "max_tokens"),
        // The idle baseline runs on the only recording thread: bounded.
        (br#"{"prompt":"x","idle_ms":86400000}"#, "idle_ms"),
        (br#"{"prompt":"x","top_p":1.5}"#, "top_p"),
        (br#"{"prompt":"x","temperature":-1}"#, "temperature"),
    ] {
        let r = raw(body);
        assert_eq!(
            r.status,
            400,
            "{}: {}",
            String::from_utf8_lossy(body),
            r.text()
        );
        let j = r.json();
        assert!(
            j["error"].as_str().unwrap().contains(expect),
            "{}: {j}",
            String::from_utf8_lossy(body)
        );
        assert!(j.get("hint").is_some());
    }
    let unknown_model = raw(br#"{"prompt":"x","model":"no-such-model"}"#);
    assert_eq!(unknown_model.status, 404, "{}", unknown_model.text());
    let big = format!(r#"{{"prompt":"{}"}}"#, "a".repeat(10_000));
    let r = raw(big.as_bytes());
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(r.json()["error"].as_str().unwrap().contains("too large"));

    // Foreign Origin on a mutating call or the WebSocket; a non-local Host anywhere.
    let body = tiny_run(2).to_string();
    let r = http(
        s.port,
        "POST",
        gen_path,
        &[
            ("Origin", "http://evil.example"),
            ("Content-Type", "application/json"),
        ],
        body.as_bytes(),
    );
    assert_eq!(r.status, 403, "{}", r.text());
    let r = http(
        s.port,
        "DELETE",
        "/api/profiling/run/0123456789abcdef",
        &[("Origin", "null")],
        b"",
    );
    assert_eq!(r.status, 403);
    let r = http(
        s.port,
        "GET",
        "/ws/profiling",
        &[
            ("Origin", "http://evil.example"),
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ],
        b"",
    );
    assert_eq!(r.status, 403);
    for host in ["evil.example", "evil.example:80", "127.0.0.1.nip.io"] {
        let r = http(s.port, "GET", "/api/models", &[("Host", host)], b"");
        assert_eq!(r.status, 403, "{host}");
    }
    // The page's own origin may mutate.
    let own = format!("http://127.0.0.1:{}", s.port);
    let r = http(
        s.port,
        "DELETE",
        "/api/profiling/run/0123456789abcdef",
        &[("Origin", own.as_str())],
        b"",
    );
    assert_eq!(r.status, 404, "{}", r.text());

    // Run ids: unknown 404, path tricks 400, unknown endpoints 404 (JSON).
    assert_eq!(s.get("/api/profiling/run/0123456789abcdef").status, 404);
    for bad in ["..%2F..%2Fetc%2Fpasswd", "a.b", "%2e%2e"] {
        let r = s.get(&format!("/api/profiling/run/{bad}/summary"));
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
    }
    assert_eq!(s.get("/api/profiling/runs?sort=bogus").status, 400);
    let nf = s.get("/nope");
    assert_eq!(nf.status, 404);
    assert!(nf.json()["error"].is_string());
}

#[test]
fn a_live_run_streams_events_that_match_its_trace_and_every_endpoint_serves_it() {
    let s = Server::start(&["--model", "builtin:tiny-llama"]);
    let mut ws = s.ws();
    let hello = next(&mut ws);
    assert_eq!(hello["type"], "queue");
    assert!(hello["running"].is_null());

    let r = s.post("/api/profiling/generate", &tiny_run(12));
    assert_eq!(r.status, 202, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_string();
    assert_eq!(r.json()["queue_position"], 0);
    assert_eq!(
        r.header("location"),
        Some(&*format!("/api/profiling/run/{id}"))
    );

    let msgs = until_complete(&mut ws, &id, 100_000);
    let k = kinds(&msgs);
    let pos = |t: &str| {
        k.iter()
            .position(|x| *x == t)
            .unwrap_or_else(|| panic!("no {t}: {k:?}"))
    };
    assert!(pos("run_started") < pos("section_start"));
    let starts: Vec<&str> = msgs
        .iter()
        .filter(|m| m["type"] == "section_start")
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        starts,
        ["pre_inference", "prefill", "decode", "post_inference"]
    );
    let done = msgs.last().unwrap();
    assert_eq!(done["type"], "inference_complete");
    assert_eq!(done["stop_reason"], "max_tokens");
    let tokens: Vec<&Value> = msgs
        .iter()
        .filter(|m| m["type"] == "token_complete")
        .collect();
    assert_eq!(tokens.len(), 12);
    for (i, t) in tokens.iter().enumerate() {
        assert_eq!(t["step"], i as u64, "tokens in order");
        assert_eq!(t["provisional"], false, "counter figures are final");
    }
    assert!(pos("token_complete") < pos("inference_complete"));
    assert!(k.contains(&"layer_metrics") && k.contains(&"component_metrics"));
    assert!(k.contains(&"power_sample"));

    // The summary streamed is the one `eprof show --json` prints for the trace.
    let show: Value = serde_json::from_str(&s.cli(&["show", &id, "--json"])).unwrap();
    assert_eq!(done["summary"], show);
    for (t, row) in tokens.iter().zip(
        show["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["phase"] != "prompt"),
    ) {
        assert_eq!(t["position"], row["position"]);
        let (a, b) = (
            t["energy"]["joules"].as_f64().unwrap(),
            row["energy"]["joules"].as_f64().unwrap(),
        );
        assert!((a - b).abs() <= 1e-9 * b.abs().max(1e-12), "{a} vs {b}");
        assert_eq!(t["energy"]["label"], row["energy"]["label"]);
    }
    let text: String = tokens.iter().map(|t| t["text"].as_str().unwrap()).collect();
    assert_eq!(text, done["generated_text"].as_str().unwrap());

    // REST views of the finished run.
    let trace = std::fs::read(done["trace"].as_str().unwrap()).unwrap();
    let bytes = s.get(&format!("/api/profiling/run/{id}"));
    assert_eq!(bytes.status, 200);
    assert_eq!(
        bytes.header("content-type"),
        Some("application/octet-stream")
    );
    assert_eq!(bytes.body, trace);
    let full = s
        .get(&format!("/api/profiling/run/{id}?format=json"))
        .json();
    assert_eq!(full["summary"], show);
    assert_eq!(
        s.get(&format!("/api/profiling/run/{id}/summary")).json(),
        show
    );
    let prefix = &id[..10];
    assert_eq!(
        s.get(&format!("/api/profiling/run/{prefix}/summary"))
            .json(),
        show
    );
    let pipe = s.get(&format!("/api/profiling/run/{id}/pipeline")).json();
    assert_eq!(pipe["phases"], show["phases"]);
    assert!(pipe["sections"].as_array().unwrap().len() >= 4);
    for (fmt, name) in [
        ("json", format!("{id}.json")),
        ("chrome", format!("{id}.chrome.json")),
        ("eprof", format!("{id}.eprof")),
        ("csv&table=tokens", format!("{id}.tokens.csv")),
    ] {
        let r = s.get(&format!("/api/profiling/export/{id}?format={fmt}"));
        assert_eq!(r.status, 200, "{fmt}: {}", r.text());
        assert_eq!(
            r.header("content-disposition"),
            Some(&*format!("attachment; filename=\"{name}\""))
        );
        if fmt == "eprof" {
            assert_eq!(r.body, trace);
        }
    }
    assert_eq!(
        s.get(&format!("/api/profiling/export/{id}?format=csv"))
            .status,
        400
    );
    assert_eq!(
        s.get(&format!("/api/profiling/export/{id}?format=xml"))
            .status,
        400
    );

    // The run list: filters, paging, total.
    let r2 = s.post("/api/profiling/generate", &json!({"prompt": "Other", "max_tokens": 2, "power": "synthetic", "idle_ms": 0, "tags": ["second"]}));
    let id2 = r2.json()["id"].as_str().unwrap().to_string();
    until_complete(&mut ws, &id2, 100_000);
    let all = s.get("/api/profiling/runs").json();
    assert_eq!(all["total"], 2);
    assert_eq!(all["runs"][0]["id"], id2, "newest first");
    let tagged = s.get("/api/profiling/runs?tag=live").json();
    assert_eq!(tagged["total"], 1);
    assert_eq!(tagged["runs"][0]["id"], id);
    let page = s.get("/api/profiling/runs?limit=1&offset=1").json();
    assert_eq!(
        (page["total"].as_u64(), page["runs"][0]["id"].as_str()),
        (Some(2), Some(&*id))
    );
    assert_eq!(s.get("/api/profiling/runs?prompt=Other").json()["total"], 1);

    // DELETE of a finished run: gone from the API, the index and the disk.
    let d = s.delete(&format!("/api/profiling/run/{id2}"));
    assert_eq!(d.status, 200, "{}", d.text());
    assert_eq!(d.json()["status"], "deleted");
    assert_eq!(s.get(&format!("/api/profiling/run/{id2}")).status, 404);
    assert!(!s.cli(&["ls", "--json"]).contains(&id2));
    assert_eq!(s.delete(&format!("/api/profiling/run/{id2}")).status, 404);
}

#[test]
fn runs_queue_up_and_a_running_run_can_be_cancelled() {
    let s = Server::start(&["--model", "builtin:tiny-llama"]);
    let mut ws = s.ws();
    next(&mut ws);
    // Two at once: the second waits behind the first; both complete on their own.
    let a = s.post("/api/profiling/generate", &tiny_run(6)).json();
    let b = s.post("/api/profiling/generate", &tiny_run(6)).json();
    assert_eq!(b["queue_position"], 1, "{b}");
    let (ia, ib) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());
    assert_ne!(ia, ib);
    let ma = until_complete(&mut ws, ia, 100_000);
    let mb = until_complete(&mut ws, ib, 100_000);
    assert!(
        !ma.iter().any(|m| m["run_id"] == ib),
        "the second run starts after the first ends"
    );
    // Every run event says whose it is (a client that connects mid-run needs it);
    // only the queue's own messages have none.
    for (id, msgs) in [(ia, &ma), (ib, &mb)] {
        let events: Vec<&Value> = msgs.iter().filter(|m| m["type"] != "queue").collect();
        assert!(
            events.iter().any(|m| m["type"] == "token_complete"),
            "{events:?}"
        );
        for m in events.iter().skip_while(|m| m["type"] != "run_started") {
            assert_eq!(m["run_id"], *id, "{m}");
        }
    }
    for (id, msgs) in [(ia, &ma), (ib, &mb)] {
        let show: Value = serde_json::from_str(&s.cli(&["show", id, "--json"])).unwrap();
        assert_eq!(show["generated_tokens"], 6);
        assert_eq!(show["complete"], true);
        assert_eq!(msgs.last().unwrap()["summary"], show);
    }

    // A long run, cancelled once its tokens flow: the trace ends `cancelled`.
    let long = s.post("/api/profiling/generate", &tiny_run(5000)).json();
    let id = long["id"].as_str().unwrap().to_string();
    for _ in 0..100_000 {
        if next(&mut ws)["type"] == "token_complete" {
            break;
        }
    }
    let d = s.delete(&format!("/api/profiling/run/{id}"));
    assert_eq!(d.status, 202, "{}", d.text());
    assert_eq!(d.json()["status"], "cancelling");
    let msgs = until_complete(&mut ws, &id, 1_000_000);
    let done = msgs.last().unwrap();
    assert_eq!(done["type"], "inference_complete", "{done}");
    assert_eq!(done["stop_reason"], "cancelled");
    let n = done["summary"]["generated_tokens"].as_u64().unwrap();
    assert!(n < 5000, "{n} tokens");
    let shown = s.cli(&["show", &id]);
    assert!(shown.contains("cancelled"), "{shown}");
    let show: Value = serde_json::from_str(&s.cli(&["show", &id, "--json"])).unwrap();
    assert_eq!(show["complete"], true);

    // A queued run is removed by DELETE before it starts (queued behind one that has
    // started: the worker may still be closing the previous run when a POST arrives).
    let first = s.post("/api/profiling/generate", &tiny_run(3000)).json();
    let fid = first["id"].as_str().unwrap().to_string();
    for _ in 0..1_000_000 {
        let m = next(&mut ws);
        if m["type"] == "run_started" && m["run_id"] == fid {
            break;
        }
    }
    let queued = s.post("/api/profiling/generate", &tiny_run(2)).json();
    let qid = queued["id"].as_str().unwrap();
    let d = s.delete(&format!("/api/profiling/run/{qid}"));
    assert_eq!(d.json()["status"], "dequeued", "{}", d.text());
    let d = s.delete(&format!("/api/profiling/run/{fid}"));
    assert_eq!(d.json()["status"], "cancelling", "{}", d.text());
    let msgs = until_complete(&mut ws, &fid, 1_000_000);
    assert!(
        !msgs.iter().any(|m| m["run_id"] == qid),
        "the dequeued run never started"
    );
    assert_eq!(s.get(&format!("/api/profiling/run/{qid}")).status, 404);
}

#[test]
fn a_client_that_stops_reading_loses_power_samples_not_the_run() {
    let s = Server::start(&["--model", "builtin:tiny-llama", "--ws-buffer", "65536"]);
    // The stalled client: a small receive buffer, so the server's own bounded queue
    // (not the kernel's) holds what it does not read.
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    sock.connect(&std::net::SocketAddr::from(([127, 0, 0, 1], s.port)).into())
        .unwrap();
    let stream: TcpStream = sock.into();
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let (mut slow, _) =
        tungstenite::client(format!("ws://127.0.0.1:{}/ws/profiling", s.port), stream).unwrap();
    let mut fast = s.ws();
    next(&mut fast);

    let started = Instant::now();
    let r = s.post(
        "/api/profiling/generate",
        &json!({"prompt": "Give me three tips for staying healthy.", "max_tokens": 1500,
                "power": "synthetic", "power_interval_ms": 1, "idle_ms": 0, "depth": "off"}),
    );
    let id = r.json()["id"].as_str().unwrap().to_string();
    let msgs = until_complete(&mut fast, &id, 10_000_000);
    let took = started.elapsed();
    assert_eq!(msgs.last().unwrap()["type"], "inference_complete");
    // The reading client gets every token; it may lose power samples only if this
    // test's own thread falls 64 KiB behind (a loaded CI machine), and then it is told.
    let tokens = kinds(&msgs)
        .iter()
        .filter(|k| **k == "token_complete")
        .count();
    let done = msgs.last().unwrap();
    assert_eq!(
        tokens as u64,
        done["summary"]["generated_tokens"].as_u64().unwrap()
    );
    let fast_dropped: u64 = msgs
        .iter()
        .filter(|m| m["type"] == "dropped")
        .map(|m| m["power_samples"].as_u64().unwrap())
        .sum();
    let samples = kinds(&msgs)
        .iter()
        .filter(|k| **k == "power_sample")
        .count()
        + fast_dropped as usize;

    // Now the stalled client reads: told how many samples it lost, then the rest,
    // through the end of the run.
    let mut dropped = 0u64;
    let mut got_samples = 0usize;
    let mut complete = false;
    for _ in 0..10_000_000 {
        let m = next(&mut slow);
        match m["type"].as_str() {
            Some("dropped") => dropped += m["power_samples"].as_u64().unwrap(),
            Some("power_sample") => got_samples += 1,
            Some("inference_complete") => {
                complete = true;
                break;
            }
            _ => {}
        }
    }
    println!(
        "run took {took:?}; {samples} power samples sent; the reading client was told of {fast_dropped} dropped; \
         the stalled client got {got_samples} and was told {dropped} were dropped"
    );
    assert!(complete, "the stalled client still gets the end of the run");
    assert!(
        dropped > 0,
        "the stalled client was told of dropped samples"
    );
    assert_eq!(
        got_samples as u64 + dropped,
        samples as u64,
        "every sample accounted for"
    );
}

/// A server with a token (what `--bind` beyond loopback requires; the tests stay on
/// loopback) refuses every API call and WebSocket without it.
#[test]
fn a_token_is_required_on_every_api_call_and_the_websocket() {
    let s = Server::start(&[
        "--model",
        "builtin:tiny-llama",
        "--token",
        "0123456789abcdef-secret",
    ]);
    let r = s.get("/api/models");
    assert_eq!(r.status, 401, "{}", r.text());
    let r = http(
        s.port,
        "GET",
        "/api/models",
        &[("Authorization", "Bearer wrong-token-0000000")],
        b"",
    );
    assert_eq!(r.status, 401);
    let r = http(
        s.port,
        "GET",
        "/api/models",
        &[("Authorization", "Bearer 0123456789abcdef-secret")],
        b"",
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        s.get("/api/models?token=0123456789abcdef-secret").status,
        200
    );
    let ws = tungstenite::connect(format!("ws://127.0.0.1:{}/ws/profiling", s.port));
    assert!(ws.is_err(), "the WebSocket needs the token too");
    let ok = tungstenite::connect(format!(
        "ws://127.0.0.1:{}/ws/profiling?token=0123456789abcdef-secret",
        s.port
    ));
    assert!(ok.is_ok());
}

#[test]
fn smollm2_deep_every_layer_and_component_of_every_token_arrives() {
    let model = eprof_models::smollm2_path();
    assert!(
        model.exists(),
        "SmolLM2 is missing at {}: run scripts/fetch-model.sh",
        model.display()
    );
    let s = Server::start(&["--model", model.to_str().unwrap()]);
    let mut ws = s.ws();
    next(&mut ws);
    let r = s.post(
        "/api/profiling/generate",
        &json!({"prompt": "Give me three tips for staying healthy.", "max_tokens": 6,
                "power": "synthetic", "idle_ms": 0, "depth": "deep"}),
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_string();
    let msgs = until_complete(&mut ws, &id, 1_000_000);
    let done = msgs.last().unwrap();
    assert_eq!(done["type"], "inference_complete", "{done}");

    // What the trace holds per step, site by site.
    let trace =
        eprof_format::decode_complete(&std::fs::read(done["trace"].as_str().unwrap()).unwrap())
            .unwrap();
    let n_steps = done["summary"]["generated_tokens"].as_u64().unwrap() as u32;
    for step in 0..n_steps {
        let mut want: std::collections::BTreeMap<(Option<u64>, String, Option<String>), u64> =
            Default::default();
        for i in 0..trace.spans.len() {
            if trace.spans.step[i] == step {
                let site = &trace.sites[trace.spans.site[i] as usize];
                *want
                    .entry((
                        site.layer.map(u64::from),
                        site.component.clone(),
                        site.op.clone(),
                    ))
                    .or_default() += trace.spans.end_ns[i] - trace.spans.start_ns[i];
            }
        }
        type Key = (Option<u64>, String, Option<String>);
        let key_of = |site: &eprof_format::SiteDef| -> Key {
            (
                site.layer.map(u64::from),
                site.component.clone(),
                site.op.clone(),
            )
        };
        let mut want_metrics: std::collections::BTreeMap<(Key, String), f32> = Default::default();
        for m in &trace.metrics {
            for i in (0..m.len()).filter(|&i| m.step[i] == step) {
                let site = &trace.sites[m.site[i] as usize];
                want_metrics.insert((key_of(site), m.key()), m.value[i]);
            }
        }
        let mut got_metrics: std::collections::BTreeMap<(Key, String), f32> = Default::default();
        let mut got: std::collections::BTreeMap<Key, u64> = Default::default();
        let mut layers = 0;
        for m in msgs.iter().filter(|m| m["step"] == step) {
            let list = match m["type"].as_str().unwrap() {
                "layer_metrics" => &m["layers"],
                "component_metrics" => &m["components"],
                "operation_metrics" => &m["operations"],
                _ => continue,
            };
            let n = list["duration_ns"].as_array().unwrap().len();
            for col in ["layer", "component", "joules", "label"] {
                assert_eq!(
                    list[col].as_array().unwrap().len(),
                    n,
                    "{col} has a row per site"
                );
            }
            for (name, values) in list["metrics"].as_object().unwrap() {
                assert_eq!(
                    values.as_array().unwrap().len(),
                    n,
                    "{name} has a row per site"
                );
            }
            for r in 0..n {
                if m["type"] == "layer_metrics" {
                    layers += 1;
                }
                let key: Key = (
                    list["layer"][r].as_u64(),
                    list["component"][r].as_str().unwrap().to_string(),
                    list["op"][r].as_str().map(str::to_string),
                );
                for (name, values) in list["metrics"].as_object().unwrap() {
                    if let Some(v) = values[r].as_f64() {
                        got_metrics.insert((key.clone(), name.clone()), v as f32);
                    }
                }
                got.insert(key, list["duration_ns"][r].as_u64().unwrap());
            }
        }
        assert!(
            !want_metrics.is_empty(),
            "probes recorded metrics at step {step}"
        );
        assert_eq!(
            got_metrics, want_metrics,
            "step {step}: every probe value, as in the trace"
        );
        assert_eq!(layers, 30, "step {step}: every layer");
        assert_eq!(
            got, want,
            "step {step}: every site with its time, as in the trace"
        );
        assert!(
            got.keys().any(|k| k.2.as_deref() == Some("softmax")),
            "deep depth streams attention operations"
        );
    }
    let show: Value = serde_json::from_str(&s.cli(&["show", &id, "--json"])).unwrap();
    assert_eq!(done["summary"], show);
}

#[test]
fn a_run_killed_with_its_server_is_in_the_next_servers_history() {
    let mut s = Server::start(&["--model", "builtin:tiny-llama"]);
    let mut ws = s.ws();
    next(&mut ws);
    let run = s.post("/api/profiling/generate", &tiny_run(8000)).json();
    let id = run["id"].as_str().unwrap().to_string();
    let mut tokens = 0;
    for _ in 0..1_000_000 {
        if next(&mut ws)["type"] == "token_complete" {
            tokens += 1;
            if tokens == 50 {
                break;
            }
        }
    }
    // The trace reaches the file at least every 100 ms.
    std::thread::sleep(Duration::from_millis(300));
    let dir = std::mem::replace(&mut s.dir, tempfile::tempdir().unwrap());
    s.child.kill().unwrap(); // SIGKILL: nothing is closed, nothing indexed
    s.child.wait().unwrap();
    drop(s);
    assert!(
        dir.path()
            .join("traces")
            .join(format!("{id}.eprof"))
            .exists()
    );

    let s = Server::start_in(dir, &["--model", "builtin:tiny-llama"]);
    let runs = s.get("/api/profiling/runs").json();
    let ids: Vec<&str> = runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    assert!(ids.contains(&id.as_str()), "{runs}");
    let shown = s.get(&format!("/api/profiling/run/{id}/summary"));
    assert_eq!(shown.status, 200, "{}", shown.text());
    assert!(shown.json()["generated_tokens"].as_u64().unwrap() >= 1);
}

#[test]
fn delete_cancels_a_run_during_its_idle_baseline() {
    let s = Server::start(&["--model", "builtin:tiny-llama"]);
    let mut ws = s.ws();
    next(&mut ws);
    // A minute of idle baseline, the most a request may ask for.
    let body = json!({"prompt": "Hello", "max_tokens": 4, "power": "synthetic", "idle_ms": 60000});
    let run = s.post("/api/profiling/generate", &body).json();
    let id = run["id"].as_str().unwrap().to_string();
    for _ in 0..1000 {
        let m = next(&mut ws);
        if m["type"] == "run_started" && m["run_id"] == id.as_str() {
            break;
        }
    }
    let t = Instant::now();
    let d = s.delete(&format!("/api/profiling/run/{id}"));
    assert_eq!(d.json()["status"], "cancelling", "{}", d.text());
    let msgs = until_complete(&mut ws, &id, 100_000);
    let took = t.elapsed();
    assert!(took < Duration::from_secs(20), "the cancel waited {took:?}");
    let done = msgs.last().unwrap();
    assert_eq!(done["type"], "inference_complete", "{done}");
    assert_eq!(done["stop_reason"], "cancelled");
    // The worker is free: the next run starts and finishes.
    let next_run = s.post("/api/profiling/generate", &tiny_run(2)).json();
    let nid = next_run["id"].as_str().unwrap();
    let m = until_complete(&mut ws, nid, 100_000);
    assert_eq!(m.last().unwrap()["type"], "inference_complete");
}
