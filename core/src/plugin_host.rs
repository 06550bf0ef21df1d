//! Loads dynamic probe plugins (cdylibs built against `eprof-plugin-api`) and wraps
//! each of their probes as an ordinary [`Probe`].
//!
//! Loading is `unsafe` by nature: it runs the library's initialisers. The host checks
//! the ABI version before any other use of the descriptor and reports exactly what does
//! not match; it never unloads a library (function pointers into it stay valid for
//! the life of the process). Tensors are copied to contiguous CPU `f32` for plugins
//! (built-in probes read CPU tensors in place).

#![allow(unsafe_code)]

use std::ffi::c_void;
use std::path::{Path, PathBuf};

use eprof_format::{Phase, SiteDef};
use eprof_plugin_api as api;

use crate::error::{Error, Result};
use crate::probe::{At, MetricSink, Probe, TensorKind, TensorView};

/// A probe a plugin exports.
#[derive(Debug, Clone)]
pub struct PluginProbeInfo {
    pub name: String,
    pub description: String,
    vtable: &'static api::ProbeVTable,
}

/// A loaded plugin library.
#[derive(Debug, Clone)]
pub struct Plugin {
    pub path: PathBuf,
    pub name: String,
    pub version: String,
    pub abi_version: u32,
    pub probes: Vec<PluginProbeInfo>,
}

fn perr(path: &Path, msg: impl Into<String>) -> Error {
    Error::Plugin {
        path: path.to_path_buf(),
        message: msg.into(),
    }
}

/// Read a descriptor string.
///
/// # Safety
/// `s` must describe bytes that live as long as the library (never unloaded).
unsafe fn static_str(s: api::StrRef, what: &str, path: &Path) -> Result<String> {
    // SAFETY: guaranteed by the caller.
    unsafe { s.as_str() }
        .map(str::to_string)
        .ok_or_else(|| perr(path, format!("its {what} is not valid UTF-8")))
}

impl Plugin {
    /// Load the plugin at `path`.
    pub fn load(path: &Path) -> Result<Plugin> {
        if !path.is_file() {
            return Err(perr(path, "no such file"));
        }
        // SAFETY: loading runs the library's initialisers; the user asked for this file
        // to be loaded as an eprof plugin (documented in the guide).
        let lib = unsafe { libloading::Library::new(path) }
            .map_err(|e| perr(path, format!("not a loadable library: {e}")))?;
        // Never unloaded: vtables and strings point into it.
        let lib: &'static libloading::Library = Box::leak(Box::new(lib));
        type Entry = extern "C" fn() -> *const api::PluginDescriptor;
        // SAFETY: the entry symbol has this signature in every ABI version.
        let entry: Entry = *unsafe { lib.get::<Entry>(api::ENTRY_SYMBOL) }.map_err(|_| {
            perr(
                path,
                "not an eprof plugin: it exports no `eprof_plugin_entry` symbol (build it with eprof_plugin_api::export_plugin!)",
            )
        })?;
        let d = entry();
        if d.is_null() {
            return Err(perr(path, "its entry point returned no descriptor"));
        }
        // The version is read alone first: the rest of the layout depends on it.
        // SAFETY: every ABI version starts the descriptor with a u32 version.
        let abi = unsafe { std::ptr::read_unaligned(d.cast::<u32>()) };
        if abi != api::ABI_VERSION {
            return Err(perr(
                path,
                format!(
                    "built against eprof plugin ABI {abi}, but this eprof speaks ABI {}; rebuild the plugin against eprof-plugin-api {}",
                    api::ABI_VERSION,
                    env!("CARGO_PKG_VERSION")
                ),
            ));
        }
        // SAFETY: same ABI version, so the descriptor has this layout and is static.
        let d: &'static api::PluginDescriptor = unsafe { &*d };
        let size = size_of::<api::PluginDescriptor>() as u32;
        if d.struct_size != size {
            return Err(perr(
                path,
                format!(
                    "its descriptor is {} bytes, ABI {abi} says {size}",
                    d.struct_size
                ),
            ));
        }
        // SAFETY: descriptor strings and vtables are statics of the never-unloaded library.
        let name = unsafe { static_str(d.name, "name", path)? };
        let version = unsafe { static_str(d.version, "version", path)? };
        if d.probe_count > 0 && d.probes.is_null() {
            return Err(perr(path, "it declares probes but gives no vtable"));
        }
        let vtables: &'static [api::ProbeVTable] = if d.probe_count == 0 {
            &[]
        } else {
            // SAFETY: checked non-null; `probe_count` vtables are a static array.
            unsafe { std::slice::from_raw_parts(d.probes, d.probe_count) }
        };
        let mut probes = Vec::new();
        for vt in vtables {
            probes.push(PluginProbeInfo {
                // SAFETY: as above.
                name: unsafe { static_str(vt.name, "probe name", path)? },
                description: unsafe { static_str(vt.description, "probe description", path)? },
                vtable: vt,
            });
        }
        Ok(Plugin {
            path: path.to_path_buf(),
            name,
            version,
            abi_version: abi,
            probes,
        })
    }
}

