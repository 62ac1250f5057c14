//! CloudWatch Embedded Metric Format, the small owned subset both functions need: one namespace, up to 8
//! dimensions, up to 100 metrics per line (the EMF limits).

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

const MAX_METRICS: usize = 100;
const MAX_DIMENSIONS: usize = 8;

/// EMF units used here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Occurrences: grants, denials, cache hits.
    Count,
    /// Durations of calls to outside systems.
    Milliseconds,
    /// Durations of in-process work too short for milliseconds.
    Microseconds,
    /// Time left before trust material lapses (negative once it has).
    Seconds,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
            Unit::Microseconds => "Microseconds",
            Unit::Seconds => "Seconds",
        }
    }
}

/// Where EMF lines go: stdout in Lambda, a capture buffer in tests.
///
/// A sink can carry default dimensions ([`MetricsSink::with_dimension`]) that every line it writes starts with: the
/// functions put their stack's name there ([`super::STACK_DIMENSION`]), so two deployments in one account and
/// namespace never add to each other's series, whatever dimensions a line adds itself.
#[derive(Clone)]
pub struct MetricsSink {
    out: Arc<Mutex<Box<dyn Write + Send>>>,
    namespace: String,
    defaults: Arc<BTreeMap<String, String>>,
}

impl std::fmt::Debug for MetricsSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MetricsSink({})", self.namespace)
    }
}

impl MetricsSink {
    /// Writes to stdout, where the Lambda log agent picks EMF lines up.
    pub fn stdout(namespace: &str) -> Self {
        Self::to_writer(namespace, std::io::stdout())
    }
    /// Writes to any writer (a capture buffer in tests, `io::sink()` in benchmarks).
    pub fn to_writer(namespace: &str, w: impl Write + Send + 'static) -> Self {
        MetricsSink {
            out: Arc::new(Mutex::new(Box::new(w))),
            namespace: namespace.to_owned(),
            defaults: Arc::new(BTreeMap::new()),
        }
    }
    /// The same sink, with `name` = `value` in the dimension set of every line it writes from now on (a later
    /// default of the same name replaces the earlier one). At most 8 dimensions in all: past that, ignored.
    pub fn with_dimension(mut self, name: &str, value: &str) -> Self {
        let defaults = Arc::make_mut(&mut self.defaults);
        if defaults.len() < MAX_DIMENSIONS || defaults.contains_key(name) {
            defaults.insert(name.to_owned(), value.to_owned());
        }
        self
    }
    /// The default dimensions every line of this sink carries.
    pub fn default_dimensions(&self) -> &BTreeMap<String, String> {
        &self.defaults
    }
    /// Starts a metric set for one invocation, holding the sink's default dimensions.
    pub fn start(&self) -> Metrics {
        Metrics {
            sink: self.clone(),
            dimensions: (*self.defaults).clone(),
            metrics: Vec::new(),
            properties: Map::new(),
        }
    }
}

/// The metrics of one invocation, flushed as one EMF line.
#[derive(Debug)]
pub struct Metrics {
    sink: MetricsSink,
    dimensions: BTreeMap<String, String>,
    metrics: Vec<(String, Unit, f64)>,
    properties: Map<String, Value>,
}

