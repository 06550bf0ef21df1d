//! A projection: candle's (dense or quantized) or eprof's own CPU kernels on packed
//! blocks, and the process-wide switch between them.

use candle_core::quantized::QMatMul;
use candle_core::{DType, Device, Module, Tensor};

/// A projection: dense (safetensors), quantized through candle (GGUF), or quantized
/// through eprof's own CPU kernels (GGUF Q4_1 / Q5_0 / Q5_1 / Q8_0 / Q4_K / Q5_K /
/// Q6_K on the CPU: [`eprof_kernels::WeightType::ALL`]), with an optional bias.
#[derive(Debug, Clone)]
pub enum Linear {
    Dense(candle_nn::Linear),
    Quant(QMatMul, Option<Tensor>),
    /// The bias, if any, is added by the layer itself, into its output buffer.
    Blocks(BlockLinear),
}

impl Linear {
    /// A GGUF weight on `dev`: through eprof's kernels where they apply (and
    /// [`own_kernels`] is on), else candle's.
    pub fn quantized(
        w: std::sync::Arc<candle_core::quantized::QTensor>,
        bias: Option<Tensor>,
        dev: &Device,
    ) -> candle_core::Result<Linear> {
        if own_kernels()
            && dev.is_cpu()
            && BlockLinear::weight_type(&w).is_some_and(|t| own_weight_types().contains(&t))
            && let Some(b) = BlockLinear::from_qtensor(&w)?
        {
            return Ok(Linear::Blocks(b.with_bias(bias.as_ref())?));
        }
        Ok(Linear::Quant(QMatMul::from_arc(w)?, bias))
    }

    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (y, b) = match self {
            Linear::Dense(l) => return l.forward(x),
            Linear::Quant(m, b) => (m.forward(x)?, b),
            Linear::Blocks(m) => return m.forward(x),
        };
        match b {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }

    /// eprof's kernels' layer, whose output is a host buffer before it is a tensor.
    pub fn blocks(&self) -> Option<&BlockLinear> {
        match self {
            Linear::Blocks(m) => Some(m),
            _ => None,
        }
    }
}

/// 0: not decided yet (read `EPROF_CPU_KERNELS`), 1: eprof's, 2: candle's.
pub(super) static OWN_KERNELS: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// Whether models loaded from now on use eprof's CPU kernels for the types they
/// handle ([`eprof_kernels::WeightType::ALL`]) or candle's (the benchmark compares both in one process).
pub fn set_own_kernels(on: bool) {
    OWN_KERNELS.store(if on { 1 } else { 2 }, std::sync::atomic::Ordering::Relaxed);
}

/// eprof's kernels unless `EPROF_CPU_KERNELS=candle` (or [`set_own_kernels`]).
pub fn own_kernels() -> bool {
    use std::sync::atomic::Ordering::Relaxed;
    match OWN_KERNELS.load(Relaxed) {
        0 => {
            let on = std::env::var("EPROF_CPU_KERNELS").map_or(true, |v| v != "candle");
            OWN_KERNELS.store(if on { 1 } else { 2 }, Relaxed);
            on
        }
        v => v == 1,
    }
}

/// A `out x in` weight matrix of GGUF blocks, multiplied by eprof-kernels: each input
/// row quantized to Q8 once, output rows split across candle's CPU threads. The
/// blocks are repacked at load in the layout the kernels read fastest
/// ([`eprof_kernels::Packed`]).
#[derive(Debug, Clone)]
pub struct BlockLinear {
    pub(super) w: std::sync::Arc<eprof_kernels::Packed>,
    pub(super) bias: Option<std::sync::Arc<[f32]>>,
}

/// A layer's output as a host buffer, before it becomes a tensor.
pub struct HostOutput {
    pub data: Vec<f32>,
    pub shape: Vec<usize>,
}

impl HostOutput {
    pub fn into_tensor(self, dev: &Device) -> candle_core::Result<Tensor> {
        Tensor::from_vec(self.data, self.shape, dev)
    }
}

impl BlockLinear {
    /// The kernels' type for a GGUF tensor's, if they have it.
    pub fn weight_type(q: &candle_core::quantized::QTensor) -> Option<eprof_kernels::WeightType> {
        use candle_core::quantized::GgmlDType;
        use eprof_kernels::WeightType;
        Some(match q.dtype() {
            GgmlDType::Q4_1 => WeightType::Q4_1,
            GgmlDType::Q5_0 => WeightType::Q5_0,
            GgmlDType::Q5_1 => WeightType::Q5_1,
            GgmlDType::Q8_0 => WeightType::Q8_0,
            GgmlDType::Q4K => WeightType::Q4K,
            GgmlDType::Q5K => WeightType::Q5K,
            GgmlDType::Q6K => WeightType::Q6K,
            _ => return None,
        })
    }

