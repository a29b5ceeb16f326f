//! `benches/hot_lines.py` (`FOOTPRINT=1 benches/callgrind.sh`) read on a
//! small hand-written Callgrind profile whose answer is known.

use std::process::Command;

/// Two functions, 100 cycles: five instructions run 100 times (hot), one
/// 10 times (cold), and a call's inclusive cost that must not count as
/// the caller's own. Addresses and lines use Callgrind's relative forms
/// (`+N`, `-N`, `*`) and a cost line with its trailing zeros left out.
const PROFILE: &str = "\
version: 1
creator: hand
positions: instr line
events: Ir I1mr
fl=(1) a.rs
fn=(1) hot_fn
0x1000 10 100 100
+4 * 100
+60 +1 100 200
+4 -1 10
cfn=(2) callee
calls=100 0x2000
* 12 5000 700
fn=(2)
0x2000 20 100
+128 21 100
";

#[test]
fn hot_lines_counts_once_a_cycle_instructions_and_their_lines() {
    let dir = std::env::temp_dir().join(format!("edgews-hot-lines-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let profile = dir.join("profile.out");
    std::fs::write(&profile, PROFILE).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/hot_lines.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(&profile)
        .arg("100")
        .output()
        .expect("python3 runs");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    // 510 instructions and 300 misses in all: the call's line is the
    // callee's cost, counted where the callee's own lines are
    assert_eq!(
        lines[0],
        "5 instructions per cycle, 5 of them hot, in 4 cache lines (0.2 KiB)"
    );
    assert_eq!(
        lines[1],
        "L1 instruction-cache misses (simulated): 3.0 per cycle"
    );
    assert_eq!(
        lines[2].split_whitespace().collect::<Vec<_>>(),
        ["2", "lines", "hot_fn"]
    );
    assert_eq!(
        lines[3].split_whitespace().collect::<Vec<_>>(),
        ["2", "lines", "callee"]
    );
    assert_eq!(lines.len(), 4);
}
