"""Parquet datasets read by DuckDB (issue: beyond one machine).

Several runs (the built-in model at two depths, the real SmolLM2 on the estimate
source, and a trace imported from another machine) are exported with
`eprof export --format parquet`, then read with DuckDB: every run's totals, J/token
and token counts equal `eprof show --json`; per run, token energies and phase spans
sum to the trace's phase totals (1e-9 relative); labels survive; appending one more
run adds exactly its rows and rewrites nothing; the column types DuckDB reads are the
documented ones; the queries of docs/machines.md run as written.
"""

import hashlib
import os
import re
import subprocess
import tempfile
from pathlib import Path

import duckdb

from common import ROOT, Eprof, check, close, required_env
import common

TABLES = ["runs", "tokens", "spans", "metrics", "power"]


def documented_columns() -> dict:
    """docs/dataset.md: table -> [(column, type)]."""
    doc = (ROOT / "docs/dataset.md").read_text()
    out = {}
    for t in TABLES:
        section = doc.split(f"### `{t}`", 1)[1].split("\n### ", 1)[0]
        out[t] = [
            (cells[1].strip("`"), cells[2])
            for cells in (
                [c.strip() for c in line.split("|")]
                for line in section.splitlines()
                if line.startswith("| `")
            )
        ]
    return out


def readme_queries() -> list:
    """The SQL queries of docs/machines.md, as a user copies them."""
    text = (ROOT / "docs" / "machines.md").read_text()
    return re.findall(r"```sql\n(.*?)```", text, re.S)


def files_of(ds: Path) -> dict:
    return {
        p: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in ds.rglob("*.parquet")
    }


