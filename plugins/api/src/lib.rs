//! eprof-plugin-api: the stable C ABI of eprof's dynamic plugins, and the
//! [`export_plugin!`] macro that generates it from an ordinary Rust trait.
//!
//! It has no dependencies, so a plugin author's build pulls in nothing else (as
//! `tracing-core` stands apart from `tracing`). The guide is
//! `docs/writing-a-probe-plugin.md`.
//!
//! # The ABI (version [`ABI_VERSION`])
//!
//! A plugin is a `cdylib` exporting one C symbol, [`ENTRY_SYMBOL`]
//! (`eprof_plugin_entry`), a function taking nothing and returning a pointer to a
//! static [`PluginDescriptor`]. Its first field is the ABI version: the host reads it
//! before anything else and refuses a plugin of another version, naming both. Across
//! the boundary go plain data only: pointers with lengths, `f32` tensor data copied to
//! the CPU, `f64` metric values, integer codes. No Rust trait objects, `String`, `Vec`
//! or panics cross it:
//!
//! - strings are [`StrRef`] (UTF-8 pointer + length), valid for the duration of the
//!   call that passes them (descriptor strings: for the life of the library);
//! - the host owns every buffer it passes (tensor data, shapes, site strings, the error
//!   buffer) and the plugin owns its probe instances (created and destroyed through the
//!   vtable): memory is freed on the side that allocated it;
//! - metrics go out through a host callback ([`MetricSinkC`]); errors come back as a
//!   return code with a message written into a host buffer ([`ErrorBuf`]), which the
//!   host copies;
//! - every generated export catches panics ([`RC_PANIC`]); the host then disables the
//!   probe for the rest of the run;
//! - a probe instance is used from one thread at a time (the recording thread);
//! - the host never unloads a plugin library.
// The ABI is FFI: unsafe code is allowed here, each block saying why it is sound.
#![allow(unsafe_code)]

use std::ffi::c_void;

/// The version of this ABI. Any change to a `#[repr(C)]` type or to the meaning of a
/// field increments it.
pub const ABI_VERSION: u32 = 1;

/// The exported entry point's name, NUL-terminated.
pub const ENTRY_SYMBOL: &[u8] = b"eprof_plugin_entry\0";

/// `observe` succeeded.
pub const RC_OK: i32 = 0;
/// `observe` failed; the message is in the error buffer.
pub const RC_ERROR: i32 = 1;
/// `observe` panicked; the panic message (if any) is in the error buffer.
pub const RC_PANIC: i32 = 2;

/// Bits of [`ProbeVTable::kinds`]: which tensors a probe wants.
pub mod kind {
    /// The output of a component (`q_proj`, `act`, ...) or of a whole layer (the
    /// residual stream after it).
    pub const OUTPUT: u32 = 1;
    /// Attention weights after softmax, `[heads, q_len, kv_len]` (deep depth).
    pub const ATTENTION_WEIGHTS: u32 = 2;
    /// A norm's input (deep depth); its output follows as `OUTPUT`.
    pub const NORM_INPUT: u32 = 4;
}

/// Pipeline phase codes in [`SiteView::phase`].
pub mod phase {
    pub const PRE_INFERENCE: u32 = 0;
    pub const PREFILL: u32 = 1;
    pub const DECODE: u32 = 2;
    pub const POST_INFERENCE: u32 = 3;
}

/// A UTF-8 string slice.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct StrRef {
    pub ptr: *const u8,
    pub len: usize,
}

impl StrRef {
    pub const fn new(s: &str) -> Self {
        StrRef {
            ptr: s.as_ptr(),
            len: s.len(),
        }
    }

    /// # Safety
    /// `ptr` must point to `len` bytes valid for `'a`.
    pub unsafe fn as_str<'a>(&self) -> Option<&'a str> {
        if self.ptr.is_null() {
            return if self.len == 0 { Some("") } else { None };
        }
        // SAFETY: the caller guarantees ptr/len describe live bytes.
        let bytes = unsafe { std::slice::from_raw_parts(self.ptr, self.len) };
        std::str::from_utf8(bytes).ok()
    }
}

