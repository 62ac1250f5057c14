//! A small CloudWatch alarm evaluator for the alarms of `infra/template.yaml` whose metric is one the functions write
//! as EMF lines, so a test can show each alarm firing in the failure it is for and staying quiet under ordinary
//! traffic, from the lines the real handlers print.
//!
//! What it models, and how far:
//! - [`template`] reads the alarms from the template as CloudFormation would resolve them: parameters to their
//!   `Default`, `AWS::StackName` to the stack name the test deploys as, `!FindInMap` through `Mappings`. Conditions
//!   (`Condition: HasCrl`, the first branch of `!If`) are taken as true: the simulated stack has a truststore, a CRL
//!   bundle and partner issuers, so every alarm exists.
//! - [`emf`] turns EMF lines into datapoints keyed exactly as CloudWatch keys a metric: namespace, metric name and
//!   the full dimension name→value map of one dimension set. A line with dimensions {Service, Stack, Reason} is not
//!   the series {Service, Stack}; an alarm on the latter does not see it. That exactness is the point: a dimension
//!   missing from a line, or one too many, is what makes an alarm silently read nothing.
//! - [`Alarm::evaluate`] evaluates one period: the alarm's statistic over the matching datapoints, compared with the
//!   threshold; no datapoint at all is decided by `TreatMissingData` (`notBreaching`: quiet; `breaching`: fires;
//!   `missing`/`ignore`: the state does not change, which from OK is quiet). A scenario stands for one period of the
//!   alarm, repeated for as many periods as `DatapointsToAlarm` needs: "fires" means "fires if the condition
//!   persists", and "quiet" means no number of such periods raises it. The scenario's lines all count into that one
//!   period, whatever its length; a scenario sizes its traffic for the alarm it makes a claim about.
//!
//! Not modelled: metric math, metrics of AWS namespaces, anomaly detection, percentiles, alarm history (the
//! evaluation range, M of N over periods that differ), and storage resolution. Alarms that need them are listed by
//! [`template::AlarmSet::not_simulated`] so a test can name each with the reason.

pub mod emf;
pub mod template;

use std::collections::BTreeMap;
use std::fmt;

pub use emf::{parse_lines, Datapoint};
pub use template::{AlarmSet, Template};

/// The statistics a single-metric alarm can use, except percentiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Statistic {
    Sum,
    Minimum,
    Maximum,
    SampleCount,
    Average,
}

impl Statistic {
    /// The template's `Statistic` value.
    pub fn parse(s: &str) -> Result<Statistic, String> {
        Ok(match s {
            "Sum" => Statistic::Sum,
            "Minimum" => Statistic::Minimum,
            "Maximum" => Statistic::Maximum,
            "SampleCount" => Statistic::SampleCount,
            "Average" => Statistic::Average,
            other => return Err(format!("statistic {other:?} is not one the evaluator knows")),
        })
    }

    /// The statistic over one period's values; `None` when there are none (missing data).
    pub fn over(self, values: &[f64]) -> Option<f64> {
        if values.is_empty() {
            return None;
        }
        let sum: f64 = values.iter().sum();
        Some(match self {
            Statistic::Sum => sum,
            Statistic::Minimum => values.iter().copied().fold(f64::INFINITY, f64::min),
            Statistic::Maximum => values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            Statistic::SampleCount => values.len() as f64,
            Statistic::Average => sum / values.len() as f64,
        })
    }
}

/// How a statistic is compared with the threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    GreaterThanOrEqual,
    GreaterThan,
    LessThan,
    LessThanOrEqual,
}

impl Operator {
    /// The template's `ComparisonOperator` value (the anomaly-detection band operators are not modelled).
    pub fn parse(s: &str) -> Result<Operator, String> {
        Ok(match s {
            "GreaterThanOrEqualToThreshold" => Operator::GreaterThanOrEqual,
            "GreaterThanThreshold" => Operator::GreaterThan,
            "LessThanThreshold" => Operator::LessThan,
            "LessThanOrEqualToThreshold" => Operator::LessThanOrEqual,
            other => return Err(format!("comparison operator {other:?} is not one the evaluator knows")),
        })
    }

