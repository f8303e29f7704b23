//! A model test: random operations applied to an engine and to a `BTreeMap` reference that
//! states the MVCC semantics plainly; every read and every operation's result must agree.
//!
//! Each case prints its seed first. Replay one with `ROACH_MODEL_SEED=<seed> cargo test -p
//! roach-storage --test model`; `ROACH_MODEL_CASES=<n>` runs more cases.

mod common;

use common::Kind;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::cmp::Reverse;
use std::collections::BTreeMap;
use storage::{
    Durability, Engine, ExportMode, KeyValue, MvccVersion, Span, StorageError, Timestamp,
    WriteBatch, version_hash,
};

const OPS_PER_CASE: usize = 1_500;

/// Keys chosen to stress the encoding: prefixes of one another, zero and 0xff bytes.
const KEYS: &[&[u8]] = &[
    b"",
    b"\x00",
    b"\x00\x00",
    b"\x01",
    b"a",
    b"a\x00",
    b"a\x00\x00",
    b"a\x00\x01",
    b"a\x01",
    b"a\xff",
    b"ab",
    b"abc",
    b"b",
    b"b\x00",
    b"ba",
    b"c",
    b"\xff",
    b"\xff\x00",
    b"\xff\xff",
];

/// A key's versions, newest first; `None` is a tombstone.
type Versions = BTreeMap<Reverse<Timestamp>, Option<Vec<u8>>>;

#[derive(Default, Debug)]
struct Model {
    data: BTreeMap<Vec<u8>, Versions>,
}

impl Model {
    fn versions_in<'a>(&'a self, span: &'a Span) -> impl Iterator<Item = MvccVersion> + 'a {
        self.data
            .iter()
            .filter(|(k, _)| span.contains(k))
            .flat_map(|(k, vs)| {
                vs.iter().map(|(Reverse(ts), v)| MvccVersion {
                    key: k.clone(),
                    ts: *ts,
                    value: v.clone(),
                })
            })
    }

    fn newest_at(&self, key: &[u8], ts: Timestamp) -> Option<(Timestamp, Option<Vec<u8>>)> {
        self.data
            .get(key)?
            .range(Reverse(ts)..)
            .next()
            .map(|(Reverse(t), v)| (*t, v.clone()))
    }

    fn export(
        &self,
        span: &Span,
        start: Timestamp,
        end: Timestamp,
        mode: ExportMode,
    ) -> Vec<MvccVersion> {
        match mode {
            ExportMode::AllRevisions => self
                .versions_in(span)
                .filter(|v| v.ts > start && v.ts <= end)
                .collect(),
            ExportMode::Latest => self
                .data
                .keys()
                .filter(|k| span.contains(k))
                .filter_map(|k| {
                    let (ts, value) = self.newest_at(k, end)?;
                    let wanted = ts > start && (value.is_some() || !start.is_zero());
                    wanted.then(|| MvccVersion {
                        key: k.clone(),
                        ts,
                        value,
                    })
                })
                .collect(),
        }
    }

    fn scan(&self, span: &Span, ts: Timestamp, limit: usize) -> (Vec<KeyValue>, Option<Vec<u8>>) {
        let mut live = self
            .export(span, Timestamp::ZERO, ts, ExportMode::Latest)
            .into_iter();
        let rows: Vec<KeyValue> = live
            .by_ref()
            .take(limit)
            .map(|v| KeyValue {
                key: v.key,
                ts: v.ts,
                value: v.value.expect("live"),
            })
            .collect();
        (rows, live.next().map(|v| v.key))
    }

    fn fingerprint(&self, span: &Span, start: Timestamp, end: Timestamp) -> u64 {
        let mut buf = Vec::new();
        self.export(span, start, end, ExportMode::AllRevisions)
            .iter()
            .fold(0, |acc, v| {
                acc ^ version_hash(&v.key, v.ts, v.value.as_deref(), &mut buf)
            })
    }

    fn gc(&mut self, span: &Span, threshold: Timestamp) -> u64 {
        let mut removed = 0;
        for (_, vs) in self.data.iter_mut().filter(|(k, _)| span.contains(k)) {
            let below: Vec<_> = vs
                .range(Reverse(threshold)..)
                .map(|(t, v)| (*t, v.is_none()))
                .collect();
            for (i, (t, tombstone)) in below.into_iter().enumerate() {
                if i > 0 || tombstone {
                    vs.remove(&t);
                    removed += 1;
                }
            }
        }
        self.data.retain(|_, vs| !vs.is_empty());
        removed
    }
}

