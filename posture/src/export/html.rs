//! A self-contained HTML report an auditor opens in a browser: summary, score and coverage
//! per framework, controls by severity, the score's trend, and every control with its
//! findings, evidence and remediation. No script, no external resource (fonts, images and
//! charts are inline CSS and SVG); every value from the cluster is HTML-escaped.

use std::fmt::Write;

use serde::{Deserialize, Serialize};

use crate::Severity;
use crate::outcome::State;
use crate::report::{ControlResult, Report};

/// One point of the score's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrendPoint {
    /// When (RFC 3339).
    pub time: String,
    /// The score then (all controls).
    pub score: Option<f64>,
    /// Failing controls then.
    pub failing: u32,
}

/// Escapes text for HTML content and attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn state_class(state: State) -> &'static str {
    match state {
        State::Pass => "pass",
        State::Fail => "fail",
        State::Excepted => "excepted",
        State::Manual | State::NotEvaluated => "open",
        State::NotApplicable => "na",
    }
}

const STYLE: &str = r#"
:root{--pass:#1a7f37;--fail:#cf222e;--excepted:#bf8700;--open:#6e7781;--na:#afb8c1;--ink:#1f2328;--muted:#57606a;--line:#d0d7de;--bg:#f6f8fa}
*{box-sizing:border-box}body{font:14px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;color:var(--ink);margin:0;background:#fff}
header{background:#0d1117;color:#fff;padding:24px 32px}header h1{margin:0 0 4px;font-size:22px}header p{margin:0;color:#c9d1d9}
main{padding:24px 32px;max-width:1200px}h2{border-bottom:1px solid var(--line);padding-bottom:4px;margin-top:32px}
table{border-collapse:collapse;width:100%;margin:8px 0}th,td{border:1px solid var(--line);padding:4px 8px;text-align:left;vertical-align:top}th{background:var(--bg)}
.badge{display:inline-block;border-radius:10px;padding:0 8px;color:#fff;font-size:12px;font-weight:600}
.pass{background:var(--pass)}.fail{background:var(--fail)}.excepted{background:var(--excepted)}.open{background:var(--open)}.na{background:var(--na);color:var(--ink)}
.sev-critical{color:#8c0000;font-weight:700}.sev-high{color:var(--fail);font-weight:600}.sev-medium{color:var(--excepted)}.sev-low{color:var(--muted)}
.control{border:1px solid var(--line);border-radius:6px;margin:12px 0;padding:8px 16px}.control h3{margin:4px 0;font-size:15px}
.muted{color:var(--muted)}code{font:12px ui-monospace,SFMono-Regular,Menlo,monospace;background:var(--bg);padding:0 3px;border-radius:3px;word-break:break-all}
.failing a{color:var(--fail);font-weight:600;margin-right:10px}.legend span{margin-right:12px}
"#;

pub(super) fn render(report: &Report, trend: &[TrendPoint]) -> String {
    let mut h = String::with_capacity(64 * 1024);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\
<title>Bulwark posture report: {source}</title><style>{STYLE}</style></head><body>\
<header><h1>Bulwark posture report</h1><p>{source} · generated {generated} · catalogue {version} · framework {framework}</p></header><main>",
        source = escape(&report.source),
        generated = escape(&report.generated),
        version = escape(&report.catalogue_version),
        framework = escape(&report.framework),
    );
    summary(&mut h, report);
    severity_chart(&mut h, report);
    trend_chart(&mut h, trend);
    let failing: Vec<&ControlResult> = report
        .controls
        .iter()
        .filter(|c| c.state == State::Fail)
        .collect();
    let _ = write!(
        h,
        "<h2>Failing controls ({})</h2><p class=\"failing\">",
        failing.len()
    );
    if failing.is_empty() {
        h.push_str("<span class=\"muted\">None.</span>");
    }
    for c in &failing {
        let _ = write!(h, "<a href=\"#{id}\">{id}</a>", id = escape(&c.id));
    }
    h.push_str("</p><h2>Controls</h2>");
    for c in &report.controls {
        control(&mut h, c);
    }
    h.push_str("<p class=\"muted\">Scores count passing against failing controls; not-applicable, manual, not-evaluated and excepted controls are outside the score, and coverage says how much was evaluated. Verify this file's signature with <code>bulwark posture verify</code>.</p></main></body></html>\n");
    h
}

fn summary(h: &mut String, report: &Report) {
    h.push_str("<h2>Summary</h2><table><tr><th>Framework</th><th>Score</th><th>Coverage</th>");
    for s in State::ALL {
        let _ = write!(h, "<th>{}</th>", s.as_str());
    }
    h.push_str("<th>Score and coverage</th></tr>");
    for s in &report.summaries {
        let score = s
            .score
            .map_or_else(|| "–".to_owned(), |v| format!("{v:.1}%"));
        let _ = write!(
            h,
            "<tr><td>{}</td><td><b>{score}</b></td><td>{:.1}%</td>",
            escape(&s.title),
            s.coverage
        );
        for state in State::ALL {
            let _ = write!(h, "<td>{}</td>", s.counts.get(&state).copied().unwrap_or(0));
        }
        // Two bars: score (green) and coverage (grey).
        let sw = s.score.unwrap_or(0.0) * 2.0;
        let cw = s.coverage * 2.0;
        let _ = write!(
            h,
            "<td><svg width=\"204\" height=\"22\" role=\"img\" aria-label=\"score {score}, coverage {:.1}%\"><rect x=\"2\" y=\"2\" width=\"200\" height=\"8\" fill=\"#eaeef2\"/><rect x=\"2\" y=\"2\" width=\"{sw:.1}\" height=\"8\" fill=\"#1a7f37\"/><rect x=\"2\" y=\"12\" width=\"200\" height=\"8\" fill=\"#eaeef2\"/><rect x=\"2\" y=\"12\" width=\"{cw:.1}\" height=\"8\" fill=\"#6e7781\"/></svg></td></tr>",
            s.coverage
        );
    }
    h.push_str("</table>");
}

fn severity_chart(h: &mut String, report: &Report) {
    h.push_str("<h2>Controls by severity</h2><p class=\"legend\"><span><span class=\"badge pass\">pass</span></span><span><span class=\"badge fail\">fail</span></span><span><span class=\"badge excepted\">excepted</span></span><span><span class=\"badge open\">open</span> manual or not evaluated</span></p>");
    let Some(all) = report.summaries.first() else {
        return;
    };
    let max = Severity::ALL
        .iter()
        .map(|s| {
            all.by_severity
                .get(s)
                .map_or(0, |c| c.pass + c.fail + c.excepted + c.open)
        })
        .max()
        .unwrap_or(0)
        .max(1);
    let height = 28 * Severity::ALL.len() + 4;
    let _ = write!(
        h,
        "<svg width=\"900\" height=\"{height}\" role=\"img\" aria-label=\"controls by severity\">"
    );
    for (row, sev) in Severity::ALL.iter().enumerate() {
        let c = all.by_severity.get(sev).copied().unwrap_or_default();
        let y = row * 28 + 4;
        let _ = write!(
            h,
            "<text x=\"0\" y=\"{}\" font-size=\"13\">{}</text>",
            y + 15,
            sev.as_str()
        );
        let mut x = 80.0;
        for (count, color) in [
            (c.pass, "#1a7f37"),
            (c.fail, "#cf222e"),
            (c.excepted, "#bf8700"),
            (c.open, "#6e7781"),
        ] {
            let w = 420.0 * f64::from(count) / f64::from(max);
            if count > 0 {
                let _ = write!(
                    h,
                    "<rect x=\"{x:.1}\" y=\"{y}\" width=\"{w:.1}\" height=\"20\" fill=\"{color}\"><title>{count}</title></rect>"
                );
            }
            x += w;
        }
        let _ = write!(
            h,
            "<text x=\"{:.1}\" y=\"{}\" font-size=\"12\">{} pass · {} fail · {} excepted · {} open</text>",
            x + 6.0,
            y + 15,
            c.pass,
            c.fail,
            c.excepted,
            c.open
        );
    }
    h.push_str("</svg>");
}

fn trend_chart(h: &mut String, trend: &[TrendPoint]) {
    h.push_str("<h2>Trend</h2>");
    let points: Vec<(usize, f64)> = trend
        .iter()
        .enumerate()
        .filter_map(|(i, p)| p.score.map(|s| (i, s)))
        .collect();
    if points.len() < 2 {
        h.push_str("<p class=\"muted\">Not enough history for a trend (offline scans have none; the live report charts every scan it keeps).</p>");
        return;
    }
    let n = (trend.len().max(2) - 1) as f64;
    let coords: Vec<String> = points
        .iter()
        .map(|(i, s)| {
            format!(
                "{:.1},{:.1}",
                40.0 + 560.0 * (*i as f64) / n,
                10.0 + 180.0 * (1.0 - s / 100.0)
            )
        })
        .collect();
    let _ = write!(
        h,
        "<svg width=\"620\" height=\"220\" role=\"img\" aria-label=\"score over time\"><line x1=\"40\" y1=\"10\" x2=\"40\" y2=\"190\" stroke=\"#d0d7de\"/><line x1=\"40\" y1=\"190\" x2=\"600\" y2=\"190\" stroke=\"#d0d7de\"/><text x=\"0\" y=\"16\" font-size=\"11\">100%</text><text x=\"8\" y=\"192\" font-size=\"11\">0%</text><polyline fill=\"none\" stroke=\"#0969da\" stroke-width=\"2\" points=\"{}\"/>",
        coords.join(" ")
    );
    if let (Some(first), Some(last)) = (trend.first(), trend.last()) {
        let _ = write!(
            h,
            "<text x=\"40\" y=\"210\" font-size=\"11\">{}</text><text x=\"460\" y=\"210\" font-size=\"11\">{}</text>",
            escape(&first.time),
            escape(&last.time)
        );
    }
    h.push_str("</svg>");
}

fn control(h: &mut String, c: &ControlResult) {
    let _ = write!(
        h,
        "<section class=\"control\" id=\"{id}\"><h3><span class=\"badge {class}\">{state}</span> {id} — {title} <span class=\"sev-{sev}\">{sev}</span></h3>",
        id = escape(&c.id),
        class = state_class(c.state),
        state = c.state.as_str(),
        title = escape(&c.title),
        sev = c.severity.as_str(),
    );
    let mappings: Vec<String> = c
        .mappings
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(f, v)| {
            format!(
                "<b>{}</b> {}",
                f.as_str().to_uppercase(),
                escape(&v.join(", "))
            )
        })
        .collect();
    let _ = write!(
        h,
        "<p class=\"muted\">{}</p><p><b>Remediation:</b> {}</p>",
        mappings.join(" · "),
        escape(&c.remediation)
    );
    h.push_str("<table><tr><th>State</th><th>Subject</th><th>Observed</th><th>Expected</th><th>Finding</th></tr>");
    for f in &c.findings {
        let exception = f.exception.as_ref().map_or_else(String::new, |e| {
            format!(
                "<br><span class=\"muted\">exception <code>{}</code> (owner {}, {} {})</span>",
                escape(&e.name),
                escape(&e.owner),
                if e.expired { "expired" } else { "expires" },
                escape(&e.expires)
            )
        });
        let _ = write!(
            h,
            "<tr><td><span class=\"badge {}\">{}</span></td><td><code>{}</code></td><td><code>{}</code></td><td>{}</td><td>{}{exception}</td></tr>",
            state_class(f.outcome.state),
            f.outcome.state.as_str(),
            escape(&f.outcome.source.to_string()),
            escape(&f.outcome.observed),
            escape(&f.outcome.expected),
            escape(&f.outcome.message),
        );
    }
    h.push_str("</table></section>");
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn markup_from_the_cluster_is_escaped() {
        assert_eq!(
            escape("<script>alert('x')</script>&\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"
        );
    }
}
