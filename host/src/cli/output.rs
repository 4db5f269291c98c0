//! Printing for humans: tables, and colour only when the stream is a terminal (anstream strips
//! the styles otherwise, and honours NO_COLOR / CLICOLOR).

use std::io::Write;

use anstyle::{AnsiColor, Style};
use comfy_table::{Table, presets::NOTHING};

pub const BOLD: Style = Style::new().bold();
pub const GREEN: Style = AnsiColor::Green.on_default().bold();
pub const YELLOW: Style = AnsiColor::Yellow.on_default().bold();
pub const RED: Style = AnsiColor::Red.on_default().bold();
pub const DIM: Style = Style::new().dimmed();

/// A borderless table with a bold header, like `cargo` and `gh` print.
pub fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table.load_preset(NOTHING);
    table.set_header(header.iter().map(|title| comfy_table::Cell::new(title).add_attribute(comfy_table::Attribute::Bold)));
    table.set_content_arrangement(comfy_table::ContentArrangement::Disabled);
    if !std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        table.force_no_tty();
    }
    table
}

pub fn print_table(table: &Table) {
    let mut out = anstream::stdout();
    for line in table.lines() {
        let _ = writeln!(out, "{}", line.trim_end());
    }
}

pub fn json(value: &impl serde::Serialize) {
    let mut out = std::io::stdout();
    let _ = serde_json::to_writer_pretty(&mut out, value);
    let _ = writeln!(out);
}

pub fn error(message: &str) {
    let _ = writeln!(anstream::stderr(), "{RED}error{RED:#}: {message}");
}

pub fn warning(message: &str) {
    let _ = writeln!(anstream::stderr(), "{YELLOW}warning{YELLOW:#}: {message}");
}

pub fn note(message: &str) {
    let _ = writeln!(anstream::stderr(), "{DIM}note{DIM:#}: {message}");
}
