//! The rules of the verifier's runs that the operator starts: the schedule of `spec.verify`, and the
//! resync request a user makes with the [`RESYNC_ANNOTATION`] (docs/operator.md, Verification and
//! resync). Admission, `plan` and the operator read both through here.

use crate::CdcPipeline;
use crate::validate::ValidationError;

/// What `spec.verify.schedule` may be: five cron fields, or one of the macros Kubernetes' CronJob
/// accepts.
pub const SCHEDULE_PATTERN: &str = r"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|[0-9A-Za-z*/,?-]+( [0-9A-Za-z*/,?-]+){4})$";

/// The annotation that asks for a resync: the star tables to re-copy, comma-separated
/// (`kubectl annotate cdcpipeline shop cdcstar.dev/resync=customer_dim`). Each value is run once,
/// by a Job; removing the annotation removes the Job, and setting it again runs a new one.
pub const RESYNC_ANNOTATION: &str = "cdcstar.dev/resync";

/// Most tables one resync request may name.
const MAX_RESYNC_TABLES: usize = 64;

/// The star tables a resync request names, in the order given, each once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResyncRequest {
    /// The annotation's value as written.
    pub value: String,
    /// The star tables, each declared in `spec.starSchema`.
    pub tables: Vec<String>,
}

/// The resync `pipeline` asks for: `None` without the annotation, an error naming the annotation
/// when it names no table, too many, or a table `spec.starSchema` does not declare.
pub fn resync_request(pipeline: &CdcPipeline) -> Option<Result<ResyncRequest, ValidationError>> {
    let value = pipeline
        .metadata
        .annotations
        .as_ref()?
        .get(RESYNC_ANNOTATION)?;
    let error = |message: String| ValidationError {
        path: format!("metadata.annotations[{RESYNC_ANNOTATION}]"),
        message,
    };
    let declared: Vec<&str> = pipeline
        .spec
        .star_schema
        .dimensions
        .iter()
        .map(|d| d.name.as_str())
        .chain(
            pipeline
                .spec
                .star_schema
                .facts
                .iter()
                .map(|f| f.name.as_str()),
        )
        .collect();
    let mut tables: Vec<String> = Vec::new();
    for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        if !declared.contains(&name) {
            return Some(Err(error(format!(
                "{name:?} is not a star table of spec.starSchema (declared: {})",
                declared.join(", ")
            ))));
        }
        if !tables.iter().any(|t| t == name) {
            tables.push(name.to_owned());
        }
    }
    if tables.is_empty() {
        return Some(Err(error(
            "names no star table: write the tables to re-copy, comma-separated".into(),
        )));
    }
    if tables.len() > MAX_RESYNC_TABLES {
        return Some(Err(error(format!(
            "names {} tables, at most {MAX_RESYNC_TABLES}",
            tables.len()
        ))));
    }
    Some(Ok(ResyncRequest {
        value: value.clone(),
        tables,
    }))
}

/// Whether `schedule` is one [`SCHEDULE_PATTERN`] allows.
pub fn valid_schedule(schedule: &str) -> bool {
    regex::Regex::new(SCHEDULE_PATTERN)
        .expect("the schedule pattern compiles")
        .is_match(schedule)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixtures::shop_pipeline;
    use std::collections::BTreeMap;

    fn annotated(value: &str) -> CdcPipeline {
        let mut pipeline = shop_pipeline();
        pipeline.metadata.annotations = Some(BTreeMap::from([(
            RESYNC_ANNOTATION.to_owned(),
            value.to_owned(),
        )]));
        pipeline
    }

    #[test]
    fn a_resync_request_names_declared_star_tables_once() {
        assert_eq!(resync_request(&shop_pipeline()), None);
        let request = resync_request(&annotated(" customer_dim, order_fact,customer_dim "))
            .unwrap()
            .unwrap();
        assert_eq!(request.tables, ["customer_dim", "order_fact"]);
        assert_eq!(request.value, " customer_dim, order_fact,customer_dim ");
    }

    #[test]
    fn a_resync_request_of_an_unknown_or_no_table_is_refused_with_the_annotation() {
        let error = resync_request(&annotated("customer")).unwrap().unwrap_err();
        assert_eq!(error.path, "metadata.annotations[cdcstar.dev/resync]");
        assert!(
            error.message.contains("\"customer\" is not a star table"),
            "{error}"
        );
        assert!(error.message.contains("customer_dim"), "{error}");
        let error = resync_request(&annotated(" , ")).unwrap().unwrap_err();
        assert!(error.message.contains("names no star table"), "{error}");
        // A hostile value is a name like any other: refused, never passed on.
        let error = resync_request(&annotated("x; rm -rf /"))
            .unwrap()
            .unwrap_err();
        assert!(error.message.contains("is not a star table"), "{error}");
    }

    #[test]
    fn validate_refuses_a_bad_schedule_and_repair_without_a_watermark() {
        let mut pipeline = shop_pipeline();
        pipeline.spec.verify = Some(crate::pipeline::VerifySpec {
            schedule: "0 * * * *".into(),
            repair: true,
            chunk_rows: None,
            resources: None,
        });
        crate::validate(&pipeline).unwrap();
        pipeline.spec.verify.as_mut().unwrap().schedule = "hourly".into();
        pipeline.spec.capture.engine = crate::pipeline::CaptureEngine::RedpandaConnect;
        let errors = crate::validate(&pipeline).unwrap_err();
        let paths: Vec<&str> = errors.errors().iter().map(|e| e.path.as_str()).collect();
        assert!(paths.contains(&"spec.verify.schedule"), "{errors}");
        assert!(paths.contains(&"spec.verify.repair"), "{errors}");
    }

    #[test]
    fn schedules_are_cron_fields_or_macros() {
        for ok in [
            "0 * * * *",
            "*/15 2-4 * * 1,3",
            "@hourly",
            "@daily",
            "0 0 1 JAN ?",
        ] {
            assert!(valid_schedule(ok), "{ok}");
        }
        for bad in [
            "",
            "* * * *",
            "0 * * * * *",
            "@every 1h",
            "TZ=UTC 0 * * * *",
            "0 * * * *; x",
        ] {
            assert!(!valid_schedule(bad), "{bad}");
        }
    }
}
