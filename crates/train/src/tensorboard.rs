//! TensorBoard event files, written without TensorFlow: each record is a protobuf
//! `Event` (TensorFlow's `core/util/event.proto`, the fields TensorBoard reads, encoded
//! by `prost`) framed as TFRecord — the data's length (u64, little-endian), its masked
//! CRC-32C, the data, the data's masked CRC-32C.
//!
//! A run writes `tb/events.out.tfevents.<seconds>.<host>.<pid>.train` while it trains
//! (per-step loss and terms, per-epoch validation loss and learning rate, the test
//! metrics); a continued run writes a new file that starts with a `SessionLog` START at
//! its first new step, so TensorBoard drops what the killed process logged after its
//! last checkpoint. The report adds a `.report` file (the figures as images) and the
//! embedding projector's files. An event file is an append-only log: a killed process
//! leaves at most a torn last record, which TensorBoard's reader stops at.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prost::Message;

/// The folder of a run's event files (a TensorBoard run of its own).
pub const DIR: &str = "tb";

/// `tensorflow.Event`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Event {
    /// Seconds since the Unix epoch.
    #[prost(double, tag = "1")]
    pub wall_time: f64,
    /// The step the event belongs to (the x axis of TensorBoard's charts).
    #[prost(int64, tag = "2")]
    pub step: i64,
    /// What happened.
    #[prost(oneof = "What", tags = "3, 5, 7")]
    pub what: Option<What>,
}

/// `Event.what`.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum What {
    /// The first event of a file: `brain.Event:2`.
    #[prost(string, tag = "3")]
    FileVersion(String),
    /// Scalars and images.
    #[prost(message, tag = "5")]
    Summary(Summary),
    /// A (re)start of the writing program.
    #[prost(message, tag = "7")]
    SessionLog(SessionLog),
}

/// `tensorflow.Summary`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Summary {
    /// The values.
    #[prost(message, repeated, tag = "1")]
    pub value: Vec<Value>,
}

/// `tensorflow.Summary.Value`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Value {
    /// The chart's name (`train/loss`).
    #[prost(string, tag = "1")]
    pub tag: String,
    /// The value.
    #[prost(oneof = "Kind", tags = "2, 4")]
    pub kind: Option<Kind>,
}

/// `Summary.Value.value`.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Kind {
    /// A scalar.
    #[prost(float, tag = "2")]
    SimpleValue(f32),
    /// An encoded image.
    #[prost(message, tag = "4")]
    Image(Image),
}

/// `tensorflow.Summary.Image`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Image {
    /// Pixels.
    #[prost(int32, tag = "1")]
    pub height: i32,
    /// Pixels.
    #[prost(int32, tag = "2")]
    pub width: i32,
    /// 1 grey, 3 RGB, 4 RGBA.
    #[prost(int32, tag = "3")]
    pub colorspace: i32,
    /// The PNG file's bytes.
    #[prost(bytes = "vec", tag = "4")]
    pub encoded_image_string: Vec<u8>,
}

