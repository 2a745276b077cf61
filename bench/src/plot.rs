//! The plots, drawn to SVG with plotters (no system fonts needed): throughput and p99 latency
//! against requests in flight (100-byte bodies), and latency percentiles at 128 in flight; one
//! line per client.

use std::path::Path;

use plotters::prelude::*;

use crate::error::{BenchError, Result};
use crate::results::{CLIENTS, ClientKind, Results, SCENARIOS};

fn colour(c: ClientKind) -> RGBColor {
    match c {
        ClientKind::Baseline => RGBColor(90, 90, 90),
        ClientKind::Native => RGBColor(31, 119, 180),
        ClientKind::Node => RGBColor(255, 127, 14),
        ClientKind::Stomp => RGBColor(44, 160, 44),
    }
}

/// (concurrency, value) for each 100-byte scenario the client ran.
fn series(r: &Results, c: ClientKind, f: fn(&crate::results::Summary) -> f64) -> Vec<(f64, f64)> {
    SCENARIOS
        .iter()
        .filter(|sc| sc.body_bytes == 100)
        .filter_map(|sc| r.summary(*sc, c).map(|s| (sc.concurrency as f64, f(&s))))
        .collect()
}

fn err<E: std::fmt::Display>(e: E) -> BenchError {
    BenchError::Plot(e.to_string())
}

/// Draws a line with dots per client, then the legend, on a chart of any coordinate types
/// (which differ between the plots, hence a macro).
macro_rules! client_lines {
    ($chart:expr, $series:expr) => {{
        for (c, pts) in $series {
            if pts.is_empty() {
                continue;
            }
            let col = colour(*c);
            $chart
                .draw_series(LineSeries::new(pts.iter().copied(), col.stroke_width(2)))
                .map_err(err)?
                .label(c.label())
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], col.stroke_width(2)));
            $chart
                .draw_series(pts.iter().map(|p| Circle::new(*p, 4, col.filled())))
                .map_err(err)?;
        }
        $chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .draw()
            .map_err(err)?;
    }};
}

/// Draws the two panels into `path`.
pub fn draw(r: &Results, path: &Path) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let root = SVGBackend::new(path, (960, 400)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let (left, right) = root.split_horizontally(480);
    panel(r, &left, "Throughput (req/s)", false, |s| s.rps)?;
    panel(r, &right, "p99 latency (µs, log)", true, |s| s.p99_us)?;
    root.present().map_err(err)?;
    Ok(())
}

fn panel(
    r: &Results,
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    title: &str,
    log_y: bool,
    f: fn(&crate::results::Summary) -> f64,
) -> Result<()> {
    let all: Vec<Vec<(f64, f64)>> = CLIENTS.iter().map(|c| series(r, *c, f)).collect();
    let max = all.iter().flatten().map(|p| p.1).fold(1.0_f64, f64::max);
    let min = all
        .iter()
        .flatten()
        .map(|p| p.1)
        .fold(max, f64::min)
        .max(1.0);
    let x = (0.8_f64..160.0).log_scale();
    let mut builder = ChartBuilder::on(area);
    builder
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64);
    // Both panels share everything but the y axis type, so the body is a macro.
    macro_rules! body {
        ($y:expr) => {{
            let mut chart = builder.build_cartesian_2d(x, $y).map_err(err)?;
            chart
                .configure_mesh()
                .x_desc("requests in flight (100-byte JSON body)")
                .light_line_style(RGBColor(244, 244, 244))
                .x_label_formatter(&|v| format!("{v:.0}"))
                .y_label_formatter(&|v| format!("{v:.0}"))
                .draw()
                .map_err(err)?;
            client_lines!(chart, CLIENTS.iter().zip(&all));
        }};
    }
    if log_y {
        body!((min / 1.5..max * 1.5).log_scale());
    } else {
        body!(0.0..max * 1.15);
    }
    Ok(())
}

/// The percentiles of the latency plot, placed on the x axis by their "nines"
/// (−log10(1 − q)): 50 → 0.3, 90 → 1, 99 → 2, 99.9 → 3.
type Percentile = (f64, &'static str, fn(&crate::results::Summary) -> f64);
const PERCENTILES: [Percentile; 4] = [
    (0.301, "p50", |s| s.p50_us),
    (1.0, "p90", |s| s.p90_us),
    (2.0, "p99", |s| s.p99_us),
    (3.0, "p99.9", |s| s.p999_us),
];

/// Draws latency against percentile at 128 in flight (100-byte bodies) into `path`.
pub fn draw_percentiles(r: &Results, path: &Path) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let sc = SCENARIOS[2];
    let all: Vec<(ClientKind, Vec<(f64, f64)>)> = CLIENTS
        .iter()
        .filter_map(|c| {
            let s = r.summary(sc, *c)?;
            let pts = PERCENTILES.iter().map(|(x, _, f)| (*x, f(&s).max(1.0)));
            Some((*c, pts.collect()))
        })
        .collect();
    let ys = || all.iter().flat_map(|(_, p)| p.iter().map(|p| p.1));
    let max = ys().fold(1.0_f64, f64::max);
    let min = ys().fold(max, f64::min).max(1.0);
    let root = SVGBackend::new(path, (640, 400)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let title = format!(
        "Latency percentiles, {} in flight (µs, log)",
        sc.concurrency
    );
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0_f64..3.3, (min / 1.5..max * 1.5).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .x_labels(PERCENTILES.len())
        .light_line_style(RGBColor(244, 244, 244))
        .x_label_formatter(&|v| {
            PERCENTILES
                .iter()
                .min_by(|a, b| (a.0 - v).abs().total_cmp(&(b.0 - v).abs()))
                .map_or_else(String::new, |p| p.1.to_owned())
        })
        .y_label_formatter(&|v| format!("{v:.0}"))
        .draw()
        .map_err(err)?;
    client_lines!(chart, all.iter().map(|(c, p)| (c, p)));
    root.present().map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_an_svg_with_both_panels_and_the_legend() {
        let dir = std::env::temp_dir().join(format!("ferry-bench-plot-{}", std::process::id()));
        let path = dir.join("plot.svg");
        draw(&crate::results::fake(), &path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..100]);
        assert!(svg.contains("Throughput"));
        assert!(svg.contains("p99 latency"));
        assert!(svg.contains("Ferry, native Rust client"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn draws_the_percentiles_of_every_client() {
        let dir = std::env::temp_dir().join(format!("ferry-bench-pct-{}", std::process::id()));
        let path = dir.join("latency.svg");
        draw_percentiles(&crate::results::fake(), &path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.contains("Latency percentiles"));
        assert!(svg.contains("p99.9"));
        assert!(svg.contains("Web-STOMP"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
