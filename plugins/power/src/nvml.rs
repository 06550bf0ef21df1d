//! NVIDIA GPU energy through NVML, loaded at run time (no link-time dependency).
//!
//! Per GPU, `nvmlDeviceGetTotalEnergyConsumption` (a millijoule counter, Volta and
//! newer) makes this a Counter source read at every token boundary. Where a GPU does
//! not support the counter, the source falls back to polling
//! `nvmlDeviceGetPowerUsage`, which NVIDIA documents as a one-second average on Ampere
//! and newer: a Sampler with a 1 s resolution, so per-token figures are attributed.
//!
//! `--power nvml[:lib=PATH]` loads another library (tests load a fake one); the
//! default is `libnvidia-ml.so.1` (`nvml.dll` on Windows) from the loader's path.

#![allow(unsafe_code)]

use std::ffi::{CStr, c_char, c_int, c_uint, c_ulonglong, c_void};

use eprof_core::power::{Availability, PowerSource, Reading, SourceOptions};
use eprof_core::{Error, PowerSourceRegistration, Result};
use eprof_format::{Channel, ChannelKind, PowerSourceDesc, SourceKind};

pub const DEFAULT_LIB: &str = if cfg!(windows) {
    "nvml.dll"
} else {
    "libnvidia-ml.so.1"
};

const NVML_SUCCESS: c_int = 0;
const NVML_ERROR_NOT_SUPPORTED: c_int = 3;

type Device = *mut c_void;
type FnInit = unsafe extern "C" fn() -> c_int;
type FnCount = unsafe extern "C" fn(*mut c_uint) -> c_int;
type FnHandle = unsafe extern "C" fn(c_uint, *mut Device) -> c_int;
type FnName = unsafe extern "C" fn(Device, *mut c_char, c_uint) -> c_int;
type FnEnergy = unsafe extern "C" fn(Device, *mut c_ulonglong) -> c_int;
type FnUint = unsafe extern "C" fn(Device, *mut c_uint) -> c_int;
type FnErr = unsafe extern "C" fn(c_int) -> *const c_char;

/// The NVML entry points eprof uses.
struct Api {
    energy: FnEnergy,
    power: FnUint,
    error_string: Option<FnErr>,
}

/// A GPU handle. NVML documents its API as thread-safe, and handles stay valid while
/// the library is loaded (it never is unloaded here).
#[derive(Clone, Copy)]
struct Gpu(Device);
// SAFETY: NVML handles are opaque pointers owned by the library, usable from any
// thread (NVML is thread-safe); the library is never unloaded.
unsafe impl Send for Gpu {}

pub struct Nvml {
    api: Api,
    gpus: Vec<(Gpu, String, Option<f64>)>,
    counter: bool,
    lib: String,
    /// The energy counter's update period as measured at open.
    period: Option<Period>,
}

/// A counter's measured update period (ns) and over how many changes (`None` where
/// used: not measurable, e.g. it did not change while polled).
pub type Period = (u64, usize);

/// Measured update periods by library path: measured once per process (doctor and
/// `auto` open the library before the run does).
static PERIODS: std::sync::Mutex<Vec<(String, Option<Period>)>> = std::sync::Mutex::new(Vec::new());

/// How long [`Nvml::measure_update_period`] polls the counter at most.
pub const PERIOD_BUDGET: std::time::Duration = std::time::Duration::from_millis(300);
/// The resolution assumed when the period cannot be measured.
const FALLBACK_RESOLUTION_NS: u64 = 20_000_000;

fn err(msg: impl Into<String>) -> Error {
    Error::power("nvml", msg)
}

impl Nvml {
    fn describe(&self, code: c_int) -> String {
        match self.api.error_string {
            Some(f) => {
                // SAFETY: nvmlErrorString returns a static NUL-terminated string.
                let p = unsafe { f(code) };
                if p.is_null() {
                    format!("NVML error {code}")
                } else {
                    // SAFETY: checked non-null; NVML keeps the string alive.
                    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
                }
            }
            None => format!("NVML error {code}"),
        }
    }

