//! The floor every cdcstar binary stands on, below its own job: [`kafka`] (client settings, auth from
//! a mounted Secret, topic provisioning; the capture and the sink), [`logging`] (one log format for
//! every binary), [`pipeline_file`] (reading the file `--pipeline` names), [`probes`] (one `/health`,
//! `/ready` and `/metrics` port, and the metrics' encoding) and [`shutdown`] (SIGTERM and SIGINT,
//! the same way everywhere); and [`debug_fields!`], the `Debug` of a struct that holds clients or
//! secrets. It depends on no other cdcstar crate, and no binary crate depends on another.

pub mod kafka;
pub mod logging;
pub mod pipeline_file;
pub mod probes;
pub mod shutdown;

/// Implements `Debug` for struct `$type` showing only the fields named, the others (clients,
/// secrets) as `..`: `debug_fields!(Streamer { confirmed, open });`.
#[macro_export]
macro_rules! debug_fields {
    ($type:ident { $($field:ident),* $(,)? }) => {
        impl ::std::fmt::Debug for $type {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.debug_struct(stringify!($type))
                    $(.field(stringify!($field), &self.$field))*
                    .finish_non_exhaustive()
            }
        }
    };
}

#[cfg(test)]
mod tests {
    #[allow(dead_code)] // `password` is never read: the point is that Debug does not show it
    struct Session {
        database: String,
        password: String,
    }
    crate::debug_fields!(Session { database });

    #[test]
    fn debug_fields_shows_only_the_fields_named() {
        let session = Session {
            database: "local".into(),
            password: "s3cret".into(),
        };
        assert_eq!(
            format!("{session:?}"),
            r#"Session { database: "local", .. }"#
        );
    }
}
