//! How the report examples write their reports. Included with
//! `#[path = "common/report.rs"] mod report;`.

use std::io::Write;

/// Writes `text` to standard output. A reader that went away (`… | head`) ends the program
/// quietly, as a filter's would; any other failure to write is an error.
pub fn out(text: &str) {
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write the report: {e}");
        std::process::exit(1);
    }
}
