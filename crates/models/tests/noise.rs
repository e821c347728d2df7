//! Input noise of denoising models: seeded, with the statistics asked for, parsed from
//! the config's inline table.

// Masks and salt/pepper values are exact, so exact float comparison is meant.
#![allow(clippy::float_cmp)]

use bottleneck_models::Noise;
use candle_core::{Device, Tensor};

fn grey(n: usize) -> Tensor {
    Tensor::full(0.5f32, (n, 1, 20, 20), &Device::Cpu).unwrap()
}

#[test]
fn corruptions_are_seeded_and_have_the_right_statistics() {
    let xs = grey(50);
    let n = xs.elem_count() as f64;
    for c in [Noise::Gaussian { std: 0.3 }, Noise::Masking { fraction: 0.25 }, Noise::SaltAndPepper { fraction: 0.2 }] {
        let a: Vec<f32> = c.apply_seeded(&xs, 11).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let b: Vec<f32> = c.apply_seeded(&xs, 11).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let other: Vec<f32> = c.apply_seeded(&xs, 12).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(a, b, "{c:?}: same seed, same noise");
        assert_ne!(a, other, "{c:?}: other seed, other noise");
        match c {
            Noise::Gaussian { std } => {
                let var = a.iter().map(|v| (f64::from(*v) - 0.5).powi(2)).sum::<f64>() / n;
                assert!((var.sqrt() - std).abs() < 0.01, "empirical std {}", var.sqrt());
            }
            Noise::Masking { fraction } => {
                assert!(a.iter().all(|&v| v == 0.0 || v == 0.5));
                let zeros = a.iter().filter(|&&v| v == 0.0).count() as f64 / n;
                assert!((zeros - fraction).abs() < 0.02, "masked {zeros}");
            }
            Noise::SaltAndPepper { fraction } => {
                assert!(a.iter().all(|&v| v == 0.0 || v == 0.5 || v == 1.0));
                let hit = a.iter().filter(|&&v| v != 0.5).count() as f64 / n;
                let salt = a.iter().filter(|&&v| v == 1.0).count() as f64 / n;
                assert!((hit - fraction).abs() < 0.02, "corrupted {hit}");
                assert!((salt - fraction / 2.0).abs() < 0.02, "salt {salt}");
            }
        }
    }
}

#[test]
fn corruption_config_parses_and_validates() {
    #[derive(serde::Deserialize)]
    struct M {
        noise: Noise,
    }
    let parse = |s: &str| -> Result<Noise, String> {
        // serde's derive over a TOML-like map through figment would be overkill here;
        // JSON has the same shape as the TOML inline table.
        serde_json_like(s).map(|m: M| m.noise)
    };
    assert_eq!(parse(r#"{"noise": {"kind": "gaussian", "std": 0.3}}"#).unwrap(), Noise::Gaussian { std: 0.3 });
    assert_eq!(
        parse(r#"{"noise": {"kind": "salt_and_pepper", "fraction": 0.1}}"#).unwrap(),
        Noise::SaltAndPepper { fraction: 0.1 }
    );
    assert!(parse(r#"{"noise": {"kind": "gaussian", "sigma": 0.3}}"#).unwrap_err().contains("sigma"));
    assert!(parse(r#"{"noise": {"kind": "blur"}}"#).unwrap_err().contains("blur"));
    let e = Noise::Masking { fraction: 1.5 }.validate("model.noise").unwrap_err().to_string();
    assert!(e.contains("model.noise.fraction") && e.contains("[0, 1]"), "{e}");
    let e = Noise::Gaussian { std: -1.0 }.validate("model.noise").unwrap_err().to_string();
    assert!(e.contains("model.noise.std"), "{e}");
}

fn serde_json_like<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, String> {
    serde_json::from_str(s).map_err(|e| e.to_string())
}