    /// `None` for a type or shape these kernels do not handle.
    pub fn from_qtensor(
        q: &candle_core::quantized::QTensor,
    ) -> candle_core::Result<Option<BlockLinear>> {
        let Some(wt) = BlockLinear::weight_type(q) else {
            return Ok(None);
        };
        let (out_features, in_features) = match q.shape().dims() {
            [o, i] => (*o, *i),
            _ => return Ok(None),
        };
        if !in_features.is_multiple_of(wt.block_values()) {
            return Ok(None);
        }
        let data = q.data()?;
        if data.len() != out_features * in_features / wt.block_values() * wt.block_bytes() {
            return Ok(None);
        }
        let w = eprof_kernels::Packed::new(wt, &data, out_features, in_features);
        Ok(Some(BlockLinear {
            w: w.into(),
            bias: None,
        }))
    }

    /// The layer with `bias` (one value per output feature) added to its output.
    pub fn with_bias(mut self, bias: Option<&Tensor>) -> candle_core::Result<BlockLinear> {
        self.bias = match bias {
            None => None,
            Some(b) => {
                let b: Vec<f32> = b.flatten_all()?.to_dtype(DType::F32)?.to_vec1()?;
                if b.len() != self.w.rows() {
                    candle_core::bail!(
                        "bias of {} values for a projection with {} outputs",
                        b.len(),
                        self.w.rows()
                    );
                }
                Some(b.into())
            }
        };
        Ok(self)
    }

    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.forward_host(x)?.into_tensor(x.device())
    }

    /// The output as a host buffer: what [`BlockLinear::forward`] makes a tensor of.
    /// Probes can be shown it before, without the tensor's storage lock.
    pub fn forward_host(&self, x: &Tensor) -> candle_core::Result<HostOutput> {
        let dims = x.dims().to_vec();
        let k = *dims.last().unwrap_or(&0);
        if k != self.w.cols() {
            candle_core::bail!(
                "projection expects {} inputs, got shape {:?}",
                self.w.cols(),
                dims
            );
        }
        let m = x.elem_count() / k.max(1);
        let at = self.w.weight_type().activation();
        let act = quantized_input(x, at, k)?;
        let act: &[u8] = &act;
        let n = self.w.rows();
        let w = &*self.w;
        // Spans of output rows (four, or a tile of eight) are shared out by candle's own
        // CPU pool (a spinning barrier pool with a shared cursor, the one its quantized
        // matmuls use), so the threads are awake between projections. Each span runs
        // every input row through it: a weight row is read from memory once per call,
        // also in prefill, where the lane tiles take four input rows per pass.
        // Results are stored as f32 bits in atomics (disjoint, relaxed: plain stores),
        // in the output's own layout (input row major).
        use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
        let out: Vec<AtomicU32> = (0..n * m).map(|_| AtomicU32::new(0)).collect();
        candle_core::utils::barrier_pool().execute_chunked(w.units(), |units| {
            let rows = w.unit_span(&units);
            let mut part = vec![0f32; m * rows.len()];
            w.matmul_units(units, act, m, &mut part);
            for (i, chunk) in part.chunks_exact(rows.len().max(1)).enumerate() {
                for (o, v) in out[i * n + rows.start..i * n + rows.end].iter().zip(chunk) {
                    o.store(v.to_bits(), Relaxed);
                }
            }
        });
        let mut out: Vec<f32> = out
            .into_iter()
            .map(|v| f32::from_bits(v.into_inner()))
            .collect();
        if let Some(b) = &self.bias {
            for row in out.chunks_exact_mut(n) {
                for (v, b) in row.iter_mut().zip(b.iter()) {
                    *v += b;
                }
            }
        }
        let mut shape = dims;
        if let Some(last) = shape.last_mut() {
            *last = n;
        }
        Ok(HostOutput { data: out, shape })
    }
}