/// Where a tensor was seen.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct SiteView {
    /// One of [`phase`].
    pub phase: u32,
    /// The step (generated token index; 0 is prefill).
    pub step: u32,
    /// The layer, or -1 for model-level sites.
    pub layer: i32,
    /// `q_proj`, `attention`, ..., or `layer` for a whole layer.
    pub component: StrRef,
    /// The operation inside the component (`softmax`), empty if none.
    pub operation: StrRef,
}

/// A tensor, copied to the CPU as contiguous `f32` by the host.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct TensorView {
    pub data: *const f32,
    pub len: usize,
    pub shape: *const usize,
    pub rank: usize,
    /// 0 = f32 (the only one in this ABI version).
    pub dtype: u32,
}

/// Where metric values go: `emit(ctx, name, value)`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct MetricSinkC {
    pub ctx: *mut c_void,
    pub emit: unsafe extern "C" fn(ctx: *mut c_void, name: StrRef, value: f64),
}

/// A host-owned buffer for an error message; the plugin writes at most `cap` bytes
/// of UTF-8 and sets `len`.
#[repr(C)]
#[derive(Debug)]
pub struct ErrorBuf {
    pub ptr: *mut u8,
    pub cap: usize,
    pub len: usize,
}

/// One probe's functions. `instance` is the plugin's own object, created by
/// `create` and freed by `destroy`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ProbeVTable {
    pub name: StrRef,
    pub description: StrRef,
    /// Bit set of [`kind`].
    pub kinds: u32,
    /// A new instance, or null on failure.
    pub create: extern "C" fn() -> *mut c_void,
    /// 1 if the probe wants tensors of `kind` at `site`, else 0.
    pub wants: unsafe extern "C" fn(instance: *mut c_void, site: *const SiteView, kind: u32) -> u8,
    /// One of [`RC_OK`], [`RC_ERROR`], [`RC_PANIC`].
    pub observe: unsafe extern "C" fn(
        instance: *mut c_void,
        site: *const SiteView,
        kind: u32,
        tensor: *const TensorView,
        sink: *const MetricSinkC,
        error: *mut ErrorBuf,
    ) -> i32,
    pub destroy: unsafe extern "C" fn(instance: *mut c_void),
}

/// What the entry point returns. `abi_version` must stay the first field.
#[repr(C)]
#[derive(Debug)]
pub struct PluginDescriptor {
    pub abi_version: u32,
    /// `size_of::<PluginDescriptor>()` as the plugin saw it.
    pub struct_size: u32,
    pub name: StrRef,
    pub version: StrRef,
    pub probe_count: usize,
    pub probes: *const ProbeVTable,
    /// Reserved for power sources in a later ABI version: 0 and null here.
    pub power_source_count: usize,
    pub power_sources: *const c_void,
}

/// A descriptor that can live in a `static` (it only holds pointers to statics).
#[repr(transparent)]
pub struct StaticDescriptor(pub PluginDescriptor);
// SAFETY: the descriptor and everything it points to are immutable statics.
unsafe impl Sync for StaticDescriptor {}

/// Vtables that can live in a `static`.
#[repr(transparent)]
pub struct StaticVTables<const N: usize>(pub [ProbeVTable; N]);
// SAFETY: immutable function pointers and pointers to static strings.
unsafe impl<const N: usize> Sync for StaticVTables<N> {}

// ---------------------------------------------------------------------------------
// The Rust side for plugin authors.

/// A site as a plugin probe sees it.
#[derive(Debug, Clone, Copy)]
pub struct Site<'a> {
    pub phase: u32,
    pub step: u32,
    pub layer: Option<u32>,
    pub component: &'a str,
    pub operation: Option<&'a str>,
}

