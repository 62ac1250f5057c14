//! The template's alarms, resolved as CloudFormation would resolve them for a stack deployed with every parameter at
//! its `Default` under a given stack name.
//!
//! Resolution covers what alarm properties use: literals, `!Ref` to a parameter (its `Default`) or to
//! `AWS::StackName` / `AWS::NoValue`, `!FindInMap` through `Mappings`, `!Sub` over such references, and `!If`, whose
//! condition is taken as true (the simulated stack has a truststore, CRLs and partner issuers, so `HasCrl`,
//! `HasTruststore` and the like hold; an alarm's own `Condition` is recorded, not evaluated). A reference to a
//! resource, another pseudo parameter or any other intrinsic is an error, never a guess.

use std::collections::BTreeMap;
use std::path::Path;

use serde_norway::{Mapping, Value};

use super::{Alarm, MissingData, Operator, Statistic};

/// The resource type of a CloudWatch alarm.
const ALARM_TYPE: &str = "AWS::CloudWatch::Alarm";

/// A parsed template and the stack name it is deployed as.
pub struct Template {
    doc: Value,
    stack: String,
}

/// The template's alarms, split by whether [`Alarm::evaluate`] can decide them from EMF lines.
#[derive(Debug)]
pub struct AlarmSet {
    /// Single-metric alarms on a metric of the functions' namespace (the `MetricsNamespace` parameter).
    pub simulated: Vec<Alarm>,
    /// Every other alarm: logical id, and what it reads instead (metric math, or an AWS namespace).
    pub not_simulated: Vec<(String, String)>,
}

impl AlarmSet {
    /// The simulated alarm called `name`.
    pub fn alarm(&self, name: &str) -> Option<&Alarm> {
        self.simulated.iter().find(|a| a.name == name)
    }
}