/// `tensorflow.SessionLog`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SessionLog {
    /// 1 = START.
    #[prost(int32, tag = "1")]
    pub status: i32,
    /// Free text.
    #[prost(string, tag = "3")]
    pub msg: String,
}

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as TFRecord uses.
#[must_use]
pub fn crc32c(data: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut t = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 == 1 { (c >> 1) ^ 0x82F6_3B78 } else { c >> 1 };
                k += 1;
            }
            t[i] = c;
            i += 1;
        }
        t
    };
    let mut crc = !0u32;
    for &b in data {
        crc = TABLE[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

/// TFRecord's masked CRC: rotated right by 15 bits plus a constant.
#[must_use]
pub fn masked_crc(data: &[u8]) -> u32 {
    crc32c(data).rotate_right(15).wrapping_add(0xa282_ead8)
}

/// One TFRecord: length, masked CRC of the length, data, masked CRC of the data.
#[must_use]
pub fn record(data: &[u8]) -> Vec<u8> {
    let len = (data.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc(data).to_le_bytes());
    out
}

/// Splits a file's bytes into its records' data, checking both CRCs of each; a torn
/// last record (a killed writer) ends the list. An error names the bad record.
pub fn read_records(bytes: &[u8]) -> std::result::Result<Vec<&[u8]>, String> {
    let mut out = Vec::new();
    let mut at = 0;
    while bytes.len() - at >= 12 {
        let len_bytes = &bytes[at..at + 8];
        let stored = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap_or_default());
        if stored != masked_crc(len_bytes) {
            return Err(format!("record {} at byte {at}: the length's CRC does not match", out.len()));
        }
        let len = usize::try_from(u64::from_le_bytes(len_bytes.try_into().unwrap_or_default())).unwrap_or(usize::MAX);
        let start = at + 12;
        if bytes.len() - start < len.saturating_add(4) {
            break;
        }
        let data = &bytes[start..start + len];
        let stored = u32::from_le_bytes(bytes[start + len..start + len + 4].try_into().unwrap_or_default());
        if stored != masked_crc(data) {
            return Err(format!("record {} at byte {at}: the data's CRC does not match", out.len()));
        }
        out.push(data);
        at = start + len + 4;
    }
    Ok(out)
}

fn wall_time() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

fn event(step: u64, what: What) -> Event {
    Event { wall_time: wall_time(), step: i64::try_from(step).unwrap_or(i64::MAX), what: Some(what) }
}

/// A summary of scalars (stored as f32, as TensorBoard keeps them).
#[must_use]
pub fn scalars(values: &[(String, f64)]) -> What {
    let value =
        values.iter().map(|(tag, v)| Value { tag: tag.clone(), kind: Some(Kind::SimpleValue(*v as f32)) }).collect();
    What::Summary(Summary { value })
}

/// A summary of one PNG image; its size is read from the PNG header.
pub fn image(tag: &str, png: Vec<u8>) -> std::io::Result<What> {
    let (width, height, colorspace) = png_header(&png)
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{tag}: not a PNG image")))?;
    let image = Image { height, width, colorspace, encoded_image_string: png };
    Ok(What::Summary(Summary { value: vec![Value { tag: tag.into(), kind: Some(Kind::Image(image)) }] }))
}

/// Writes a whole event file `dir/events.out.tfevents.<seconds>.<host>.<pid>.<suffix>`
/// atomically (for what is drawn at once, as the report), then removes the earlier
/// files of that suffix; returns its path.
pub fn write_file(dir: &Path, suffix: &str, events: Vec<(u64, What)>) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let mut bytes = record(&event(0, What::FileVersion("brain.Event:2".into())).encode_to_vec());
    for (step, what) in events {
        bytes.extend(record(&event(step, what).encode_to_vec()));
    }
    let path = dir.join(file_name(suffix));
    // Not written through a temporary name holding "tfevents": TensorBoard would read it.
    let partial = dir.join(format!(".partial-{suffix}-{}", std::process::id()));
    {
        let mut f = std::fs::File::create(&partial)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&partial, &path)?;
    bottleneck_data::atomic::sync_dir(dir)?;
    let tail = format!(".{suffix}");
    for entry in std::fs::read_dir(dir)? {
        let old = entry?.path();
        let name = old.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        if old != path && name.starts_with("events.out.tfevents.") && name.ends_with(&tail) {
            std::fs::remove_file(&old)?;
        }
    }
    Ok(path)
}

/// `events.out.tfevents.<seconds>.<host>.<pid>.<suffix>`: TensorBoard reads a run's
/// files in name order, so a later file sorts after an earlier one.
fn file_name(suffix: &str) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    format!("events.out.tfevents.{now:010}.{}.{}.{suffix}", crate::rundir::hostname(), std::process::id())
}

/// An event file of one process, buffered; [`EventWriter::flush`] writes what is
/// buffered (a run flushes with every checkpoint and every few seconds).
#[derive(Debug)]
pub struct EventWriter {
    path: PathBuf,
    file: std::io::BufWriter<std::fs::File>,
    flushed: Instant,
}

