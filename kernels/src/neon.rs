//! aarch64 NEON dot products (Advanced SIMD is baseline on aarch64, so no run-time
//! check), after llama.cpp's ARM kernels without the optional `dotprod` extension:
//! 16 x 16 signed byte products widened with `vmull_s8` and pairwise-added to i32.
//! Every product fits i16: |weight| <= 128 (Q8_0) and |activation| <= 127.

use std::arch::aarch64::*;

use crate::half::f16_to_f32;
use crate::kquants::{Q8K_BSUMS, Q8K_QS, scales_mins};
use crate::types::WeightType;

pub fn dot(t: WeightType, row: &[u8], act: &[u8], blocks: usize) -> f32 {
    debug_assert!(row.len() >= blocks * t.block_bytes());
    debug_assert!(act.len() >= blocks * t.activation().block_bytes());
    // SAFETY: NEON is part of the aarch64 baseline; the slices hold `blocks` whole
    // blocks of each kind (asserted by `dot_with`), which is all the kernels read.
    unsafe {
        match t {
            WeightType::Q4_1 => q4_1(row.as_ptr(), act.as_ptr(), blocks),
            WeightType::Q5_0 => q5_0(row.as_ptr(), act.as_ptr(), blocks),
            WeightType::Q5_1 => q5_1(row.as_ptr(), act.as_ptr(), blocks),
            WeightType::Q8_0 => q8_0(row.as_ptr(), act.as_ptr(), blocks),
            WeightType::Q4K => q45k(row.as_ptr(), act.as_ptr(), blocks, false),
            WeightType::Q5K => q45k(row.as_ptr(), act.as_ptr(), blocks, true),
            WeightType::Q6K => q6k(row.as_ptr(), act.as_ptr(), blocks),
        }
    }
}

#[inline(always)]
unsafe fn half(p: *const u8) -> f32 {
    // SAFETY: `p` points at two readable bytes inside a block.
    unsafe { f16_to_f32(std::ptr::read_unaligned(p as *const u16)) }
}

/// Sum of 16 x 16 signed byte products.
#[inline(always)]
unsafe fn dot16(a: int8x16_t, b: int8x16_t) -> int32x4_t {
    // SAFETY: register-only NEON arithmetic; each product fits i16 (|a| <= 128, |b| <= 127).
    unsafe {
        let lo = vmull_s8(vget_low_s8(a), vget_low_s8(b));
        let hi = vmull_high_s8(a, b);
        vaddq_s32(vpaddlq_s16(lo), vpaddlq_s16(hi))
    }
}

/// The 32 weights of a block as two vectors (elements 0..16, 16..32): nibbles, plus
/// the fifth bit from `qh` (as 16) when `qh` is given.
#[inline(always)]
unsafe fn weights(qs: *const u8, qh: Option<*const u8>) -> (uint8x16_t, uint8x16_t) {
    // SAFETY: `qs` points at 16 bytes, `qh` at 4, inside one block.
    unsafe {
        let v = vld1q_u8(qs);
        let m4 = vdupq_n_u8(0x0F);
        let (mut lo, mut hi) = (vandq_u8(v, m4), vshrq_n_u8(v, 4));
        if let Some(qh) = qh {
            const BITS: [u8; 16] = [1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128];
            let bits = vld1q_u8(BITS.as_ptr());
            let b = std::ptr::read_unaligned(qh as *const [u8; 4]);
            let sixteen = vdupq_n_u8(0x10);
            let set_lo = vtstq_u8(vcombine_u8(vdup_n_u8(b[0]), vdup_n_u8(b[1])), bits);
            let set_hi = vtstq_u8(vcombine_u8(vdup_n_u8(b[2]), vdup_n_u8(b[3])), bits);
            lo = vorrq_u8(lo, vandq_u8(set_lo, sixteen));
            hi = vorrq_u8(hi, vandq_u8(set_hi, sixteen));
        }
        (lo, hi)
    }
}

unsafe fn q4_1(x: *const u8, y: *const u8, blocks: usize) -> f32 {
    // SAFETY: block i of x is bytes [20 i, 20 i + 20), of y [36 i, 36 i + 36).
    unsafe {
        let mut sum = 0.0f32;
        for i in 0..blocks {
            let (bx, by) = (x.add(i * 20), y.add(i * 36));
            let (lo, hi) = weights(bx.add(4), None);
            let p = vaddq_s32(
                dot16(vreinterpretq_s8_u8(lo), vld1q_s8(by.add(4) as *const i8)),
                dot16(vreinterpretq_s8_u8(hi), vld1q_s8(by.add(20) as *const i8)),
            );
            sum += half(bx) * half(by) * vaddvq_s32(p) as f32 + half(bx.add(2)) * half(by.add(2));
        }
        sum
    }
}