/// `x` (rows of `k` values) quantized for activation type `at`, shared by the
/// projections that read the same input (q, k and v; gate and up): the last input
/// quantized on this thread is kept, keyed by the tensor's id (ids are never reused,
/// and candle tensors are immutable).
fn quantized_input(
    x: &Tensor,
    at: eprof_kernels::ActType,
    k: usize,
) -> candle_core::Result<std::rc::Rc<Vec<u8>>> {
    use std::cell::RefCell;
    use std::rc::Rc;
    type Last = Option<(candle_core::TensorId, eprof_kernels::ActType, Rc<Vec<u8>>)>;
    thread_local! {
        static LAST: RefCell<Last> = const { RefCell::new(None) };
    }
    if let Some(hit) = LAST.with_borrow(|l| {
        l.as_ref()
            .filter(|(id, a, _)| *id == x.id() && *a == at)
            .map(|(_, _, q)| q.clone())
    }) {
        return Ok(hit);
    }
    let xs: Vec<f32> = x.flatten_all()?.to_dtype(DType::F32)?.to_vec1()?;
    let mut act = Vec::with_capacity(xs.len() / at.block_values() * at.block_bytes());
    for row in xs.chunks_exact(k) {
        eprof_kernels::quantize_activations(row, at, &mut act);
    }
    let act = Rc::new(act);
    LAST.with_borrow_mut(|l| *l = Some((x.id(), at, act.clone())));
    Ok(act)
}

/// Multiply-adds of one row through an `in x out` projection, counted as 2 FLOPs each.
pub(super) fn proj_flops(in_features: usize, out_features: usize) -> f32 {
    2.0 * in_features as f32 * out_features as f32
}

/// Whether `EPROF_CPU_ISA` (a forced kernel implementation) is one this CPU runs and
/// `EPROF_CPU_KERNEL_TYPES` names only types eprof's kernels have; unset is fine.
pub fn check_kernel_env() -> Result<(), String> {
    eprof_kernels::isa_from_env()?;
    kernel_types_from_env().map(|_| ())
}

/// `EPROF_CPU_KERNEL_TYPES=q4_1,q5_0,...` (or `all`, or empty for none): the weight
/// types eprof's kernels run, the others on candle's (to compare the two type by
/// type). `Err` names a type eprof's kernels do not have.
fn kernel_types_from_env() -> Result<Option<Vec<eprof_kernels::WeightType>>, String> {
    match std::env::var("EPROF_CPU_KERNEL_TYPES") {
        Ok(v) => parse_kernel_types(&v)
            .map(Some)
            .map_err(|e| format!("EPROF_CPU_KERNEL_TYPES={v}: {e}")),
        Err(_) => Ok(None),
    }
}

/// A list of weight types as `EPROF_CPU_KERNEL_TYPES` takes it: names separated by
/// commas (`q4_1,q5_0`), `all`, or nothing.
pub fn parse_kernel_types(v: &str) -> Result<Vec<eprof_kernels::WeightType>, String> {
    use eprof_kernels::WeightType;
    if v.trim() == "all" {
        return Ok(WeightType::ALL.to_vec());
    }
    let names: Vec<&str> = WeightType::ALL.iter().map(|t| t.name()).collect();
    v.split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(|n| {
            WeightType::ALL
                .into_iter()
                .find(|t| t.name() == n)
                .ok_or_else(|| format!("no kernel for {n:?}; types: {}, or all", names.join(", ")))
        })
        .collect()
}

/// A process-wide choice of [`own_weight_types`] that overrides the environment
/// (the engine benchmark compares choices in one process); `None` clears it.
pub fn set_own_weight_types(types: Option<Vec<eprof_kernels::WeightType>>) {
    *OWN_TYPES.lock().unwrap_or_else(|e| e.into_inner()) = types;
}

static OWN_TYPES: std::sync::Mutex<Option<Vec<eprof_kernels::WeightType>>> =
    std::sync::Mutex::new(None);

/// The GGUF weight types eprof's CPU kernels run: [`set_own_weight_types`]'s, else
/// `EPROF_CPU_KERNEL_TYPES` when set (see [`check_kernel_env`]), else every type they have
/// ([`eprof_kernels::WeightType::ALL`]); candle's run the others.
pub fn own_weight_types() -> Vec<eprof_kernels::WeightType> {
    if let Some(t) = &*OWN_TYPES.lock().unwrap_or_else(|e| e.into_inner()) {
        return t.clone();
    }
    kernel_types_from_env()
        .ok()
        .flatten()
        .unwrap_or_else(|| eprof_kernels::WeightType::ALL.to_vec())
}

#[cfg(test)]
mod tests {
    use super::parse_kernel_types;
    use eprof_kernels::WeightType;

    #[test]
    fn kernel_type_lists_parse_or_name_what_is_wrong() {
        assert_eq!(
            parse_kernel_types(" q4_1, q8_0,q6k ").unwrap(),
            vec![WeightType::Q4_1, WeightType::Q8_0, WeightType::Q6K]
        );
        assert_eq!(parse_kernel_types("all").unwrap(), WeightType::ALL.to_vec());
        assert!(parse_kernel_types("").unwrap().is_empty());
        let e = parse_kernel_types("q4_1,q9_9").unwrap_err();
        assert!(e.contains("\"q9_9\"") && e.contains("q4k"), "{e}");
    }
}