impl Metrics {
    /// Adds a dimension (ignored past EMF's limit of 8).
    pub fn dimension(&mut self, name: &str, value: &str) -> &mut Self {
        if self.dimensions.len() < MAX_DIMENSIONS || self.dimensions.contains_key(name) {
            self.dimensions.insert(name.to_owned(), value.to_owned());
        }
        self
    }
    /// Records a value (ignored past EMF's limit of 100 metrics).
    pub fn put(&mut self, name: &str, unit: Unit, value: f64) -> &mut Self {
        if self.metrics.len() < MAX_METRICS {
            self.metrics.push((name.to_owned(), unit, value));
        }
        self
    }
    /// Adds a searchable, non-metric property such as the request id.
    pub fn property(&mut self, name: &str, value: &str) -> &mut Self {
        self.properties.insert(name.to_owned(), Value::String(value.to_owned()));
        self
    }
    /// The EMF object as JSON.
    pub fn to_json(&self) -> Value {
        let ts = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        let mut root = self.properties.clone();
        for (k, v) in &self.dimensions {
            root.insert(k.clone(), Value::String(v.clone()));
        }
        let mut defs = Vec::new();
        for (name, unit, value) in &self.metrics {
            root.insert(name.clone(), json!(value));
            defs.push(json!({"Name": name, "Unit": unit.as_str()}));
        }
        let dims: Vec<&String> = self.dimensions.keys().collect();
        root.insert(
            "_aws".into(),
            json!({
                "Timestamp": ts,
                "CloudWatchMetrics": [{
                    "Namespace": self.sink.namespace,
                    "Dimensions": [dims],
                    "Metrics": defs,
                }]
            }),
        );
        Value::Object(root)
    }
    /// Writes the line; a metric set with no metrics writes nothing.
    pub fn flush(&mut self) {
        if self.metrics.is_empty() {
            return;
        }
        let mut line = self.to_json().to_string();
        line.push('\n');
        let mut out = crate::sync::lock(&self.sink.out);
        let _ = out.write_all(line.as_bytes());
        let _ = out.flush();
        self.metrics.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::CaptureWriter;

    #[test]
    fn emf_line_has_the_cloudwatch_shape() {
        let cap = CaptureWriter::default();
        let sink = MetricsSink::to_writer("TokenBroker", cap.clone());
        let mut m = sink.start();
        m.dimension("Service", "broker")
            .put("Grants", Unit::Count, 1.0)
            .put("UpstreamLatency", Unit::Milliseconds, 12.5)
            .property("requestId", "r-1");
        m.flush();
        let line = cap.contents();
        let v: Value = serde_json::from_str(line.trim()).unwrap();
        assert_eq!(v["Grants"], json!(1.0));
        assert_eq!(v["Service"], "broker");
        let cw = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(cw["Namespace"], "TokenBroker");
        assert_eq!(cw["Dimensions"], json!([["Service"]]));
        assert_eq!(cw["Metrics"][1]["Unit"], "Milliseconds");
        assert!(v["_aws"]["Timestamp"].as_u64().unwrap() > 0);
    }

    #[test]
    fn default_dimensions_are_on_every_line_next_to_the_lines_own() {
        let cap = CaptureWriter::default();
        let sink = MetricsSink::to_writer("TokenBroker", cap.clone()).with_dimension("Stack", "prod-eu");
        let mut a = sink.start();
        a.dimension("Service", "authorizer").put("Allows", Unit::Count, 1.0);
        a.flush();
        let mut b = sink.clone().start();
        b.dimension("Service", "authorizer").dimension("Reason", "x").put("Expiry", Unit::Seconds, -5.0);
        b.flush();
        let lines: Vec<Value> = cap.contents().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2);
        let dims = |l: &Value| l["_aws"]["CloudWatchMetrics"][0]["Dimensions"].clone();
        assert_eq!(dims(&lines[0]), json!([["Service", "Stack"]]));
        assert_eq!(dims(&lines[1]), json!([["Reason", "Service", "Stack"]]));
        assert!(lines.iter().all(|l| l["Stack"] == "prod-eu"), "{lines:?}");
        assert_eq!(lines[1]["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"], "Seconds");
        assert_eq!(lines[1]["Expiry"], json!(-5.0));

        // A later default of the same name replaces the first; the original sink is unchanged.
        let other = sink.clone().with_dimension("Stack", "staging");
        assert_eq!(other.default_dimensions().get("Stack").map(String::as_str), Some("staging"));
        assert_eq!(sink.default_dimensions().get("Stack").map(String::as_str), Some("prod-eu"));
        assert!(MetricsSink::to_writer("T", std::io::sink()).default_dimensions().is_empty());
    }
}