    /// Whether `value` breaches `threshold`.
    pub fn breaches(self, value: f64, threshold: f64) -> bool {
        match self {
            Operator::GreaterThanOrEqual => value >= threshold,
            Operator::GreaterThan => value > threshold,
            Operator::LessThan => value < threshold,
            Operator::LessThanOrEqual => value <= threshold,
        }
    }

    fn symbol(self) -> &'static str {
        match self {
            Operator::GreaterThanOrEqual => ">=",
            Operator::GreaterThan => ">",
            Operator::LessThan => "<",
            Operator::LessThanOrEqual => "<=",
        }
    }
}

/// `TreatMissingData`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissingData {
    /// A period without data counts as good.
    NotBreaching,
    /// A period without data counts as bad.
    Breaching,
    /// The alarm keeps its state (and goes to INSUFFICIENT_DATA when every period is empty), never to ALARM.
    Missing,
    /// The alarm keeps its state.
    Ignore,
}

impl MissingData {
    /// The template's value; CloudWatch's default is `missing`.
    pub fn parse(s: Option<&str>) -> Result<MissingData, String> {
        Ok(match s {
            None | Some("missing") => MissingData::Missing,
            Some("notBreaching") => MissingData::NotBreaching,
            Some("breaching") => MissingData::Breaching,
            Some("ignore") => MissingData::Ignore,
            Some(other) => return Err(format!("TreatMissingData {other:?} is not a CloudWatch value")),
        })
    }

    /// Whether a period without data raises the alarm, starting from OK.
    fn fires(self) -> bool {
        matches!(self, MissingData::Breaching)
    }

    fn name(self) -> &'static str {
        match self {
            MissingData::NotBreaching => "notBreaching",
            MissingData::Breaching => "breaching",
            MissingData::Missing => "missing",
            MissingData::Ignore => "ignore",
        }
    }
}

/// A single-metric alarm, resolved.
#[derive(Debug, Clone)]
pub struct Alarm {
    /// The logical id in the template.
    pub name: String,
    /// The condition the alarm exists under, taken as true.
    pub condition: Option<String>,
    pub namespace: String,
    pub metric: String,
    /// The exact dimension set of the series the alarm reads.
    pub dimensions: BTreeMap<String, String>,
    /// When set, only datapoints of this unit count (CloudWatch's `Unit` on an alarm).
    pub unit: Option<String>,
    pub statistic: Statistic,
    pub period_seconds: u64,
    pub evaluation_periods: u64,
    pub datapoints_to_alarm: u64,
    pub threshold: f64,
    pub operator: Operator,
    pub missing: MissingData,
}

/// One alarm's verdict on one scenario.
#[derive(Debug, Clone)]
pub struct Evaluation {
    pub alarm: String,
    pub statistic: Statistic,
    /// How many values of the alarm's exact series the period held.
    pub samples: usize,
    /// The statistic over them; `None` when there were none.
    pub value: Option<f64>,
    pub threshold: f64,
    pub operator: Operator,
    pub missing: MissingData,
    /// Whether the alarm goes to ALARM if the period repeats.
    pub fires: bool,
    pub datapoints_to_alarm: u64,
    pub evaluation_periods: u64,
    pub period_seconds: u64,
}

impl Alarm {
    /// Whether `p` belongs to the series this alarm reads: same namespace, metric, exact dimension map (and unit,
    /// when the alarm names one).
    pub fn reads(&self, p: &Datapoint) -> bool {
        p.namespace == self.namespace
            && p.metric == self.metric
            && p.dimensions == self.dimensions
            && self.unit.as_ref().is_none_or(|u| p.unit.as_deref() == Some(u.as_str()))
    }

    /// The alarm's verdict on a period holding `points` (all the lines a scenario wrote, of any series).
    pub fn evaluate(&self, points: &[Datapoint]) -> Evaluation {
        let values: Vec<f64> = points.iter().filter(|p| self.reads(p)).map(|p| p.value).collect();
        let value = self.statistic.over(&values);
        let fires = match value {
            Some(v) => self.operator.breaches(v, self.threshold),
            None => self.missing.fires(),
        };
        Evaluation {
            alarm: self.name.clone(),
            statistic: self.statistic,
            samples: values.len(),
            value,
            threshold: self.threshold,
            operator: self.operator,
            missing: self.missing,
            fires,
            datapoints_to_alarm: self.datapoints_to_alarm,
            evaluation_periods: self.evaluation_periods,
            period_seconds: self.period_seconds,
        }
    }
}

