//! Turning typed samples into metric families, and families into an exposition.
//!
//! Families are built at scrape time through prometheus-client's `Collector` trait from a fresh snapshot,
//! so a series whose object is gone cannot linger. prometheus-client writes OpenMetrics 1.0; the
//! Prometheus text format 0.0.4 is derived from it by [`to_text_004`].

pub(crate) mod container;
pub(crate) mod kubernetes;
pub(crate) mod node;
pub(crate) mod process;

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabel, EncodeLabelSet, EncodeMetric, LabelSetEncoder, MetricEncoder,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use std::time::Duration;

/// Typed samples that know which families they become. Implementations live in this module's children,
/// one file per source, so adding a metric touches one file. `Any` lets the live view read the same typed
/// samples a scrape renders (`live::view`), so the page and `/metrics` share one collection.
pub(crate) trait Exposable: std::any::Any + Send + Sync + 'static {
    fn expose(&self, out: &mut Out<'_, '_>) -> fmt::Result;
}

/// A sample with no families (a source that has not answered yet).
#[cfg(test)]
pub(crate) struct Nothing;

#[cfg(test)]
impl Exposable for Nothing {
    fn expose(&self, _: &mut Out<'_, '_>) -> fmt::Result {
        Ok(())
    }
}

/// Writes families into a prometheus-client descriptor encoder.
pub(crate) struct Out<'a, 'b> {
    enc: &'a mut DescriptorEncoder<'b>,
}

/// One open family; add samples to it with [`Family::sample`] / [`Family::value`].
pub(crate) struct Family<'s> {
    enc: MetricEncoder<'s>,
    kind: MetricType,
}

impl<'a, 'b> Out<'a, 'b> {
    /// A gauge family. `name` is the full metric name.
    pub(crate) fn gauge<'s>(
        &'s mut self,
        name: &'s str,
        help: &str,
    ) -> Result<Family<'s>, fmt::Error> {
        self.family(name, help, MetricType::Gauge)
    }

    /// A counter family. `name` is the full metric name **without** `_total` (the encoder adds it).
    pub(crate) fn counter<'s>(
        &'s mut self,
        name: &'s str,
        help: &str,
    ) -> Result<Family<'s>, fmt::Error> {
        debug_assert!(
            !name.ends_with("_total"),
            "{name}: register counters without _total"
        );
        self.family(name, help, MetricType::Counter)
    }

    fn family<'s>(
        &'s mut self,
        name: &'s str,
        help: &str,
        kind: MetricType,
    ) -> Result<Family<'s>, fmt::Error> {
        let enc = self.enc.encode_descriptor(name, help, None, kind)?;
        Ok(Family { enc, kind })
    }

    /// A family with a single unlabelled sample.
    pub(crate) fn single_gauge(&mut self, name: &str, help: &str, v: f64) -> fmt::Result {
        self.gauge(name, help)?.value(v)
    }

    /// A counter family with a single unlabelled sample.
    pub(crate) fn single_counter(&mut self, name: &str, help: &str, v: f64) -> fmt::Result {
        self.counter(name, help)?.value(v)
    }
}

impl Family<'_> {
    /// Adds one labelled sample. Non-finite values are skipped: they mean the source gave nothing usable.
    pub(crate) fn sample(&mut self, labels: &[(&str, &str)], v: f64) -> fmt::Result {
        if !self.valid(v) {
            return Ok(());
        }
        let enc = self.enc.encode_family(&labels)?;
        match self.kind {
            MetricType::Counter => ConstCounter::new(v).encode(enc),
            _ => ConstGauge::new(v).encode(enc),
        }
    }

    /// Adds one sample labelled with `base` and then `names` = `values` (as many values as names).
    pub(crate) fn sample_with(
        &mut self,
        base: &[(&str, &str)],
        names: &[&str],
        values: &[&str],
        v: f64,
    ) -> fmt::Result {
        if !self.valid(v) {
            return Ok(());
        }
        let labels = Joined {
            base,
            names,
            values,
        };
        let enc = self.enc.encode_family(&labels)?;
        match self.kind {
            MetricType::Counter => ConstCounter::new(v).encode(enc),
            _ => ConstGauge::new(v).encode(enc),
        }
    }

    /// Non-finite values mean the source gave nothing usable; a negative counter is a broken input (a
    /// `-1` in a file): both are left out rather than written as an invalid exposition.
    fn valid(&self, v: f64) -> bool {
        v.is_finite() && !(self.kind == MetricType::Counter && v < 0.0)
    }

    /// Adds the unlabelled sample.
    pub(crate) fn value(&mut self, v: f64) -> fmt::Result {
        self.sample(&[], v)
    }
}

