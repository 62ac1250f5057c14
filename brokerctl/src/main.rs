//! The `brokerctl` binary: parse the command line, run the command, exit with its code. The commands are in the
//! library ([`brokerctl::cli`]).

use std::process::ExitCode;

use brokerctl::cli::Cli;
use brokerctl::Exit;
use clap::Parser;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            // --help and --version are "errors" that print to stdout and succeed.
            let exit = if e.use_stderr() { Exit::Usage } else { Exit::Ok };
            let _ = e.print();
            return exit.into();
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("brokerctl: cannot start the async runtime: {e}");
            return Exit::Error.into();
        }
    };
    match rt.block_on(cli.run()) {
        Ok(exit) => exit.into(),
        Err(e) => {
            eprintln!("{e}");
            e.exit.into()
        }
    }
}
