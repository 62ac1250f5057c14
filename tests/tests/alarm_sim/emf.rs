//! EMF lines to datapoints, keyed as CloudWatch keys a metric.
//!
//! An EMF line is a JSON object whose `_aws.CloudWatchMetrics` holds directives, each with a `Namespace`, a list of
//! dimension sets (`Dimensions: [[names...], ...]`) and the metric definitions (`Metrics: [{Name, Unit}]`); the
//! values of dimensions and metrics are members of the object itself. CloudWatch stores every metric of a directive
//! once per dimension set, under exactly the dimensions of that set: the series is (namespace, metric name, the map
//! from each of the set's names to its value). A metric value may be a number or an array of numbers (one sample
//! each).

use std::collections::BTreeMap;

use serde_json::Value;

/// One sample of one series.
#[derive(Debug, Clone, PartialEq)]
pub struct Datapoint {
    pub namespace: String,
    pub metric: String,
    /// The exact dimension map of the series.
    pub dimensions: BTreeMap<String, String>,
    pub unit: Option<String>,
    pub value: f64,
}

/// The datapoints of every line of `text`, which must all be EMF lines (a capture of a metrics sink). Errors name
/// the line and what CloudWatch would reject it for, so a malformed line fails the test instead of being skipped.
pub fn parse_lines(text: &str) -> Result<Vec<Datapoint>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let parsed = parse_line(line).map_err(|e| format!("line {}: {e}: {line}", i + 1))?;
        out.extend(parsed);
    }
    Ok(out)
}

