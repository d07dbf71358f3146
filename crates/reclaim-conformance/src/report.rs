//! A conformance report: every case run against one adapter, with its result and the figures
//! it measured (space ratios, pauses, range-delete costs), as a Markdown table and as JSON that
//! a CI job can publish. `examples/conformance_report.rs` (run by `scripts/conformance-report`)
//! writes one for every engine of a build.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Instant;

use crate::{CASES, DISK_CASES, Harness, OpenFn, run_case};

thread_local! {
    /// The figures of the case running on this thread, while a report collects them.
    static FIGURES: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
}

/// Records one measured figure of the running case: printed as a `conformance-figure:` line,
/// and kept for the report when one is being made.
pub fn figure(line: &str) {
    println!("conformance-figure: {line}");
    FIGURES.with(|figures| {
        if let Some(figures) = figures.borrow_mut().as_mut() {
            figures.push(line.to_owned());
        }
    });
}

/// One case's line in a report.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseResult {
    /// The case's name.
    pub case: &'static str,
    /// `None` when it passed; the failure message otherwise.
    pub failure: Option<String>,
    /// Wall time of the case, seconds.
    pub seconds: f64,
    /// The figures it recorded.
    pub figures: Vec<String>,
}

/// The report of one adapter.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The engine's name.
    pub engine: String,
    /// Every case, in the list's order.
    pub cases: Vec<CaseResult>,
}

impl Report {
    /// Runs every case (the `disk` ones too when `on_disk`) against the adapter `open` makes.
    pub fn run(engine: &str, open: Arc<OpenFn>, on_disk: bool) -> Self {
        let list = CASES.iter().chain(if on_disk { DISK_CASES } else { &[] });
        let cases = list
            .map(|(name, case)| {
                FIGURES.with(|f| *f.borrow_mut() = Some(Vec::new()));
                let open = Arc::clone(&open);
                let harness = Harness::new(move |dir: &std::path::Path| open(dir));
                let started = Instant::now();
                let outcome = run_case(*case, &harness);
                let figures = FIGURES.with(|f| f.borrow_mut().take()).unwrap_or_default();
                CaseResult {
                    case: name,
                    failure: outcome.err(),
                    seconds: started.elapsed().as_secs_f64(),
                    figures,
                }
            })
            .collect();
        Self {
            engine: engine.to_owned(),
            cases,
        }
    }

    /// Cases that failed.
    pub fn failures(&self) -> usize {
        self.cases.iter().filter(|c| c.failure.is_some()).count()
    }

    /// The report as a Markdown section with one table row per case.
    pub fn markdown(&self) -> String {
        let mut md = format!(
            "## {}: {} of {} cases passed\n\n| case | result | seconds | figures |\n|---|---|---|---|\n",
            self.engine,
            self.cases.len() - self.failures(),
            self.cases.len()
        );
        for case in &self.cases {
            let result = match &case.failure {
                None => "pass".to_owned(),
                Some(message) => format!(
                    "**FAIL**: {}",
                    message
                        .lines()
                        .next()
                        .unwrap_or_default()
                        .replace('|', "\\|")
                ),
            };
            md.push_str(&format!(
                "| `{}` | {result} | {:.2} | {} |\n",
                case.case,
                case.seconds,
                case.figures.join("<br>").replace('|', "\\|")
            ));
        }
        md
    }

    /// The report as JSON (no dependency: the strings are escaped by hand).
    pub fn json(&self) -> String {
        let escape = |s: &str| {
            s.chars()
                .flat_map(|c| match c {
                    '"' => vec!['\\', '"'],
                    '\\' => vec!['\\', '\\'],
                    '\n' => vec!['\\', 'n'],
                    c if c.is_control() => format!("\\u{:04x}", c as u32).chars().collect(),
                    c => vec![c],
                })
                .collect::<String>()
        };
        let cases: Vec<String> = self
            .cases
            .iter()
            .map(|c| {
                format!(
                    "{{\"case\":\"{}\",\"passed\":{},\"failure\":{},\"seconds\":{:.3},\"figures\":[{}]}}",
                    c.case,
                    c.failure.is_none(),
                    c.failure
                        .as_ref()
                        .map_or_else(|| "null".to_owned(), |f| format!("\"{}\"", escape(f))),
                    c.seconds,
                    c.figures
                        .iter()
                        .map(|f| format!("\"{}\"", escape(f)))
                        .collect::<Vec<_>>()
                        .join(",")
                )
            })
            .collect();
        format!(
            "{{\"engine\":\"{}\",\"cases\":[{}]}}",
            escape(&self.engine),
            cases.join(",")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_engine_reports_every_case_passed_with_its_figures() {
        let report = Report::run("memory", Arc::new(crate::memory::open_memory), false);
        assert_eq!(report.cases.len(), CASES.len());
        assert_eq!(report.failures(), 0, "{}", report.markdown());
        let space = report
            .cases
            .iter()
            .find(|c| c.case == "compaction_reclaims_space")
            .expect("the space case");
        assert!(
            space
                .figures
                .iter()
                .any(|f| f.contains("ratio_above_empty="))
        );
        let md = report.markdown();
        assert!(md.contains("| `get_put_delete` | pass |"), "{md}");
        assert!(md.starts_with(&format!("## memory: {0} of {0} cases passed", CASES.len())));
        let json = report.json();
        assert!(json.starts_with(
            "{\"engine\":\"memory\",\"cases\":[{\"case\":\"get_put_delete\",\"passed\":true"
        ));
        assert_eq!(json.matches("\"passed\":true").count(), CASES.len());
    }
}
