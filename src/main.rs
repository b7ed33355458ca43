fn main() {
    println!("kone {}", env!("CARGO_PKG_VERSION"));
}