unsafe fn q5_0(x: *const u8, y: *const u8, blocks: usize) -> f32 {
    // SAFETY: block i of x is bytes [22 i, 22 i + 22), of y [36 i, 36 i + 36).
    unsafe {
        let mut sum = 0.0f32;
        let sixteen = vdupq_n_s8(16);
        for i in 0..blocks {
            let (bx, by) = (x.add(i * 22), y.add(i * 36));
            let (lo, hi) = weights(bx.add(6), Some(bx.add(2)));
            let lo = vsubq_s8(vreinterpretq_s8_u8(lo), sixteen);
            let hi = vsubq_s8(vreinterpretq_s8_u8(hi), sixteen);
            let p = vaddq_s32(
                dot16(lo, vld1q_s8(by.add(4) as *const i8)),
                dot16(hi, vld1q_s8(by.add(20) as *const i8)),
            );
            sum += half(bx) * half(by) * vaddvq_s32(p) as f32;
        }
        sum
    }
}

unsafe fn q5_1(x: *const u8, y: *const u8, blocks: usize) -> f32 {
    // SAFETY: block i of x is bytes [24 i, 24 i + 24), of y [36 i, 36 i + 36).
    unsafe {
        let mut sum = 0.0f32;
        for i in 0..blocks {
            let (bx, by) = (x.add(i * 24), y.add(i * 36));
            let (lo, hi) = weights(bx.add(8), Some(bx.add(4)));
            let p = vaddq_s32(
                dot16(vreinterpretq_s8_u8(lo), vld1q_s8(by.add(4) as *const i8)),
                dot16(vreinterpretq_s8_u8(hi), vld1q_s8(by.add(20) as *const i8)),
            );
            sum += half(bx) * half(by) * vaddvq_s32(p) as f32 + half(bx.add(2)) * half(by.add(2));
        }
        sum
    }
}

unsafe fn q8_0(x: *const u8, y: *const u8, blocks: usize) -> f32 {
    // SAFETY: block i of x is bytes [34 i, 34 i + 34), of y [36 i, 36 i + 36).
    unsafe {
        let mut sum = 0.0f32;
        for i in 0..blocks {
            let (bx, by) = (x.add(i * 34), y.add(i * 36));
            let p = vaddq_s32(
                dot16(
                    vld1q_s8(bx.add(2) as *const i8),
                    vld1q_s8(by.add(4) as *const i8),
                ),
                dot16(
                    vld1q_s8(bx.add(18) as *const i8),
                    vld1q_s8(by.add(20) as *const i8),
                ),
            );
            sum += half(bx) * half(by) * vaddvq_s32(p) as f32;
        }
        sum
    }
}

/// Sum of 32 products: `q` (two vectors of 16) against 32 activation bytes at `y`.
#[inline(always)]
unsafe fn dot32(q: (int8x16_t, int8x16_t), y: *const u8) -> i32 {
    // SAFETY: `y` points at 32 readable bytes inside a Q8_K block.
    unsafe {
        let a = dot16(q.0, vld1q_s8(y as *const i8));
        let b = dot16(q.1, vld1q_s8(y.add(16) as *const i8));
        vaddvq_s32(vaddq_s32(a, b))
    }
}

