// kone links as a position-dependent executable (-no-pie). As a PIE, every
// kone process started by relocating ~2.3 MB of .data.rel.ro (vtables,
// string tables): ~580 page faults and ~1 ms of CPU per exec, and 2.3 MB of
// private dirty memory kept for the life of the process — most of a pod
// supervisor's own memory. Linked at a fixed address those pages stay clean
// and shared with the page cache and every other kone process. The cost:
// kone's own code and data are not address-randomized (shared libraries,
// heap and stack still are).
fn main() {
    println!("cargo:rustc-link-arg-bins=-no-pie");
}
