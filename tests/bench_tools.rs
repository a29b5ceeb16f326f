//! The benchmarks' Python helpers on small hand-written inputs whose
//! answers are known: `benches/hot_lines.py` (`FOOTPRINT=1
//! benches/callgrind.sh`) on a Callgrind profile, `benches/round_ratios.py`
//! on compare.sh's raw results.

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

/// Runs `benches/SCRIPT` on `input`, written to a file named `name` in a
/// scratch directory, then `args`; its standard output, once it succeeded.
fn run_script(script: &str, name: &str, input: &str, args: &[&str]) -> String {
    let stem = script.trim_end_matches(".py");
    let dir = std::env::temp_dir().join(format!("edgews-{stem}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(name);
    std::fs::write(&file, input).unwrap();
    let path = format!("{}/benches/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("python3")
        .arg(path)
        .arg(&file)
        .args(args)
        .output()
        .expect("python3 runs");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn hot_lines_counts_once_a_cycle_instructions_and_their_lines() {
    let text = run_script("hot_lines.py", "profile.out", PROFILE, &["100"]);
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

/// One compare.sh round of the connect section, as its raw results hold it:
/// `cycles` in a 1 s window, in half a second of server CPU.
fn connect_round(server: &str, round: u32, cycles: f64, ok: bool) -> String {
    format!(
        concat!(
            r#"{{"test": "connect", "server": "{}", "setting": "50:20:close", "round": {}, "ok": {}, "#,
            r#""load": {{"cycles_per_s": {}}}, "server_cpu": {{"window_s": 1.0, "clk_tck": 100, "#,
            r#""user_ticks": 10, "sys_ticks": 40, "per_cpu_s": {}}}}}"#
        ),
        server,
        round,
        ok,
        cycles,
        cycles / 0.5
    )
}

#[test]
fn round_ratios_pairs_each_round_and_pools_the_paired_ones() {
    // edgews / tokio-websockets: 1.2, 1.04, 1.3 by round (median 1.2,
    // pooled 177 / 150 = 1.18); / fastwebsockets: twice those, and round 5
    // (pooled 237 / 100). Round 4's edgews failed and tokio-websockets has
    // no round 5: neither pairs.
    let rounds = [
        connect_round("edgews", 1, 60.0, true),
        connect_round("edgews", 2, 52.0, true),
        connect_round("edgews", 3, 65.0, true),
        connect_round("edgews", 4, 500.0, false),
        connect_round("tokio-websockets", 1, 50.0, true),
        connect_round("tokio-websockets", 2, 50.0, true),
        connect_round("tokio-websockets", 3, 50.0, true),
        connect_round("tokio-websockets", 4, 50.0, true),
        connect_round("fastwebsockets", 1, 25.0, true),
        connect_round("fastwebsockets", 2, 25.0, true),
        connect_round("fastwebsockets", 3, 25.0, true),
        connect_round("fastwebsockets", 4, 25.0, true),
        connect_round("edgews", 5, 60.0, true),
        connect_round("fastwebsockets", 5, 25.0, true),
    ];
    let raw = rounds.join("\n") + "\n";
    let text = run_script("round_ratios.py", "compare.jsonl", &raw, &[]);
    let row = |name: &str| -> Vec<String> {
        let line = text
            .lines()
            .find(|l| l.starts_with("50:20:close") && l.contains(name))
            .unwrap_or_else(|| panic!("no row for {name} in:\n{text}"));
        line.split_whitespace()
            .filter(|t| !t.starts_with('[') && !t.ends_with(']'))
            .map(String::from)
            .collect()
    };
    // setting, other, rounds, median, rounds >= 1.1, pooled (the
    // intervals left out: they are resampled)
    assert_eq!(
        row("tokio-websockets"),
        [
            "50:20:close",
            "tokio-websockets",
            "3",
            "1.200",
            "2/3",
            "1.180"
        ]
    );
    // the run's best peer by its pooled figure is tokio-websockets
    assert_eq!(
        row("best peer"),
        ["50:20:close", "best", "peer", "3", "1.200", "2/3", "1.180"]
    );
    assert_eq!(
        row("fastwebsockets"),
        [
            "50:20:close",
            "fastwebsockets",
            "4",
            "2.400",
            "4/4",
            "2.370"
        ]
    );
}