    /// Load the library and open every GPU.
    pub fn open(lib_path: &str) -> Result<Self> {
        // SAFETY: loading runs the library's initialisers; libnvidia-ml is the NVIDIA
        // driver's own library (or a test double implementing the same symbols).
        let lib = unsafe { libloading::Library::new(lib_path) }.map_err(|e| {
            err(format!(
                "NVIDIA driver not found: cannot load {lib_path} ({e}); install the NVIDIA driver, or give --power nvml:lib=/path/to/libnvidia-ml.so.1"
            ))
        })?;
        // The library stays loaded for the life of the process: the function
        // pointers below point into it.
        let lib: &'static libloading::Library = Box::leak(Box::new(lib));
        macro_rules! sym {
            ($name:literal, $ty:ty) => {
                // SAFETY: the symbol has this C signature in NVML's nvml.h.
                *unsafe { lib.get::<$ty>($name) }.map_err(|e| {
                    err(format!(
                        "{lib_path} lacks {}: {e} (driver too old?)",
                        String::from_utf8_lossy(&$name[..$name.len() - 1])
                    ))
                })?
            };
        }
        let init: FnInit = sym!(b"nvmlInit_v2\0", FnInit);
        let count: FnCount = sym!(b"nvmlDeviceGetCount_v2\0", FnCount);
        let handle: FnHandle = sym!(b"nvmlDeviceGetHandleByIndex_v2\0", FnHandle);
        let name: FnName = sym!(b"nvmlDeviceGetName\0", FnName);
        let api = Api {
            energy: sym!(b"nvmlDeviceGetTotalEnergyConsumption\0", FnEnergy),
            power: sym!(b"nvmlDeviceGetPowerUsage\0", FnUint),
            // SAFETY: as above; optional.
            error_string: unsafe { lib.get::<FnErr>(b"nvmlErrorString\0") }
                .ok()
                .map(|s| *s),
        };
        let limit: Option<FnUint> =
            // SAFETY: as above; optional.
            unsafe { lib.get::<FnUint>(b"nvmlDeviceGetEnforcedPowerLimit\0") }
                .ok()
                .map(|s| *s);
        let mut me = Nvml {
            api,
            gpus: Vec::new(),
            counter: true,
            lib: lib_path.to_string(),
            period: None,
        };
        // SAFETY: plain C calls with valid out-pointers.
        let rc = unsafe { init() };
        if rc != NVML_SUCCESS {
            return Err(err(format!("nvmlInit failed: {}", me.describe(rc))));
        }
        let mut n: c_uint = 0;
        // SAFETY: valid out-pointer.
        let rc = unsafe { count(&mut n) };
        if rc != NVML_SUCCESS {
            return Err(err(format!("cannot count GPUs: {}", me.describe(rc))));
        }
        if n == 0 {
            return Err(err("NVML sees no GPU"));
        }
        for i in 0..n {
            let mut d: Device = std::ptr::null_mut();
            // SAFETY: valid out-pointer.
            let rc = unsafe { handle(i, &mut d) };
            if rc != NVML_SUCCESS {
                return Err(err(format!("cannot open GPU {i}: {}", me.describe(rc))));
            }
            let mut buf = [0 as c_char; 96];
            // SAFETY: the buffer holds 96 bytes, as passed.
            let rc = unsafe { name(d, buf.as_mut_ptr(), buf.len() as c_uint) };
            let gpu_name = if rc == NVML_SUCCESS {
                // SAFETY: NVML NUL-terminates within the given length.
                unsafe { CStr::from_ptr(buf.as_ptr()) }
                    .to_string_lossy()
                    .into_owned()
            } else {
                format!("GPU {i}")
            };
            let limit_w = limit.and_then(|f| {
                let mut mw: c_uint = 0;
                // SAFETY: valid out-pointer.
                (unsafe { f(d, &mut mw) } == NVML_SUCCESS).then_some(f64::from(mw) / 1000.0)
            });
            let mut mj: c_ulonglong = 0;
            // SAFETY: valid out-pointer.
            let rc = unsafe { (me.api.energy)(d, &mut mj) };
            if rc == NVML_ERROR_NOT_SUPPORTED {
                me.counter = false;
            } else if rc != NVML_SUCCESS {
                return Err(err(format!(
                    "cannot read the energy of {gpu_name}: {}",
                    me.describe(rc)
                )));
            }
            me.gpus.push((Gpu(d), gpu_name, limit_w));
        }
        if me.counter {
            let mut known = eprof_format::sync::lock(&PERIODS);
            me.period = match known.iter().find(|(l, _)| *l == me.lib) {
                Some((_, p)) => *p,
                None => {
                    let p = me.measure_update_period(PERIOD_BUDGET)?;
                    known.push((me.lib.clone(), p));
                    p
                }
            };
        }
        Ok(me)
    }

    pub fn is_counter(&self) -> bool {
        self.counter
    }