impl Template {
    /// Reads the template at `path`, to be deployed as stack `stack`.
    pub fn load(path: &Path, stack: &str) -> Result<Template, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::parse(&text, stack)
    }

    /// Parses template text, to be deployed as stack `stack`.
    pub fn parse(text: &str, stack: &str) -> Result<Template, String> {
        let doc: Value = serde_norway::from_str(text).map_err(|e| format!("template YAML: {e}"))?;
        if !doc.is_mapping() {
            return Err("the template is not a mapping".into());
        }
        Ok(Template { doc, stack: stack.to_owned() })
    }

    fn section(&self, name: &str) -> Option<&Mapping> {
        self.doc.get(name).and_then(Value::as_mapping)
    }

    /// A parameter's `Default`, as text.
    pub fn parameter_default(&self, name: &str) -> Result<String, String> {
        let p = self.section("Parameters").and_then(|m| m.get(name)).ok_or_else(|| format!("no parameter {name}"))?;
        let d = p.get("Default").ok_or_else(|| format!("parameter {name} has no Default"))?;
        scalar(d).ok_or_else(|| format!("parameter {name}: Default is not a scalar"))
    }

    /// `v` resolved to text; `None` for `AWS::NoValue` (the property is left out).
    pub fn resolve(&self, v: &Value) -> Result<Option<String>, String> {
        if let Some(s) = scalar(v) {
            return Ok(Some(s));
        }
        let (tag, arg) = intrinsic(v).ok_or_else(|| format!("cannot resolve {v:?}"))?;
        match tag {
            "Ref" => {
                let name = arg.as_str().ok_or("!Ref takes a name")?;
                self.resolve_ref(name)
            }
            "FindInMap" => {
                let args = arg.as_sequence().filter(|a| a.len() == 3).ok_or("!FindInMap takes three arguments")?;
                let mut keys = Vec::new();
                for a in args {
                    keys.push(self.resolve(a)?.ok_or("!FindInMap argument resolves to no value")?);
                }
                let found = self
                    .section("Mappings")
                    .and_then(|m| m.get(keys[0].as_str()))
                    .and_then(|m| m.get(keys[1].as_str()))
                    .and_then(|m| m.get(keys[2].as_str()))
                    .ok_or_else(|| format!("no mapping entry {keys:?}"))?;
                scalar(found).map(Some).ok_or_else(|| format!("mapping entry {keys:?} is not a scalar"))
            }
            "Sub" => {
                let (text, vars) = match arg {
                    Value::String(s) => (s.as_str(), None),
                    Value::Sequence(a) if a.len() == 2 => {
                        (a[0].as_str().ok_or("!Sub template is not a string")?, a[1].as_mapping())
                    }
                    _ => return Err("!Sub takes a string or [string, variables]".into()),
                };
                self.substitute(text, vars).map(Some)
            }
            "If" => {
                let args = arg.as_sequence().filter(|a| a.len() == 3).ok_or("!If takes three arguments")?;
                // Conditions are taken as true: see the module documentation.
                self.resolve(&args[1])
            }
            other => Err(format!("intrinsic {other} is not resolved here")),
        }
    }

    fn resolve_ref(&self, name: &str) -> Result<Option<String>, String> {
        match name {
            "AWS::StackName" => Ok(Some(self.stack.clone())),
            "AWS::NoValue" => Ok(None),
            _ if self.section("Parameters").is_some_and(|p| p.contains_key(name)) => {
                self.parameter_default(name).map(Some)
            }
            _ if self.section("Resources").is_some_and(|r| r.contains_key(name)) => {
                Err(format!("!Ref {name} names a resource, whose id exists only once deployed"))
            }
            _ => Err(format!(
                "!Ref {name}: no such parameter, and pseudo parameters other than AWS::StackName are not resolved"
            )),
        }
    }

    fn substitute(&self, text: &str, vars: Option<&Mapping>) -> Result<String, String> {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after.find('}').ok_or_else(|| format!("!Sub {text:?}: unclosed ${{"))?;
            let name = &after[..end];
            if let Some(literal) = name.strip_prefix('!') {
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
            } else if let Some(v) = vars.and_then(|m| m.get(name)) {
                out.push_str(&self.resolve(v)?.ok_or_else(|| format!("!Sub variable {name} has no value"))?);
            } else if name.contains('.') {
                return Err(format!("!Sub {text:?}: ${{{name}}} is an attribute of a resource"));
            } else {
                out.push_str(&self.resolve_ref(name)?.ok_or_else(|| format!("!Sub: ${{{name}}} has no value"))?);
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// The environment a function of the template gets (`Environment.Variables` of resource `function`), resolved
    /// like the alarms; a variable in `overrides` takes the given value instead (for what only exists once
    /// deployed, such as a table name, or a file the test writes). Variables resolving to `AWS::NoValue` are left
    /// out.
    pub fn function_env(&self, function: &str, overrides: &[(&str, &str)]) -> Result<Vec<(String, String)>, String> {
        let vars = self
            .section("Resources")
            .and_then(|r| r.get(function))
            .and_then(|f| f.get("Properties"))
            .and_then(|p| p.get("Environment"))
            .and_then(|e| e.get("Variables"))
            .and_then(Value::as_mapping)
            .ok_or_else(|| format!("{function} has no Environment.Variables"))?;
        let mut env = Vec::new();
        for (k, v) in vars {
            let k = k.as_str().ok_or_else(|| format!("{function}: a variable name that is not text"))?;
            let value = match overrides.iter().find(|(o, _)| *o == k) {
                Some((_, given)) => Some((*given).to_owned()),
                None => self.resolve(v).map_err(|e| format!("{function}: {k}: {e}"))?,
            };
            if let Some(value) = value {
                env.push((k.to_owned(), value));
            }
        }
        for (o, _) in overrides {
            if !env.iter().any(|(k, _)| k == o) {
                return Err(format!("{function}: override {o} is not a variable of the template"));
            }
        }
        Ok(env)
    }

    /// Logical ids of every alarm in the template.
    pub fn alarm_names(&self) -> Vec<String> {
        let Some(resources) = self.section("Resources") else { return Vec::new() };
        resources
            .iter()
            .filter(|(_, r)| r.get("Type").and_then(Value::as_str) == Some(ALARM_TYPE))
            .filter_map(|(k, _)| k.as_str().map(str::to_owned))
            .collect()
    }

    /// Every alarm of the template: the single-metric ones in the functions' namespace resolved, the others named
    /// with what they read. An alarm of the first kind that cannot be resolved is an error.
    pub fn alarms(&self) -> Result<AlarmSet, String> {
        let namespace = self.parameter_default("MetricsNamespace")?;
        let resources = self.section("Resources").ok_or("the template has no Resources")?;
        let mut set = AlarmSet { simulated: Vec::new(), not_simulated: Vec::new() };
        for name in self.alarm_names() {
            let r = resources.get(name.as_str()).ok_or_else(|| format!("{name}: not a resource"))?;
            let props = r.get("Properties").ok_or_else(|| format!("{name}: no Properties"))?;
            if props.get("Metrics").is_some() {
                set.not_simulated.push((name, "metric math (Metrics)".into()));
                continue;
            }
            let ns = props.get("Namespace").ok_or_else(|| format!("{name}: neither Metrics nor Namespace"))?;
            let ns = self.resolve(ns).map_err(|e| format!("{name}: Namespace: {e}"))?.unwrap_or_default();
            if ns != namespace {
                set.not_simulated.push((name, format!("namespace {ns}")));
                continue;
            }
            let condition = r.get("Condition").and_then(Value::as_str).map(str::to_owned);
            let alarm = self.single_metric(&name, props, condition).map_err(|e| format!("{name}: {e}"))?;
            set.simulated.push(alarm);
        }
        Ok(set)
    }

    fn single_metric(&self, name: &str, props: &Value, condition: Option<String>) -> Result<Alarm, String> {
        let text = |key: &str| -> Result<Option<String>, String> {
            match props.get(key) {
                None => Ok(None),
                Some(v) => self.resolve(v).map_err(|e| format!("{key}: {e}")),
            }
        };
        let required = |key: &str| -> Result<String, String> { text(key)?.ok_or_else(|| format!("no {key}")) };
        let number = |key: &str| -> Result<Option<f64>, String> {
            text(key)?.map(|s| s.parse::<f64>().map_err(|_| format!("{key} {s:?} is not a number"))).transpose()
        };
        if props.get("ExtendedStatistic").is_some() {
            return Err("ExtendedStatistic (percentiles) is not modelled".into());
        }
        let mut dimensions = BTreeMap::new();
        for d in props.get("Dimensions").and_then(Value::as_sequence).map(Vec::as_slice).unwrap_or_default() {
            let n = d.get("Name").ok_or("a dimension without Name")?;
            let v = d.get("Value").ok_or("a dimension without Value")?;
            let n = self.resolve(n)?.ok_or("a dimension Name with no value")?;
            let v = self.resolve(v)?.ok_or("a dimension Value with no value")?;
            if dimensions.insert(n.clone(), v).is_some() {
                return Err(format!("dimension {n} twice"));
            }
        }
        let whole =
            |key: &str| -> Result<Option<u64>, String> {
                number(key)?
                    .map(|f| {
                        if f >= 1.0 && f.fract() == 0.0 {
                            Ok(f as u64)
                        } else {
                            Err(format!("{key} {f} is not a count"))
                        }
                    })
                    .transpose()
            };
        let evaluation_periods = whole("EvaluationPeriods")?.ok_or("no EvaluationPeriods")?;
        let datapoints_to_alarm = whole("DatapointsToAlarm")?.unwrap_or(evaluation_periods);
        if datapoints_to_alarm > evaluation_periods {
            return Err(format!("DatapointsToAlarm {datapoints_to_alarm} > EvaluationPeriods {evaluation_periods}"));
        }
        Ok(Alarm {
            name: name.to_owned(),
            condition,
            namespace: required("Namespace")?,
            metric: required("MetricName")?,
            dimensions,
            unit: text("Unit")?,
            statistic: Statistic::parse(&required("Statistic")?)?,
            period_seconds: whole("Period")?.ok_or("no Period")?,
            evaluation_periods,
            datapoints_to_alarm,
            threshold: number("Threshold")?.ok_or("no Threshold")?,
            operator: Operator::parse(&required("ComparisonOperator")?)?,
            missing: MissingData::parse(text("TreatMissingData")?.as_deref())?,
        })
    }
}

/// A YAML scalar as CloudFormation reads it: text, a number's text, or a boolean's.
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// An intrinsic function call: the short form (`!Ref x`, a YAML tag) or the long one (`{Ref: x}`,
/// `{Fn::FindInMap: [...]}`), as its name without `Fn::` and its argument.
fn intrinsic(v: &Value) -> Option<(&str, &Value)> {
    match v {
        Value::Tagged(t) => {
            let tag = t.tag.to_string();
            let name = tag.strip_prefix('!').unwrap_or(&tag);
            ["Ref", "FindInMap", "Sub", "If", "GetAtt", "Join", "Select", "Equals", "Not"]
                .into_iter()
                .find(|n| *n == name)
                .map(|n| (n, &t.value))
        }
        Value::Mapping(m) if m.len() == 1 => {
            let (k, arg) = m.iter().next()?;
            let k = k.as_str()?;
            let name = if k == "Ref" { k } else { k.strip_prefix("Fn::")? };
            Some((name, arg))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = r#"
Parameters:
  MetricsNamespace: { Type: String, Default: TokenBroker }
  Limit: { Type: Number, Default: 50 }
  NoDefault: { Type: String }
Mappings:
  Emf:
    Dimension: { Service: Service, Stack: Stack, Broker: broker }
    Metric: { Q: QuotaExhausted }
Conditions:
  HasX: !Equals ["a", "b"]
Resources:
  Topic: { Type: AWS::SNS::Topic }
  QuotaAlarm:
    Type: AWS::CloudWatch::Alarm
    Condition: HasX
    Properties:
      Namespace: !Ref MetricsNamespace
      MetricName: !FindInMap [Emf, Metric, Q]
      Dimensions:
        - { Name: !FindInMap [Emf, Dimension, Service], Value: !FindInMap [Emf, Dimension, Broker] }
        - { Name: !FindInMap [Emf, Dimension, Stack], Value: !Ref AWS::StackName }
      Statistic: Sum
      Period: 300
      EvaluationPeriods: 1
      Threshold: !Ref Limit
      ComparisonOperator: GreaterThanOrEqualToThreshold
      TreatMissingData: notBreaching
      AlarmActions: !If [HasX, [!Ref Topic], !Ref AWS::NoValue]
  LongForm:
    Type: AWS::CloudWatch::Alarm
    Properties:
      Namespace: { Ref: MetricsNamespace }
      MetricName: { "Fn::Sub": "Q${!x}" }
      Statistic: Minimum
      Period: 60
      EvaluationPeriods: 3
      DatapointsToAlarm: 2
      Threshold: 1.5
      ComparisonOperator: LessThanThreshold
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Environment:
        Variables:
          NS: !Ref MetricsNamespace
          STACK_NAME: !Ref AWS::StackName
          TABLE: !Ref Topic
          OPTIONAL: !If [HasX, !Ref AWS::NoValue, x]
          LITERAL: "60"
  Math:
    Type: AWS::CloudWatch::Alarm
    Properties:
      Metrics: [{ Id: e, Expression: "1" }]
  Lambda:
    Type: AWS::CloudWatch::Alarm
    Properties:
      Namespace: AWS/Lambda
      MetricName: Errors
"#;

    fn template() -> Template {
        Template::parse(TEMPLATE, "stack-1").unwrap()
    }

    fn yaml(s: &str) -> Value {
        serde_norway::from_str(s).unwrap()
    }

    #[test]
    fn references_resolve_to_defaults_the_stack_and_mappings() {
        let t = template();
        let r = |s: &str| t.resolve(&yaml(s));
        assert_eq!(r("!Ref MetricsNamespace"), Ok(Some("TokenBroker".into())));
        assert_eq!(r("!Ref Limit"), Ok(Some("50".into())));
        assert_eq!(r("!Ref AWS::StackName"), Ok(Some("stack-1".into())));
        assert_eq!(r("!Ref AWS::NoValue"), Ok(None));
        assert_eq!(r("!FindInMap [Emf, Dimension, Broker]"), Ok(Some("broker".into())));
        assert_eq!(r("!Sub '${AWS::StackName}-x-${Limit}'"), Ok(Some("stack-1-x-50".into())));
        assert_eq!(r("!Sub ['${A}/${!B}', {A: !Ref Limit}]"), Ok(Some("50/${B}".into())));
        assert_eq!(r("!If [HasX, yes, no]"), Ok(Some("yes".into())));
        assert_eq!(r("{Ref: AWS::StackName}"), Ok(Some("stack-1".into())));
        for (bad, why) in [
            ("!Ref NoDefault", "no Default"),
            ("!Ref Topic", "resource"),
            ("!Ref AWS::Region", "pseudo"),
            ("!Ref Nothing", "no such parameter"),
            ("!FindInMap [Emf, Metric, Missing]", "no mapping entry"),
            ("!GetAtt Topic.Arn", "GetAtt"),
            ("!Sub '${Topic.Arn}'", "attribute"),
            ("!Sub '${AWS::StackName'", "unclosed"),
            ("!Weird x", "cannot resolve"),
        ] {
            let e = r(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn alarms_are_resolved_or_named_with_what_they_read() {
        let set = template().alarms().unwrap();
        let names: Vec<&str> = set.simulated.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["QuotaAlarm", "LongForm"]);
        let q = set.alarm("QuotaAlarm").unwrap();
        assert_eq!(q.condition.as_deref(), Some("HasX"));
        assert_eq!((q.namespace.as_str(), q.metric.as_str()), ("TokenBroker", "QuotaExhausted"));
        let dims: Vec<(&str, &str)> = q.dimensions.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(dims, [("Service", "broker"), ("Stack", "stack-1")]);
        assert_eq!((q.statistic, q.period_seconds, q.threshold), (Statistic::Sum, 300, 50.0));
        assert_eq!((q.evaluation_periods, q.datapoints_to_alarm), (1, 1));
        assert_eq!((q.operator, q.missing), (Operator::GreaterThanOrEqual, MissingData::NotBreaching));
        let l = set.alarm("LongForm").unwrap();
        assert_eq!((l.metric.as_str(), l.threshold, l.missing), ("Q${x}", 1.5, MissingData::Missing));
        assert_eq!((l.evaluation_periods, l.datapoints_to_alarm), (3, 2));
        assert!(l.dimensions.is_empty());
        assert_eq!(
            set.not_simulated,
            [("Math".to_owned(), "metric math (Metrics)".to_owned()), ("Lambda".into(), "namespace AWS/Lambda".into())]
        );
    }

    #[test]
    fn a_function_gets_the_templates_environment() {
        let t = template();
        assert!(t.function_env("Fn", &[]).unwrap_err().contains("TABLE"), "a resource id needs an override");
        let env = t.function_env("Fn", &[("TABLE", "t-1")]).unwrap();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(env, [("NS", "TokenBroker"), ("STACK_NAME", "stack-1"), ("TABLE", "t-1"), ("LITERAL", "60")]);
        assert!(t.function_env("Fn", &[("TABLE", "t"), ("NOPE", "x")]).unwrap_err().contains("NOPE"));
        assert!(t.function_env("Topic", &[]).is_err());
    }

    #[test]
    fn an_alarm_in_the_namespace_that_cannot_be_resolved_is_an_error() {
        for (from, to, why) in [
            ("Threshold: !Ref Limit", "Threshold: !Ref NoDefault", "Threshold"),
            ("Statistic: Sum", "ExtendedStatistic: p99", "ExtendedStatistic"),
            ("TreatMissingData: notBreaching", "TreatMissingData: sometimes", "TreatMissingData"),
            ("EvaluationPeriods: 3", "EvaluationPeriods: 1", "DatapointsToAlarm"),
            ("Period: 300", "Period: soon", "Period"),
        ] {
            let text = TEMPLATE.replacen(from, to, 1);
            assert_ne!(text, TEMPLATE, "{from}");
            let e = Template::parse(&text, "s").unwrap().alarms().unwrap_err();
            assert!(e.contains(why), "{to}: {e}");
        }
    }
}
