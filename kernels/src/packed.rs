//! [`Packed`]: a weight matrix in the layout its kernels read fastest.

use crate::isa::Isa;
use crate::rows::matvec_rows_with;
use crate::types::WeightType;

/// How a [`Packed`] matrix keeps its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// As they came (GGUF rows).
    Rows,
    /// x86: groups of four rows, each block's fields of the four in turn.
    Groups4,
    /// x86 Q4_1, Q5_0, Q5_1, Q8_0 (with VNNI), Q4_K, Q5_K, Q6_K: tiles of eight rows in the
    /// lanes of a register (`x86_lanes`, `x86_lanes_k`).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    Lanes8,
    /// x86 with AVX-512: Q4_1, Q5_0, Q5_1, Q8_0 in tiles of sixteen rows on 512-bit
    /// registers (`x86_lanes16`).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    Lanes16,
}

/// A weight matrix kept in the layout its kernels read fastest. On x86, Q4_1, Q5_0,
/// Q5_1, Q8_0 (with VNNI) and the K-quants are kept in tiles of eight rows side by side
/// (the `x86_lanes` and `x86_lanes_k` modules), and with AVX-512 the first four in
/// tiles of sixteen (`x86_lanes16`): one byte dot-product instruction serves every row
/// of a tile, and several activation rows (prefill) share each unpacked register; the
/// sums of the rows to f32 rounding (sixteen-row tiles: the eight-row tiles' bits).
/// Q8_0 on AVX2 alone is packed in groups of four rows: for each block, the four rows'
/// f16 scales, then their quant bytes, so one F16C conversion serves four rows; the
/// same sums as [`matvec_rows_with`], bit for bit. Both hold the GGUF rows' bytes,
/// rounded up to a whole tile or group (Q4_K's and Q5_K's tiles 2-3% more: their 6-bit
/// scales and minimums unpacked to bytes). Elsewhere (NEON, scalar) the rows stay as
/// they are.
#[derive(Debug, Clone)]
pub struct Packed {
    t: WeightType,
    isa: Isa,
    rows: usize,
    cols: usize,
    layout: Layout,
    data: Vec<u8>,
}

impl Packed {
    /// Pack for the best implementation here.
    pub fn new(t: WeightType, weights: &[u8], rows: usize, cols: usize) -> Packed {
        Packed::with(crate::isa::best(), t, weights, rows, cols)
    }

