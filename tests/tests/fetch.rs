//! `eprof model fetch OWNER/REPO[:FILE]` against a loopback server that answers as
//! the Hugging Face Hub does (`HF_ENDPOINT`): the repository listing, and file
//! downloads with the headers the Hub's clients check (`etag`, `x-repo-commit`,
//! byte ranges). Nothing leaves 127.0.0.1; the server stops by itself.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use eprof_tests::eprof_bin;

/// A fake Hub: repository -> files. Serves until the test ends (at most a minute).
struct Hub {
    url: String,
    requests: Arc<Mutex<Vec<String>>>,
}

fn hub(repos: HashMap<String, Vec<(String, Vec<u8>)>>) -> Hub {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let requests = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&requests);
    std::thread::spawn(move || {
        let end = Instant::now() + Duration::from_secs(60);
        while Instant::now() < end {
            let Ok((stream, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            };
            stream.set_nonblocking(false).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut r = BufReader::new(stream);
            let mut line = String::new();
            if r.read_line(&mut line).is_err() {
                continue;
            }
            let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
            let mut range = None;
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).is_err() || h.trim().is_empty() {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("range:") {
                    range = Some(v.trim().trim_start_matches("bytes=").to_string());
                }
            }
            log.lock().unwrap().push(path.clone());
            let mut s = r.into_inner();
            let (status, headers, body) = answer(&repos, &path, range.as_deref());
            let mut head = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
                body.len()
            );
            for (k, v) in headers {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
            head.push_str("\r\n");
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(&body);
            let _ = s.flush();
        }
    });
    Hub { url, requests }
}

type Answer = (&'static str, Vec<(String, String)>, Vec<u8>);

fn answer(
    repos: &HashMap<String, Vec<(String, Vec<u8>)>>,
    path: &str,
    range: Option<&str>,
) -> Answer {
    let not_found = (
        "404 Not Found",
        Vec::new(),
        b"{\"error\":\"not found\"}".to_vec(),
    );
    if let Some(rest) = path.strip_prefix("/api/models/") {
        // /api/models/OWNER/REPO/revision/main
        let Some(repo) = rest.strip_suffix("/revision/main") else {
            return not_found;
        };
        let Some(files) = repos.get(repo) else {
            return not_found;
        };
        let siblings: Vec<_> = files
            .iter()
            .map(|(n, _)| serde_json::json!({ "rfilename": n }))
            .collect();
        let body = serde_json::json!({ "sha": "0123456789abcdef", "siblings": siblings });
        return (
            "200 OK",
            vec![("Content-Type".into(), "application/json".into())],
            body.to_string().into_bytes(),
        );
    }
    // /OWNER/REPO/resolve/main/FILE
    let Some((repo, file)) = path.trim_start_matches('/').split_once("/resolve/main/") else {
        return not_found;
    };
    let Some(bytes) = repos
        .get(repo)
        .and_then(|f| f.iter().find(|(n, _)| n == file))
        .map(|(_, b)| b)
    else {
        return not_found;
    };
    let len = bytes.len();
    let (a, b) = match range.and_then(|r| r.split_once('-')) {
        Some((a, b)) => (
            a.parse::<usize>().unwrap_or(0),
            b.parse::<usize>().map_or(len - 1, |b| b.min(len - 1)),
        ),
        None => (0, len - 1),
    };
    let headers = vec![
        (
            "ETag".into(),
            format!("\"etag-{repo}-{file}\"").replace('/', "-"),
        ),
        ("X-Repo-Commit".into(), "0123456789abcdef".into()),
        ("Content-Range".into(), format!("bytes {a}-{b}/{len}")),
    ];
    ("206 Partial Content", headers, bytes[a..=b].to_vec())
}

fn fetch(hub: &Hub, home: &std::path::Path, what: &str) -> Output {
    Command::new(eprof_bin())
        .args(["model", "fetch", "--quiet", what])
        .env("HF_ENDPOINT", &hub.url)
        .env("HF_HOME", home.join("hf"))
        .env_remove("HF_HUB_CACHE")
        .env("EPROF_HOME", home.join("data"))
        .env("HOME", home)
        .output()
        .unwrap()
}

#[test]
fn fetch_downloads_a_gguf_or_a_folder_from_the_hub_into_its_cache() {
    let home = tempfile::tempdir().unwrap();
    let gguf: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let mut repos = HashMap::new();
    repos.insert(
        "someone/tiny-GGUF".to_string(),
        vec![
            ("README.md".to_string(), b"# tiny".to_vec()),
            ("tiny-Q4_0.gguf".to_string(), gguf.clone()),
        ],
    );
    repos.insert(
        "someone/two-GGUF".to_string(),
        vec![
            ("a-Q4_0.gguf".to_string(), b"a".to_vec()),
            ("b-Q8_0.gguf".to_string(), b"b".to_vec()),
        ],
    );
    repos.insert(
        "someone/tiny-hf".to_string(),
        vec![
            (
                "config.json".to_string(),
                b"{\"model_type\": \"llama\"}".to_vec(),
            ),
            ("tokenizer.json".to_string(), b"{}".to_vec()),
            ("model.safetensors".to_string(), vec![1u8; 4096]),
            ("README.md".to_string(), b"# tiny".to_vec()),
        ],
    );
    let hub = hub(repos);
    let err = |o: &Output| String::from_utf8_lossy(&o.stderr).into_owned();
    let path_of = |o: &Output| {
        assert!(o.status.success(), "{}", err(o));
        std::path::PathBuf::from(String::from_utf8_lossy(&o.stdout).trim())
    };

    // The repository's one GGUF file, byte for byte, in the Hugging Face cache.
    let p = path_of(&fetch(&hub, home.path(), "someone/tiny-GGUF"));
    assert_eq!(std::fs::read(&p).unwrap(), gguf);
    assert!(
        p.starts_with(home.path().join("hf/hub/models--someone--tiny-GGUF")),
        "{}",
        p.display()
    );
    // A file named after the colon.
    let p = path_of(&fetch(&hub, home.path(), "someone/two-GGUF:b-Q8_0.gguf"));
    assert_eq!(std::fs::read(&p).unwrap(), b"b");
    // Several GGUF files and none named: refused, listing them (exit 2).
    let o = fetch(&hub, home.path(), "someone/two-GGUF");
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    assert!(err(&o).contains("a-Q4_0.gguf, b-Q8_0.gguf"), "{}", err(&o));
    // A Hugging Face folder: config, tokenizer and weights, not the README.
    let dir = path_of(&fetch(&hub, home.path(), "someone/tiny-hf"));
    for f in ["config.json", "tokenizer.json", "model.safetensors"] {
        assert!(dir.join(f).is_file(), "{} lacks {f}", dir.display());
    }
    assert!(!dir.join("README.md").exists());
    // A repository the Hub does not have: a clear error naming it.
    let o = fetch(&hub, home.path(), "someone/missing");
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert!(
        err(&o).contains("cannot list someone/missing"),
        "{}",
        err(&o)
    );
    // Not a repository at all.
    let o = fetch(&hub, home.path(), "../../etc");
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    let asked = hub.requests.lock().unwrap().clone();
    assert!(
        asked.iter().all(|p| !p.contains("..")),
        "a path left the repository: {asked:?}"
    );
}
