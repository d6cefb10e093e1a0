//! The result table, printed as Markdown so the docs can show it as is.

use std::fmt::Write;

/// Whether a row meets its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Fail,
    /// Not measured (the feature is missing, or the measurement itself failed).
    NotApplicable,
}

/// One line of the table.
#[derive(Debug, Clone)]
pub struct Row {
    pub figure: String,
    pub value: String,
    pub baseline: String,
    pub ratio: String,
    pub target: String,
    pub verdict: Verdict,
}

impl Row {
    /// A row whose measurement could not be made, with the reason in place of the figure.
    pub fn failed(figure: impl Into<String>, target: impl Into<String>, why: &str) -> Self {
        Self {
            figure: figure.into(),
            value: format!("error: {why}"),
            baseline: "-".into(),
            ratio: "-".into(),
            target: target.into(),
            verdict: Verdict::Fail,
        }
    }

    pub fn not_applicable(figure: impl Into<String>, target: impl Into<String>, why: &str) -> Self {
        Self {
            figure: figure.into(),
            value: format!("n/a: {why}"),
            baseline: "-".into(),
            ratio: "-".into(),
            target: target.into(),
            verdict: Verdict::NotApplicable,
        }
    }
}

pub fn ratio(r: f64) -> String {
    if r.is_finite() {
        format!("{r:.2}x")
    } else {
        "-".into()
    }
}

pub fn verdict(ok: bool) -> Verdict {
    if ok {
        Verdict::Pass
    } else {
        Verdict::Fail
    }
}

/// Renders the rows as a Markdown table.
pub fn render(rows: &[Row]) -> String {
    let cells = |r: &Row| {
        let v = match r.verdict {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
            Verdict::NotApplicable => "n/a",
        };
        [
            r.figure.clone(),
            r.value.replace('|', "/"),
            r.baseline.clone(),
            r.ratio.clone(),
            r.target.clone(),
            v.to_owned(),
        ]
    };
    let head = ["figure", "value", "baseline", "ratio", "target", "result"];
    let body: Vec<[String; 6]> = rows.iter().map(cells).collect();
    let mut width = head.map(str::len);
    for r in &body {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cols: &[String]| {
        out.push('|');
        for (c, w) in cols.iter().zip(width) {
            let _ = write!(out, " {c:<w$} |");
        }
        out.push('\n');
    };
    line(&mut out, &head.map(str::to_owned));
    line(&mut out, &width.map(|w| "-".repeat(w)));
    for r in &body {
        line(&mut out, r);
    }
    out
}
