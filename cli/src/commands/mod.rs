//! The commands other than `record`, `view` and `serve`, one module each. Each writes
//! to `out` (stdout, locked) as it goes: `export` streams, and a closed pipe ends a
//! command with an I/O error that `main` turns into a quiet exit, never a panic.

mod compare;
mod doctor;
mod export;
pub mod fetch;
pub mod groups;
mod ls;
mod model;
mod plugins;
mod power;
mod runs;
mod show;
mod traces;

pub use compare::compare;
pub use doctor::doctor;
pub use export::export;
pub use ls::ls;
pub use model::{model_check_device, model_info, model_synth, model_tokenize};
pub use plugins::plugins;
pub use power::{power_list, power_read};
pub use runs::{import, index_rebuild, rm};
pub use show::show;
pub(crate) use traces::{decode_file, parent_folder, resolve};