impl EventWriter {
    /// Starts `dir/events.out.tfevents.<seconds>.<host>.<pid>.<suffix>` with its
    /// `file_version` event.
    pub fn create(dir: &Path, suffix: &str) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(file_name(suffix));
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&path)?;
        let mut w = Self { path, file: std::io::BufWriter::new(file), flushed: Instant::now() };
        w.event(0, What::FileVersion("brain.Event:2".into()))?;
        Ok(w)
    }

    /// The file's path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn event(&mut self, step: u64, what: What) -> std::io::Result<()> {
        self.file.write_all(&record(&event(step, what).encode_to_vec()))
    }

    /// Scalars at `step`, one event.
    pub fn scalars(&mut self, step: u64, values: &[(String, f64)]) -> std::io::Result<()> {
        if values.is_empty() {
            return Ok(());
        }
        self.event(step, scalars(values))
    }

    /// A PNG image at `step`; its size is read from the PNG header.
    pub fn png(&mut self, step: u64, tag: &str, png: Vec<u8>) -> std::io::Result<()> {
        self.event(step, image(tag, png)?)
    }

    /// A restart at `step`: TensorBoard drops this run's earlier events from `step` on.
    pub fn restart(&mut self, step: u64) -> std::io::Result<()> {
        self.event(step, What::SessionLog(SessionLog { status: 1, msg: format!("continued at step {step}") }))
    }

    /// Writes what is buffered to the file.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.flushed = Instant::now();
        self.file.flush()
    }

    /// Flushes when the last flush is `every` ago (for a live TensorBoard).
    pub fn flush_every(&mut self, every: Duration) -> std::io::Result<()> {
        if self.flushed.elapsed() >= every {
            self.flush()?;
        }
        Ok(())
    }
}

/// A run's event file, if it has one: a failure to write it is a warning that ends the
/// event file, never the run.
#[derive(Debug, Default)]
pub struct Board(Option<EventWriter>);

impl Board {
    /// `dir/tb/…<suffix>` when `on`.
    #[must_use]
    pub fn open(dir: &Path, suffix: &str, on: bool) -> Self {
        if !on {
            return Self(None);
        }
        match EventWriter::create(&dir.join(DIR), suffix) {
            Ok(w) => Self(Some(w)),
            Err(e) => {
                tracing::warn!("TensorBoard events: cannot start a file in {}: {e}", dir.join(DIR).display());
                Self(None)
            }
        }
    }

    fn with(&mut self, f: impl FnOnce(&mut EventWriter) -> std::io::Result<()>) {
        if let Some(w) = self.0.as_mut() {
            if let Err(e) = f(w) {
                tracing::warn!(
                    "TensorBoard events: writing {} failed ({e}); no more events this run",
                    w.path().display()
                );
                self.0 = None;
            }
        }
    }

    /// See [`EventWriter::scalars`].
    pub fn scalars(&mut self, step: u64, values: &[(String, f64)]) {
        self.with(|w| w.scalars(step, values));
    }

    /// See [`EventWriter::png`].
    pub fn png(&mut self, step: u64, tag: &str, png: Vec<u8>) {
        self.with(|w| w.png(step, tag, png));
    }

    /// See [`EventWriter::restart`].
    pub fn restart(&mut self, step: u64) {
        self.with(|w| w.restart(step));
    }

    /// See [`EventWriter::flush`].
    pub fn flush(&mut self) {
        self.with(EventWriter::flush);
    }

    /// See [`EventWriter::flush_every`].
    pub fn flush_every(&mut self, every: Duration) {
        self.with(|w| w.flush_every(every));
    }

    /// The file, while it is written.
    #[must_use]
    pub fn path(&self) -> Option<&Path> {
        self.0.as_ref().map(EventWriter::path)
    }
}

