//! Attention against the KV cache on the CPU, in plain loops over the cache's own
//! memory: one new position (decode, [`DecodeAttention`]) or a prompt's positions
//! (prefill, [`PromptAttention`]).
//!
//! candle runs it as a dozen small ops (repeat the KV heads by concatenation, two
//! batched matmuls that wake rayon's pool, a mask and a softmax that wake it again),
//! about 1.4 ms per SmolLM2 token on 2 cores where the arithmetic is 0.2 MFLOP per
//! layer. Here grouped heads read their shared KV head in place, nothing is copied,
//! a prompt's masked scores are never computed, and each step of the operation is
//! its own function so that depth `deep` still times `qk_matmul`, `scale`, `mask`,
//! `softmax` and `value_matmul` separately.
//!
//! The sums run in a different order than candle's gemm, so logits differ from
//! candle-transformers' in the last bits (the parity tests bound it and keep the
//! greedy ids equal); `EPROF_CPU_KERNELS=candle` keeps candle's path throughout.

/// One query position's attention inputs. `k` and `v` are whole caches laid out
/// `[kv_heads][cap][head_dim]`; the query sees rows `start..start + len` of each.
pub struct DecodeAttention<'a> {
    pub q: &'a [f32],
    pub k: &'a [f32],
    pub v: &'a [f32],
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub cap: usize,
    pub start: usize,
    pub len: usize,
}

impl DecodeAttention<'_> {
    /// Whether the slices hold what the shape says (checked once, so the loops can index).
    pub fn valid(&self) -> bool {
        let cache = self.kv_heads * self.cap * self.head_dim;
        self.kv_heads > 0
            && self.heads.is_multiple_of(self.kv_heads)
            && self.q.len() == self.heads * self.head_dim
            && self.k.len() >= cache
            && self.v.len() >= cache
            && self.start + self.len <= self.cap
    }

    /// KV head `g`'s rows in `cache` (`cap x head_dim`).
    fn head<'c>(&self, cache: &'c [f32], g: usize) -> &'c [f32] {
        let n = self.cap * self.head_dim;
        &cache[g * n..(g + 1) * n]
    }

    /// The KV head that query head `h` reads (candle-transformers' `repeat_kv` order).
    fn group(&self, h: usize) -> usize {
        h / (self.heads / self.kv_heads)
    }

    /// `q · k` of head `h` with each of its keys, into `out` (`len` scores).
    pub fn head_scores(&self, h: usize, out: &mut [f32]) {
        let hd = self.head_dim;
        let q = &self.q[h * hd..(h + 1) * hd];
        let k = self.head(self.k, self.group(h));
        dots(
            q,
            k,
            self.start..self.start + self.len,
            &mut out[..self.len],
        );
    }

    /// Head `h`'s values weighted by its probabilities `p` (`len`), into `out`
    /// (`head_dim`).
    pub fn head_values(&self, h: usize, p: &[f32], out: &mut [f32]) {
        let v = self.head(self.v, self.group(h));
        let n = self.len.min(p.len());
        weighted_sum::<false>(&p[..n], &v[self.start * self.head_dim..], out);
    }

    /// Every head's scores, `heads x len` (one thread; see [`Self::head_scores`]).
    pub fn scores(&self) -> Vec<f32> {
        let mut s = vec![0f32; self.heads * self.len];
        for (h, out) in s.chunks_exact_mut(self.len.max(1)).enumerate() {
            self.head_scores(h, out);
        }
        s
    }

    /// Every head's weighted values, `heads x head_dim` (one thread).
    pub fn values(&self, p: &[f32]) -> Vec<f32> {
        let hd = self.head_dim;
        let mut y = vec![0f32; self.heads * hd];
        for (h, out) in y.chunks_exact_mut(hd).enumerate() {
            self.head_values(h, &p[h * self.len..(h + 1) * self.len], out);
        }
        y
    }
}

/// A prompt's query positions against the KV cache (prefill). Query `i` is at position
/// `first + i` and sees cache rows `j <= first + i`, and with a window `w` only those
/// with `j + w >= first + i` (the decoder's mask). `q` is laid out
/// `[heads][queries][head_dim]` (the rotated queries), `k` and `v` as the whole caches
/// `[kv_heads][cap][head_dim]`. Row `r = h * queries + i` is head `h`'s query `i`, in
/// the scores (`[heads][queries][keys]`, candle's layout) as in `q`.
pub struct PromptAttention<'a> {
    pub q: &'a [f32],
    pub k: &'a [f32],
    pub v: &'a [f32],
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub cap: usize,
    pub queries: usize,
    pub first: usize,
    pub window: Option<usize>,
}