impl fmt::Display for Evaluation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.fires { "FIRES" } else { "quiet" };
        let window =
            format!("{} of {} periods of {} s", self.datapoints_to_alarm, self.evaluation_periods, self.period_seconds);
        match self.value {
            Some(v) => write!(
                f,
                "{} -> {verdict}: {:?} of {} sample(s) = {v} {}{} {} ({window})",
                self.alarm,
                self.statistic,
                self.samples,
                if self.operator.breaches(v, self.threshold) { "" } else { "not " },
                self.operator.symbol(),
                self.threshold,
            ),
            None => write!(f, "{} -> {verdict}: no datapoint, missing data is {}", self.alarm, self.missing.name()),
        }
    }
}

/// Every simulated alarm's verdict on the lines of one scenario, in the order of `alarms`.
pub fn evaluate_all(alarms: &[Alarm], points: &[Datapoint]) -> Vec<Evaluation> {
    alarms.iter().map(|a| a.evaluate(points)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dims(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn point(metric: &str, pairs: &[(&str, &str)], value: f64) -> Datapoint {
        Datapoint {
            namespace: "NS".into(),
            metric: metric.into(),
            dimensions: dims(pairs),
            unit: Some("Count".into()),
            value,
        }
    }

    fn alarm(statistic: Statistic, operator: Operator, threshold: f64, missing: MissingData) -> Alarm {
        Alarm {
            name: "A".into(),
            condition: None,
            namespace: "NS".into(),
            metric: "M".into(),
            dimensions: dims(&[("Service", "s"), ("Stack", "st")]),
            unit: None,
            statistic,
            period_seconds: 60,
            evaluation_periods: 5,
            datapoints_to_alarm: 3,
            threshold,
            operator,
            missing,
        }
    }

    const SERIES: &[(&str, &str)] = &[("Service", "s"), ("Stack", "st")];

    #[test]
    fn only_the_exact_dimension_set_is_read() {
        let a = alarm(Statistic::Sum, Operator::GreaterThanOrEqual, 1.0, MissingData::NotBreaching);
        let others = [
            point("M", &[("Service", "s"), ("Stack", "st"), ("Reason", "r")], 5.0),
            point("M", &[("Service", "s")], 5.0),
            point("M", &[("Service", "s"), ("Stack", "other")], 5.0),
            point("M", &[("Service", "other"), ("Stack", "st")], 5.0),
            point("N", SERIES, 5.0),
            Datapoint { namespace: "Other".into(), ..point("M", SERIES, 5.0) },
        ];
        let e = a.evaluate(&others);
        assert_eq!((e.samples, e.value, e.fires), (0, None, false), "{e}");
        let mut with_one = others.to_vec();
        with_one.push(point("M", SERIES, 1.0));
        let e = a.evaluate(&with_one);
        assert_eq!((e.samples, e.value, e.fires), (1, Some(1.0), true), "{e}");
    }

    #[test]
    fn a_unit_on_the_alarm_filters_datapoints() {
        let mut a = alarm(Statistic::SampleCount, Operator::GreaterThanOrEqual, 1.0, MissingData::NotBreaching);
        a.unit = Some("Seconds".into());
        assert_eq!(a.evaluate(&[point("M", SERIES, 3.0)]).samples, 0);
        let seconds = Datapoint { unit: Some("Seconds".into()), ..point("M", SERIES, 3.0) };
        assert_eq!(a.evaluate(&[seconds]).samples, 1);
    }

    #[test]
    fn each_statistic() {
        let values = [4.0, -2.0, 10.0, 0.0];
        assert_eq!(Statistic::Sum.over(&values), Some(12.0));
        assert_eq!(Statistic::Minimum.over(&values), Some(-2.0));
        assert_eq!(Statistic::Maximum.over(&values), Some(10.0));
        assert_eq!(Statistic::SampleCount.over(&values), Some(4.0));
        assert_eq!(Statistic::Average.over(&values), Some(3.0));
        for s in [Statistic::Sum, Statistic::Minimum, Statistic::Maximum, Statistic::SampleCount, Statistic::Average] {
            assert_eq!(s.over(&[]), None, "{s:?}: no values is missing data, not zero");
        }
        // A zero is a sample: the broker writes Grants = 0 on a refusal.
        assert_eq!(Statistic::SampleCount.over(&[0.0, 0.0]), Some(2.0));
        assert_eq!(Statistic::parse("Minimum"), Ok(Statistic::Minimum));
        assert!(Statistic::parse("p99").is_err());
    }

    #[test]
    fn statistics_decide_through_the_alarm() {
        let pts: Vec<Datapoint> = [86_400.0, 3_600.0, 90_000.0].iter().map(|v| point("M", SERIES, *v)).collect();
        let min = alarm(Statistic::Minimum, Operator::LessThan, 21_600.0, MissingData::Missing);
        assert!(min.evaluate(&pts).fires, "the worst instance decides");
        let max = alarm(Statistic::Maximum, Operator::LessThan, 21_600.0, MissingData::Missing);
        assert!(!max.evaluate(&pts).fires);
        let avg = alarm(Statistic::Average, Operator::LessThan, 60_000.0, MissingData::Missing);
        assert!(!avg.evaluate(&pts).fires, "average 60000 is not < 60000");
        let count = alarm(Statistic::SampleCount, Operator::GreaterThanOrEqual, 3.0, MissingData::Missing);
        assert!(count.evaluate(&pts).fires);
    }

    #[test]
    fn operators_at_the_threshold() {
        use Operator::*;
        let cases = [
            (GreaterThanOrEqual, [false, true, true]),
            (GreaterThan, [false, false, true]),
            (LessThan, [true, false, false]),
            (LessThanOrEqual, [true, true, false]),
        ];
        for (op, expected) in cases {
            let got = [4.0, 5.0, 6.0].map(|v| op.breaches(v, 5.0));
            assert_eq!(got, expected, "{op:?}");
        }
        assert_eq!(Operator::parse("LessThanThreshold"), Ok(LessThan));
        assert!(Operator::parse("LessThanLowerOrGreaterThanUpperThreshold").is_err());
    }

    #[test]
    fn missing_data() {
        for (treat, fires) in [
            (MissingData::NotBreaching, false),
            (MissingData::Breaching, true),
            (MissingData::Missing, false),
            (MissingData::Ignore, false),
        ] {
            let a = alarm(Statistic::Sum, Operator::GreaterThanOrEqual, 1.0, treat);
            let e = a.evaluate(&[point("M", &[("Service", "s"), ("Stack", "st"), ("Reason", "r")], 9.0)]);
            assert_eq!((e.value, e.fires), (None, fires), "{treat:?}: {e}");
        }
        assert_eq!(MissingData::parse(None), Ok(MissingData::Missing));
        assert_eq!(MissingData::parse(Some("notBreaching")), Ok(MissingData::NotBreaching));
        assert!(MissingData::parse(Some("NotBreaching")).is_err());
    }

    #[test]
    fn the_summary_names_the_datapoint() {
        let a = alarm(Statistic::Sum, Operator::GreaterThanOrEqual, 5.0, MissingData::NotBreaching);
        let e = a.evaluate(&[point("M", SERIES, 2.0), point("M", SERIES, 3.0)]);
        assert_eq!(e.to_string(), "A -> FIRES: Sum of 2 sample(s) = 5 >= 5 (3 of 5 periods of 60 s)");
        let e = a.evaluate(&[point("M", SERIES, 2.0)]);
        assert_eq!(e.to_string(), "A -> quiet: Sum of 1 sample(s) = 2 not >= 5 (3 of 5 periods of 60 s)");
        let e = a.evaluate(&[]);
        assert_eq!(e.to_string(), "A -> quiet: no datapoint, missing data is notBreaching");
    }
}