/// Width, height and TensorBoard colour space of a PNG file, from its IHDR chunk.
#[must_use]
pub fn png_header(png: &[u8]) -> Option<(i32, i32, i32)> {
    if png.len() < 26 || &png[..8] != b"\x89PNG\r\n\x1a\n" || &png[12..16] != b"IHDR" {
        return None;
    }
    let width = i32::try_from(u32::from_be_bytes(png[16..20].try_into().ok()?)).ok()?;
    let height = i32::try_from(u32::from_be_bytes(png[20..24].try_into().ok()?)).ok()?;
    // PNG colour types: 0 grey, 2 RGB, 4 grey + alpha, 6 RGBA (3, a palette, as RGB).
    let colorspace = match png[25] {
        0 => 1,
        4 => 2,
        6 => 4,
        _ => 3,
    };
    Some((width, height, colorspace))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_published_check_values() {
        // RFC 3720 (iSCSI), appendix B.4, and the CRC catalogue's check value.
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c(&[0xffu8; 32]), 0x62A8_AB43);
        let ascending: Vec<u8> = (0..32).collect();
        assert_eq!(crc32c(&ascending), 0x46DD_794E);
    }

    #[test]
    fn records_are_framed_as_tfrecord_and_read_back() {
        let data = b"hello events";
        let r = record(data);
        assert_eq!(r.len(), 8 + 4 + data.len() + 4);
        assert_eq!(u64::from_le_bytes(r[..8].try_into().unwrap()), data.len() as u64);
        // The mask written out independently: ((c >> 15) | (c << 17)) + 0xa282ead8.
        let c = crc32c(&r[..8]);
        #[allow(clippy::manual_rotate)]
        let masked = ((c >> 15) | (c << 17)).wrapping_add(0xa282_ead8);
        assert_eq!(u32::from_le_bytes(r[8..12].try_into().unwrap()), masked);
        assert_eq!(&r[12..12 + data.len()], data);
        let mut two = r.clone();
        two.extend(record(b""));
        assert_eq!(read_records(&two).unwrap(), vec![&data[..], &b""[..]]);
        // A torn last record is dropped; a flipped bit is an error naming the record.
        two.extend(&record(b"cut short")[..15]);
        assert_eq!(read_records(&two).unwrap().len(), 2);
        let mut bad = r;
        bad[14] ^= 1;
        assert!(read_records(&bad).unwrap_err().contains("record 0"));
    }

    #[test]
    fn an_event_file_holds_its_version_scalars_images_and_restarts() {
        let tmp = tempfile::tempdir().unwrap();
        let mut w = EventWriter::create(tmp.path(), "train").unwrap();
        w.scalars(3, &[("train/loss".into(), 0.25), ("train/kl".into(), 1.5)]).unwrap();
        // A 1×1 grey PNG's first 26 bytes suffice for the header.
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        png.extend([0, 0, 0, 7, 0, 0, 0, 5, 8, 0]);
        w.png(3, "recon", png.clone()).unwrap();
        w.restart(2).unwrap();
        w.flush().unwrap();
        let name = w.path().file_name().unwrap().to_string_lossy().to_string();
        assert!(
            name.starts_with("events.out.tfevents.") && w.path().extension().is_some_and(|e| e == "train"),
            "{name}"
        );
        let bytes = std::fs::read(w.path()).unwrap();
        let events: Vec<Event> = read_records(&bytes).unwrap().iter().map(|d| Event::decode(*d).unwrap()).collect();
        assert_eq!(events.len(), 4);
        assert_eq!(events[0].what, Some(What::FileVersion("brain.Event:2".into())));
        let Some(What::Summary(s)) = &events[1].what else { panic!("{:?}", events[1]) };
        assert_eq!(events[1].step, 3);
        assert_eq!(s.value[1].tag, "train/kl");
        assert_eq!(s.value[1].kind, Some(Kind::SimpleValue(1.5)));
        let Some(What::Summary(s)) = &events[2].what else { panic!("{:?}", events[2]) };
        let Some(Kind::Image(img)) = &s.value[0].kind else { panic!("{s:?}") };
        assert_eq!((img.width, img.height, img.colorspace), (7, 5, 1));
        assert_eq!(img.encoded_image_string, png);
        assert!(matches!(&events[3].what, Some(What::SessionLog(l)) if l.status == 1));
        assert_eq!(events[3].step, 2);
        // The wire bytes of a scalar event, spelled out: field 2 (step) as a varint.
        let e = Event { wall_time: 0.0, step: 300, what: None }.encode_to_vec();
        assert_eq!(e, [0x10, 0xAC, 0x02]);
    }
}