fn random_key(rng: &mut StdRng) -> Vec<u8> {
    KEYS[rng.random_range(0..KEYS.len())].to_vec()
}

fn random_ts(rng: &mut StdRng) -> Timestamp {
    Timestamp::new(rng.random_range(1..60), rng.random_range(0..3))
}

fn random_span(rng: &mut StdRng) -> Span {
    match rng.random_range(0..4) {
        0 => Span::all(),
        1 => Span::from_key(random_key(rng)),
        2 => Span::prefix(&random_key(rng)),
        _ => {
            let (a, b) = (random_key(rng), random_key(rng));
            if a < b {
                Span::new(a, b)
            } else if b < a {
                Span::new(b, a)
            } else {
                Span::from_key(a)
            }
        }
    }
}

fn random_version(rng: &mut StdRng) -> MvccVersion {
    let key = random_key(rng);
    let ts = random_ts(rng);
    if rng.random_bool(0.25) {
        MvccVersion::tombstone(key, ts)
    } else {
        MvccVersion::put(key, ts, format!("v{}", rng.random_range(0..4)))
    }
}

fn run_case(kind: Kind, seed: u64) {
    println!("model case: engine {kind:?}, seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let engine = kind.must_open();
    let e: &dyn Engine = &*engine;
    let mut model = Model::default();
    for step in 0..OPS_PER_CASE {
        let ctx = format!("seed {seed}, step {step}");
        match rng.random_range(0..100) {
            0..=29 => {
                let mut batch = WriteBatch::new();
                for _ in 0..rng.random_range(1..6) {
                    let v = random_version(&mut rng);
                    model
                        .data
                        .entry(v.key.clone())
                        .or_default()
                        .insert(Reverse(v.ts), v.value.clone());
                    batch.push(v);
                }
                e.write(batch, Durability::NoSync).expect(&ctx);
            }
            30..=44 => {
                let key = random_key(&mut rng);
                let ts = random_ts(&mut rng);
                let want = model.newest_at(&key, ts).and_then(|(_, v)| v);
                assert_eq!(e.get(&key, ts).expect(&ctx), want, "get {ctx}");
            }
            45..=54 => {
                let span = random_span(&mut rng);
                let ts = random_ts(&mut rng);
                let limit = rng.random_range(1..8);
                let got = e.scan(&span, ts, limit).expect(&ctx);
                let (rows, resume) = model.scan(&span, ts, limit);
                assert_eq!(got.rows, rows, "scan rows {ctx}");
                assert_eq!(got.resume_key, resume, "scan resume {ctx}");
            }
            55..=64 => {
                let span = random_span(&mut rng);
                let (a, b) = (random_ts(&mut rng), random_ts(&mut rng));
                let (start, end) = if rng.random_bool(0.3) {
                    (Timestamp::ZERO, a.max(b))
                } else {
                    (a.min(b), a.max(b))
                };
                let mode = if rng.random_bool(0.5) {
                    ExportMode::Latest
                } else {
                    ExportMode::AllRevisions
                };
                let got: Vec<_> = e
                    .export(&span, start, end, mode)
                    .expect(&ctx)
                    .collect::<Result<_, _>>()
                    .expect(&ctx);
                assert_eq!(
                    got,
                    model.export(&span, start, end, mode),
                    "export {mode:?} {ctx}"
                );
            }
            65..=74 => {
                // Ingest a mix of versions already stored (identical or altered) and new ones.
                let existing: Vec<_> = model.versions_in(&Span::all()).collect();
                let mut versions = Vec::new();
                for _ in 0..rng.random_range(1..5) {
                    if !existing.is_empty() && rng.random_bool(0.5) {
                        let mut v = existing[rng.random_range(0..existing.len())].clone();
                        if rng.random_bool(0.1) {
                            v.value = Some(b"altered".to_vec());
                        }
                        versions.push(v);
                    } else {
                        versions.push(random_version(&mut rng));
                    }
                }
                let mut pending: BTreeMap<(Vec<u8>, Timestamp), Option<Vec<u8>>> = BTreeMap::new();
                let mut conflict = false;
                let (mut written, mut unchanged) = (0, 0);
                for v in &versions {
                    let stored = pending.get(&(v.key.clone(), v.ts)).cloned().or_else(|| {
                        model
                            .data
                            .get(&v.key)
                            .and_then(|vs| vs.get(&Reverse(v.ts)).cloned())
                    });
                    match stored {
                        Some(s) if s == v.value => unchanged += 1,
                        Some(_) => conflict = true,
                        None => {
                            pending.insert((v.key.clone(), v.ts), v.value.clone());
                            written += 1;
                        }
                    }
                }
                match e.ingest(&versions, Durability::NoSync) {
                    Err(StorageError::IngestConflict { .. }) => {
                        assert!(conflict, "unexpected conflict {ctx}")
                    }
                    Err(err) => panic!("ingest {ctx}: {err}"),
                    Ok(stats) => {
                        assert!(!conflict, "missed conflict {ctx}");
                        assert_eq!(
                            (stats.written, stats.unchanged),
                            (written, unchanged),
                            "ingest stats {ctx}"
                        );
                        for ((k, ts), v) in pending {
                            model.data.entry(k).or_default().insert(Reverse(ts), v);
                        }
                    }
                }
            }
            75..=79 => {
                let span = random_span(&mut rng);
                let to = random_ts(&mut rng);
                let batch = rng.random_range(1..6);
                let mut cursor = span.clone();
                loop {
                    let p = e.revert_span(&cursor, to, batch).expect(&ctx);
                    assert!(p.versions_removed <= batch as u64);
                    match p.resume_key {
                        Some(k) => cursor = cursor.with_start(k),
                        None => break,
                    }
                }
                for (_, vs) in model.data.iter_mut().filter(|(k, _)| span.contains(k)) {
                    vs.retain(|Reverse(t), _| *t <= to);
                }
                model.data.retain(|_, vs| !vs.is_empty());
            }
            80..=89 => {
                // GC in bounded steps, resumed from each step's resume key.
                let span = random_span(&mut rng);
                let threshold = random_ts(&mut rng);
                let batch = rng.random_range(1..6);
                let mut cursor = span.clone();
                let mut removed = 0;
                loop {
                    let p = e.gc(&cursor, threshold, batch).expect(&ctx);
                    removed += p.versions_removed;
                    match p.resume_key {
                        Some(k) => cursor = cursor.with_start(k),
                        None => break,
                    }
                }
                assert_eq!(removed, model.gc(&span, threshold), "gc {ctx}");
            }
            _ => {
                let span = random_span(&mut rng);
                let (a, b) = (random_ts(&mut rng), random_ts(&mut rng));
                let (start, end) = if rng.random_bool(0.5) {
                    (Timestamp::ZERO, Timestamp::MAX)
                } else {
                    (a.min(b), a.max(b))
                };
                assert_eq!(
                    e.fingerprint(&span, start, end).expect(&ctx),
                    model.fingerprint(&span, start, end),
                    "fingerprint {ctx}"
                );
            }
        }
    }
    // A final full comparison.
    let got: Vec<_> = e
        .export(
            &Span::all(),
            Timestamp::ZERO,
            Timestamp::MAX,
            ExportMode::AllRevisions,
        )
        .expect("export")
        .collect::<Result<_, _>>()
        .expect("export");
    assert_eq!(
        got,
        model.export(
            &Span::all(),
            Timestamp::ZERO,
            Timestamp::MAX,
            ExportMode::AllRevisions
        ),
        "final state, seed {seed}"
    );
}

fn seeds() -> Vec<u64> {
    if let Ok(seed) = std::env::var("ROACH_MODEL_SEED") {
        return vec![seed.parse().expect("ROACH_MODEL_SEED must be a u64")];
    }
    let cases: u64 = std::env::var("ROACH_MODEL_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(4);
    let base: u64 = rand::random();
    (0..cases).map(|i| base.wrapping_add(i)).collect()
}

// Goal: the in-memory engine agrees with the reference model on random histories.
#[test]
fn mem_engine_matches_model() {
    for seed in seeds() {
        run_case(Kind::Mem, seed);
    }
}

// Goal: the fjall engine agrees with the reference model on random histories.
#[test]
fn fjall_engine_matches_model() {
    for seed in seeds() {
        run_case(Kind::Fjall, seed);
    }
}
