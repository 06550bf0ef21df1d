//! Every kernel against the reference: weights dequantized to f32 and dotted in f64
//! with the unquantized activations. The kernels quantize activations to 8 bits
//! (`d = max|x| / 127` per block of 32, rounding to nearest), so each activation is
//! off by at most `d / 2`, and the block scales are stored as f16 (relative error up
//! to 2^-11). The bound asserted per row is exactly that:
//!
//!   sum over blocks of ( sum_j |w_j| x d_y / 2 + |block dot| x 2^-9 + |m| |s| 2^-9 )
//!
//! (2^-9 leaves room for the f16 rounding of `d_y`, of `s` and of their products
//! in f32). The K-quants (super-blocks of 256, Q8_K activations with an f32 `d`):
//!
//!   sum over blocks of ( sum_j |w_j| x |d_y| / 2 + sum_j (|a_j| + |b_j|)(|x_j| + |d_y| / 2) x 2^-9 )
//!
//! with `w_j = a_j - b_j` split into its scale part and its minimum part (Q4_K, Q5_K),
//! whose f32 products may cancel. Implementations are also compared with each other:
//! they add the same integer sums and differ only in the order of the f32 additions.

use eprof_kernels::{
    ActType, Isa, WeightType, best, dequantize_row, dot_scalar, dot_with, half, matvec_rows_with,
    quantize_activations,
};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn f(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
}

const TYPES: [WeightType; 7] = WeightType::ALL;

/// Kinds of weight blocks: random, and the edges.
#[derive(Clone, Copy, Debug)]
enum Fill {
    Random,
    ZeroScale,
    AllMin,
    AllMax,
}

fn weight_row(t: WeightType, blocks: usize, fill: Fill, rng: &mut Rng) -> Vec<u8> {
    if t.is_k() {
        return k_row(t, blocks, fill, rng);
    }
    let mut row = Vec::new();
    for _ in 0..blocks {
        let d = match fill {
            Fill::ZeroScale => 0.0,
            _ => rng.f().abs() * 0.05 + 1e-4,
        };
        let m = rng.f() * 0.2;
        let mut b = half::f32_to_f16(d).to_le_bytes().to_vec();
        let byte = |rng: &mut Rng| -> u8 {
            match fill {
                Fill::AllMin => 0,
                Fill::AllMax => 0xFF,
                _ => rng.next() as u8,
            }
        };
        if t == WeightType::Q8_0 {
            // 32 signed bytes: AllMin is -128 everywhere, AllMax 127.
            for _ in 0..32 {
                b.push(match fill {
                    Fill::AllMin => 0x80,
                    Fill::AllMax => 0x7F,
                    _ => rng.next() as u8,
                });
            }
            row.extend(b);
            continue;
        }
        match t {
            WeightType::Q4_1 | WeightType::Q5_1 => b.extend(half::f32_to_f16(m).to_le_bytes()),
            _ => {}
        }
        if t != WeightType::Q4_1 {
            for _ in 0..4 {
                b.push(byte(rng));
            }
        }
        for _ in 0..16 {
            b.push(byte(rng));
        }
        assert_eq!(b.len(), t.block_bytes());
        row.extend(b);
    }
    row
}

/// K-quant super-blocks: every byte but the f16 scales random (AllMin: 0, AllMax:
/// 0xFF, so all quants, 6-bit scales and minimums at their ends; Q6_K's i8 scales
/// -1), `d` and `dmin` (Q4_K, Q5_K: at 0 and 2; Q6_K: `d` at 208) as for the others.
fn k_row(t: WeightType, blocks: usize, fill: Fill, rng: &mut Rng) -> Vec<u8> {
    let mut row = Vec::new();
    for _ in 0..blocks {
        let mut b: Vec<u8> = (0..t.block_bytes())
            .map(|_| match fill {
                Fill::AllMin => 0,
                Fill::AllMax => 0xFF,
                _ => rng.next() as u8,
            })
            .collect();
        let (d, dmin) = match fill {
            Fill::ZeroScale => (0.0, 0.0),
            _ => (rng.f().abs() * 0.003 + 1e-5, rng.f().abs() * 0.003),
        };
        let d_at = if t == WeightType::Q6K { 208 } else { 0 };
        b[d_at..d_at + 2].copy_from_slice(&half::f32_to_f16(d).to_le_bytes());
        if t != WeightType::Q6K {
            b[2..4].copy_from_slice(&half::f32_to_f16(dmin).to_le_bytes());
        }
        row.extend(b);
    }
    row
}

