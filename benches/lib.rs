//! keyward's benchmarks live in `benches/benches/`; run them with
//! `cargo bench -p keyward-benches` (see `docs/benchmarks.md`).
