//! `latchkey doctor [--json]`: print the report of [`crate::doctor`], grouped by area.

use std::io::Write;

use clap::Args;

use super::Failure;
use super::output::{BOLD, DIM, GREEN, RED, YELLOW};
use crate::doctor::{self, Report, Status};
use crate::paths::Paths;

#[derive(Args)]
pub struct DoctorArgs {
    /// Print `{checks: [{area, subject, status, message, fix}]}` instead.
    #[arg(long)]
    json: bool,
}

pub fn run(args: DoctorArgs) -> Result<(), Failure> {
    let paths = Paths::discover()?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let report = runtime.block_on(doctor::run(&paths));
    if args.json {
        super::output::json(&report);
    } else {
        print(&report);
    }
    if report.has_problems() { Err(Failure::Invalid) } else { Ok(()) }
}

fn print(report: &Report) {
    let mut out = anstream::stdout();
    let mut area = "";
    for check in &report.checks {
        if check.area != area {
            area = check.area;
            let _ = writeln!(out, "{BOLD}{area}{BOLD:#}");
        }
        let (style, word) = match check.status {
            Status::Ok => (GREEN, "ok"),
            Status::Warning => (YELLOW, "warning"),
            Status::Problem => (RED, "problem"),
        };
        let _ = writeln!(out, "  {style}{word:<7}{style:#} {}: {}", check.subject, check.message);
        if let Some(fix) = &check.fix {
            let _ = writeln!(out, "          {DIM}fix:{DIM:#} {fix}");
        }
    }
    let count = |status| report.checks.iter().filter(|check| check.status == status).count();
    let (problems, warnings) = (count(Status::Problem), count(Status::Warning));
    let _ = writeln!(out, "\n{problems} problem{}, {warnings} warning{}", plural(problems), plural(warnings));
}

fn plural(count: usize) -> &'static str {
    if count == 1 { "" } else { "s" }
}
