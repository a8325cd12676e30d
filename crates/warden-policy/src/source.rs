//! Where in a file something went wrong: file, line and column, for every input error.

use std::fmt;

/// A position in a named source (1-based line and column, counted in characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceLocation {
    pub file: String,
    pub line: usize,
    pub column: usize,
}

impl SourceLocation {
    /// The line and column of byte `offset` in `text`.
    pub fn at_offset(file: &str, text: &str, offset: usize) -> SourceLocation {
        let offset = offset.min(text.len());
        let before = text.get(..offset).unwrap_or(text);
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        SourceLocation { file: file.to_owned(), line, column }
    }
}

impl fmt::Display for SourceLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// An input error with its position: `policy.toml:12:10: unknown tool id "claud-code"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{location}: {message}")]
pub struct SourceError {
    pub location: SourceLocation,
    pub message: String,
}

impl SourceError {
    pub(crate) fn at(file: &str, text: &str, offset: usize, message: impl Into<String>) -> SourceError {
        SourceError { location: SourceLocation::at_offset(file, text, offset), message: message.into() }
    }

    /// A TOML syntax or shape error, with toml's own message trimmed to one line.
    pub(crate) fn from_toml(file: &str, text: &str, error: &toml::de::Error) -> SourceError {
        let offset = error.span().map_or(0, |span| span.start);
        SourceError::at(file, text, offset, error.message().trim().replace('\n', " "))
    }

    /// A JSON error: serde_json already knows line and column.
    pub(crate) fn from_json(file: &str, error: &serde_json::Error) -> SourceError {
        SourceError {
            // serde_json reports column 0 for an empty document; positions here are 1-based.
            location: SourceLocation {
                file: file.to_owned(),
                line: error.line().max(1),
                column: error.column().max(1),
            },
            message: strip_json_position(&error.to_string()),
        }
    }
}

fn strip_json_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_become_lines_and_columns() {
        let text = "a = 1\nbé = x\n";
        assert_eq!(SourceLocation::at_offset("f", text, 0).to_string(), "f:1:1");
        assert_eq!(SourceLocation::at_offset("f", text, 6).to_string(), "f:2:1");
        // "bé = " is 6 bytes but 5 characters.
        assert_eq!(SourceLocation::at_offset("f", text, 12).to_string(), "f:2:6");
    }
}