fn activations(n: usize, zero: bool, rng: &mut Rng) -> Vec<f32> {
    (0..n)
        .map(|i| {
            if zero {
                0.0
            } else {
                rng.f() * if i % 7 == 0 { 4.0 } else { 1.0 }
            }
        })
        .collect()
}

/// The exact dot and the error bound of the module doc.
fn reference(t: WeightType, row: &[u8], x: &[f32], act: &[u8]) -> (f64, f64) {
    let mut w = vec![0f32; x.len()];
    dequantize_row(t, row, &mut w);
    if t.is_k() {
        return reference_k(t, row, &w, x, act);
    }
    let ab = t.activation().block_bytes();
    let mut exact = 0f64;
    let mut bound = 0f64;
    for (b, (wc, xc)) in w
        .chunks(t.block_values())
        .zip(x.chunks(t.block_values()))
        .enumerate()
    {
        let a = &act[b * ab..(b + 1) * ab];
        let dy = f64::from(half::f16_to_f32(u16::from_le_bytes([a[0], a[1]])));
        let dot: f64 = wc
            .iter()
            .zip(xc)
            .map(|(&w, &x)| f64::from(w) * f64::from(x))
            .sum();
        let abs_w: f64 = wc.iter().map(|w| f64::from(w.abs())).sum();
        let (m, s) = match t {
            WeightType::Q5_0 | WeightType::Q8_0 => (0.0, 0.0),
            _ => {
                let wb = &row[b * t.block_bytes()..];
                (
                    f64::from(half::f16_to_f32(u16::from_le_bytes([wb[2], wb[3]]))),
                    f64::from(half::f16_to_f32(u16::from_le_bytes([a[2], a[3]]))),
                )
            }
        };
        exact += dot;
        bound += abs_w * dy / 2.0 + dot.abs() / 512.0 + m.abs() * s.abs() / 512.0;
    }
    (exact, bound + 1e-6)
}

fn reference_k(t: WeightType, row: &[u8], w: &[f32], x: &[f32], act: &[u8]) -> (f64, f64) {
    // The scale part alone: the same row with `dmin` zeroed (Q6_K has none).
    let mut scaled = row.to_vec();
    if t != WeightType::Q6K {
        for b in scaled.chunks_exact_mut(t.block_bytes()) {
            b[2..4].fill(0);
        }
    }
    let mut a = vec![0f32; x.len()];
    dequantize_row(t, &scaled, &mut a);
    let n = t.block_values();
    let (mut exact, mut bound) = (0f64, 0f64);
    for (blk, acts) in act.chunks_exact(t.activation().block_bytes()).enumerate() {
        let dy = f64::from(f32::from_le_bytes([acts[0], acts[1], acts[2], acts[3]])).abs();
        for i in blk * n..(blk + 1) * n {
            let (wi, ai, xi) = (f64::from(w[i]), f64::from(a[i]), f64::from(x[i]));
            exact += wi * xi;
            let parts = ai.abs() + (ai - wi).abs();
            bound += wi.abs() * dy / 2.0 + parts * (xi.abs() + dy / 2.0) / 512.0;
        }
    }
    (exact, bound + 1e-6)
}

/// Every implementation this CPU runs.
fn isas_here() -> Vec<Isa> {
    [Isa::Scalar, Isa::Avx2, Isa::AvxVnni, Isa::Avx512, Isa::Neon]
        .into_iter()
        .filter(|i| i.available())
        .collect()
}

/// A random `rows x blocks` weight matrix of type `t` and quantized activations for it.
fn random_matrix(t: WeightType, rows: usize, blocks: usize, rng: &mut Rng) -> (Vec<u8>, Vec<u8>) {
    let w: Vec<u8> = (0..rows)
        .flat_map(|_| weight_row(t, blocks, Fill::Random, rng))
        .collect();
    let x = activations(blocks * t.block_values(), false, rng);
    let mut act = Vec::new();
    quantize_activations(&x, t.activation(), &mut act);
    (w, act)
}

