//! How a Kubernetes client error reads in logs, Events and status: an API server's refusal as its
//! code, reason and message (`403 Forbidden: deployments.apps "shop-sink" is forbidden: ...`), where
//! kube's own `Display` appends the whole `Status` as debug output.

use std::fmt;

/// Displays a [`kube::Error`] for people.
#[derive(Debug, Clone, Copy)]
pub struct Described<'a>(pub &'a kube::Error);

impl fmt::Display for Described<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            kube::Error::Api(status) => {
                write!(f, "{}", status.code)?;
                if !status.reason.is_empty() {
                    write!(f, " {}", status.reason)?;
                }
                if !status.message.is_empty() {
                    write!(f, ": {}", status.message)?;
                }
                Ok(())
            }
            other => write!(f, "{other}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_refusal_reads_as_code_reason_and_message_only() {
        let status = kube::core::Status::failure(
            "configmaps \"shop-pipeline\" is forbidden: User cannot create resource",
            "Forbidden",
        )
        .with_code(403);
        let error = kube::Error::Api(status.boxed());
        let text = Described(&error).to_string();
        assert_eq!(
            text,
            "403 Forbidden: configmaps \"shop-pipeline\" is forbidden: User cannot create resource"
        );
        assert!(!text.contains("Status {"), "{text}");
        assert!(error.to_string().contains("Status {"), "kube's own Display");
    }
}