impl PluginProbeInfo {
    /// A new instance of this probe.
    pub fn instantiate(&self) -> Result<Box<dyn Probe>> {
        let inst = (self.vtable.create)();
        if inst.is_null() {
            return Err(Error::Probe {
                probe: self.name.clone(),
                message: "the plugin could not create an instance".into(),
            });
        }
        Ok(Box::new(DynProbe {
            name: self.name.clone(),
            vt: VTable(self.vtable),
            inst: Instance(inst),
            shape: Vec::new(),
            copy: Vec::new(),
        }))
    }
}

/// A plugin's probe instance, used from the recording thread only.
struct Instance(*mut c_void);
// SAFETY: the ABI requires a probe instance to be usable from any one thread at a
// time; the session moves it between threads but never shares it.
unsafe impl Send for Instance {}

/// A vtable in the never-unloaded library.
#[derive(Clone, Copy)]
struct VTable(&'static api::ProbeVTable);
// SAFETY: immutable static data (function pointers, static strings).
unsafe impl Send for VTable {}

impl std::ops::Deref for VTable {
    type Target = api::ProbeVTable;
    fn deref(&self) -> &api::ProbeVTable {
        self.0
    }
}

struct DynProbe {
    name: String,
    vt: VTable,
    inst: Instance,
    shape: Vec<usize>,
    copy: Vec<f32>,
}

fn phase_code(p: Phase) -> u32 {
    match p {
        Phase::PreInference => api::phase::PRE_INFERENCE,
        Phase::Prefill => api::phase::PREFILL,
        Phase::Decode => api::phase::DECODE,
        Phase::PostInference => api::phase::POST_INFERENCE,
    }
}

fn kind_code(k: TensorKind) -> u32 {
    match k {
        TensorKind::Output => api::kind::OUTPUT,
        TensorKind::AttentionWeights => api::kind::ATTENTION_WEIGHTS,
        TensorKind::NormInput => api::kind::NORM_INPUT,
    }
}

fn site_view(site: &SiteDef, at: At) -> api::SiteView {
    api::SiteView {
        phase: phase_code(at.phase),
        step: at.step,
        layer: site.layer.map_or(-1, i32::from),
        component: api::StrRef::new(&site.component),
        operation: api::StrRef::new(site.op.as_deref().unwrap_or("")),
    }
}

/// # Safety
/// Called by a plugin during `observe` with the `ctx` the host passed for that call.
unsafe extern "C" fn host_emit(ctx: *mut c_void, name: api::StrRef, value: f64) {
    // SAFETY: `ctx` is the `&mut &mut dyn MetricSink` that `observe` passed for this
    // call, and the name's bytes live for the call.
    let sink = unsafe { &mut *ctx.cast::<&mut dyn MetricSink>() };
    if let Some(n) = unsafe { name.as_str() } {
        sink.emit(n, value as f32);
    }
}

impl Probe for DynProbe {
    fn name(&self) -> &str {
        &self.name
    }

    fn kinds(&self) -> u8 {
        let k = self.vt.kinds;
        TensorKind::ALL
            .into_iter()
            .filter(|&t| k & kind_code(t) != 0)
            .map(TensorKind::bit)
            .fold(0, |a, b| a | b)
    }

    fn wants(&self, site: &SiteDef, kind: TensorKind) -> bool {
        if self.vt.kinds & kind_code(kind) == 0 {
            return false;
        }
        // Wants is asked per site, not per step: step 0 stands for all steps.
        let view = site_view(
            site,
            At {
                phase: Phase::Prefill,
                step: 0,
            },
        );
        // SAFETY: the instance came from this vtable's `create`; the view and its
        // strings live for the call.
        unsafe { (self.vt.wants)(self.inst.0, &view, kind_code(kind)) != 0 }
    }

    fn observe(
        &mut self,
        site: &SiteDef,
        at: At,
        kind: TensorKind,
        t: TensorView<'_>,
        out: &mut dyn MetricSink,
    ) -> Result<()> {
        // The plugin gets its own contiguous copy (the ABI promises host-owned f32).
        self.copy.clear();
        self.copy.extend_from_slice(t.data);
        self.shape.clear();
        self.shape.extend_from_slice(t.shape);
        let view = api::TensorView {
            data: self.copy.as_ptr(),
            len: self.copy.len(),
            shape: self.shape.as_ptr(),
            rank: self.shape.len(),
            dtype: 0,
        };
        let site_v = site_view(site, at);
        let mut sink_ref: &mut dyn MetricSink = out;
        let sink = api::MetricSinkC {
            ctx: (&mut sink_ref as *mut &mut dyn MetricSink).cast(),
            emit: host_emit,
        };
        let mut buf = [0u8; 1024];
        let mut err = api::ErrorBuf {
            ptr: buf.as_mut_ptr(),
            cap: buf.len(),
            len: 0,
        };
        // SAFETY: the instance came from this vtable's `create`; every pointer passed
        // refers to host memory that lives for the call.
        let rc = unsafe {
            (self.vt.observe)(
                self.inst.0,
                &site_v,
                kind_code(kind),
                &view,
                &sink,
                &mut err,
            )
        };
        let msg = || String::from_utf8_lossy(&buf[..err.len.min(buf.len())]).into_owned();
        match rc {
            api::RC_OK => Ok(()),
            api::RC_PANIC => Err(Error::Probe {
                probe: self.name.clone(),
                message: format!("the plugin panicked: {}", msg()),
            }),
            _ => Err(Error::Probe {
                probe: self.name.clone(),
                message: msg(),
            }),
        }
    }
}

impl Drop for DynProbe {
    fn drop(&mut self) {
        // SAFETY: the instance came from this vtable's `create` and is destroyed once.
        unsafe { (self.vt.destroy)(self.inst.0) };
    }
}

/// The library file extension of this platform (`so`, `dylib`, `dll`).
fn is_library(p: &Path) -> bool {
    p.extension()
        .is_some_and(|e| e == std::env::consts::DLL_EXTENSION)
}

/// Plugin files to load: the explicit paths, then each entry of `EPROF_PLUGIN_PATH`
/// (files, or folders whose libraries are all loaded; separated like `PATH`), then
/// the libraries in the per-user plugin folder.
pub fn plugin_files(explicit: &[PathBuf], user_dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = explicit.to_vec();
    let add_dir = |d: &Path, out: &mut Vec<PathBuf>| {
        if let Ok(rd) = std::fs::read_dir(d) {
            let mut libs: Vec<PathBuf> = rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| is_library(p))
                .collect();
            libs.sort();
            out.extend(libs);
        }
    };
    if let Some(v) = std::env::var_os("EPROF_PLUGIN_PATH") {
        for p in std::env::split_paths(&v).filter(|p| !p.as_os_str().is_empty()) {
            if p.is_dir() {
                add_dir(&p, &mut out);
            } else {
                out.push(p);
            }
        }
    }
    add_dir(user_dir, &mut out);
    let mut seen = Vec::new();
    out.retain(|p| {
        let key = std::fs::canonicalize(p).unwrap_or_else(|_| p.clone());
        let new = !seen.contains(&key);
        seen.push(key);
        new
    });
    out
}
