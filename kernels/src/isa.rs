//! Which implementation of the kernels runs: [`Isa`], chosen once per process.

/// Which implementation runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    Scalar,
    /// x86-64 AVX2 with FMA and F16C.
    Avx2,
    /// The same with VNNI byte dot products (AVX-VNNI, or AVX-512 VNNI + VL).
    AvxVnni,
    /// AVX-512 (F, BW, VNNI, VL): the 32-value types in tiles of sixteen rows on
    /// 512-bit registers, the rest as `AvxVnni` with AVX-512 VNNI.
    Avx512,
    /// aarch64 Advanced SIMD (baseline on every aarch64 CPU).
    Neon,
}

impl Isa {
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::AvxVnni => "avx2-vnni",
            Isa::Avx512 => "avx512",
            Isa::Neon => "neon",
        }
    }

    /// Whether this CPU can run it.
    pub fn available(self) -> bool {
        match self {
            Isa::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 | Isa::AvxVnni | Isa::Avx512 => self.flavor().is_some(),
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => true,
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }
}

#[cfg(target_arch = "x86_64")]
impl Isa {
    /// The x86 copy of the kernels this runs, if this CPU has it.
    pub(crate) fn flavor(self) -> Option<crate::x86::Flavor> {
        match self {
            Isa::Avx2 => Some(crate::x86::Flavor::Avx2).filter(|f| f.available()),
            Isa::AvxVnni => crate::x86::Flavor::vnni(),
            Isa::Avx512 => {
                Some(crate::x86::Flavor::Avx512Vnni).filter(|_| crate::x86::Flavor::avx512())
            }
            _ => None,
        }
    }
}

impl Isa {
    /// Every implementation, in the order [`best`] prefers them.
    pub const ALL: [Isa; 5] = [Isa::Avx512, Isa::AvxVnni, Isa::Avx2, Isa::Neon, Isa::Scalar];

    /// The implementation of this [`Isa::name`].
    pub fn from_name(name: &str) -> Option<Isa> {
        Isa::ALL.into_iter().find(|i| i.name() == name)
    }
}

/// What `EPROF_CPU_ISA` asks for (`scalar`, `avx2`, `avx2-vnni`, `avx512`, `neon`), when this
/// CPU runs it: a benchmark forces the AVX2 path on a CPU with VNNI this way.
/// `Err` names a value that is unknown or that this CPU cannot run.
pub fn isa_from_env() -> Result<Option<Isa>, String> {
    let Ok(v) = std::env::var("EPROF_CPU_ISA") else {
        return Ok(None);
    };
    let names: Vec<&str> = Isa::ALL.iter().map(|i| i.name()).collect();
    match Isa::from_name(v.trim()) {
        Some(i) if i.available() => Ok(Some(i)),
        Some(i) => Err(format!(
            "EPROF_CPU_ISA={v}: this CPU cannot run {}",
            i.name()
        )),
        None => Err(format!(
            "EPROF_CPU_ISA={v}: unknown; one of {}",
            names.join(", ")
        )),
    }
}

/// The implementation the kernels use (decided once): `EPROF_CPU_ISA` when it names
/// one this CPU runs (see [`isa_from_env`]; callers that can report an error check it
/// first), else the best this CPU has.
pub fn best() -> Isa {
    static BEST: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
    *BEST.get_or_init(|| {
        if let Ok(Some(forced)) = isa_from_env() {
            return forced;
        }
        Isa::ALL
            .into_iter()
            .find(|i| i.available())
            .unwrap_or(Isa::Scalar)
    })
}