impl PromptAttention<'_> {
    /// Whether the slices hold what the shape says (checked once, so the loops can index).
    pub fn valid(&self) -> bool {
        let cache = self.kv_heads * self.cap * self.head_dim;
        self.kv_heads > 0
            && self.heads.is_multiple_of(self.kv_heads)
            && self.q.len() == self.heads * self.queries * self.head_dim
            && self.k.len() >= cache
            && self.v.len() >= cache
            && self.keys() <= self.cap
    }

    /// Scores per row: every cache row up to the last query.
    pub fn keys(&self) -> usize {
        self.first + self.queries
    }

    /// The cache rows score row `r` sees.
    fn visible(&self, r: usize) -> std::ops::Range<usize> {
        let p = self.first + r % self.queries;
        let lo = self.window.map_or(0, |w| p.saturating_sub(w));
        lo..p + 1
    }

    /// The KV head score row `r` reads (candle-transformers' `repeat_kv` order).
    fn group(&self, r: usize) -> usize {
        r / self.queries / (self.heads / self.kv_heads)
    }

    /// Values per row of [`Self::transposed_keys`]: the keys rounded up to whole blocks.
    fn key_stride(&self) -> usize {
        self.keys().div_ceil(KEY_BLOCK) * KEY_BLOCK
    }

    /// The rows (`cap x head_dim`) of the KV head that score row `r` reads.
    fn kv_head<'c>(&self, cache: &'c [f32], r: usize) -> &'c [f32] {
        let g = self.group(r);
        let n = self.cap * self.head_dim;
        &cache[g * n..(g + 1) * n]
    }

    /// The keys transposed for [`Self::row_scores`]: per KV head, `head_dim` rows of
    /// [`Self::keys`] values rounded up to whole blocks of [`KEY_BLOCK`] (zeros after),
    /// row `d` holding value `d` of every key. Built once per prompt and layer
    /// (`kv_heads x keys x head_dim` values moved).
    pub fn transposed_keys(&self) -> Vec<f32> {
        let (hd, n, stride) = (self.head_dim, self.keys(), self.key_stride());
        let mut kt = vec![0f32; self.kv_heads * hd * stride];
        for (g, t) in kt.chunks_exact_mut(hd * stride).enumerate() {
            let k = &self.k[g * self.cap * hd..];
            for (j, key) in k.chunks_exact(hd).take(n).enumerate() {
                for (d, &x) in key.iter().enumerate() {
                    t[d * stride + j] = x;
                }
            }
        }
        kt
    }

    /// Row `r`'s scores `q · k` over the keys it sees, into `out` (`keys()` long; the
    /// others are 0, for [`Self::mask_row`]), from the keys as
    /// [`Self::transposed_keys`] lays them out: [`KEY_BLOCK`] keys at a time, each
    /// score the fused multiply-adds of its `head_dim` terms in order, the block's in
    /// the lanes of registers (no sum across lanes, no dependent chain shared by
    /// keys): 44 -> 31 ms of a 305-token SmolLM2 prompt's 30 layers on 2 threads.
    pub fn row_scores(&self, kt: &[f32], r: usize, out: &mut [f32]) {
        let hd = self.head_dim;
        let q = &self.q[r * hd..(r + 1) * hd];
        let (stride, g) = (self.key_stride(), self.group(r));
        let kt = &kt[g * hd * stride..(g + 1) * hd * stride];
        out.fill(0.0);
        let seen = self.visible(r);
        // Whole blocks from the one the first seen key is in: the blocks' other keys
        // are computed and dropped (every key is its own lane: the same bits).
        let mut j = seen.start / KEY_BLOCK * KEY_BLOCK;
        while j < seen.end {
            let mut acc = [0f32; KEY_BLOCK];
            for (d, &x) in q.iter().enumerate() {
                let k: &[f32; KEY_BLOCK] = kt[d * stride + j..d * stride + j + KEY_BLOCK]
                    .try_into()
                    .expect("a whole block");
                for (a, &k) in acc.iter_mut().zip(k) {
                    *a = x.mul_add(k, *a);
                }
            }
            let keep = j.max(seen.start)..(j + KEY_BLOCK).min(seen.end);
            out[keep.clone()].copy_from_slice(&acc[keep.start - j..keep.end - j]);
            j += KEY_BLOCK;
        }
    }

    /// Sets the scores row `r` does not see to -inf.
    pub fn mask_row(&self, r: usize, row: &mut [f32]) {
        let seen = self.visible(r);
        for (j, s) in row.iter_mut().enumerate() {
            if !seen.contains(&j) {
                *s = f32::NEG_INFINITY;
            }
        }
    }

    /// Row `r`'s values weighted by its probabilities `p` (`keys()`; the masked ones
    /// are 0), into `out` (`head_dim`).
    pub fn row_values(&self, r: usize, p: &[f32], out: &mut [f32]) {
        let seen = self.visible(r);
        let v = &self.kv_head(self.v, r)[seen.start * self.head_dim..];
        weighted_sum::<true>(&p[seen], v, out);
    }
}

