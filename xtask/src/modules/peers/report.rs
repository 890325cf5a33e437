//! The peers table's rows and texts: intervals, peer kinds, and whether the machine has VNNI.

use olympics::Scorecard;
use peers::Runtime;

pub(super) fn interval_text(point: f64, bounds: Option<(f64, f64)>, digits: usize) -> String {
    match bounds {
        Some((lower, upper)) => {
            format!("{point:.digits$} [{lower:.digits$}, {upper:.digits$}]")
        }
        None => format!("{point:.digits$} (no interval)"),
    }
}

pub(super) fn vnni_presence() -> String {
    let flags = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let flag_line = flags
        .lines()
        .find(|line| line.starts_with("flags"))
        .unwrap_or("");
    let has = |flag: &str| flag_line.split_whitespace().any(|word| word == flag);
    match (has("avx512_vnni"), has("avx_vnni")) {
        (true, _) => "VNNI present (avx512_vnni)".into(),
        (false, true) => "VNNI present (avx_vnni)".into(),
        (false, false) if flag_line.is_empty() => "VNNI unknown (/proc/cpuinfo unreadable)".into(),
        (false, false) => "VNNI absent".into(),
    }
}

/// A row of the peers table.
pub(super) fn table_row(
    card: &Scorecard,
    kind: &str,
    threads: &str,
    pipe: Option<f64>,
) -> Vec<String> {
    let quality = &card.quality;
    let latency = &card.latency;
    vec![
        card.submission.clone(),
        kind.to_string(),
        threads.to_string(),
        interval_text(quality.point, Some((quality.ci_lower, quality.ci_upper)), 4),
        interval_text(
            latency.p50.value_ms * 1e3,
            latency.p50.ci_ms.map(|(l, u)| (l * 1e3, u * 1e3)),
            1,
        ),
        interval_text(
            latency.p90.value_ms * 1e3,
            latency.p90.ci_ms.map(|(l, u)| (l * 1e3, u * 1e3)),
            1,
        ),
        card.memory.storage_bytes.to_string(),
        card.memory
            .peak_query_bytes
            .map_or_else(|| "not measured".into(), |bytes| bytes.to_string()),
        pipe.map_or_else(|| "-".into(), |ns| format!("{:.1}", ns / 1e3)),
        card.compliance.verdict().to_string(),
    ]
}

pub(super) fn error_row(name: &str, kind: &str, threads: &str, status: &str) -> Vec<String> {
    let mut row = vec![name.to_string(), kind.to_string(), threads.to_string()];
    row.extend(std::iter::repeat_n("-".to_string(), 6));
    row.push(status.to_string());
    row
}

pub(super) fn peer_kind(info: &peers::PeerInfo) -> String {
    match info.spec.runtime {
        Runtime::OnnxRuntime => format!(
            "ONNX Runtime {} ({})",
            info.versions["onnxruntime"].as_str().unwrap_or("?"),
            info.provider
        ),
        _ => format!(
            "PyTorch {} ({})",
            info.versions["torch"].as_str().unwrap_or("?"),
            info.quantization.as_deref().unwrap_or("f32")
        ),
    }
}
