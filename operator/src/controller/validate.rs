//! Phase 1 (pure): is the pipeline something the operator can build? The rules of the resource itself
//! live in `cdcstar_crds::validate`; this adds what only matters to the operator: the object is stored
//! (name, namespace, uid for owner references) and its children's names are valid Kubernetes names.

use cdcstar_crds::CdcPipeline;
use cdcstar_crds::validate::{ValidationError, ValidationErrors};

use super::build::Component;

/// Longest DNS-1035 label (a Service name, a label value).
pub const MAX_DNS_LABEL: usize = 63;

/// Longest CronJob name: the Jobs it creates add 11 characters, and must still be a label value.
pub const MAX_CRON_JOB_NAME: usize = 52;

/// Every rule `pipeline` breaks, with field paths.
pub fn validate(pipeline: &CdcPipeline) -> Result<(), ValidationErrors> {
    let mut errors = match cdcstar_crds::validate::validate(pipeline) {
        Ok(()) => Vec::new(),
        Err(ValidationErrors(errors)) => errors,
    };
    errors.extend(operator_rules(pipeline));
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ValidationErrors(errors))
    }
}

fn operator_rules(pipeline: &CdcPipeline) -> Vec<ValidationError> {
    let mut errors = Vec::new();
    let name = pipeline.metadata.name.as_deref().unwrap_or_default();
    let longest_child = Component::ALL
        .iter()
        .map(|c| c.child_name(name).len())
        .max()
        .unwrap_or(0);
    if longest_child > MAX_DNS_LABEL {
        errors.push(ValidationError {
            path: "metadata.name".to_owned(),
            message: format!(
                "too long: children are named <name>-{}, which must fit in {MAX_DNS_LABEL} characters, so the name may have at most {} characters",
                Component::Capture.suffix(),
                MAX_DNS_LABEL - Component::Capture.suffix().len() - 1
            ),
        });
    }
    let cron_job = Component::Verify.child_name(name);
    if pipeline.spec.verify.is_some() && cron_job.len() > MAX_CRON_JOB_NAME {
        errors.push(ValidationError {
            path: "metadata.name".to_owned(),
            message: format!(
                "too long for spec.verify: its CronJob {cron_job} must fit in {MAX_CRON_JOB_NAME} \
                 characters, so with spec.verify the name may have at most {} characters",
                MAX_CRON_JOB_NAME - Component::Verify.suffix().len() - 1
            ),
        });
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> CdcPipeline {
        serde_yaml::from_str(include_str!("../../../examples/shop-pipeline.yaml")).unwrap()
    }

    #[test]
    fn example_is_valid() {
        validate(&example()).unwrap();
    }

    #[test]
    fn a_name_too_long_for_the_verify_cron_job_is_rejected_only_with_spec_verify() {
        let mut pipeline = example();
        assert!(pipeline.spec.verify.is_some(), "the example verifies");
        pipeline.spec.source.publication = Some("pub".into());
        pipeline.spec.source.slot.name = Some("slot".into());
        pipeline.metadata.name = Some("a".repeat(45));
        validate(&pipeline).unwrap();
        pipeline.metadata.name = Some("a".repeat(46));
        let errors = validate(&pipeline).unwrap_err();
        assert!(errors.has_path("metadata.name"), "{errors}");
        assert!(
            errors.to_string().contains("at most 45 characters"),
            "{errors}"
        );
        pipeline.spec.verify = None;
        validate(&pipeline).unwrap();
    }

    #[test]
    fn overlong_name_is_rejected_with_its_path() {
        let mut pipeline = example();
        pipeline.metadata.name = Some("a".repeat(60));
        pipeline.spec.source.publication = Some("pub".into());
        pipeline.spec.source.slot.name = Some("slot".into());
        let errors = validate(&pipeline).unwrap_err();
        assert!(errors.has_path("metadata.name"), "{errors}");
    }
}
