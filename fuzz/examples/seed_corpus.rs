//! Write the seed corpus of every fuzz target: `cargo run -p tracer-fuzz --example seed_corpus
//! -- <dir>` fills `<dir>/<target>/seed-<n>` (used by `cargo xtask fuzz`).

fn main() {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "fuzz/corpus".to_string());
    let dir = std::path::Path::new(&dir);
    for target in tracer_fuzz::seeds::TARGETS {
        let d = dir.join(target);
        if let Err(e) = std::fs::create_dir_all(&d) {
            eprintln!("{}: {e}", d.display());
            std::process::exit(1);
        }
        let seeds = tracer_fuzz::seeds::seeds(target);
        for (i, s) in seeds.iter().enumerate() {
            let p = d.join(format!("seed-{i:03}"));
            if let Err(e) = std::fs::write(&p, s) {
                eprintln!("{}: {e}", p.display());
                std::process::exit(1);
            }
        }
        println!("{target}: {} seeds", seeds.len());
    }
}
