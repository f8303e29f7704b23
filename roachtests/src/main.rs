//! `cargo run -p roachtests -- list | run NAME... | run --suite quick|nightly|bench`.

use anyhow::{Context, Result, anyhow, bail};
use clap::{Parser, Subcommand};
use roachtests::scenarios::{Ctx, Spec, registry, run};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// End-to-end replication scenarios on real roach processes (127.0.0.1 only).
#[derive(Debug, Parser)]
#[command(name = "roachtests")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// List the scenarios: name, suite, nodes, what it does.
    List,
    /// Run scenarios by name (a name also selects those under it: `c2c/shutdown`) or by suite.
    Run {
        names: Vec<String>,
        /// Run every scenario of this suite: quick, nightly or bench.
        #[arg(long)]
        suite: Option<String>,
        /// The roach binary to drive (default: build it with cargo, same profile as this).
        #[arg(long, env = "ROACH_BIN")]
        roach: Option<PathBuf>,
        /// Keep every scenario's directory (stores, logs, certificates), not only failed ones.
        #[arg(long)]
        keep: bool,
    },
}

fn select(names: &[String], suite: Option<&str>) -> Result<Vec<Spec>> {
    let all = registry();
    let mut out: Vec<Spec> = Vec::new();
    if let Some(s) = suite {
        let picked: Vec<Spec> = all
            .iter()
            .filter(|x| x.suite.name() == s)
            .cloned()
            .collect();
        if picked.is_empty() {
            bail!("no suite {s:?}: the suites are quick, nightly and bench");
        }
        out.extend(picked);
    }
    for name in names {
        let picked: Vec<Spec> = all
            .iter()
            .filter(|x| x.name == name || x.name.starts_with(&format!("{name}/")))
            .cloned()
            .collect();
        if picked.is_empty() {
            bail!("no scenario {name:?} (see `list`)");
        }
        for p in picked {
            if !out.iter().any(|o| o.name == p.name) {
                out.push(p);
            }
        }
    }
    if out.is_empty() {
        bail!("name scenarios or a --suite (see `list`)");
    }
    Ok(out)
}

/// The roach binary: given, or built by cargo next to this binary.
fn roach_bin(given: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(p) = given {
        return Ok(p);
    }
    let me = std::env::current_exe()?;
    let dir = me
        .parent()
        .ok_or_else(|| anyhow!("no directory for {}", me.display()))?;
    let release = dir.file_name().is_some_and(|n| n == "release");
    eprintln!(
        "building roach (cargo build --bin roach{})",
        if release { " --release" } else { "" }
    );
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args(["build", "--bin", "roach"]);
    if release {
        cmd.arg("--release");
    }
    let status = cmd.status().context("run cargo build")?;
    if !status.success() {
        bail!("cargo build --bin roach failed");
    }
    let bin = dir.join("roach");
    if !bin.exists() {
        bail!("{} was not built; pass --roach PATH", bin.display());
    }
    Ok(bin)
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Cmd::List => {
            for s in registry() {
                println!(
                    "{:<36} {:<8} {}→{} nodes  {}",
                    s.name,
                    s.suite.name(),
                    s.nodes.0,
                    s.nodes.1,
                    s.about
                );
            }
            Ok(())
        }
        Cmd::Run {
            names,
            suite,
            roach,
            keep,
        } => {
            let specs = select(&names, suite.as_deref())?;
            let bin = roach_bin(roach)?;
            let rt = tokio::runtime::Runtime::new()?;
            let mut failed = Vec::new();
            let all = Instant::now();
            for spec in &specs {
                let dir = tempfile::Builder::new()
                    .prefix(&format!("roachtests-{}-", spec.name.replace('/', "-")))
                    .tempdir()?;
                let started = Instant::now();
                eprintln!("=== RUN {}", spec.name);
                let ctx = Ctx {
                    bin: &bin,
                    dir: dir.path(),
                };
                let limit = spec.timeout * 5 + Duration::from_secs(120);
                let result = rt.block_on(async {
                    match tokio::time::timeout(limit, run(spec, &ctx)).await {
                        Ok(r) => r,
                        Err(_) => Err(anyhow!("the scenario did not finish within {limit:?}")),
                    }
                });
                let secs = started.elapsed().as_secs_f64();
                let verdict = match (&result, spec.broken) {
                    (Ok(figures), None) => {
                        println!("--- PASS {} ({secs:.1}s)", spec.name);
                        print!("{}", figures.render());
                        true
                    }
                    (Err(e), Some(want)) if format!("{e:#}").contains(want) => {
                        println!(
                            "--- PASS {} ({secs:.1}s): failed as it must: {e:#}",
                            spec.name
                        );
                        true
                    }
                    (Ok(_), Some(want)) => {
                        println!(
                            "--- FAIL {} ({secs:.1}s): the broken run passed; expected an error with {want:?}",
                            spec.name
                        );
                        false
                    }
                    (Err(e), _) => {
                        println!("--- FAIL {} ({secs:.1}s): {e:#}", spec.name);
                        false
                    }
                };
                if !verdict {
                    failed.push(spec.name);
                }
                if !verdict || keep {
                    let kept = dir.keep();
                    println!(
                        "    stores, logs and certificates kept in {}",
                        kept.display()
                    );
                }
            }
            println!(
                "{} of {} scenarios passed in {:.0}s",
                specs.len() - failed.len(),
                specs.len(),
                all.elapsed().as_secs_f64()
            );
            if !failed.is_empty() {
                bail!("failed: {}", failed.join(", "));
            }
            Ok(())
        }
    }
}