/// A tensor as a plugin probe sees it: contiguous `f32` on the CPU.
#[derive(Debug, Clone, Copy)]
pub struct Tensor<'a> {
    pub data: &'a [f32],
    pub shape: &'a [usize],
}

/// Emits metric values to the host.
pub struct Metrics<'a> {
    sink: &'a MetricSinkC,
}

impl Metrics<'_> {
    /// Record `value` as metric `name` of this probe at the current site and step.
    pub fn emit(&mut self, name: &str, value: f64) {
        // SAFETY: the host's sink is valid for the duration of `observe`, which is the
        // only place a `Metrics` exists; the name lives for the call.
        unsafe { (self.sink.emit)(self.sink.ctx, StrRef::new(name), value) };
    }
}

/// Implement this for your probe and list it in [`export_plugin!`].
pub trait PluginProbe: Sized + 'static {
    /// Unique probe name; its metrics appear as `NAME/metric`.
    const NAME: &'static str;
    const DESCRIPTION: &'static str;
    /// Bit set of [`kind`].
    const KINDS: u32;
    fn new() -> Self;
    /// Whether to be shown `kind` tensors at `site` (called once per site and kind
    /// before observing, so keep it cheap).
    fn wants(&self, site: &Site<'_>, kind: u32) -> bool {
        let _ = site;
        Self::KINDS & kind != 0
    }
    /// Compute metrics from one tensor. An `Err` disables the probe for the rest of
    /// the run, with the message as a warning in the output and the trace.
    fn observe(
        &mut self,
        site: &Site<'_>,
        kind: u32,
        tensor: &Tensor<'_>,
        out: &mut Metrics<'_>,
    ) -> Result<(), &'static str>;
}

/// Shims the macro instantiates per probe type. Not for direct use.
#[doc(hidden)]
pub mod shim {
    use super::*;

    use std::panic::{AssertUnwindSafe, catch_unwind};

    fn write_err(buf: *mut ErrorBuf, msg: &str) {
        if buf.is_null() {
            return;
        }
        // SAFETY: the host passes a valid ErrorBuf with `cap` writable bytes.
        let b = unsafe { &mut *buf };
        let mut n = msg.len().min(b.cap);
        while n > 0 && !msg.is_char_boundary(n) {
            n -= 1;
        }
        // SAFETY: n <= cap; the regions do not overlap (host buffer vs our string).
        unsafe { std::ptr::copy_nonoverlapping(msg.as_ptr(), b.ptr, n) };
        b.len = n;
    }

    unsafe fn site<'a>(s: *const SiteView) -> Option<Site<'a>> {
        // SAFETY: the host passes a valid SiteView for the duration of the call.
        let s = unsafe { s.as_ref()? };
        // SAFETY: the host's strings live for the call.
        let component = unsafe { s.component.as_str()? };
        let op = unsafe { s.operation.as_str()? };
        Some(Site {
            phase: s.phase,
            step: s.step,
            layer: (s.layer >= 0).then_some(s.layer as u32),
            component,
            operation: (!op.is_empty()).then_some(op),
        })
    }

    pub extern "C" fn create<P: PluginProbe>() -> *mut c_void {
        match catch_unwind(P::new) {
            Ok(p) => Box::into_raw(Box::new(p)).cast(),
            Err(_) => std::ptr::null_mut(),
        }
    }

    /// # Safety
    /// Called by the host through the vtable with an instance from `create::<P>` and a
    /// valid site.
    pub unsafe extern "C" fn wants<P: PluginProbe>(
        inst: *mut c_void,
        s: *const SiteView,
        kind: u32,
    ) -> u8 {
        catch_unwind(AssertUnwindSafe(|| {
            // SAFETY: `inst` came from `create::<P>` and is used by one thread.
            let p = unsafe { &*(inst as *const P) };
            // SAFETY: as in `site`.
            unsafe { site(s) }.is_some_and(|s| p.wants(&s, kind))
        }))
        .map_or(0, u8::from)
    }