    /// Pack `rows x cols` weights (consecutive rows of blocks) for `isa`.
    pub fn with(isa: Isa, t: WeightType, weights: &[u8], rows: usize, cols: usize) -> Packed {
        let blocks = cols / t.block_values();
        let row_bytes = blocks * t.block_bytes();
        assert!(
            cols.is_multiple_of(t.block_values()) && weights.len() == rows * row_bytes,
            "{} bytes are not {rows} rows of {cols} {} values",
            weights.len(),
            t.name()
        );
        let x86 = cfg!(target_arch = "x86_64")
            && matches!(isa, Isa::Avx2 | Isa::AvxVnni | Isa::Avx512)
            && isa.available();
        let layout = match t {
            #[cfg(target_arch = "x86_64")]
            _ if x86 && isa == Isa::Avx512 && crate::x86_lanes16::runs(t) => Layout::Lanes16,
            #[cfg(target_arch = "x86_64")]
            _ if x86 && isa.flavor().is_some_and(|f| lanes::runs(t, f)) => Layout::Lanes8,
            WeightType::Q8_0 if x86 => Layout::Groups4,
            _ => Layout::Rows,
        };
        let row = |r: usize| (r < rows).then(|| &weights[r * row_bytes..(r + 1) * row_bytes]);
        let data = match layout {
            Layout::Rows => weights.to_vec(),
            Layout::Groups4 => groups4(t, blocks, rows, &row),
            Layout::Lanes8 | Layout::Lanes16 => {
                #[cfg(target_arch = "x86_64")]
                {
                    let n = if layout == Layout::Lanes16 { 16 } else { 8 };
                    let mut data = Vec::new();
                    for tile in 0..rows.div_ceil(n) {
                        let r = |i: usize| row(n * tile + i);
                        if n == 16 {
                            crate::x86_lanes16::pack(t, std::array::from_fn(r), blocks, &mut data);
                        } else {
                            lanes::pack(t, std::array::from_fn(r), blocks, &mut data);
                        }
                    }
                    data
                }
                #[cfg(not(target_arch = "x86_64"))]
                unreachable!("x86 only")
            }
        };
        Packed {
            t,
            isa,
            rows,
            cols,
            layout,
            data,
        }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    pub fn weight_type(&self) -> WeightType {
        self.t
    }

    /// Whether the rows are packed in groups or tiles (else kept as they came).
    pub fn is_grouped(&self) -> bool {
        self.layout != Layout::Rows
    }

    /// Rows per unit of work.
    pub fn unit_rows(&self) -> usize {
        match self.layout {
            Layout::Lanes16 => 16,
            Layout::Lanes8 => 8,
            Layout::Rows | Layout::Groups4 => 4,
        }
    }

    /// Units of work for threads to share: spans of [`Self::unit_rows`] rows.
    pub fn units(&self) -> usize {
        self.rows.div_ceil(self.unit_rows())
    }

    /// The weight rows `units` covers.
    pub fn unit_span(&self, units: &std::ops::Range<usize>) -> std::ops::Range<usize> {
        let n = self.unit_rows();
        (n * units.start).min(self.rows)..(n * units.end).min(self.rows)
    }

    /// Rows [`Self::unit_span`] times the activations, into `out` (one value per row).
    pub fn matvec_units(&self, units: std::ops::Range<usize>, act: &[u8], out: &mut [f32]) {
        self.matmul_units(units, act, 1, out);
    }

    /// Rows [`Self::unit_span`] times each of `m` activation rows (`act` holds them one
    /// after the other), into `out`: `out[i * span + j]` is row `span.start + j` times
    /// activation row `i`. The lane tiles take up to four activation rows at once.
    pub fn matmul_units(
        &self,
        units: std::ops::Range<usize>,
        act: &[u8],
        m: usize,
        out: &mut [f32],
    ) {
        let span = self.unit_span(&units);
        let width = span.len();
        let blocks = self.cols / self.t.block_values();
        let act_row = blocks * self.t.activation().block_bytes();
        assert!(
            units.start <= units.end && out.len() == m * width && act.len() >= m * act_row,
            "units {units:?} of {} rows, {m} activation rows, into {} outputs",
            self.rows,
            out.len()
        );
        let act_i = |i: usize| &act[i * act_row..(i + 1) * act_row];
        match self.layout {
            Layout::Rows => {
                for i in 0..m {
                    let o = &mut out[i * width..(i + 1) * width];
                    matvec_rows_with(
                        self.isa,
                        self.t,
                        &self.data,
                        self.cols,
                        span.start,
                        act_i(i),
                        o,
                    );
                }
            }
            #[cfg(target_arch = "x86_64")]
            Layout::Groups4 => {
                let f = self.flavor();
                let group_bytes = 4 * blocks * self.t.block_bytes();
                for i in 0..m {
                    let o = &mut out[i * width..(i + 1) * width];
                    for (g, o) in units.clone().zip(o.chunks_mut(4)) {
                        let group = &self.data[g * group_bytes..(g + 1) * group_bytes];
                        let d = crate::x86::dot4_packed(f, self.t, group, act_i(i), blocks);
                        o.copy_from_slice(&d[..o.len()]);
                    }
                }
            }
            #[cfg(target_arch = "x86_64")]
            Layout::Lanes8 => {
                let k = lanes::Eight(self.flavor(), self.t);
                self.lanes(&k, units, blocks, m, &act_i, out)
            }
            #[cfg(target_arch = "x86_64")]
            Layout::Lanes16 => self.lanes(&lanes::Sixteen(self.t), units, blocks, m, &act_i, out),
            #[cfg(not(target_arch = "x86_64"))]
            Layout::Groups4 | Layout::Lanes8 | Layout::Lanes16 => unreachable!("x86 only"),
        }
    }

    #[cfg(target_arch = "x86_64")]
    fn flavor(&self) -> crate::x86::Flavor {
        self.isa
            .flavor()
            .expect("packed for an available x86 flavour")
    }

    /// Lane tiles of `N` rows: activation rows four at a time, then the rest in one pass.
    #[cfg(target_arch = "x86_64")]
    fn lanes<'a, const N: usize>(
        &self,
        k: &impl lanes::Tiles<N>,
        units: std::ops::Range<usize>,
        blocks: usize,
        m: usize,
        act_i: &dyn Fn(usize) -> &'a [u8],
        out: &mut [f32],
    ) {
        let tile_bytes = k.tile_bytes(blocks);
        let span = self.unit_span(&units);
        let width = span.len();
        for tile in units {
            let w = &self.data[tile * tile_bytes..(tile + 1) * tile_bytes];
            let first = N * tile;
            let n = N.min(self.rows - first);
            let at = first - span.start;
            let mut put = |i: usize, v: &[f32; N]| {
                out[i * width + at..i * width + at + n].copy_from_slice(&v[..n]);
            };
            let mut i = 0;
            while i + 4 <= m {
                let acts = [act_i(i), act_i(i + 1), act_i(i + 2), act_i(i + 3)];
                for (j, v) in k.dot::<4>(w, acts, blocks).iter().enumerate() {
                    put(i + j, v);
                }
                i += 4;
            }
            // The one to three rows left in one pass.
            let rest: &[[f32; N]] = match m - i {
                0 => &[],
                1 => &k.dot::<1>(w, [act_i(i)], blocks),
                2 => &k.dot::<2>(w, [act_i(i), act_i(i + 1)], blocks),
                _ => &k.dot::<3>(w, [act_i(i), act_i(i + 1), act_i(i + 2)], blocks),
            };
            for (j, v) in rest.iter().enumerate() {
                put(i + j, v);
            }
        }
    }
}