#[test]
fn every_kernel_matches_the_reference_within_the_quantization_bound() {
    let isas = isas_here();
    eprintln!("implementations here: {:?} (best: {})", isas, best().name());
    let mut rng = Rng(42);
    let mut cases = 0;
    let mut worst = 0f64;
    for t in TYPES {
        for blocks in [1usize, 2, 3, 7, 18, 48] {
            for fill in [Fill::Random, Fill::ZeroScale, Fill::AllMin, Fill::AllMax] {
                for zero_x in [false, true] {
                    let row = weight_row(t, blocks, fill, &mut rng);
                    let x = activations(blocks * t.block_values(), zero_x, &mut rng);
                    let mut act = Vec::new();
                    quantize_activations(&x, t.activation(), &mut act);
                    assert_eq!(act.len(), blocks * t.activation().block_bytes());
                    let (exact, bound) = reference(t, &row, &x, &act);
                    let scalar = dot_scalar(t, &row, &act);
                    for &isa in &isas {
                        let got = dot_with(isa, t, &row, &act);
                        let err = (f64::from(got) - exact).abs();
                        assert!(
                            err <= bound,
                            "{} {} blocks={blocks} {fill:?} zero_x={zero_x}: {got} vs exact {exact}, error {err} > bound {bound}",
                            t.name(),
                            isa.name()
                        );
                        worst = worst.max(err / bound);
                        // Same integer sums, other f32 addition order.
                        let tol = 1e-5 * (f64::from(scalar.abs()) + bound) + 1e-6;
                        assert!(
                            (f64::from(got) - f64::from(scalar)).abs() <= tol,
                            "{} {} vs scalar: {got} vs {scalar}",
                            t.name(),
                            isa.name()
                        );
                        cases += 1;
                    }
                }
            }
        }
    }
    eprintln!(
        "{cases} cases; the largest error used {:.0}% of its bound",
        worst * 100.0
    );
}

#[test]
fn activations_quantize_like_llama_cpp() {
    // One block: max |x| = 2.54 -> d = 0.02, q = round(x / d).
    let mut x = [0f32; 32];
    x[0] = 2.54;
    x[1] = -1.0;
    x[2] = 0.011;
    let mut out = Vec::new();
    quantize_activations(&x, ActType::Q8_1, &mut out);
    let d = half::f16_to_f32(u16::from_le_bytes([out[0], out[1]]));
    assert!((d - 0.02).abs() < 1e-5, "{d}");
    let qs: Vec<i8> = out[4..].iter().map(|&b| b as i8).collect();
    assert_eq!(&qs[..3], &[127, -50, 1]);
    let s = half::f16_to_f32(u16::from_le_bytes([out[2], out[3]]));
    assert!((s - 0.02 * 78.0).abs() < 1e-3, "{s}");
    let mut q8 = Vec::new();
    quantize_activations(&x, ActType::Q8_0, &mut q8);
    assert_eq!(
        i16::from_le_bytes([q8[2], q8[3]]),
        127 - 50 + 1,
        "Q8_0's sum of its quants"
    );
    let mut zero = Vec::new();
    quantize_activations(&[0.0; 32], ActType::Q8_0, &mut zero);
    assert_eq!(zero.len(), 36);
    assert!(zero.iter().all(|&b| b == 0));
}

/// Which implementation the build chose, so a run on aarch64 (under qemu in CI) shows
/// it tested NEON, not the scalar fallback.
#[test]
fn the_target_uses_its_simd_kernels() {
    #[cfg(target_arch = "aarch64")]
    assert_eq!(best(), Isa::Neon);
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        let vnni = std::arch::is_x86_feature_detected!("avxvnni")
            || (std::arch::is_x86_feature_detected!("avx512vnni")
                && std::arch::is_x86_feature_detected!("avx512vl"));
        let avx512 = std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vnni")
            && std::arch::is_x86_feature_detected!("avx512vl");
        let want = if avx512 {
            Isa::Avx512
        } else if vnni {
            Isa::AvxVnni
        } else {
            Isa::Avx2
        };
        assert_eq!(best(), want);
    }
    eprintln!("best implementation: {}", best().name());
}

/// Whole matrices (1, 4, 7 and 13 rows: the four-row path and its tail) against
/// row-by-row scalar dot products.
#[test]
fn matrix_rows_match_row_by_row() {
    let mut rng = Rng(7);
    for t in TYPES {
        for rows in [2usize, 5, 8, 14] {
            let blocks = 9;
            let (w, act) = random_matrix(t, rows, blocks, &mut rng);
            let rb = blocks * t.block_bytes();
            for isa in isas_here() {
                // From row 1: a first row that is not a multiple of four.
                let mut out = vec![0f32; rows - 1];
                matvec_rows_with(isa, t, &w, blocks * t.block_values(), 1, &act, &mut out);
                for (i, got) in out.iter().enumerate() {
                    let want = dot_scalar(t, &w[(i + 1) * rb..(i + 2) * rb], &act);
                    assert!(
                        (got - want).abs() <= 1e-5 * (want.abs() + 1.0),
                        "{} {} rows={rows} row {}: {got} vs {want}",
                        t.name(),
                        isa.name(),
                        i + 1
                    );
                }
            }
        }
    }
}