/// A label set made of base pairs and extra names with their values, encoded without joining them.
struct Joined<'a> {
    base: &'a [(&'a str, &'a str)],
    names: &'a [&'a str],
    values: &'a [&'a str],
}

impl EncodeLabelSet for Joined<'_> {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> fmt::Result {
        for pair in self.base {
            pair.encode(encoder.encode_label())?;
        }
        for (name, value) in self.names.iter().zip(self.values) {
            (*name, *value).encode(encoder.encode_label())?;
        }
        Ok(())
    }
}

/// Which exposition format a scrape asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Text004,
    OpenMetrics,
}

impl Format {
    /// OpenMetrics when the Accept header names it, else the Prometheus text format.
    pub(crate) fn negotiate(accept: Option<&str>) -> Format {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Text004,
        }
    }

    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Format::Text004 => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// What one collector contributed to a scrape: the render input, made by the scraper.
pub(crate) struct Part {
    pub(crate) name: &'static str,
    /// When the run began: the live view's rates divide by the time between two runs.
    pub(crate) started: std::time::Instant,
    pub(crate) duration: Duration,
    /// How many times the collector has run, this run included.
    pub(crate) runs: u64,
    pub(crate) outcome: Outcome,
}

/// How a collector's run ended.
pub(crate) enum Outcome {
    Ok(Arc<dyn Exposable>),
    /// Running, but nothing to report yet: no families, success 0, not logged as a failure.
    NoData,
    Failed,
}

/// The prometheus-client collector for one scrape: the selected collectors' parts, plus the exporter's
/// own metrics.
struct ScrapeView {
    parts: Vec<Arc<Part>>,
    sources: Vec<(&'static str, bool)>,
}

impl fmt::Debug for ScrapeView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScrapeView")
            .field("parts", &self.parts.len())
            .finish()
    }
}

impl prometheus_client::collector::Collector for ScrapeView {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let mut out = Out { enc: &mut encoder };
        for part in &self.parts {
            if let Outcome::Ok(output) = &part.outcome {
                output.expose(&mut out)?;
            }
        }
        let mut f = out.gauge(
            "stevedore_scrape_collector_duration_seconds",
            "stevedore: Duration of a collector scrape.",
        )?;
        for p in &self.parts {
            f.sample(&[("collector", p.name)][..], p.duration.as_secs_f64())?;
        }
        let mut f = out.counter(
            "stevedore_scrape_collector_runs",
            "How many times the collector has run (a scrape reuses a run younger than --collect.min-age or under way).",
        )?;
        for p in &self.parts {
            f.sample(&[("collector", p.name)][..], p.runs as f64)?;
        }
        let mut f = out.gauge(
            "stevedore_scrape_collector_success",
            "stevedore: Whether a collector succeeded.",
        )?;
        for p in &self.parts {
            let ok = matches!(p.outcome, Outcome::Ok(_));
            f.sample(&[("collector", p.name)][..], if ok { 1.0 } else { 0.0 })?;
        }
        // cAdvisor's name for the same fact about the container figures.
        if let Some(p) = self.parts.iter().find(|p| p.name == "cgroup") {
            let mut f = out.gauge(
                "container_scrape_error",
                "1 if there was an error while getting container metrics, 0 otherwise",
            )?;
            let failed = matches!(p.outcome, Outcome::Failed);
            let no_labels: &[(&str, &str)] = &[];
            f.sample(no_labels, if failed { 1.0 } else { 0.0 })?;
        }
        if !self.sources.is_empty() {
            let mut f = out.gauge(
                "stevedore_source_up",
                "Whether the background source (docker, docker_stats, podman, containerd, kubernetes, kubelet) is connected.",
            )?;
            for (name, up) in &self.sources {
                f.sample(&[("source", name)], if *up { 1.0 } else { 0.0 })?;
            }
        }
        process::expose_self(&mut out)
    }
}