/// Keys per block of [`PromptAttention::row_scores`]: eight 256-bit registers of
/// accumulators, enough independent chains to keep the FMA units busy.
pub const KEY_BLOCK: usize = 64;

/// Divides every score by `by` (as candle-transformers divides by √head_dim).
pub fn scale(s: &mut [f32], by: f32) {
    for x in s {
        *x /= by;
    }
}

/// Softmax of each row of `len` scores, in place (max subtracted first). The maximum
/// and the sum are taken over eight lanes, so that the passes vectorize (a single
/// running sum is a chain of dependent additions: 2.2 -> 1.0 ns a score).
pub fn softmax_rows(s: &mut [f32], len: usize) {
    for row in s.chunks_exact_mut(len.max(1)) {
        let chunks = row.chunks_exact(8);
        let mut max = chunks
            .remainder()
            .iter()
            .copied()
            .fold(f32::NEG_INFINITY, f32::max);
        let mut m8 = [f32::NEG_INFINITY; 8];
        for c in chunks {
            for (m, &v) in m8.iter_mut().zip(c) {
                *m = m.max(v);
            }
        }
        max = m8.iter().copied().fold(max, f32::max);
        // The vectorizable exponential of the gated activation; a masked score
        // (-inf) stays exactly 0.
        for x in row.iter_mut() {
            let d = *x - max;
            *x = if d == f32::NEG_INFINITY {
                0.0
            } else {
                crate::activation::exp(d)
            };
        }
        let chunks = row.chunks_exact(8);
        let mut sum: f32 = chunks.remainder().iter().sum();
        let mut s8 = [0f32; 8];
        for c in chunks {
            for (a, &v) in s8.iter_mut().zip(c) {
                *a += v;
            }
        }
        sum += s8.iter().sum::<f32>();
        for x in row.iter_mut() {
            *x /= sum;
        }
    }
}

/// `out[i] = q · key js.start + i` (decode), the keys being the rows of `keys`
/// (`q.len()` each), four at a time: four independent chains of additions the CPU
/// overlaps (a single dot product waits on each one), each key's sums those of
/// [`dot`] (the same bits).
fn dots(q: &[f32], keys: &[f32], js: std::ops::Range<usize>, out: &mut [f32]) {
    let hd = q.len();
    let key = |j: usize| &keys[j * hd..(j + 1) * hd];
    let mut quads = out.chunks_exact_mut(4);
    let mut j = js.start;
    for o in &mut quads {
        o.copy_from_slice(&dot4(q, [key(j), key(j + 1), key(j + 2), key(j + 3)]));
        j += 4;
    }
    for o in quads.into_remainder() {
        *o = dot(q, key(j));
        j += 1;
    }
}

/// `a · b`: eight lanes of products and sums over the whole eights (so that it
/// vectorizes), the lanes summed, then the rest.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len() / 8 * 8;
    let mut s = [0f32; 8];
    for (x, y) in a[..n].chunks_exact(8).zip(b[..n].chunks_exact(8)) {
        for i in 0..8 {
            s[i] += x[i] * y[i];
        }
    }
    let tail: f32 = a[n..].iter().zip(&b[n..]).map(|(x, y)| x * y).sum();
    s.iter().sum::<f32>() + tail
}

