//! The pipeline file a binary is pointed at (the capture's and the sink's `--pipeline`): its text, or
//! an error naming the file. Parsing it is the binary's own (the runtime knows no pipeline).

use std::path::Path;

/// The pipeline file could not be read.
#[derive(Debug, thiserror::Error)]
#[error("failed to read pipeline file {path}: {source}")]
pub struct UnreadablePipelineFile {
    /// The file, as displayed.
    pub path: String,
    pub source: std::io::Error,
}

/// The text of the pipeline file at `path`.
pub fn read(path: &Path) -> Result<String, UnreadablePipelineFile> {
    std::fs::read_to_string(path).map_err(|source| UnreadablePipelineFile {
        path: path.display().to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_is_named() {
        let error = read(Path::new("/nonexistent/pipeline.yaml")).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("failed to read pipeline file /nonexistent/pipeline.yaml: "),
            "{error}"
        );
    }
}