/// Renders the parts of a scrape in the requested format, whole.
#[cfg(test)]
pub(crate) fn render(
    parts: Vec<Arc<Part>>,
    format: Format,
    sources: Vec<(&'static str, bool)>,
) -> String {
    render_into(ScrapeView { parts, sources }, format, Sink::whole())
}

/// Renders in chunks of about [`CHUNK`] bytes, each handed to `send` as soon as it is full, so a large
/// exposition (megabytes at a thousand containers) is never held whole. `send` returning false (the
/// client went away) stops the rendering. The last, partial chunk is returned, not sent: the caller
/// sends it once it has released what the rendering held.
pub(crate) fn render_chunked(
    parts: Vec<Arc<Part>>,
    format: Format,
    sources: Vec<(&'static str, bool)>,
    send: impl FnMut(String) -> bool + Send + 'static,
) -> String {
    render_into(ScrapeView { parts, sources }, format, Sink::chunked(send))
}

fn render_into(view: ScrapeView, format: Format, sink: Sink) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(view));
    match format {
        Format::OpenMetrics => {
            let mut sink = sink;
            let _ = prometheus_client::encoding::text::encode(&mut sink, &registry);
            sink.finish()
        }
        Format::Text004 => {
            let mut w = Text004Writer::new(sink);
            let _ = prometheus_client::encoding::text::encode(&mut w, &registry);
            w.finish()
        }
    }
}

/// Size of the chunks [`render_chunked`] hands out.
pub(crate) const CHUNK: usize = 64 * 1024;

/// Where rendered text goes: kept whole, or handed out in chunks.
pub(crate) struct Sink {
    buf: String,
    send: Option<Box<dyn FnMut(String) -> bool + Send>>,
}

impl Sink {
    #[cfg(test)]
    pub(crate) fn whole() -> Sink {
        Sink {
            buf: String::with_capacity(64 * 1024),
            send: None,
        }
    }

    pub(crate) fn chunked(send: impl FnMut(String) -> bool + Send + 'static) -> Sink {
        Sink {
            buf: String::with_capacity(CHUNK + 4096),
            send: Some(Box::new(send)),
        }
    }

    fn push_str(&mut self, s: &str) -> fmt::Result {
        self.buf.push_str(s);
        if let Some(send) = self.send.as_mut()
            && self.buf.len() >= CHUNK
        {
            let full = std::mem::replace(&mut self.buf, String::with_capacity(CHUNK + 4096));
            if !send(full) {
                return Err(fmt::Error);
            }
        }
        Ok(())
    }

    /// The whole text, or (chunked) the last chunk, not yet handed out.
    pub(crate) fn finish(self) -> String {
        self.buf
    }
}

impl fmt::Write for Sink {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.push_str(s)
    }
}

/// OpenMetrics text as Prometheus text 0.0.4, whole.
#[cfg(test)]
pub(crate) fn to_text_004(om: &str) -> String {
    let mut w = Text004Writer::new(Sink::whole());
    let _ = fmt::Write::write_str(&mut w, om);
    w.finish()
}

#[derive(Clone, Copy, PartialEq)]
enum LineMode {
    /// At the start of a line.
    Start,
    /// In a `#` line: buffered whole, then converted.
    Comment,
    /// In a sample's metric name: buffered until `{` or ` `, then written (renamed if need be).
    Name,
    /// In the rest of a sample line: written through.
    Rest,
}

/// A `fmt::Write` that receives prometheus-client's OpenMetrics output and writes text 0.0.4 as it goes,
/// so the exposition is held once, not twice (a 1000-container scrape is several MB).
pub(crate) struct Text004Writer {
    out: Sink,
    line: String,
    mode: LineMode,
    pending_help: Option<String>,
    /// Within a legacy counter family, the `_total` prometheus-client appends is removed again.
    strip_total: Option<String>,
}