    /// # Safety
    /// Called by the host through the vtable with an instance from `create::<P>` and
    /// valid site, tensor, sink and error buffer.
    pub unsafe extern "C" fn observe<P: PluginProbe>(
        inst: *mut c_void,
        s: *const SiteView,
        kind: u32,
        t: *const TensorView,
        sink: *const MetricSinkC,
        err: *mut ErrorBuf,
    ) -> i32 {
        let r = catch_unwind(AssertUnwindSafe(|| {
            // SAFETY: `inst` came from `create::<P>` and is used by one thread.
            let p = unsafe { &mut *(inst as *mut P) };
            // SAFETY: the host passes valid views for the duration of the call.
            let (Some(site), Some(t), Some(sink)) =
                (unsafe { site(s) }, unsafe { t.as_ref() }, unsafe {
                    sink.as_ref()
                })
            else {
                return Err("the host passed a null or invalid argument");
            };
            // SAFETY: data/len and shape/rank describe host-owned memory live for the call.
            let tensor = unsafe {
                Tensor {
                    data: std::slice::from_raw_parts(t.data, t.len),
                    shape: std::slice::from_raw_parts(t.shape, t.rank),
                }
            };
            p.observe(&site, kind, &tensor, &mut Metrics { sink })
        }));
        match r {
            Ok(Ok(())) => RC_OK,
            Ok(Err(msg)) => {
                write_err(err, msg);
                RC_ERROR
            }
            Err(payload) => {
                let msg = payload
                    .downcast_ref::<&str>()
                    .copied()
                    .or_else(|| payload.downcast_ref::<String>().map(|s| s.as_str()))
                    .unwrap_or("panic");
                write_err(err, msg);
                RC_PANIC
            }
        }
    }

    /// # Safety
    /// Called once by the host with an instance from `create::<P>`.
    pub unsafe extern "C" fn destroy<P: PluginProbe>(inst: *mut c_void) {
        if !inst.is_null() {
            // SAFETY: `inst` came from `create::<P>` and is destroyed once.
            let _ = catch_unwind(AssertUnwindSafe(|| {
                drop(unsafe { Box::from_raw(inst as *mut P) })
            }));
        }
    }

    pub const fn vtable<P: PluginProbe>() -> ProbeVTable {
        ProbeVTable {
            name: StrRef::new(P::NAME),
            description: StrRef::new(P::DESCRIPTION),
            kinds: P::KINDS,
            create: create::<P>,
            wants: wants::<P>,
            observe: observe::<P>,
            destroy: destroy::<P>,
        }
    }
}

/// Export probes as an eprof plugin:
///
/// ```text
/// eprof_plugin_api::export_plugin!(name: "my-plugin", version: "0.1.0", probes: [MyProbe]);
/// ```
///
/// generates the `eprof_plugin_entry` symbol, the descriptor and one C vtable per
/// probe, with every export catching panics.
#[macro_export]
macro_rules! export_plugin {
    (name: $name:expr, version: $version:expr, probes: [$($probe:ty),+ $(,)?]) => {
        const _: () = {
            const N: usize = [$(stringify!($probe)),+].len();
            static VTABLES: $crate::StaticVTables<N> =
                $crate::StaticVTables([$($crate::shim::vtable::<$probe>()),+]);
            static DESCRIPTOR: $crate::StaticDescriptor = $crate::StaticDescriptor($crate::PluginDescriptor {
                abi_version: $crate::ABI_VERSION,
                struct_size: ::core::mem::size_of::<$crate::PluginDescriptor>() as u32,
                name: $crate::StrRef::new($name),
                version: $crate::StrRef::new($version),
                probe_count: N,
                probes: VTABLES.0.as_ptr(),
                power_source_count: 0,
                power_sources: ::std::ptr::null(),
            });

            #[unsafe(no_mangle)]
            pub extern "C" fn eprof_plugin_entry() -> *const $crate::PluginDescriptor {
                &DESCRIPTOR.0
            }
        };
    };
}