/// The datapoints of one EMF line.
pub fn parse_line(line: &str) -> Result<Vec<Datapoint>, String> {
    let root: Value = serde_json::from_str(line).map_err(|e| format!("not JSON ({e})"))?;
    let root = root.as_object().ok_or("not a JSON object")?;
    let directives = root
        .get("_aws")
        .and_then(|a| a.get("CloudWatchMetrics"))
        .and_then(Value::as_array)
        .ok_or("no _aws.CloudWatchMetrics array")?;
    let mut out = Vec::new();
    for d in directives {
        let namespace = d.get("Namespace").and_then(Value::as_str).ok_or("a directive without a Namespace")?;
        let sets = d.get("Dimensions").and_then(Value::as_array).ok_or("a directive without Dimensions")?;
        let metrics = d.get("Metrics").and_then(Value::as_array).ok_or("a directive without Metrics")?;
        // No dimension set at all: the metrics are stored without dimensions, as with one empty set.
        let no_dimensions = [Value::Array(Vec::new())];
        let sets = if sets.is_empty() { &no_dimensions[..] } else { &sets[..] };
        for set in sets {
            let names = set.as_array().ok_or("a dimension set that is not an array")?;
            let mut dimensions = BTreeMap::new();
            for n in names {
                let name = n.as_str().ok_or("a dimension name that is not a string")?;
                let value = root
                    .get(name)
                    .and_then(Value::as_str)
                    .ok_or_else(|| format!("dimension {name} has no string value on the line"))?;
                if dimensions.insert(name.to_owned(), value.to_owned()).is_some() {
                    return Err(format!("dimension {name} twice in one set"));
                }
            }
            for m in metrics {
                let name = m.get("Name").and_then(Value::as_str).ok_or("a metric definition without a Name")?;
                let unit = m.get("Unit").and_then(Value::as_str).map(str::to_owned);
                let values: Vec<f64> = match root.get(name) {
                    Some(Value::Number(n)) => vec![n.as_f64().ok_or("a metric value out of range")?],
                    Some(Value::Array(a)) => a
                        .iter()
                        .map(|v| v.as_f64().ok_or_else(|| format!("metric {name}: a value that is not a number")))
                        .collect::<Result<_, _>>()?,
                    _ => return Err(format!("metric {name} has no numeric value on the line")),
                };
                for value in values {
                    out.push(Datapoint {
                        namespace: namespace.to_owned(),
                        metric: name.to_owned(),
                        dimensions: dimensions.clone(),
                        unit: unit.clone(),
                        value,
                    });
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(p: &Datapoint) -> Vec<&str> {
        p.dimensions.keys().map(String::as_str).collect()
    }

    #[test]
    fn a_line_is_one_datapoint_per_metric_and_dimension_set() {
        let line = r#"{"Service":"authorizer","Stack":"s1","Reason":"stale_crl","requestId":"r",
            "AuthorizerErrors":1,"DecisionLatency":[3,4],
            "_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"TokenBroker",
            "Dimensions":[["Service","Stack"],["Reason","Service","Stack"]],
            "Metrics":[{"Name":"AuthorizerErrors","Unit":"Count"},{"Name":"DecisionLatency","Unit":"Microseconds"}]}]}}"#
            .replace('\n', "");
        let pts = parse_line(&line).unwrap();
        assert_eq!(pts.len(), 6, "2 sets x (1 + 2 samples)");
        assert_eq!(keys(&pts[0]), ["Service", "Stack"]);
        assert_eq!((pts[0].metric.as_str(), pts[0].value), ("AuthorizerErrors", 1.0));
        assert_eq!(pts[0].unit.as_deref(), Some("Count"));
        assert_eq!((pts[1].metric.as_str(), pts[1].value, pts[2].value), ("DecisionLatency", 3.0, 4.0));
        assert_eq!(keys(&pts[3]), ["Reason", "Service", "Stack"]);
        assert_eq!(pts[3].dimensions["Reason"], "stale_crl");
        assert!(pts.iter().all(|p| p.namespace == "TokenBroker" && p.dimensions["Stack"] == "s1"));
        assert!(!pts.iter().any(|p| p.dimensions.contains_key("requestId")), "properties are no dimensions");
    }

    #[test]
    fn lines_cloudwatch_would_reject_are_errors() {
        let wrap = |dims: &str, metrics: &str, members: &str| {
            format!(
                r#"{{{members}"_aws":{{"CloudWatchMetrics":[{{"Namespace":"N","Dimensions":{dims},"Metrics":{metrics}}}]}}}}"#
            )
        };
        let ok = wrap(r#"[["A"]]"#, r#"[{"Name":"M"}]"#, r#""A":"a","M":2,"#);
        assert_eq!(parse_line(&ok).unwrap()[0].unit, None);
        for (bad, why) in [
            (wrap(r#"[["A"]]"#, r#"[{"Name":"M"}]"#, r#""M":2,"#), "dimension A"),
            (wrap(r#"[["A"]]"#, r#"[{"Name":"M"}]"#, r#""A":1,"M":2,"#), "dimension A"),
            (wrap(r#"[["A"]]"#, r#"[{"Name":"M"}]"#, r#""A":"a","#), "metric M"),
            (wrap(r#"[["A"]]"#, r#"[{"Name":"M"}]"#, r#""A":"a","M":"2","#), "metric M"),
            (wrap(r#"["A"]"#, r#"[{"Name":"M"}]"#, r#""A":"a","M":2,"#), "dimension set"),
            (r#"{"M":1}"#.to_owned(), "CloudWatchMetrics"),
            ("plain text".to_owned(), "not JSON"),
        ] {
            let e = parse_line(&bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
        let e = parse_lines(&format!("{ok}\n\nnot emf\n")).unwrap_err();
        assert!(e.starts_with("line 3:"), "{e}");
        assert_eq!(parse_lines(&format!("{ok}\n{ok}\n")).unwrap().len(), 2);
    }

    #[test]
    fn an_empty_dimension_set_is_the_series_without_dimensions() {
        for sets in ["[[]]", "[]"] {
            let line = format!(
                r#"{{"M":1,"_aws":{{"CloudWatchMetrics":[{{"Namespace":"N","Dimensions":{sets},"Metrics":[{{"Name":"M"}}]}}]}}}}"#
            );
            let pts = parse_line(&line).unwrap();
            assert_eq!(pts.len(), 1, "{line}");
            assert!(pts[0].dimensions.is_empty());
        }
    }
}
