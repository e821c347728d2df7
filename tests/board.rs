//! A run's TensorBoard files, read back as TensorBoard reads them: every event file of
//! `tb/` in name order, each record's framing and CRCs checked, the events decoded.

use std::path::Path;

use bottleneck_train::tensorboard::{read_records, Event, Kind, What};
use prost::Message as _;

/// `(file name, event)` for every event of `run/tb`, files in name order.
pub fn events(run: &Path) -> Vec<(String, Event)> {
    let mut files: Vec<_> = std::fs::read_dir(run.join("tb"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().contains("tfevents"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let bytes = std::fs::read(&f).unwrap();
        let records = read_records(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(matches!(Event::decode(records[0]).unwrap().what, Some(What::FileVersion(v)) if v == "brain.Event:2"));
        out.extend(records.iter().map(|r| (name.clone(), Event::decode(*r).unwrap())));
    }
    out
}

/// The events TensorBoard keeps: a `SessionLog` START at step s drops the earlier
/// events at steps >= s (its purge of orphaned data).
pub fn kept(events: &[(String, Event)]) -> Vec<Event> {
    let mut out: Vec<Event> = Vec::new();
    for (_, e) in events {
        if let Some(What::SessionLog(l)) = &e.what {
            if l.status == 1 {
                out.retain(|o| o.step < e.step);
            }
        }
        out.push(e.clone());
    }
    out
}

/// `(step, value)` of a scalar tag.
pub fn scalars(events: &[Event], tag: &str) -> Vec<(i64, f32)> {
    let mut out = Vec::new();
    for e in events {
        if let Some(What::Summary(s)) = &e.what {
            for v in &s.value {
                if let (true, Some(Kind::SimpleValue(x))) = (v.tag == tag, &v.kind) {
                    out.push((e.step, *x));
                }
            }
        }
    }
    out
}

/// The image tags, with the width and height of each image.
pub fn images(events: &[Event]) -> Vec<(String, i32, i32)> {
    let mut out = Vec::new();
    for e in events {
        if let Some(What::Summary(s)) = &e.what {
            for v in &s.value {
                if let Some(Kind::Image(i)) = &v.kind {
                    assert!(i.encoded_image_string.starts_with(b"\x89PNG"), "{}", v.tag);
                    out.push((v.tag.clone(), i.width, i.height));
                }
            }
        }
    }
    out
}

/// The projector's files of a run on 28×28 images agree with each other: as many code
/// rows as metadata rows (after its header), k columns, a sprite that holds them all.
pub fn check_projector(run: &Path, k: usize) {
    let tb = run.join("tb");
    let config = std::fs::read_to_string(tb.join("projector_config.pbtxt")).unwrap();
    for line in [
        "tensor_path: \"projector/tensors.tsv\"",
        "metadata_path: \"projector/metadata.tsv\"",
        "image_path: \"projector/sprite.png\"",
        "single_image_dim: 28",
    ] {
        assert!(config.contains(line), "{config}");
    }
    let tensors = std::fs::read_to_string(tb.join("projector/tensors.tsv")).unwrap();
    let rows: Vec<&str> = tensors.lines().collect();
    assert!(rows.len() > 100, "{} codes", rows.len());
    assert!(rows.iter().all(|r| r.split('\t').filter(|v| v.parse::<f32>().is_ok()).count() == k));
    let meta = std::fs::read_to_string(tb.join("projector/metadata.tsv")).unwrap();
    let mut lines = meta.lines();
    assert_eq!(lines.next(), Some("index\tlabel\tclass"));
    let meta: Vec<&str> = lines.collect();
    assert_eq!(meta.len(), rows.len());
    assert!(meta.iter().all(|m| m.split('\t').count() == 3), "{:?}", &meta[..3]);
    assert!(meta.iter().any(|m| m.ends_with("\tAnkle boot")), "Fashion-MNIST's class names");
    let png = std::fs::read(tb.join("projector/sprite.png")).unwrap();
    let (w, h) = (
        u32::from_be_bytes(png[16..20].try_into().unwrap()) as usize,
        u32::from_be_bytes(png[20..24].try_into().unwrap()) as usize,
    );
    assert!(w % 28 == 0 && h % 28 == 0 && (w / 28) * (h / 28) >= rows.len(), "{w}x{h} for {}", rows.len());
}
