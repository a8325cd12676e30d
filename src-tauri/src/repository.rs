//! The repository a tool was started in: the nearest ancestor folder holding `.git`.

use std::path::{Path, PathBuf};

/// Walks up from `cwd` to the folder that contains `.git` (a directory, or a file for
/// worktrees and submodules). `None` outside any repository.
pub fn repository_root(cwd: &Path) -> Option<PathBuf> {
    cwd.ancestors().find(|dir| dir.join(".git").exists()).map(Path::to_path_buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_nearest_git_root_or_none() {
        let base = std::env::temp_dir().join(format!("warden-tray-repo-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let outer = base.join("outer");
        let inner = outer.join("vendor/inner");
        std::fs::create_dir_all(outer.join(".git")).unwrap();
        std::fs::create_dir_all(inner.join("src/deep")).unwrap();
        std::fs::write(inner.join(".git"), "gitdir: ../../.git/modules/inner\n").unwrap();
        std::fs::create_dir_all(base.join("plain/dir")).unwrap();
        let cases = [
            (outer.join("vendor"), Some(outer.clone())),
            (outer.clone(), Some(outer.clone())),
            (inner.join("src/deep"), Some(inner.clone())),
        ];
        for (cwd, expected) in cases {
            assert_eq!(repository_root(&cwd), expected, "{cwd:?}");
        }
        // Outside any repository (unless the temp dir itself sits in one).
        if repository_root(&base).is_none() {
            assert_eq!(repository_root(&base.join("plain/dir")), None);
        }
        std::fs::remove_dir_all(base).unwrap();
    }
}