impl Text004Writer {
    pub(crate) fn new(out: Sink) -> Self {
        Text004Writer {
            out,
            line: String::new(),
            mode: LineMode::Start,
            pending_help: None,
            strip_total: None,
        }
    }

    pub(crate) fn finish(mut self) -> String {
        let line = std::mem::take(&mut self.line);
        let _ = match self.mode {
            LineMode::Comment => self.comment(&line),
            LineMode::Name => self.name(&line),
            _ => Ok(()),
        };
        self.out.finish()
    }

    /// Hands `handle` the whole of a comment line or sample name whose end is `tail`: `tail` itself when
    /// nothing of it was buffered (the usual case, no copy), else the buffer completed by `tail`. The
    /// buffer keeps its capacity.
    fn whole(&mut self, tail: &str, handle: fn(&mut Self, &str) -> fmt::Result) -> fmt::Result {
        if self.line.is_empty() {
            return handle(self, tail);
        }
        let mut line = std::mem::take(&mut self.line);
        line.push_str(tail);
        let result = handle(self, &line);
        line.clear();
        self.line = line;
        result
    }

    fn comment(&mut self, line: &str) -> fmt::Result {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            return Ok(());
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            self.pending_help = Some(rest.to_string());
            return Ok(());
        }
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            self.out.push_str(line)?;
            return self.out.push_str("\n");
        };
        let (name, kind) = rest.rsplit_once(' ').unwrap_or((rest, "untyped"));
        self.strip_total = None;
        let (name, kind): (Cow<str>, &str) = match kind {
            "counter" if LEGACY_COUNTERS.contains(&name) => {
                self.strip_total = Some(format!("{name}_total"));
                (Cow::Borrowed(name), "counter")
            }
            "counter" => (Cow::Owned(format!("{name}_total")), "counter"),
            "info" => (Cow::Owned(format!("{name}_info")), "gauge"),
            "unknown" => (Cow::Borrowed(name), "untyped"),
            k => (Cow::Borrowed(name), k),
        };
        if let Some(help) = self.pending_help.take() {
            let text = help.split_once(' ').map(|(_, t)| t).unwrap_or("");
            self.out.push_str("# HELP ")?;
            self.out.push_str(&name)?;
            self.out.push_str(" ")?;
            self.out.push_str(text)?;
            self.out.push_str("\n")?;
        }
        self.out.push_str("# TYPE ")?;
        self.out.push_str(&name)?;
        self.out.push_str(" ")?;
        self.out.push_str(kind)?;
        self.out.push_str("\n")
    }

    fn name(&mut self, name: &str) -> fmt::Result {
        match &self.strip_total {
            Some(with_total) if name == with_total => {
                self.out.push_str(&name[..name.len() - "_total".len()])
            }
            _ => self.out.push_str(name),
        }
    }
}

impl fmt::Write for Text004Writer {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut rest = s;
        while !rest.is_empty() {
            match self.mode {
                LineMode::Start => {
                    // A sample's name needs a look only inside a legacy counter family; every other
                    // sample line is the same in both formats and passes straight through.
                    self.mode = if rest.starts_with('#') {
                        LineMode::Comment
                    } else if self.strip_total.is_some() {
                        LineMode::Name
                    } else {
                        LineMode::Rest
                    };
                }
                LineMode::Comment => match rest.find('\n') {
                    Some(i) => {
                        self.whole(&rest[..i], Self::comment)?;
                        rest = &rest[i + 1..];
                        self.mode = LineMode::Start;
                    }
                    None => {
                        self.line.push_str(rest);
                        rest = "";
                    }
                },
                LineMode::Name => match rest.find(['{', ' ', '\n']) {
                    Some(i) => {
                        self.whole(&rest[..i], Self::name)?;
                        rest = &rest[i..];
                        self.mode = LineMode::Rest;
                    }
                    None => {
                        self.line.push_str(rest);
                        rest = "";
                    }
                },
                LineMode::Rest => match rest.find('\n') {
                    Some(i) => {
                        self.out.push_str(&rest[..=i])?;
                        rest = &rest[i + 1..];
                        self.mode = LineMode::Start;
                    }
                    None => {
                        self.out.push_str(rest)?;
                        rest = "";
                    }
                },
            }
        }
        Ok(())
    }
}

