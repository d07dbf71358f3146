//! A Prometheus scrape endpoint on a loopback address: reclaim's metrics (see
//! `docs/operations.md`) rendered in the text exposition format at `GET /metrics`.
//!
//! Deliberately tiny: one thread, one request per connection, loopback only, so that it never
//! exposes a node's internals to the network by accident.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use anyhow::{Context, bail};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// A running endpoint; the thread ends with the process.
pub struct MetricsEndpoint {
    address: SocketAddr,
}

impl MetricsEndpoint {
    /// Installs the Prometheus recorder process-wide and serves it on `address`, which must be
    /// a loopback address (port 0 picks a free port).
    pub fn start(address: SocketAddr) -> anyhow::Result<Self> {
        if !address.ip().is_loopback() {
            bail!(
                "--metrics-addr {address} is not a loopback address: the endpoint is only served \
                 on 127.0.0.1 or ::1"
            );
        }
        let listener =
            TcpListener::bind(address).with_context(|| format!("cannot listen on {address}"))?;
        let address = listener.local_addr()?;
        let handle = PrometheusBuilder::new()
            .install_recorder()
            .context("cannot install the metrics recorder")?;
        reclaim::metric::describe();
        std::thread::Builder::new()
            .name("reclaim-metrics".into())
            .spawn(move || {
                for stream in listener.incoming().flatten() {
                    // A client that misbehaves only loses its own response.
                    let _ = serve(stream, &handle);
                }
            })?;
        Ok(Self { address })
    }

    /// The address served (with the port chosen when 0 was asked for).
    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

fn serve(stream: TcpStream, handle: &PrometheusHandle) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    // Drain the headers up to the blank line.
    let mut header = String::new();
    while reader.read_line(&mut header)? > 2 {
        header.clear();
    }
    let mut stream = reader.into_inner();
    let path = request_line.split_whitespace().nth(1).unwrap_or("");
    let (status, body) = if request_line.starts_with("GET ") && path == "/metrics" {
        handle.run_upkeep();
        ("200 OK", handle.render())
    } else {
        ("404 Not Found", "only GET /metrics is served\n".to_owned())
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}
