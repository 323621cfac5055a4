//! The `custody` command: parses the command line, sets up logging, runs the command
//! (`custody::cli`) and maps the outcome to an exit code: 0 success; 1 verification failed; 2
//! usage or I/O error, nothing sealed; 3 sealed (or verified intact) but incomplete, with what is
//! missing listed; 130 or 143 when SIGINT or SIGTERM stopped a collection.

use std::process::ExitCode;

use clap::Parser;

use custody::cli::{self, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli::wants_json(&cli);
    let daemon = cli::is_daemon(&cli);
    let filter = tracing_subscriber::EnvFilter::try_from_env("CUSTODY_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(if daemon {
            "info,aws_config=error,aws_smithy_runtime=error,aws_sdk_s3=error,kube=warn"
        } else {
            // The AWS SDK warns about every credential source it tries; its failures reach the
            // user as errors instead.
            "warn,aws_config=error,aws_smithy_runtime=error,aws_sdk_s3=error"
        })
    });
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if daemon {
        // The daemon logs one JSON object per line, for log pipelines.
        logs.json().init();
    } else {
        logs.init();
    }
    match cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            let message = cli::error_message(&e);
            // Errors name paths and remote answers, which may hold terminal escapes.
            eprintln!("error: {}", custody::terminal::escape(&message));
            if json {
                // Machines reading --json get the failure as JSON too.
                println!("{}", serde_json::json!({ "ok": false, "error": message }));
            }
            ExitCode::from(2)
        }
    }
}
