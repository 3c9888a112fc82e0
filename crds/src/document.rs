//! Reading a `CdcPipeline` document (the YAML a user applies, or the file the operator mounts into the
//! capture and sink Pods): parse it and validate it in one step, so every process refuses the same bad
//! input with the same field-path errors.

use crate::pipeline::CdcPipeline;
use crate::star_model::StarModel;
use crate::validate::{ValidationErrors, compile};

/// Why a document is not a usable `CdcPipeline`.
#[derive(Debug, thiserror::Error)]
pub enum PipelineDocumentError {
    /// Not YAML of a `CdcPipeline` (the message names the field).
    #[error(transparent)]
    Yaml(#[from] serde_yaml::Error),
    /// A `CdcPipeline` that breaks the validation rules.
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
}

/// Parses and validates a `CdcPipeline` YAML document.
pub fn parse_pipeline(yaml: &str) -> Result<CdcPipeline, PipelineDocumentError> {
    parse_compiled(yaml).map(|(pipeline, _)| pipeline)
}

/// Parses and validates a `CdcPipeline` YAML document, with its compiled star schema.
pub fn parse_compiled(yaml: &str) -> Result<(CdcPipeline, StarModel), PipelineDocumentError> {
    let pipeline: CdcPipeline = serde_yaml::from_str(yaml)?;
    let model = compile(&pipeline)?;
    Ok((pipeline, model))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shop_example_parses_and_validates() {
        let pipeline = parse_pipeline(include_str!("../../examples/shop-pipeline.yaml")).unwrap();
        assert_eq!(pipeline.spec.source.tables.len(), 4);
    }

    #[test]
    fn a_document_of_the_wrong_shape_names_the_field() {
        let err = parse_pipeline(
            "apiVersion: cdcstar.dev/v1alpha1\nkind: CdcPipeline\nmetadata: {name: x}\nspec: {source: 3}\n",
        )
        .unwrap_err();
        assert!(matches!(err, PipelineDocumentError::Yaml(_)));
        assert!(err.to_string().contains("source"), "{err}");
    }

    #[test]
    fn an_invalid_pipeline_lists_its_field_paths() {
        let yaml = include_str!("../../examples/shop-pipeline.yaml")
            .replace("name: customer_dim", "name: \"customer_dim; DROP TABLE x\"");
        let err = parse_pipeline(&yaml).unwrap_err();
        assert!(matches!(err, PipelineDocumentError::Invalid(_)));
        assert!(
            err.to_string()
                .contains("spec.starSchema.dimensions[0].name"),
            "{err}"
        );
    }
}
