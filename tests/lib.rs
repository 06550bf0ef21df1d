//! Helpers of the end-to-end tests in `tests/tests/`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `eprof` binary of this build (`EPROF_BIN` overrides): the test executables live
/// in `target/<profile>/deps/`, the binary in `target/<profile>/`.
pub fn eprof_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("EPROF_BIN") {
        return p.into();
    }
    let exe = std::env::current_exe().expect("the test knows its own path");
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("test executables live in target/<profile>/deps");
    let p = dir.join(format!("eprof{}", std::env::consts::EXE_SUFFIX));
    assert!(
        p.exists(),
        "the eprof binary is not built at {}: run `cargo build -p eprof` first (scripts/test.sh does)",
        p.display()
    );
    p
}

/// The binary run in a fresh data directory (which is also its `HOME`, so nothing of
/// the user's is read), removed when dropped. `EPROF_MODEL` and `RUST_BACKTRACE` are
/// unset: each test says what it runs.
pub struct CliEnv {
    pub dir: tempfile::TempDir,
}

impl Default for CliEnv {
    fn default() -> Self {
        Self::new()
    }
}

impl CliEnv {
    pub fn new() -> Self {
        CliEnv {
            dir: tempfile::tempdir().expect("a temporary folder"),
        }
    }
    pub fn data(&self) -> &Path {
        self.dir.path()
    }
    /// A path in the data directory, as a string for the command line.
    pub fn path(&self, name: &str) -> String {
        self.data()
            .join(name)
            .to_str()
            .expect("a UTF-8 path")
            .to_string()
    }
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(eprof_bin());
        c.args(args)
            .env("EPROF_HOME", self.data())
            .env("HOME", self.data())
            .env_remove("EPROF_MODEL")
            .env_remove("RUST_BACKTRACE");
        c
    }
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("eprof runs")
    }
    /// Run, require success, return stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "eprof {args:?} failed ({:?}):\n{}\n{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).expect("UTF-8 output")
    }
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let out = self.ok(args);
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("eprof {args:?} printed no JSON ({e}):\n{out}"))
    }
    /// `eprof record` of a fixed prompt with `extra` flags; the run's id.
    pub fn record(&self, extra: &[&str]) -> String {
        let mut args = vec![
            "record",
            "Give me three tips for staying healthy.",
            "--idle-ms",
            "20",
            "--quiet",
            "--json",
        ];
        args.extend_from_slice(extra);
        let v = self.json(&args);
        assert!(v["summary"]["total"].is_object(), "{v}");
        assert!(Path::new(v["trace"].as_str().expect("a trace path")).exists());
        v["id"].as_str().expect("an id").to_string()
    }
    /// A run of the built-in tiny model on the synthetic source.
    pub fn record_tiny(&self, tokens: u32) -> String {
        let n = tokens.to_string();
        self.record(&[
            "--model",
            "builtin:tiny-llama",
            "--power",
            "synthetic",
            "--max-tokens",
            &n,
        ])
    }
}

/// An HTTP/1.1 answer.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    /// Header lines, names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// One request to 127.0.0.1:`port`, written byte for byte as given: the tests need
/// to send what a well-behaved client would not (a foreign Host or Origin, an
/// oversized body), which is why this is not an HTTP client library. `headers` are
/// added as they are; `Host: 127.0.0.1:PORT` comes first unless `headers` has one.
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\n");
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("Host: 127.0.0.1:{port}\r\n"));
    }
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    s.write_all(req.as_bytes()).unwrap();
    // A server may answer (413) before reading a large body, then close.
    let _ = s.write_all(body);
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    let split = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP head in {:?}", String::from_utf8_lossy(&resp)));
    let head = String::from_utf8_lossy(&resp[..split]).into_owned();
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    assert!(
        !headers
            .iter()
            .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked")),
        "chunked answers are not expected from eprof"
    );
    HttpResponse {
        status,
        headers,
        body: resp[split + 4..].to_vec(),
    }
}

/// The address a server child (`eprof serve`, `eprof view`) prints on its first line
/// of stdout: the whole `http://127.0.0.1:PORT/...` URL and the port.
pub fn served_url(child: &mut std::process::Child) -> (String, u16) {
    use std::io::BufRead;
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout is piped"))
        .read_line(&mut line)
        .expect("the server prints its address");
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://127.0.0.1:"))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    let port = url["http://127.0.0.1:".len()..]
        .split('/')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {url:?}"));
    (url, port)
}
