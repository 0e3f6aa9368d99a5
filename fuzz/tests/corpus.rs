//! Every fuzz target on its whole seed corpus and on every input kept in `fuzz/regressions/`
//! (crashes found by fuzzing, kept after the fix): the fuzz checks, as plain tests on stable.

use std::path::Path;

use tracer_fuzz::seeds::{run, seeds, TARGETS};

#[test]
fn every_target_has_seeds_and_passes_them() {
    for target in TARGETS {
        let s = seeds(target);
        assert!(s.len() >= 2, "{target}: only {} seeds", s.len());
        for (i, input) in s.iter().enumerate() {
            let r = std::panic::catch_unwind(|| run(target, input));
            assert!(r.is_ok(), "{target}: seed {i} fails its checks");
        }
    }
}

#[test]
fn regressions_still_pass() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions");
    let mut n = 0;
    for target in TARGETS {
        let Ok(rd) = std::fs::read_dir(dir.join(target)) else {
            continue;
        };
        for e in rd.filter_map(Result::ok) {
            let data = std::fs::read(e.path()).expect("readable regression input");
            run(target, &data);
            n += 1;
        }
    }
    println!("{n} regression inputs passed");
}

/// The split points and faults matter: a seed run at every cut mode still passes.
#[test]
fn seeds_pass_at_every_cut() {
    for target in TARGETS {
        for input in seeds(target).iter().take(6) {
            for mode in 0..4u8 {
                let mut v = input.clone();
                if v.len() >= 8 {
                    v[0] = (v[0] & !3) | mode;
                }
                run(target, &v);
            }
        }
    }
}
