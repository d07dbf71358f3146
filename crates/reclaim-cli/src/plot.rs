//! The SVG plot of bytes on disk over committed height.

use std::path::Path;

use anyhow::anyhow;
use plotters::prelude::*;

/// One run's line: bytes on disk at each committed height, and the retained data alone.
pub struct Run {
    /// The legend, e.g. `redb with compaction`.
    pub label: String,
    /// (height committed, bytes on disk), in height order.
    pub points: Vec<(u64, u64)>,
    /// Bytes of the retained data alone (drawn as a flat, paler line).
    pub retained_bytes: u64,
}

/// Draws bytes on disk (MiB) against committed height, one line per run.
pub fn bytes_on_disk(path: &Path, runs: &[Run]) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, (900, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("plot: {e}"))?;
    let max_height = runs
        .iter()
        .flat_map(|r| r.points.iter().map(|p| p.0))
        .max()
        .unwrap_or(1)
        .max(1);
    let max_mib = runs
        .iter()
        .flat_map(|r| r.points.iter().map(|p| p.1))
        .max()
        .unwrap_or(1) as f64
        / (1 << 20) as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption("reclaim simulate: bytes on disk", ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0u64..max_height, 0f64..max_mib * 1.1)
        .map_err(|e| anyhow!("plot: {e}"))?;
    chart
        .configure_mesh()
        .x_desc("height committed")
        .y_desc("MiB on disk")
        .draw()
        .map_err(|e| anyhow!("plot: {e}"))?;
    for (i, run) in runs.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(
                run.points
                    .iter()
                    .map(|&(height, bytes)| (height, bytes as f64 / (1 << 20) as f64)),
                color.stroke_width(2),
            ))
            .map_err(|e| anyhow!("plot: {e}"))?
            .label(run.label.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        let retained = run.retained_bytes as f64 / (1 << 20) as f64;
        chart
            .draw_series(LineSeries::new(
                [(0, retained), (max_height, retained)],
                color.mix(0.4),
            ))
            .map_err(|e| anyhow!("plot: {e}"))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| anyhow!("plot: {e}"))?;
    root.present().map_err(|e| anyhow!("plot: {e}"))?;
    Ok(())
}
