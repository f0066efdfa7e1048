//! Where the bytes of a data dir go: for a copy of an agent's database (`<data-dir>/db`,
//! copied while the agent runs or after it stopped), every tree's entries and the bytes of
//! their keys and values, then sled's size on disk and the directory's. One JSON object per
//! line.
//!
//!   cargo run -p rover-storage --example data_dir_trees -- /path/to/copy/of/db

use std::error::Error;
use std::path::Path;

fn dir_bytes(path: &Path) -> std::io::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(path)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            dir_bytes(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}

fn main() -> Result<(), Box<dyn Error>> {
    let Some(path) = std::env::args().nth(1) else {
        return Err("usage: data_dir_trees <copy of a database directory>".into());
    };
    let before = dir_bytes(Path::new(&path))?;
    let db = sled::open(&path)?;
    let mut live = 0;
    for name in db.tree_names() {
        let tree = db.open_tree(&name)?;
        let (mut entries, mut keys, mut values, mut largest) = (0u64, 0u64, 0u64, 0u64);
        for item in tree.iter() {
            let (key, value) = item?;
            entries += 1;
            keys += key.len() as u64;
            values += value.len() as u64;
            largest = largest.max(value.len() as u64);
        }
        live += keys + values;
        println!(
            "{{\"tree\":{:?},\"entries\":{entries},\"key_bytes\":{keys},\"value_bytes\":{values},\"largest_value\":{largest}}}",
            String::from_utf8_lossy(&name)
        );
    }
    println!(
        "{{\"live_bytes\":{live},\"sled_size_on_disk\":{},\"dir_bytes\":{before}}}",
        db.size_on_disk()?
    );
    Ok(())
}
