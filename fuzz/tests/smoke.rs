//! `cargo test` in fuzz/: every seed input passes its target, and a short fuzz of each target
//! with a fixed seed finds nothing (the full runs are `make fuzz`).

use std::path::Path;

use qbank_connect_fuzz::rng::Rng;
use qbank_connect_fuzz::{all_targets, mutate};

fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let p = e.unwrap().path();
            (p.display().to_string(), std::fs::read(&p).unwrap())
        })
        .collect();
    out.sort();
    out
}

#[test]
fn every_target_has_seeds_and_every_seed_passes() {
    for t in all_targets() {
        let seeds = seeds(t.name);
        assert!(seeds.len() >= 5, "{}: only {} seeds", t.name, seeds.len());
        for (path, data) in seeds {
            let r = std::panic::catch_unwind(|| (t.run)(&data));
            assert!(r.is_ok(), "{path} fails its target");
        }
    }
}

#[test]
fn a_short_fixed_seed_fuzz_of_every_target_finds_nothing() {
    for t in all_targets() {
        let seeds: Vec<Vec<u8>> = seeds(t.name).into_iter().map(|(_, d)| d).collect();
        let mut rng = Rng::new(42);
        for i in 0..4000 {
            let input = match i % 3 {
                0 => (t.generate)(&mut rng),
                1 => {
                    let mut d = seeds[rng.below(seeds.len())].clone();
                    let other = seeds[rng.below(seeds.len())].clone();
                    mutate::mutate(&mut rng, &mut d, t.dict, &other);
                    d
                }
                _ => mutate::random_bytes(&mut rng, 256),
            };
            (t.run)(&input);
        }
    }
}

#[test]
fn outcome_signatures_tell_outcomes_apart() {
    let t = all_targets()
        .into_iter()
        .find(|t| t.name == "token_response")
        .unwrap();
    let ok = (t.run)(b"200\n\n{\"access_token\":\"abc\",\"token_type\":\"Bearer\"}");
    let limited = (t.run)(b"429\n\n");
    let limited_again = (t.run)(b"429\nretry-after: 5\n\n");
    assert_ne!(ok, limited);
    assert_eq!(limited, limited_again);
}

#[test]
fn secret_forms_are_the_promised_encodings() {
    let forms = qbank_connect_fuzz::targets::secret_forms("a b/é\"\n");
    for expected in [
        "a b/é\"\n",
        "a+b%2F%C3%A9%22%0A",
        "a+b%2f%c3%a9%22%0a",
        "a%20b%2F%C3%A9%22%0A",
        "a%20b%2f%c3%a9%22%0a",
        "a b/é\\\"\\n",
    ] {
        assert!(
            forms.iter().any(|f| f == expected),
            "{expected:?} not in {forms:?}"
        );
    }
}

#[test]
fn a_surviving_secret_would_be_caught() {
    // The scrub target's check, run on text that was *not* scrubbed, must object.
    let forms = qbank_connect_fuzz::targets::secret_forms("s3cr3t-V4lue");
    let text = "echo: s3cr3t-V4lue";
    assert!(forms.iter().any(|f| text.contains(f.as_str())));
}
