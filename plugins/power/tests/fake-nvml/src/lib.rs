//! Implements the NVML symbols eprof uses, with deterministic values.
#![allow(unsafe_code, clippy::missing_safety_doc)]

use std::ffi::{c_char, c_int, c_uint, c_ulonglong, c_void};
use std::sync::atomic::{AtomicU64, Ordering};

static ENERGY_MJ: AtomicU64 = AtomicU64::new(1_000_000);

fn no_counter() -> bool {
    std::env::var("FAKE_NVML_MODE").is_ok_and(|m| m == "nosupport")
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlInit_v2() -> c_int {
    0
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetCount_v2(n: *mut c_uint) -> c_int {
    unsafe { *n = 1 };
    0
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetHandleByIndex_v2(_i: c_uint, d: *mut *mut c_void) -> c_int {
    unsafe { *d = 0x1 as *mut c_void };
    0
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetName(
    _d: *mut c_void,
    buf: *mut c_char,
    len: c_uint,
) -> c_int {
    let name = b"Fake GPU 80GB\0";
    if (len as usize) < name.len() {
        return 7; // NVML_ERROR_INSUFFICIENT_SIZE
    }
    unsafe { std::ptr::copy_nonoverlapping(name.as_ptr().cast(), buf, name.len()) };
    0
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetTotalEnergyConsumption(
    _d: *mut c_void,
    mj: *mut c_ulonglong,
) -> c_int {
    if no_counter() {
        return 3; // NVML_ERROR_NOT_SUPPORTED
    }
    // FAKE_NVML_PERIOD_MS=N: a counter that updates every N ms (1500 mJ a step, as a
    // real GPU's does at its own period); otherwise it moves on every read.
    let period = std::env::var("FAKE_NVML_PERIOD_MS")
        .ok()
        .and_then(|p| p.parse::<u64>().ok());
    let v = match period {
        Some(p) if p > 0 => {
            static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
            let t = START.get_or_init(std::time::Instant::now).elapsed().as_millis() as u64;
            1_000_000 + t / p * 1500
        }
        _ => ENERGY_MJ.fetch_add(1500, Ordering::SeqCst),
    };
    unsafe { *mj = v };
    0
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetPowerUsage(_d: *mut c_void, mw: *mut c_uint) -> c_int {
    unsafe { *mw = 150_000 };
    0
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetEnforcedPowerLimit(
    _d: *mut c_void,
    mw: *mut c_uint,
) -> c_int {
    unsafe { *mw = 700_000 };
    0
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlErrorString(code: c_int) -> *const c_char {
    match code {
        3 => c"Not Supported".as_ptr(),
        _ => c"Unknown Error".as_ptr(),
    }
}
