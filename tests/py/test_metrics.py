"""`/metrics` of `eprof serve`, parsed by Prometheus' reference Python parser.

A run of the built-in model is started over the API and `/metrics` is scraped during
and after it: the power and decode-speed gauges are present while it runs and gone
after; the counters grow by exactly the run's tokens and per-phase energies (as its
summary, what `eprof show --json` prints, says), the histogram by its J per token.
The OpenMetrics form parses with the OpenMetrics parser; a foreign Host gets 403.
"""

import json
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families

from common import BIN, check, close
import common

MODEL = "builtin:tiny-llama"


def get(url, headers=None):
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read().decode()


def scrape(base):
    """{(sample name, frozenset(labels)): value}"""
    status, ctype, body = get(base + "/metrics")
    check(status == 200, f"/metrics: {status} {body}")
    check(ctype.startswith("text/plain; version=0.0.4"), ctype)
    out = {}
    for fam in text_string_to_metric_families(body):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def total(samples, name, **labels):
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


def present(samples, name):
    return any(n == name for (n, _) in samples)


def main():
    with tempfile.TemporaryDirectory() as tmp:
        server = subprocess.Popen(
            [BIN, "--data-dir", str(Path(tmp) / "home"), "serve", "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            line = server.stdout.readline()
            check("http://127.0.0.1:" in line, f"eprof serve said {line!r}")
            base = line.split("http://", 1)[1].split("/", 1)[0]
            base = "http://" + base

            before = scrape(base)
            body = json.dumps({
                "prompt": "Give me three tips for staying healthy.",
                "model": MODEL,
                "power": "synthetic",
                "depth": "deep",
                "max_tokens": 1500,
                "power_interval_ms": 20,
            }).encode()
            req = urllib.request.Request(
                base + "/api/profiling/generate", data=body,
                headers={"Content-Type": "application/json"}, method="POST",
            )
            with urllib.request.urlopen(req, timeout=30) as r:
                run_id = json.loads(r.read())["id"]

            # During the run (bounded: 60 s): the gauges appear; then the run ends.
            seen_power = seen_rate = False
            power_values = []
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                now = scrape(base)
                if present(now, "eprof_power_watts"):
                    seen_power = True
                    power_values.append(total(now, "eprof_power_watts", channel="package"))
                seen_rate = seen_rate or present(now, "eprof_decode_tokens_per_second")
                if total(now, "eprof_runs_total") > total(before, "eprof_runs_total"):
                    break
                time.sleep(0.05)
            else:
                raise AssertionError("the run did not finish within 60 s")
            check(seen_power, "eprof_power_watts present during the run")
            check(seen_rate, "eprof_decode_tokens_per_second present during the run")
            check(all(5 < w < 20 for w in power_values), f"synthetic 10 W source: {power_values[:5]}")

            after = scrape(base)
            status, _, text = get(f"{base}/api/profiling/run/{run_id}/summary")
            check(status == 200, f"summary {status}")
            s = json.loads(text)
            check(not present(after, "eprof_power_watts"), "power gauge gone after the run")
            check(not present(after, "eprof_decode_tokens_per_second"), "rate gauge gone after the run")

            def delta(name, **labels):
                return total(after, name, **labels) - total(before, name, **labels)

            check(delta("eprof_runs_total", model=MODEL, stop_reason="max_tokens") == 1, "one run")
            check(delta("eprof_generated_tokens_total", model=MODEL) == s["generated_tokens"], "tokens")
            for p in s["phases"]:
                e = p["energy"]
                got = delta("eprof_energy_joules_total", model=MODEL, phase=p["name"], label=e["label"], source="synthetic")
                check(close(got, e["joules"]), f"{p['name']}: counter +{got}, run {e['joules']}")
            run_j = delta("eprof_energy_joules_total", model=MODEL)
            check(close(run_j, s["total"]["joules"], 1e-9), f"energy counters +{run_j} J, run total {s['total']['joules']} J")
            check(delta("eprof_generated_token_energy_joules_count", model=MODEL) == 1, "histogram count")
            check(close(delta("eprof_generated_token_energy_joules_sum", model=MODEL), s["j_per_generated_token"]), "histogram sum")

            # OpenMetrics, for scrapers that ask for it.
            status, ctype, body = get(base + "/metrics", {"Accept": "application/openmetrics-text; version=1.0.0"})
            check(status == 200 and ctype.startswith("application/openmetrics-text"), ctype)
            names = {f.name for f in parse_openmetrics(body)}
            check({"eprof_runs", "eprof_energy_joules", "eprof_generated_token_energy_joules"} <= names, names)

            # Loopback only: a foreign Host (DNS rebinding) is refused.
            status, _, _ = get(base + "/metrics", {"Host": "attacker.example"})
            check(status == 403, f"foreign Host: {status}")
            print(f"metrics test: {common.checks} checks passed; run {run_id}: "
                  f"{s['generated_tokens']} tokens, {s['total']['joules']:.3f} J, "
                  f"{len(power_values)} scrapes saw the power gauge")
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
