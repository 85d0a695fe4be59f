use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    if let Err(e) = hopper::cli::init_logging() {
        // No subscriber yet: this one error cannot go through tracing.
        eprintln!("error: {e}");
        return std::process::ExitCode::FAILURE;
    }
    let cli = hopper::cli::Cli::parse();
    match hopper::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            hopper::cli::report_fatal(&e);
            match e.downcast_ref::<hopper::cli::MailgateError>() {
                Some(m) => std::process::ExitCode::from(m.code),
                None => std::process::ExitCode::FAILURE,
            }
        }
    }
}
