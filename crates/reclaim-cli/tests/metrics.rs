//! `reclaim simulate --metrics-addr`: a Prometheus endpoint on loopback with reclaim's metrics.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn get(address: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(address).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {address}\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn simulate_serves_prometheus_metrics_on_loopback() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_reclaim"))
        .args([
            "simulate",
            "--heights",
            "300",
            "--retain",
            "50",
            "--prune-every",
            "50",
            "--block-kib",
            "8",
            "--compaction-interval",
            "50",
            "--compaction-policy",
            "interval",
            "--max-heights-per-run",
            "20",
            "--metrics-addr",
            "127.0.0.1:0",
            "--metrics-linger-secs",
            "60",
        ])
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let address = loop {
        let line = lines
            .next()
            .expect("the endpoint address is announced")
            .unwrap();
        if let Some(rest) = line.strip_prefix("serving metrics at http://") {
            break rest.trim_end_matches("/metrics").to_owned();
        }
    };
    // Wait for the run to end (its table on stdout), then scrape the final values.
    let mut stdout = child.stdout.take().unwrap();
    let mut table = String::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut buf = [0u8; 4096];
    while !table.contains("wall time") {
        assert!(
            Instant::now() < deadline,
            "simulate did not finish: {table}"
        );
        let n = stdout.read(&mut buf).unwrap();
        assert!(n > 0, "simulate ended early: {table}");
        table.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let response = get(&address, "/metrics");
    let not_found = get(&address, "/other");
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    for name in [
        "reclaim_pruned_heights_total 250",
        "reclaim_prune_runs_total{result=\"complete\"}",
        "reclaim_prune_runs_total{result=\"more_to_do\"}",
        "reclaim_prune_duration_seconds",
        "reclaim_retain_height{source=\"application\"} 251",
        "reclaim_retain_height{source=\"effective\"} 251",
        "reclaim_segment_base{segment=\"block_store\"} 251",
        "reclaim_compactions_total{result=\"succeeded\"}",
        "reclaim_compaction_slice_duration_seconds",
        "reclaim_compaction_bytes_reclaimed_total",
    ] {
        assert!(response.contains(name), "{name} missing from:\n{response}");
    }
    assert!(not_found.starts_with("HTTP/1.1 404"), "{not_found}");
}

#[test]
fn a_non_loopback_metrics_address_is_refused() {
    let output = Command::new(env!("CARGO_BIN_EXE_reclaim"))
        .args([
            "simulate",
            "--heights",
            "10",
            "--metrics-addr",
            "0.0.0.0:9464",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not a loopback address"), "{stderr}");
}