/// Counters that cAdvisor exposes without the `_total` suffix; the text format keeps their exact names
/// (OpenMetrics requires the suffix, so there they have it).
const LEGACY_COUNTERS: &[&str] = &["container_memory_failcnt"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_004_renames_counters_and_drops_eof() {
        let om = "# HELP a_seconds Some help.\n# TYPE a_seconds counter\na_seconds_total{x=\"1\"} 2.0\n\
                  # HELP g A gauge.\n# TYPE g gauge\ng 1\n# EOF\n";
        let t = to_text_004(om);
        assert_eq!(
            t,
            "# HELP a_seconds_total Some help.\n# TYPE a_seconds_total counter\na_seconds_total{x=\"1\"} 2.0\n\
             # HELP g A gauge.\n# TYPE g gauge\ng 1\n"
        );
    }

    #[test]
    fn legacy_counter_keeps_its_name_in_text_004() {
        let om = "# HELP container_memory_failcnt Number of memory usage hits limits\n\
                  # TYPE container_memory_failcnt counter\n\
                  container_memory_failcnt_total{id=\"/\"} 0.0\n# EOF\n";
        assert_eq!(
            to_text_004(om),
            "# HELP container_memory_failcnt Number of memory usage hits limits\n\
             # TYPE container_memory_failcnt counter\ncontainer_memory_failcnt{id=\"/\"} 0.0\n"
        );
    }

    #[test]
    fn writer_handles_any_chunking() {
        let om = "# HELP container_memory_failcnt Number of memory usage hits limits\n\
                  # TYPE container_memory_failcnt counter\n\
                  container_memory_failcnt_total{id=\"/\"} 0.0\n\
                  # HELP a_seconds Some help.\n# TYPE a_seconds counter\na_seconds_total 2.0\n# EOF\n";
        let whole = to_text_004(om);
        for size in [1, 2, 3, 7, 64] {
            let mut w = Text004Writer::new(Sink::whole());
            let bytes = om.as_bytes();
            for chunk in bytes.chunks(size) {
                fmt::Write::write_str(&mut w, std::str::from_utf8(chunk).unwrap()).unwrap();
            }
            assert_eq!(w.finish(), whole, "chunk size {size}");
        }
        assert!(whole.contains("container_memory_failcnt{id"));
        assert!(whole.contains("a_seconds_total 2.0"));
    }

    #[test]
    fn chunked_sink_hands_out_everything_and_stops_when_refused() {
        let line = "container_cpu_usage_seconds_total{id=\"/docker/abc\",cpu=\"total\"} 12.5\n";
        let text: String = std::iter::repeat_n(line, 10_000).collect();
        let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let sink_got = got.clone();
        let mut sink = Sink::chunked(move |c| {
            sink_got.lock().unwrap().push(c);
            true
        });
        for piece in text.as_bytes().chunks(1000) {
            fmt::Write::write_str(&mut sink, std::str::from_utf8(piece).unwrap()).unwrap();
        }
        let last = sink.finish();
        assert!(!last.is_empty() && last.len() < CHUNK);
        let chunks = got.lock().unwrap();
        assert!(chunks.len() >= 10);
        assert!(chunks.iter().all(|c| c.len() >= CHUNK));
        assert_eq!(chunks.concat() + &last, text);

        // The receiver is gone after the first chunk: the writer stops with an error.
        let mut calls = 0;
        let mut sink = Sink::chunked(move |_| {
            calls += 1;
            calls < 2
        });
        let result = text
            .as_bytes()
            .chunks(1000)
            .try_for_each(|p| fmt::Write::write_str(&mut sink, std::str::from_utf8(p).unwrap()));
        assert!(result.is_err());
    }

    #[test]
    fn negotiation() {
        assert_eq!(Format::negotiate(None), Format::Text004);
        assert_eq!(
            Format::negotiate(Some(
                "application/openmetrics-text;version=1.0.0,text/plain;q=0.5"
            )),
            Format::OpenMetrics
        );
        assert_eq!(Format::negotiate(Some("text/plain")), Format::Text004);
    }
}