/// The packed layouts give the sums of the rows they were packed from: groups of four
/// bit for bit; lane tiles (one exact integer sum per block, not eight lanes' partial
/// sums) to f32 rounding. Whole and partial groups, any span of units.
#[test]
fn packed_matrices_match_their_rows() {
    let mut rng = Rng(11);
    for t in TYPES {
        for rows in [1usize, 4, 5, 13, 21, 35] {
            let blocks = 7;
            let (w, act) = random_matrix(t, rows, blocks, &mut rng);
            for isa in isas_here() {
                let cols = blocks * t.block_values();
                let p = eprof_kernels::Packed::with(isa, t, &w, rows, cols);
                if t.is_k() && matches!(isa, Isa::Avx2 | Isa::AvxVnni | Isa::Avx512) {
                    // Every K-quant in eight-row tiles on x86 (not left as rows).
                    assert_eq!(p.unit_rows(), 8, "{} {}", t.name(), isa.name());
                }
                let mut want = vec![0f32; rows];
                matvec_rows_with(isa, t, &w, cols, 0, &act, &mut want);
                let mut got = vec![0f32; rows];
                p.matvec_units(0..p.units(), &act, &mut got);
                let lanes = p.unit_rows() >= 8;
                let same = |got: &[f32], want: &[f32]| {
                    got.iter().zip(want).all(|(g, w)| {
                        if lanes {
                            (g - w).abs() <= 1e-5 * (w.abs() + 1.0)
                        } else {
                            g.to_bits() == w.to_bits()
                        }
                    })
                };
                assert!(
                    same(&got, &want),
                    "{} {} rows, {}: {got:?} vs {want:?}",
                    t.name(),
                    rows,
                    isa.name()
                );
                // The last unit alone (a partial group when rows is not a whole unit).
                let last = p.units() - 1;
                let first = p.unit_rows() * last;
                let mut tail = vec![0f32; rows - first];
                p.matvec_units(last..p.units(), &act, &mut tail);
                assert!(same(&tail, &want[first..]), "{} last unit", t.name());
            }
        }
    }
}

/// Several activation rows at once (prefill): every layout, 1 to 9 rows (the lane
/// tiles take four at a time, then the rest), against each row alone; and each
/// against the exact product within the quantization bound.
#[test]
fn packed_matrices_multiply_several_activation_rows() {
    let mut rng = Rng(13);
    for t in TYPES {
        let (rows, blocks) = (19usize, 5usize);
        let cols = blocks * t.block_values();
        let w: Vec<u8> = (0..rows)
            .flat_map(|_| weight_row(t, blocks, Fill::Random, &mut rng))
            .collect();
        for m in [1usize, 2, 3, 4, 6, 9] {
            let xs: Vec<Vec<f32>> = (0..m).map(|_| activations(cols, false, &mut rng)).collect();
            let mut act = Vec::new();
            for x in &xs {
                quantize_activations(x, t.activation(), &mut act);
            }
            let ab = act.len() / m;
            for isa in isas_here() {
                let p = eprof_kernels::Packed::with(isa, t, &w, rows, cols);
                // Units 1.. only: a span that does not start at row 0.
                let units = 1..p.units();
                let span = p.unit_span(&units);
                let mut out = vec![0f32; m * span.len()];
                p.matmul_units(units.clone(), &act, m, &mut out);
                for i in 0..m {
                    let a = &act[i * ab..(i + 1) * ab];
                    let mut one = vec![0f32; span.len()];
                    p.matvec_units(units.clone(), a, &mut one);
                    let got = &out[i * span.len()..(i + 1) * span.len()];
                    assert_eq!(got, &one[..], "{} {} m={m} row {i}", t.name(), isa.name());
                    for (j, g) in got.iter().enumerate() {
                        let r = span.start + j;
                        let rb = w.len() / rows;
                        let (exact, bound) = reference(t, &w[r * rb..(r + 1) * rb], &xs[i], a);
                        assert!(
                            (f64::from(*g) - exact).abs() <= bound,
                            "{} {} m={m}: row {r} x act {i}: {g} vs exact {exact} (bound {bound})",
                            t.name(),
                            isa.name()
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn implementations_are_found_by_their_names() {
    for isa in Isa::ALL {
        assert_eq!(Isa::from_name(isa.name()), Some(isa));
    }
    assert_eq!(Isa::from_name("sse"), None);
    assert!(Isa::Scalar.available());
}