    /// The energy counter's update period: the first GPU's counter read every 0.2 ms
    /// for at most `budget` (or until 8 changes), the median time between changes.
    /// NVIDIA does not document the period; a span shorter than it cannot be told
    /// apart, so it is the source's resolution. `None` if it changed fewer than
    /// three times.
    pub fn measure_update_period(&self, budget: std::time::Duration) -> Result<Option<Period>> {
        let Some((gpu, name, _)) = self.gpus.first() else {
            return Ok(None);
        };
        let t0 = std::time::Instant::now();
        let mut last: Option<c_ulonglong> = None;
        let mut changes: Vec<u64> = Vec::new();
        while t0.elapsed() < budget && changes.len() < 9 {
            let mut mj: c_ulonglong = 0;
            // SAFETY: valid handle and out-pointer.
            let rc = unsafe { (self.api.energy)(gpu.0, &mut mj) };
            if rc != NVML_SUCCESS {
                return Err(err(format!("{name}: {}", self.describe(rc))));
            }
            let now = t0.elapsed().as_nanos() as u64;
            if last.is_some_and(|l| l != mj) {
                changes.push(now);
            }
            last = Some(mj);
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
        if changes.len() < 3 {
            return Ok(None);
        }
        let mut d: Vec<u64> = changes.windows(2).map(|w| w[1] - w[0]).collect();
        d.sort_unstable();
        Ok(Some((d[d.len() / 2], changes.len() - 1)))
    }

    /// The resolution of the energy counter: its measured update period.
    pub fn resolution_ns(&self) -> u64 {
        if !self.counter {
            return 1_000_000_000;
        }
        self.period
            .map_or(FALLBACK_RESOLUTION_NS, |(p, _)| p.max(1))
    }

    /// What the counter's period is, for people.
    pub fn period_text(&self) -> String {
        match self.period {
            Some((p, n)) => format!(
                "counter updates every {:.1} ms (measured over {n} changes)",
                p as f64 / 1e6
            ),
            None => format!(
                "counter update period not measurable (fewer than 3 changes in {} ms); assumed {} ms",
                PERIOD_BUDGET.as_millis(),
                FALLBACK_RESOLUTION_NS / 1_000_000
            ),
        }
    }
}

impl PowerSource for Nvml {
    fn desc(&self) -> PowerSourceDesc {
        let mut details = vec![
            ("library".into(), self.lib.clone()),
            (
                "mode".into(),
                if self.counter {
                    format!(
                        "nvmlDeviceGetTotalEnergyConsumption (mJ counter); {}",
                        self.period_text()
                    )
                } else {
                    "nvmlDeviceGetPowerUsage polling: the energy counter is not supported; NVIDIA documents the reading as a 1 s average on Ampere and newer".to_string()
                },
            ),
        ];
        for (i, (_, name, limit)) in self.gpus.iter().enumerate() {
            details.push((format!("gpu{i}"), name.clone()));
            if let Some(l) = limit {
                details.push((format!("gpu{i}_power_limit_w"), format!("{l}")));
            }
        }
        PowerSourceDesc {
            name: "nvml".into(),
            kind: if self.counter {
                SourceKind::Counter
            } else {
                SourceKind::Sampler
            },
            channels: (0..self.gpus.len())
                .map(|i| Channel {
                    name: format!("gpu{i}"),
                    kind: ChannelKind::Gpu,
                    in_total: true,
                })
                .collect(),
            // The energy counter's update period is not documented and varies by GPU:
            // it is measured at open. Power readings average 1 s.
            nominal_resolution_ns: self.resolution_ns(),
            details,
        }
    }

    fn read(&mut self) -> Result<Reading> {
        let mut values = Vec::with_capacity(self.gpus.len());
        for (gpu, name, _) in &self.gpus {
            if self.counter {
                let mut mj: c_ulonglong = 0;
                // SAFETY: valid handle and out-pointer.
                let rc = unsafe { (self.api.energy)(gpu.0, &mut mj) };
                if rc != NVML_SUCCESS {
                    return Err(err(format!("{name}: {}", self.describe(rc))));
                }
                values.push(Some(mj as f64 / 1000.0));
            } else {
                let mut mw: c_uint = 0;
                // SAFETY: valid handle and out-pointer.
                let rc = unsafe { (self.api.power)(gpu.0, &mut mw) };
                if rc != NVML_SUCCESS {
                    return Err(err(format!("{name}: {}", self.describe(rc))));
                }
                values.push(Some(f64::from(mw) / 1000.0));
            }
        }
        Ok(Reading::new(values))
    }
}

fn lib_of(opts: &SourceOptions) -> String {
    opts.args
        .get("lib")
        .cloned()
        .or_else(|| std::env::var("EPROF_NVML_LIB").ok())
        .unwrap_or_else(|| DEFAULT_LIB.to_string())
}

fn availability() -> Availability {
    let lib = std::env::var("EPROF_NVML_LIB").unwrap_or_else(|_| DEFAULT_LIB.to_string());
    match Nvml::open(&lib) {
        Ok(n) => Availability::Available {
            detail: format!(
                "{} GPU(s): {}; {}",
                n.gpus.len(),
                n.gpus
                    .iter()
                    .map(|g| g.1.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                if n.counter {
                    format!("energy counter, {}", n.period_text())
                } else {
                    "power polling (1 s average)".to_string()
                }
            ),
        },
        Err(e) => Availability::from_error(e),
    }
}

fn open(opts: &SourceOptions) -> Result<Box<dyn PowerSource>> {
    Ok(Box::new(Nvml::open(&lib_of(opts))?))
}

inventory::submit! {
    PowerSourceRegistration {
        name: "nvml",
        summary: "NVIDIA GPU energy counter through NVML (power polling where unsupported)",
        kind: SourceKind::Counter,
        auto_rank: Some(15),
        availability,
        open,
        origin: module_path!(),
    }
}
