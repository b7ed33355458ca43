//! `kone images …`: import, pull, ls, inspect, rm, gc.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use crate::config::{ImagesArgs, ImagesCommand, RegistryArgs};

use super::import::{import_archive, ImportEvent};
use super::pull::{PullEvent, Puller};
use super::store::Store;

/// Run a `kone images` subcommand. User errors print one line,
/// `kone images: <message>`, and exit 1.
pub fn run(args: ImagesArgs) -> ExitCode {
    let store = match Store::open(&args.data_dir) {
        Ok(s) => s,
        Err(e) => return fail(&format!("{e:#}")),
    };
    match args.command {
        ImagesCommand::Import { files } => {
            let mut failed = false;
            for file in files {
                println!("importing {}", file.display());
                let mut show = |ev: &ImportEvent| match ev {
                    ImportEvent::Layer {
                        digest,
                        bytes,
                        existed,
                    } => println!(
                        "  layer {} {} {}",
                        digest.short(),
                        human_size(*bytes),
                        if *existed {
                            "(already present)"
                        } else {
                            "copied"
                        }
                    ),
                    ImportEvent::Unpacked {
                        chain_id, reused, ..
                    } => println!(
                        "  snapshot {} {}",
                        chain_id.short(),
                        if *reused {
                            "(already unpacked)"
                        } else {
                            "unpacked"
                        }
                    ),
                };
                match import_archive(&store, &file, &mut show) {
                    Ok(images) => {
                        for i in images {
                            println!("imported {} {}", i.name, i.digest.short());
                        }
                    }
                    Err(e) => {
                        eprintln!(
                            "kone images: {}",
                            one_line(&format!("{}: {e:#}", file.display()))
                        );
                        failed = true;
                    }
                }
            }
            if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        ImagesCommand::Pull {
            reference,
            registry,
        } => pull(store, &reference, &registry),
        ImagesCommand::Ls { quiet } => match store.list() {
            Ok(records) => {
                if quiet {
                    for r in records {
                        println!("{}", r.name);
                    }
                    return ExitCode::SUCCESS;
                }
                let rows: Vec<Vec<String>> = records
                    .iter()
                    .map(|r| {
                        vec![
                            r.name.clone(),
                            r.digest.short().to_string(),
                            r.config_digest.short().to_string(),
                            human_size(r.size),
                            created(r.created.as_deref().unwrap_or(&r.imported)),
                        ]
                    })
                    .collect();
                print_table(&["NAME", "DIGEST", "IMAGE ID", "SIZE", "CREATED"], &rows);
                ExitCode::SUCCESS
            }
            Err(e) => fail(&format!("{e:#}")),
        },
        ImagesCommand::Inspect { name } => match store.inspect(&name) {
            Ok((rec, config)) => {
                let mut v = match serde_json::to_value(&rec) {
                    Ok(v) => v,
                    Err(e) => return fail(&e.to_string()),
                };
                if let (Some(obj), Ok(c)) = (v.as_object_mut(), serde_json::to_value(&config)) {
                    obj.insert("config".into(), c);
                    let snaps: Vec<String> = store
                        .snapshot_dirs(&rec)
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect();
                    obj.insert("snapshots".into(), serde_json::json!(snaps));
                }
                match serde_json::to_string_pretty(&v) {
                    Ok(s) => {
                        println!("{s}");
                        ExitCode::SUCCESS
                    }
                    Err(e) => fail(&e.to_string()),
                }
            }
            Err(e) => fail(&format!("{e:#}")),
        },
        ImagesCommand::Rm { names } => {
            let mut failed = false;
            for name in names {
                match store.remove(&name) {
                    Ok(Some(rec)) => println!("deleted {}", rec.name),
                    Ok(None) => {
                        eprintln!("kone images: no such image {name}");
                        failed = true;
                    }
                    Err(e) => {
                        eprintln!("kone images: {}", one_line(&format!("{e:#}")));
                        failed = true;
                    }
                }
            }
            if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        ImagesCommand::Gc => match store.gc() {
            Ok(r) => {
                println!(
                    "removed {} blobs and {} snapshots, {} freed",
                    r.blobs,
                    r.snapshots,
                    human_size(r.bytes)
                );
                ExitCode::SUCCESS
            }
            Err(e) => fail(&format!("{e:#}")),
        },
    }
}

/// `kone images pull`: one line per layer as it is fetched and unpacked; on
/// a terminal, a line that refreshes with the bytes received.
fn pull(store: Store, reference: &str, registry: &RegistryArgs) -> ExitCode {
    let registries = match registry.load() {
        Ok(r) => r,
        Err(e) => return fail(&format!("{e:#}")),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return fail(&format!("starting the runtime: {e}")),
    };
    let tty = std::io::stdout().is_terminal();
    // A refreshing progress line is open (to end before other output).
    let open_line = std::cell::Cell::new(false);
    let end_line = || {
        if open_line.replace(false) {
            println!();
        }
    };
    let show = |ev: &PullEvent| match ev {
        PullEvent::Resolved {
            endpoint,
            digest,
            layers,
            bytes,
        } => println!(
            "pulling {reference} from {endpoint}: manifest {}, {layers} layer(s), {}",
            digest.short(),
            human_size(*bytes)
        ),
        PullEvent::Fetching {
            digest,
            bytes,
            total,
        } => {
            if tty {
                open_line.set(true);
                print!(
                    "\r\x1b[K  layer {} {} / {}",
                    digest.short(),
                    human_size(*bytes),
                    human_size(*total)
                );
                let _ = std::io::stdout().flush();
            }
        }
        PullEvent::Fetched {
            digest,
            bytes,
            existed,
        } => {
            if open_line.replace(false) {
                print!("\r\x1b[K");
            }
            println!(
                "  layer {} {} {}",
                digest.short(),
                human_size(*bytes),
                if *existed {
                    "(already present)"
                } else {
                    "fetched"
                }
            )
        }
        PullEvent::Unpack(ImportEvent::Unpacked {
            chain_id, reused, ..
        }) => println!(
            "  snapshot {} {}",
            chain_id.short(),
            if *reused {
                "(already unpacked)"
            } else {
                "unpacked"
            }
        ),
        PullEvent::Unpack(ImportEvent::Layer { .. }) => {}
    };
    let puller = Puller::new(store, registries);
    let res = runtime.block_on(puller.pull_with_progress(reference, None, show));
    end_line();
    match res {
        Ok(rec) => {
            println!(
                "pulled {} {} (image id {})",
                rec.name,
                rec.digest.short(),
                rec.config_digest.short()
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(&format!("{e:#}")),
    }
}

fn fail(msg: &str) -> ExitCode {
    eprintln!("kone images: {}", one_line(msg));
    ExitCode::FAILURE
}

/// Errors may quote archive bytes: keep them to one printable line.
fn one_line(msg: &str) -> String {
    let mut s: String = msg
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if s.chars().count() > 400 {
        s = s.chars().take(400).collect::<String>() + "…";
    }
    s
}

fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let line = |cells: &[&str]| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}   ", w = widths[i]));
            }
        }
        println!("{}", s.trim_end());
    };
    line(header);
    for r in rows {
        line(&r.iter().map(String::as_str).collect::<Vec<_>>());
    }
}

/// `1.2 MiB`, `512 B`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn created(ts: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(ts)
        .map(|t| {
            t.with_timezone(&chrono::Utc)
                .format("%Y-%m-%d %H:%M:%S UTC")
                .to_string()
        })
        .unwrap_or_else(|_| ts.to_string())
}

#[cfg(test)]
mod tests {
    use super::human_size;

    #[test]
    fn sizes() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(3 << 20), "3.0 MiB");
    }
}
