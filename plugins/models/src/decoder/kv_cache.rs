//! A layer's key/value cache.

use candle_core::Tensor;

/// A preallocated KV cache: appending is a copy of the new rows, not of the cache.
#[derive(Debug, Clone)]
pub(super) struct KvCache {
    pub(super) k: Option<Tensor>,
    pub(super) v: Option<Tensor>,
    pub(super) len: usize,
}

impl KvCache {
    pub(super) fn new() -> Self {
        KvCache {
            k: None,
            v: None,
            len: 0,
        }
    }

    pub(super) fn append(
        &mut self,
        k: &Tensor,
        v: &Tensor,
        reserve: usize,
    ) -> candle_core::Result<(Tensor, Tensor)> {
        let (b, h, s, d) = k.dims4()?;
        let need = self.len + s;
        let cap = self.k.as_ref().map_or(0, |t| t.dim(2).unwrap_or(0));
        if need > cap {
            let new_cap = need.max(reserve).max(cap * 2);
            let grow = |old: &Option<Tensor>| -> candle_core::Result<Tensor> {
                let t = Tensor::zeros((b, h, new_cap, d), k.dtype(), k.device())?;
                if let Some(old) = old {
                    t.slice_set(&old.narrow(2, 0, self.len)?.contiguous()?, 2, 0)?;
                }
                Ok(t)
            };
            self.k = Some(grow(&self.k)?);
            self.v = Some(grow(&self.v)?);
        }
        let (kc, vc) = match (&self.k, &self.v) {
            (Some(kc), Some(vc)) => (kc, vc),
            _ => candle_core::bail!("kv cache not allocated"),
        };
        kc.slice_set(&k.contiguous()?, 2, self.len)?;
        vc.slice_set(&v.contiguous()?, 2, self.len)?;
        self.len = need;
        Ok((kc.narrow(2, 0, need)?, vc.narrow(2, 0, need)?))
    }
}