def main() -> None:
    model = required_env("EPROF_MODEL")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        e = Eprof(tmp / "home")
        tiny = ["--model", "builtin:tiny-llama", "--power", "synthetic"]
        runs = [
            e.record(*tiny, "--depth", "deep", "--max-tokens", "24", "--tag", "nightly"),
            e.record(*tiny, "--depth", "off", "--max-tokens", "16"),
            e.record("--model", model, "--power", "estimate", "--depth", "module", "--max-tokens", "6"),
        ]
        # A colleague's trace: another machine, another model, another power source.
        colleague = tmp / "colleague.eprof"
        subprocess.run(
            ["cargo", "xtask", "synth", "--tokens", "40", "--layers", "4", "--depth", "deep", str(colleague)],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        out = e.run("import", str(colleague)).stdout
        check("another machine" in out, out)
        runs.append(out.split()[1])

        ds = tmp / "dataset"
        out = e.run("export", "--format", "parquet", "--out", str(ds), "--all").stdout
        check("added 4 runs" in out, out)

        con = duckdb.connect()
        for t in TABLES:
            con.execute(
                f"CREATE VIEW {t} AS SELECT * FROM read_parquet('{ds}/{t}/*.parquet')"
            )

        def q(sql, *params):
            return con.execute(sql, list(params)).fetchall()

        # Column names and types as DuckDB reads them are the documented ones.
        for t, cols in documented_columns().items():
            got = [(r[0], r[1]) for r in q(f"DESCRIBE {t}")]
            check(got == cols, f"{t}: DuckDB reads {got}, docs say {cols}")

        hosts = set()
        for rid in runs:
            s = e.json("show", rid, "--json")
            (total_j, total_label, jpt, gen, prompt, tps, ttft, djpt, host) = q(
                "SELECT total_j, total_label, j_per_generated_token, generated_tokens,"
                " prompt_tokens, decode_tokens_per_s, ttft_ns, decode_j_per_token, hostname"
                " FROM runs WHERE run_id = ?",
                rid,
            )[0]
            hosts.add(host)
            check(close(total_j, s["total"]["joules"]), f"{rid} total")
            check(total_label == s["total"]["label"], f"{rid} total label")
            check(close(jpt, s["j_per_generated_token"]), f"{rid} J/token")
            check(close(djpt, s["decode_j_per_token"]), f"{rid} decode J/token")
            check(close(tps, s["decode_tokens_per_s"]), f"{rid} tok/s")
            check(ttft == s["time_to_first_token_ns"], f"{rid} TTFT")
            check((gen, prompt) == (s["generated_tokens"], s["prompt_tokens"]), f"{rid} token counts")
            (g, p) = q(
                "SELECT count(*) FILTER (WHERE phase <> 'prompt'), count(*) FILTER (WHERE phase = 'prompt')"
                " FROM tokens WHERE run_id = ?",
                rid,
            )[0]
            check((g, p) == (gen, prompt), f"{rid} token rows {g}+{p}")

            phases = {r["name"]: r["energy"]["joules"] for r in s["phases"] if r["energy"]}
            by_tokens = dict(q(
                "SELECT phase, sum(energy_j) FROM tokens WHERE run_id = ? AND phase <> 'prompt' GROUP BY phase",
                rid,
            ))
            for phase in ("prefill", "decode"):
                if phase in by_tokens or phase in phases:
                    check(close(by_tokens[phase], phases[phase]),
                          f"{rid} {phase}: tokens sum {by_tokens.get(phase)} vs phase {phases.get(phase)}")
            by_spans = dict(q(
                "SELECT phase, sum(energy_j) FROM spans WHERE run_id = ? AND kind = 'phase' GROUP BY phase",
                rid,
            ))
            check(by_spans.keys() == phases.keys(), f"{rid} phases {by_spans.keys()}")
            for name, j in phases.items():
                check(close(by_spans[name], j), f"{rid} phase {name}")
            comps = dict(q(
                "SELECT component, sum(energy_j) FROM spans WHERE run_id = ? AND kind = 'component' GROUP BY component",
                rid,
            ))
            check(len(comps) == len(s["components"]), f"{rid} components")
            for c in s["components"]:
                check(close(comps[c["name"]], c["energy"]["joules"]), f"{rid} {c['name']}")
            layers = dict(q(
                "SELECT 'L' || layer, sum(energy_j) FROM spans WHERE run_id = ? AND kind = 'layer' GROUP BY layer",
                rid,
            ))
            check(len(layers) == len(s["layers"]), f"{rid} layers")
            for r in s["layers"]:
                check(close(layers[r["name"]], r["energy"]["joules"]), f"{rid} {r['name']}")
            # Every label of the trace survives, as many times as the summary counts it.
            labels = dict(q(
                "SELECT label, count(*) FROM (SELECT label FROM tokens WHERE run_id = ?"
                " UNION ALL SELECT label FROM spans WHERE run_id = ?) WHERE label IS NOT NULL GROUP BY label",
                rid, rid,
            ))
            check(labels == {k: n for k, n in s["labels"]}, f"{rid} labels {labels} vs {s['labels']}")
        check(len(hosts) == 2 and "synthetic" in hosts, f"two machines: {hosts}")
        estimated = q("SELECT count(*) FROM spans WHERE label = 'estimated'")[0][0]
        check(estimated > 0, "the estimate source's figures keep their label")

        # Append one more run: exactly its rows, nothing rewritten, nothing twice.
        before_files = files_of(ds)
        before = {t: q(f"SELECT count(*) FROM {t}")[0][0] for t in TABLES}
        new = e.record(*tiny, "--depth", "module", "--max-tokens", "10")
        full = e.json("export", new, "--format", "json")
        expect = {
            "runs": 1,
            "tokens": len(full["tokens"]),
            "spans": len(full["sections"]) + len(full["spans"]),
            "metrics": len(full["metrics"]),
            "power": sum(v is not None for smp in full["samples"] for v in smp["values"]),
        }
        out = e.run("export", "--format", "parquet", "--out", str(ds), "--all").stdout
        check("added 1 run" in out and "4 already in the dataset" in out, out)
        after = {t: q(f"SELECT count(*) FROM {t}")[0][0] for t in TABLES}
        for t in TABLES:
            check(after[t] - before[t] == expect[t], f"append {t}: {after[t] - before[t]} rows, want {expect[t]}")
        check(q(f"SELECT count(*) FROM tokens WHERE run_id = ?", new)[0][0] == expect["tokens"], "new run's tokens")
        now_files = files_of(ds)
        for p, h in before_files.items():
            check(now_files.get(p) == h, f"{p} rewritten")
        check(q("SELECT count(*) FROM (SELECT run_id FROM runs GROUP BY run_id HAVING count(*) > 1)")[0][0] == 0,
              "no run twice")
        out = e.run("export", "--format", "parquet", "--out", str(ds), "--all").stdout
        check("nothing new" in out, out)
        check(files_of(ds) == now_files, "a no-op export writes nothing")

        # A group of repeated runs keeps its group, configuration and repeats.
        e.run("bench", "Give me three tips.", *tiny, "--depth", "off", "--max-tokens", "8",
              "--repeat", "2", "--warmup", "0", "--idle-ms", "0")
        e.run("export", "--format", "parquet", "--out", str(ds), "--all")
        grouped = q("SELECT group_id, config_label, repeat, run_order FROM runs"
                    " WHERE group_id IS NOT NULL ORDER BY run_order")
        check(len(grouped) == 2 and grouped[0][0] == grouped[1][0]
              and [r[1:] for r in grouped] == [("all", 0, 0), ("all", 1, 1)], f"group rows {grouped}")

        # The documented queries (docs/machines.md), as written, from the folder holding dataset/.
        queries = readme_queries()
        check(len(queries) == 3, f"{len(queries)} queries in docs/machines.md")
        os.chdir(tmp)
        local = duckdb.connect()
        by_model_machine = local.execute(queries[0]).fetchall()
        groups = q("SELECT count(*) FROM (SELECT DISTINCT model, hostname, source FROM runs WHERE complete)")[0][0]
        check(len(by_model_machine) == groups, f"J/token rows {by_model_machine}")
        top = local.execute(queries[1]).fetchall()
        check(len(top) == 10 and all(top[i][3] >= top[i + 1][3] for i in range(9)), f"top cells {top}")
        per_position = local.execute(queries[2]).fetchall()
        check(len(per_position) >= 3 and all(r[2] > 0 for r in per_position), f"per position {per_position}")
        print(f"dataset test: {common.checks} checks passed")
        print("  J/token by model and machine (docs/machines.md query 1):")
        for r in by_model_machine:
            print("   ", r)


if __name__ == "__main__":
    main()