/// The lane tiles of `x86_lanes` (the 32-value types) and `x86_lanes_k` (the
/// K-quants), by type.
#[cfg(target_arch = "x86_64")]
mod lanes {
    use crate::types::WeightType;
    use crate::x86::Flavor;
    use crate::x86_lanes::{self, ROWS};
    use crate::x86_lanes_k;

    pub fn runs(t: WeightType, f: Flavor) -> bool {
        t.is_k() || x86_lanes::runs(t, f)
    }

    pub fn tile_block(t: WeightType) -> usize {
        if t.is_k() {
            x86_lanes_k::tile_block(t)
        } else {
            x86_lanes::tile_block(t)
        }
    }

    pub fn pack(t: WeightType, rows: [Option<&[u8]>; ROWS], blocks: usize, out: &mut Vec<u8>) {
        if t.is_k() {
            x86_lanes_k::pack(t, rows, blocks, out)
        } else {
            x86_lanes::pack(t, rows, blocks, out)
        }
    }

    /// One family of lane tiles of `N` rows: a tile's `R x N` dot products.
    pub trait Tiles<const N: usize> {
        /// Bytes of one tile of `blocks` blocks.
        fn tile_bytes(&self, blocks: usize) -> usize;
        fn dot<const R: usize>(
            &self,
            tile: &[u8],
            acts: [&[u8]; R],
            blocks: usize,
        ) -> [[f32; N]; R];
    }

    /// Eight-row tiles (`x86_lanes`, `x86_lanes_k`) of one flavour and type.
    pub struct Eight(pub Flavor, pub WeightType);
    impl Tiles<ROWS> for Eight {
        fn tile_bytes(&self, blocks: usize) -> usize {
            blocks * tile_block(self.1)
        }
        fn dot<const R: usize>(
            &self,
            tile: &[u8],
            acts: [&[u8]; R],
            blocks: usize,
        ) -> [[f32; ROWS]; R] {
            let Eight(f, t) = *self;
            if t.is_k() {
                x86_lanes_k::dot::<R>(f, t, tile, acts, blocks)
            } else {
                x86_lanes::dot::<R>(f, t, tile, acts, blocks)
            }
        }
    }

    /// Sixteen-row tiles (`x86_lanes16`) of one type.
    pub struct Sixteen(pub WeightType);
    impl Tiles<{ crate::x86_lanes16::ROWS }> for Sixteen {
        fn tile_bytes(&self, blocks: usize) -> usize {
            blocks * crate::x86_lanes16::tile_block(self.0)
        }
        fn dot<const R: usize>(
            &self,
            tile: &[u8],
            acts: [&[u8]; R],
            blocks: usize,
        ) -> [[f32; crate::x86_lanes16::ROWS]; R] {
            crate::x86_lanes16::dot::<R>(self.0, tile, acts, blocks)
        }
    }
}

/// Groups of four Q8_0 rows: per group block, the four rows' `d`, then their 32 quant
/// bytes each.
fn groups4<'a>(
    t: WeightType,
    blocks: usize,
    rows: usize,
    row: &dyn Fn(usize) -> Option<&'a [u8]>,
) -> Vec<u8> {
    assert_eq!(t, WeightType::Q8_0, "only Q8_0 is packed in groups");
    let bb = t.block_bytes();
    let fields: &[(usize, usize)] = &[(0, 2), (2, 32)];
    let groups = rows.div_ceil(4);
    let mut data = Vec::with_capacity(groups * 4 * blocks * bb);
    let zero = vec![0u8; bb];
    for g in 0..groups {
        for i in 0..blocks {
            let block = |r: usize| row(4 * g + r).map_or(&zero[..], |x| &x[i * bb..(i + 1) * bb]);
            for &(at, len) in fields {
                for r in 0..4 {
                    data.extend_from_slice(&block(r)[at..at + len]);
                }
            }
        }
    }
    data
}
