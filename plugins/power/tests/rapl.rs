//! RAPL on a fake powercap tree: zones, exact joules across a counter wrap, and clear
//! errors for unreadable counters.

use std::path::Path;

use eprof_core::power::{CounterUnwrap, PowerSource};
use eprof_power::rapl::{Rapl, read_error};

const RANGE_UJ: u64 = 262_143_328_850;

fn zone(root: &Path, dir: &str, name: &str, uj: u64) {
    let d = root.join(dir);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("name"), format!("{name}\n")).unwrap();
    std::fs::write(d.join("energy_uj"), format!("{uj}\n")).unwrap();
    std::fs::write(d.join("max_energy_range_uj"), format!("{RANGE_UJ}\n")).unwrap();
}

fn set(root: &Path, dir: &str, uj: u64) {
    std::fs::write(root.join(dir).join("energy_uj"), format!("{uj}\n")).unwrap();
}

#[test]
fn zones_and_exact_joules_across_a_wrap() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    zone(root, "intel-rapl:0", "package-0", RANGE_UJ - 2_000_000);
    zone(root, "intel-rapl:0:0", "core", 1_000);
    zone(root, "intel-rapl:0:1", "dram", 5_000_000);
    zone(root, "intel-rapl:1", "psys", 7);
    let mut r = Rapl::open_at(root).unwrap();
    let d = r.desc();
    let names: Vec<(&str, bool)> = d
        .channels
        .iter()
        .map(|c| (c.name.as_str(), c.in_total))
        .collect();
    assert_eq!(
        names,
        [
            ("package-0", true),
            ("package-0/core", false),
            ("package-0/dram", true),
            ("psys", false)
        ]
    );
    let mut u = CounterUnwrap::default();
    u.push(&r.read().unwrap());
    // The package counter wraps: 2 J up to its range, then 1.5 J from zero.
    set(root, "intel-rapl:0", 1_500_000);
    set(root, "intel-rapl:0:0", 251_000);
    set(root, "intel-rapl:0:1", 5_750_000);
    let after = u.push(&r.read().unwrap());
    assert!((after[0].unwrap() - 3.5).abs() < 1e-9, "{:?}", after);
    assert!((after[1].unwrap() - 0.25).abs() < 1e-9);
    assert!((after[2].unwrap() - 0.75).abs() < 1e-9);
}

#[test]
fn unreadable_counters_give_clear_errors() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    zone(root, "intel-rapl:0", "package-0", 1);
    // An energy_uj that cannot be read (a directory: tests run as root, which
    // ignores file modes).
    let e = root.join("intel-rapl:0/energy_uj");
    std::fs::remove_file(&e).unwrap();
    std::fs::create_dir(&e).unwrap();
    let err = Rapl::open_at(root).err().unwrap().to_string();
    assert!(
        err.contains("cannot read") && err.contains("energy_uj"),
        "{err}"
    );

    // What a non-root user sees on Linux >= 5.10.
    let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
    let msg = read_error(&e, &denied).to_string();
    assert!(
        msg.contains("root-only since Linux 5.10")
            && msg.contains("sudo")
            && msg.contains("--power estimate"),
        "{msg}"
    );

    let empty = tempfile::tempdir().unwrap();
    let err = Rapl::open_at(empty.path()).err().unwrap().to_string();
    assert!(err.contains("no intel-rapl zones"), "{err}");
}
