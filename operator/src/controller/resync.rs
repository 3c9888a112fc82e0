//! The resync a user asks for with the `cdcstar.dev/resync` annotation
//! (`cdcstar_crds::verification::RESYNC_ANNOTATION`): which Job runs it (built in [`super::build`]),
//! which earlier Job must go, and what `status.resync` says about it.
//!
//! Each annotation value is its own Job (named after the value), so a Job runs once and its result
//! stays visible while the annotation does; a new value replaces the Job, and removing the
//! annotation removes it. The previous Job is known from `status.resync.job`: annotation changes do
//! not bump the generation, so the once-per-generation removal of obsolete children cannot be used.

use cdcstar_crds::CdcPipeline;
use cdcstar_crds::pipeline::ResyncStatus;
use cdcstar_crds::validate::ValidationError;
use cdcstar_crds::verification::ResyncRequest;
use k8s_openapi::api::batch::v1::Job;

use super::build::{ChildKind, ObsoleteChild};

/// The Job of an earlier request that the current one replaces (or that no request keeps).
pub fn replaced_job(pipeline: &CdcPipeline, current: Option<&str>) -> Option<ObsoleteChild> {
    let previous = pipeline.status.as_ref()?.resync.as_ref()?.job.as_deref()?;
    (Some(previous) != current).then(|| ObsoleteChild {
        kind: ChildKind::Job,
        name: previous.to_owned(),
    })
}

/// `status.resync` for `request` (the annotation, read), run by `job` as the API server returned
/// it after the apply; `None` without a request.
pub fn resync_status(
    request: Option<&Result<ResyncRequest, ValidationError>>,
    job: Option<&Job>,
) -> Option<ResyncStatus> {
    let request = match request? {
        Ok(request) => request,
        Err(error) => {
            return Some(ResyncStatus {
                request: String::new(),
                tables: Vec::new(),
                job: None,
                state: "Invalid".to_owned(),
                message: Some(format!("{}: {}", error.path, error.message)),
            });
        }
    };
    let conditions = job
        .and_then(|j| j.status.as_ref())
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let holds = |type_: &str| {
        conditions
            .iter()
            .find(|c| c.type_ == type_ && c.status == "True")
    };
    let (state, message) = if holds("Complete").is_some() {
        ("Succeeded", None)
    } else if let Some(failed) = holds("Failed") {
        (
            "Failed",
            Some(format!(
                "{} (the Job's pods' logs say why; set the annotation to another value, such as \
                 the tables in another order, to run it again)",
                failed
                    .message
                    .clone()
                    .unwrap_or_else(|| "the Job failed".into())
            )),
        )
    } else {
        ("Running", None)
    };
    Some(ResyncStatus {
        request: request.value.clone(),
        tables: request.tables.clone(),
        job: job.and_then(|j| j.metadata.name.clone()),
        state: state.to_owned(),
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::{JobCondition, JobStatus};
    use kube::api::ObjectMeta;

    fn request() -> ResyncRequest {
        ResyncRequest {
            value: "customer_dim".into(),
            tables: vec!["customer_dim".into()],
        }
    }

    fn job(condition: Option<(&str, &str)>) -> Job {
        Job {
            metadata: ObjectMeta {
                name: Some("shop-resync-0123abcd".into()),
                ..ObjectMeta::default()
            },
            status: Some(JobStatus {
                conditions: condition.map(|(type_, message)| {
                    vec![JobCondition {
                        type_: type_.into(),
                        status: "True".into(),
                        message: Some(message.into()),
                        ..JobCondition::default()
                    }]
                }),
                ..JobStatus::default()
            }),
            ..Job::default()
        }
    }

    #[test]
    fn the_state_follows_the_jobs_conditions() {
        let ok = Ok(request());
        let running = resync_status(Some(&ok), Some(&job(None))).unwrap();
        assert_eq!(running.state, "Running");
        assert_eq!(running.job.as_deref(), Some("shop-resync-0123abcd"));
        assert_eq!(running.tables, ["customer_dim"]);
        let done = resync_status(Some(&ok), Some(&job(Some(("Complete", ""))))).unwrap();
        assert_eq!(done.state, "Succeeded");
        let failed = resync_status(
            Some(&ok),
            Some(&job(Some((
                "Failed",
                "Job has reached the specified backoff limit",
            )))),
        )
        .unwrap();
        assert_eq!(failed.state, "Failed");
        assert!(failed.message.unwrap().contains("backoff limit"));
        assert_eq!(resync_status(None, None), None);
    }

    #[test]
    fn an_invalid_request_says_why_and_runs_nothing() {
        let invalid = Err(ValidationError {
            path: "metadata.annotations[cdcstar.dev/resync]".into(),
            message: "\"x\" is not a star table".into(),
        });
        let status = resync_status(Some(&invalid), None).unwrap();
        assert_eq!(status.state, "Invalid");
        assert_eq!(status.job, None);
        assert!(status.message.unwrap().contains("is not a star table"));
    }

    #[test]
    fn the_previous_job_goes_when_the_request_changes_or_ends() {
        let mut pipeline: CdcPipeline =
            serde_yaml::from_str(include_str!("../../../examples/shop-pipeline.yaml")).unwrap();
        assert_eq!(replaced_job(&pipeline, None), None);
        pipeline.status = Some(cdcstar_crds::CdcPipelineStatus {
            resync: resync_status(Some(&Ok(request())), Some(&job(None))),
            ..Default::default()
        });
        assert_eq!(replaced_job(&pipeline, Some("shop-resync-0123abcd")), None);
        let replaced = replaced_job(&pipeline, Some("shop-resync-ffffffff")).unwrap();
        assert_eq!(replaced.name, "shop-resync-0123abcd");
        assert_eq!(replaced.kind, ChildKind::Job);
        assert!(replaced_job(&pipeline, None).is_some());
    }
}