/// [`dot`] of `a` with four rows `b` at once, the same sums lane by lane.
#[inline(always)]
fn dot4(a: &[f32], b: [&[f32]; 4]) -> [f32; 4] {
    let n = a.len() / 8 * 8;
    let (mut s0, mut s1, mut s2, mut s3) = ([0f32; 8], [0f32; 8], [0f32; 8], [0f32; 8]);
    let rows = a[..n]
        .chunks_exact(8)
        .zip(b[0][..n].chunks_exact(8))
        .zip(b[1][..n].chunks_exact(8))
        .zip(b[2][..n].chunks_exact(8))
        .zip(b[3][..n].chunks_exact(8));
    for ((((x, y0), y1), y2), y3) in rows {
        for i in 0..8 {
            s0[i] += x[i] * y0[i];
            s1[i] += x[i] * y1[i];
            s2[i] += x[i] * y2[i];
            s3[i] += x[i] * y3[i];
        }
    }
    let acc = [s0, s1, s2, s3];
    std::array::from_fn(|k| {
        let tail: f32 = a[n..].iter().zip(&b[k][n..]).map(|(x, y)| x * y).sum();
        acc[k].iter().sum::<f32>() + tail
    })
}

/// `out = sum over j of p[j] * row j of v` (rows of `out.len()` values), each output
/// value's terms added in `j`'s order, sixty-four values at a time kept in registers
/// across the rows (eight registers of independent chains, rather than a load, add
/// and store through memory per row). `FMA`: fused multiply-adds (prefill; one
/// rounding a term); else a product and a sum, the bits decode has always had (with
/// fused ones in decode too, SmolLM2's greedy ids parted from candle-transformers' at
/// a step whose reference margin is 0.1).
fn weighted_sum<const FMA: bool>(p: &[f32], v: &[f32], out: &mut [f32]) {
    const LANES: usize = 64;
    let hd = out.len();
    let whole = hd / LANES * LANES;
    for c in (0..whole).step_by(LANES) {
        let mut acc = [0f32; LANES];
        for (j, &w) in p.iter().enumerate() {
            let row: &[f32; LANES] = v[j * hd + c..j * hd + c + LANES].try_into().unwrap();
            for i in 0..LANES {
                acc[i] = if FMA {
                    w.mul_add(row[i], acc[i])
                } else {
                    acc[i] + w * row[i]
                };
            }
        }
        out[c..c + LANES].copy_from_slice(&acc);
    }
    let rest = &mut out[whole..];
    rest.fill(0.0);
    for (j, &w) in p.iter().enumerate() {
        for (y, x) in rest.iter_mut().zip(&v[j * hd + whole..(j + 1) * hd]) {
            *y = if FMA { w.mul_add(*x, *y) } else { *y + w * x };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A naive reference: repeat the KV heads, then the textbook formula in f64.
    fn reference(a: &DecodeAttention<'_>) -> Vec<f32> {
        let hd = a.head_dim;
        let mut y = vec![0f32; a.heads * hd];
        for h in 0..a.heads {
            let g = h / (a.heads / a.kv_heads);
            let q = &a.q[h * hd..(h + 1) * hd];
            let s: Vec<f64> = (0..a.len)
                .map(|j| {
                    let k = &a.head(a.k, g)[(a.start + j) * hd..(a.start + j + 1) * hd];
                    q.iter()
                        .zip(k)
                        .map(|(x, y)| *x as f64 * *y as f64)
                        .sum::<f64>()
                        / (hd as f64).sqrt()
                })
                .collect();
            let m = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = s.iter().map(|x| (x - m).exp()).collect();
            let z: f64 = e.iter().sum();
            for d in 0..hd {
                let v: f64 = (0..a.len)
                    .map(|j| e[j] / z * a.head(a.v, g)[(a.start + j) * hd + d] as f64)
                    .sum();
                y[h * hd + d] = v as f32;
            }
        }
        y
    }

    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn matches_the_textbook_formula_with_grouped_heads_and_a_window() {
        // 9 query heads on 3 KV heads (SmolLM2's shape), head_dim not a multiple of 8,
        // a cache with spare rows, and a window that starts past row 0.
        for (heads, kv, hd, cap, start, len) in [
            (9, 3, 64, 40, 0, 33),
            (4, 4, 13, 16, 5, 7),
            (2, 1, 8, 3, 2, 1),
        ] {
            let q = values(heads * hd, 1);
            let k = values(kv * cap * hd, 2);
            let v = values(kv * cap * hd, 3);
            let a = DecodeAttention {
                q: &q,
                k: &k,
                v: &v,
                heads,
                kv_heads: kv,
                head_dim: hd,
                cap,
                start,
                len,
            };
            assert!(a.valid());
            let mut s = a.scores();
            scale(&mut s, (hd as f32).sqrt());
            softmax_rows(&mut s, len);
            for row in s.chunks_exact(len) {
                assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
            }
            let got = a.values(&s);
            let want = reference(&a);
            let err = got
                .iter()
                .zip(&want)
                .map(|(g, w)| (g - w).abs())
                .fold(0f32, f32::max);
            // f32 sums of at most 64 products of values in [-1, 1]: well under 1e-5.
            assert!(err < 1e-5, "{heads}/{kv} heads, hd {hd}: max error {err}");
        }
    }

    /// A prompt against the textbook formula with an explicit mask (causal, and a
    /// window), grouped heads, a cache with rows before the prompt and spare rows.
    #[test]
    fn prompts_match_the_textbook_formula_with_their_mask() {
        for (heads, kv, hd, cap, first, queries, window) in [
            (9, 3, 64, 40, 0, 17, None),
            (4, 2, 13, 30, 6, 9, Some(4)),
            (2, 2, 8, 5, 0, 5, Some(0)),
        ] {
            let q = values(heads * queries * hd, 4);
            let k = values(kv * cap * hd, 5);
            let v = values(kv * cap * hd, 6);
            let a = PromptAttention {
                q: &q,
                k: &k,
                v: &v,
                heads,
                kv_heads: kv,
                head_dim: hd,
                cap,
                queries,
                first,
                window,
            };
            assert!(a.valid());
            let n = a.keys();
            let kt = a.transposed_keys();
            let mut s = vec![0f32; heads * queries * n];
            for (r, row) in s.chunks_exact_mut(n).enumerate() {
                a.row_scores(&kt, r, row);
            }
            scale(&mut s, (hd as f32).sqrt());
            for (r, row) in s.chunks_exact_mut(n).enumerate() {
                a.mask_row(r, row);
            }
            softmax_rows(&mut s, n);
            let mut got = vec![0f32; heads * queries * hd];
            for (r, out) in got.chunks_exact_mut(hd).enumerate() {
                a.row_values(r, &s[r * n..(r + 1) * n], out);
            }
            let mut err = 0f32;
            for i in 0..queries {
                let p = first + i;
                for h in 0..heads {
                    let g = h / (heads / kv);
                    let qh = &q[(h * queries + i) * hd..(h * queries + i + 1) * hd];
                    let row = |c: &[f32], j: usize| {
                        c[(g * cap + j) * hd..(g * cap + j + 1) * hd].to_vec()
                    };
                    let seen = |j: usize| j <= p && window.is_none_or(|w| j + w >= p);
                    let sc: Vec<f64> = (0..n)
                        .map(|j| {
                            if !seen(j) {
                                return f64::NEG_INFINITY;
                            }
                            let kj = row(&k, j);
                            qh.iter()
                                .zip(&kj)
                                .map(|(x, y)| *x as f64 * *y as f64)
                                .sum::<f64>()
                                / (hd as f64).sqrt()
                        })
                        .collect();
                    let m = sc.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let e: Vec<f64> = sc.iter().map(|x| (x - m).exp()).collect();
                    let z: f64 = e.iter().sum();
                    for d in 0..hd {
                        let want: f64 = (0..n).map(|j| e[j] / z * row(&v, j)[d] as f64).sum();
                        err = err.max((got[(h * queries + i) * hd + d] - want as f32).abs());
                    }
                }
            }
            assert!(
                err < 1e-5,
                "{heads}/{kv} heads, window {window:?}: max error {err}"
            );
        }
    }

    #[test]
    fn rejects_inconsistent_shapes() {
        let x = vec![0f32; 64];
        let a = DecodeAttention {
            q: &x[..16],
            k: &x,
            v: &x,
            heads: 3,
            kv_heads: 2,
            head_dim: 8,
            cap: 4,
            start: 0,
            len: 4,
        };
        assert!(!a.valid(), "3 heads cannot share 2 KV heads");
        let a = DecodeAttention {
            heads: 2,
            kv_heads: 2,
            start: 1,
            ..a
        };
        assert!(!a.valid(), "rows 1..5 of a 4-row cache");
    }
}
