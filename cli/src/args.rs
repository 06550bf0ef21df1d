//! The arguments of the commands that `commands/` carries out (those of `record`,
//! `bench`, `view` and `serve` live beside their code).

use std::path::PathBuf;

use clap::Args;
use eprof_format::range::RangeEnd;

#[derive(Args)]
pub(crate) struct JsonFlag {
    /// Print JSON for scripts
    #[arg(long)]
    pub(crate) json: bool,
}

/// Which runs of the index: shared by `ls` and `export --format parquet`.
#[derive(Args)]
pub(crate) struct RunFilterArgs {
    /// Only runs whose model name contains this
    #[arg(long)]
    pub(crate) model: Option<String>,
    /// Only runs with this tag
    #[arg(long)]
    pub(crate) tag: Option<String>,
    /// Only runs of this experiment
    #[arg(long)]
    pub(crate) experiment: Option<String>,
    /// Only runs whose prompt contains this
    #[arg(long)]
    pub(crate) prompt: Option<String>,
    /// Only the runs of this group (`eprof bench`)
    #[arg(long)]
    pub(crate) group: Option<String>,
}

impl RunFilterArgs {
    pub(crate) fn is_set(&self) -> bool {
        self.model.is_some()
            || self.tag.is_some()
            || self.experiment.is_some()
            || self.prompt.is_some()
            || self.group.is_some()
    }

    /// The index filter, unsorted and unpaged.
    pub(crate) fn filter(&self) -> eprof_index::RunFilter {
        eprof_index::RunFilter {
            model: self.model.clone(),
            tag: self.tag.clone(),
            experiment: self.experiment.clone(),
            prompt_contains: self.prompt.clone(),
            group: self.group.clone(),
            ..Default::default()
        }
    }
}

#[derive(Args)]
pub(crate) struct LsArgs {
    #[command(flatten)]
    pub(crate) filter: RunFilterArgs,
    /// List groups of repeated runs (`eprof bench`) instead of runs
    #[arg(long)]
    pub(crate) groups: bool,
    /// Sort by created, energy, duration or j_per_token (largest, newest first)
    #[arg(long, default_value = "created", value_parser = sort_key)]
    pub(crate) sort: eprof_index::SortKey,
    /// Show at most this many runs
    #[arg(long, short = 'n')]
    pub(crate) limit: Option<u32>,
    /// Skip this many runs first (paging, with --limit)
    #[arg(long)]
    pub(crate) offset: Option<u32>,
    /// Print JSON for scripts
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Args)]
pub(crate) struct ShowArgs {
    /// Run id (or unique prefix) or a path to a .eprof file
    pub(crate) run: String,
    /// Print JSON for scripts
    #[arg(long)]
    pub(crate) json: bool,
    /// Show only what the stretch from here cost: a time on the trace's clock (1.2s,
    /// 350ms, 800us, ns) as the viewer's axes show it, or a generated token (#5, from
    /// #0) [default with --to: the start of the run]
    #[arg(long, value_name = "T")]
    pub(crate) from: Option<RangeEnd>,
    /// End of that stretch: a time or a token (#N: the end of its step) [default with
    /// --from: the end of the run]
    #[arg(long, value_name = "T")]
    pub(crate) to: Option<RangeEnd>,
}

#[derive(Args)]
pub(crate) struct ExportArgs {
    /// Run id (or unique prefix) or a path to a .eprof file; parquet takes several
    pub(crate) runs: Vec<String>,
    /// json (full), csv (a folder of tables), chrome (Perfetto / chrome://tracing),
    /// eprof (a copy), parquet (a dataset folder for DuckDB, Polars, Spark: docs/dataset.md)
    #[arg(long, default_value = "json", value_parser = export_formats())]
    pub(crate) format: String,
    /// Output file (a folder for csv and parquet) [default: stdout for json/chrome]
    #[arg(long, short = 'o')]
    pub(crate) out: Option<PathBuf>,
    /// parquet: every run in the index (or every one matching the filters)
    #[arg(long)]
    pub(crate) all: bool,
    #[command(flatten)]
    pub(crate) filter: RunFilterArgs,
}

/// `export --format`'s names: one run's formats (shared with the server), and parquet.
pub(crate) fn export_formats() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(
        eprof_format::export::Format::ALL
            .map(|f| f.as_str())
            .into_iter()
            .chain(["parquet"]),
    )
}

#[derive(Args)]
pub(crate) struct ImportArgs {
    /// Trace files to import
    #[arg(required = true)]
    pub(crate) files: Vec<PathBuf>,
}

#[derive(Args)]
pub(crate) struct RmArgs {
    /// Run ids (or unique prefixes), or group ids (all their runs)
    #[arg(required = true)]
    pub(crate) runs: Vec<String>,
    /// Keep the trace files, remove only the index rows
    #[arg(long)]
    pub(crate) keep_files: bool,
}

#[derive(Args)]
pub(crate) struct CompareArgs {
    /// Two or more run ids, prefixes or trace paths; or groups of repeated runs
    /// (`eprof bench`): GROUP (its configurations against the first), GROUP/CONFIG
    /// (a configuration by label or index), several groups
    #[arg(num_args = 1.., required = true)]
    pub(crate) runs: Vec<String>,
    /// Print JSON for scripts
    #[arg(long)]
    pub(crate) json: bool,
    /// Groups: exit 4 when energy or J per generated token is significantly higher
    /// than the first group's by more than PCT percent (a CI gate)
    #[arg(long, value_name = "PCT")]
    pub(crate) fail_if_higher: Option<f64>,
}

#[derive(Args)]
pub(crate) struct PowerReadArgs {
    /// Power source, with its options, as `record --power` takes it: nvml+rapl, rapl,
    /// nvml, powermetrics, estimate[:idle=5,max=40], synthetic[:step=10/30@0.5],
    /// replay:FILE (`eprof power list` says which work here)
    #[arg(long, value_name = "SOURCE", required_unless_present = "source")]
    pub(crate) power: Option<String>,
    /// The old spelling of --power
    #[arg(long, hide = true, conflicts_with = "power")]
    pub(crate) source: Option<String>,
    /// Read a saved capture instead of live hardware (replay; powermetrics captures)
    #[arg(long, value_name = "FILE")]
    pub(crate) from_file: Option<PathBuf>,
    /// Number of readings
    #[arg(long, default_value_t = 5)]
    pub(crate) samples: u32,
    /// Milliseconds between readings
    #[arg(long, value_name = "MS", default_value_t = 100)]
    pub(crate) power_interval: u64,
    /// The old spelling of --power-interval
    #[arg(long, hide = true, conflicts_with = "power_interval")]
    pub(crate) interval_ms: Option<u64>,
    /// Print JSON for scripts
    #[arg(long)]
    pub(crate) json: bool,
}

/// `--sort`'s values: the index's sort keys, with clap's list of them on a typo.
fn sort_key(s: &str) -> Result<eprof_index::SortKey, String> {
    eprof_index::SortKey::parse(s).map_err(|e| e.to_string())
}