/// Q4_K (`fifth` false, 144-byte blocks) and Q5_K (176 bytes): per sub-block of 32 an
/// exact i32 sum times its 6-bit scale; the minimums' term from the block sums.
unsafe fn q45k(x: *const u8, y: *const u8, blocks: usize, fifth: bool) -> f32 {
    // SAFETY: block i of x is bytes [bb i, bb i + bb), of y [292 i, 292 i + 292).
    unsafe {
        let bb = if fifth { 176 } else { 144 };
        let m4 = vdupq_n_u8(0x0F);
        let sixteen = vdupq_n_u8(16);
        let mut sum = 0.0f32;
        for i in 0..blocks {
            let (bx, by) = (x.add(i * bb), y.add(i * 292));
            let dy = std::ptr::read_unaligned(by as *const f32);
            let sm = scales_mins(std::slice::from_raw_parts(bx.add(4), 12));
            let bsums = std::ptr::read_unaligned(by.add(Q8K_BSUMS) as *const [i16; 16]);
            let msum: i32 = (0..8)
                .map(|j| {
                    i32::from(sm[8 + j]) * (i32::from(bsums[2 * j]) + i32::from(bsums[2 * j + 1]))
                })
                .sum();
            let qs = bx.add(if fifth { 48 } else { 16 });
            let qh = (vld1q_u8(bx.add(16)), vld1q_u8(bx.add(32)));
            let mut isum = 0i32;
            for c in 0..4 {
                let v = (vld1q_u8(qs.add(32 * c)), vld1q_u8(qs.add(32 * c + 16)));
                let mut lo = (vandq_u8(v.0, m4), vandq_u8(v.1, m4));
                let mut hi = (vshrq_n_u8(v.0, 4), vshrq_n_u8(v.1, 4));
                if fifth {
                    let (bl, bh) = (vdupq_n_u8(1 << (2 * c)), vdupq_n_u8(2 << (2 * c)));
                    lo.0 = vorrq_u8(lo.0, vandq_u8(vtstq_u8(qh.0, bl), sixteen));
                    lo.1 = vorrq_u8(lo.1, vandq_u8(vtstq_u8(qh.1, bl), sixteen));
                    hi.0 = vorrq_u8(hi.0, vandq_u8(vtstq_u8(qh.0, bh), sixteen));
                    hi.1 = vorrq_u8(hi.1, vandq_u8(vtstq_u8(qh.1, bh), sixteen));
                }
                let s = |v: (uint8x16_t, uint8x16_t)| {
                    (vreinterpretq_s8_u8(v.0), vreinterpretq_s8_u8(v.1))
                };
                let qy = by.add(Q8K_QS + 64 * c);
                isum += i32::from(sm[2 * c]) * dot32(s(lo), qy);
                isum += i32::from(sm[2 * c + 1]) * dot32(s(hi), qy.add(32));
            }
            sum += dy * half(bx) * isum as f32 - dy * half(bx.add(2)) * msum as f32;
        }
        sum
    }
}

/// Q6_K: per group of 16 an exact i32 sum of `(q - 32) x qy` times its i8 scale.
unsafe fn q6k(x: *const u8, y: *const u8, blocks: usize) -> f32 {
    // SAFETY: block i of x is bytes [210 i, 210 i + 210), of y [292 i, 292 i + 292).
    unsafe {
        let m4 = vdupq_n_u8(0x0F);
        let m2 = vdupq_n_u8(3);
        let m32 = vdupq_n_s8(32);
        let mut sum = 0.0f32;
        for i in 0..blocks {
            let (bx, by) = (x.add(i * 210), y.add(i * 292));
            let dy = std::ptr::read_unaligned(by as *const f32);
            let sc = std::ptr::read_unaligned(bx.add(192) as *const [i8; 16]);
            let mut isum = 0i32;
            for n in 0..2 {
                let (ql, qh) = (bx.add(64 * n), bx.add(128 + 32 * n));
                for c in 0..2 {
                    let (l0, l1) = (vld1q_u8(ql.add(16 * c)), vld1q_u8(ql.add(32 + 16 * c)));
                    let h = vld1q_u8(qh.add(16 * c));
                    let six = |low: uint8x16_t, h2: uint8x16_t| {
                        let q = vorrq_u8(low, vshlq_n_u8(vandq_u8(h2, m2), 4));
                        vsubq_s8(vreinterpretq_s8_u8(q), m32)
                    };
                    let q = [
                        six(vandq_u8(l0, m4), h),
                        six(vandq_u8(l1, m4), vshrq_n_u8(h, 2)),
                        six(vshrq_n_u8(l0, 4), vshrq_n_u8(h, 4)),
                        six(vshrq_n_u8(l1, 4), vshrq_n_u8(h, 6)),
                    ];
                    for (k, q) in q.into_iter().enumerate() {
                        // Values 128 n + 32 k + 16 c .. + 16: group 8 n + 2 k + c.
                        let at = 128 * n + 32 * k + 16 * c;
                        let qy = vld1q_s8(by.add(Q8K_QS + at) as *const i8);
                        isum += i32::from(sc[at / 16]) * vaddvq_s32(dot16(q, qy));
                    }
                }
            }
            sum += dy * half(bx.add(208)) * isum as f32;
        }
        sum
    }
}
