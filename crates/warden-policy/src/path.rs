//! Path spelling that works the same for Linux, macOS and Windows paths.

use std::borrow::Cow;

/// Turns backslashes into slashes and drops `.` segments and doubled separators, so
/// `C:\Users\dev\.local\bin\claude.exe` and `/home/dev/./.local//bin/claude` can be
/// matched by the same patterns. It does not touch the file system.
pub fn normalize_path(path: &str) -> Cow<'_, str> {
    let needs_work = path.contains('\\') || path.contains("//") || path.contains("/./") || path.starts_with("./");
    if !needs_work {
        return Cow::Borrowed(path);
    }
    let slashed = path.replace('\\', "/");
    // Keep a leading `//` (UNC paths `\\server\share`) but collapse the rest.
    let (lead, rest) = match slashed.strip_prefix("//") {
        Some(rest) => ("//", rest),
        None => ("", slashed.as_str()),
    };
    let mut out = String::with_capacity(slashed.len());
    out.push_str(lead);
    let absolute = rest.starts_with('/');
    let mut first = true;
    for segment in rest.split('/') {
        if segment.is_empty() || segment == "." {
            continue;
        }
        if !first || absolute {
            out.push('/');
        }
        out.push_str(segment);
        first = false;
    }
    if out.is_empty() {
        out.push_str(if absolute { "/" } else { "." });
    }
    Cow::Owned(out)
}

/// Whether a path is absolute in any of the three OSes' spellings.
pub(crate) fn is_absolute(path: &str) -> bool {
    let bytes = path.as_bytes();
    path.starts_with('/')
        || path.starts_with('\\')
        || (bytes.len() >= 3
            && bytes[0].is_ascii_alphabetic()
            && bytes[1] == b':'
            && (bytes[2] == b'/' || bytes[2] == b'\\'))
}

/// Joins a relative path onto a directory; an absolute path is returned as it is.
pub(crate) fn join(dir: Option<&str>, path: &str) -> String {
    match dir {
        Some(dir) if !is_absolute(path) => {
            let mut joined = dir.trim_end_matches(['/', '\\']).to_owned();
            joined.push('/');
            joined.push_str(path);
            joined
        }
        _ => path.to_owned(),
    }
}

/// The last component of a path, in either separator.
pub(crate) fn file_name(path: &str) -> &str {
    path.rsplit(['/', '\\']).next().unwrap_or(path)
}

/// Whether `path` is `prefix` or lies below it, comparing whole components
/// (`/src/repo` covers `/src/repo/lib` but not `/src/repo2`).
pub fn path_has_prefix(path: &str, prefix: &str) -> bool {
    let path = normalize_path(path);
    let prefix = normalize_path(prefix);
    let prefix = prefix.trim_end_matches('/');
    if prefix.is_empty() {
        return path.starts_with('/');
    }
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_all_three_spellings() {
        let cases = [
            ("/home/dev/.local/bin/claude", "/home/dev/.local/bin/claude"),
            ("/home/dev/./.local//bin/claude", "/home/dev/.local/bin/claude"),
            (r"C:\Users\dev\.local\bin\claude.exe", "C:/Users/dev/.local/bin/claude.exe"),
            (r"\\server\share\tools\codex.exe", "//server/share/tools/codex.exe"),
            ("./cli.js", "cli.js"),
        ];
        for (input, expected) in cases {
            assert_eq!(normalize_path(input), expected, "{input}");
        }
    }

    #[test]
    fn prefix_compares_whole_components() {
        assert!(path_has_prefix("/src/repo/lib", "/src/repo"));
        assert!(path_has_prefix("/src/repo", "/src/repo/"));
        assert!(!path_has_prefix("/src/repo2", "/src/repo"));
        assert!(path_has_prefix(r"C:\src\repo\x", "C:/src/repo"));
        assert!(path_has_prefix("/anything", "/"));
    }

    #[test]
    fn joins_relative_paths_only() {
        assert_eq!(join(Some("/w/pkg"), "cli.js"), "/w/pkg/cli.js");
        assert_eq!(join(Some("/w/pkg/"), "/abs/cli.js"), "/abs/cli.js");
        assert_eq!(join(Some("C:/w"), r"D:\x\cli.js"), r"D:\x\cli.js");
        assert_eq!(join(None, "cli.js"), "cli.js");
    }
}
