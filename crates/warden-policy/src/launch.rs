//! Which script an interpreter runs: `node …/cli.js`, `python -m aider`, `env node x`.
//!
//! For an interpreter the executable says nothing about the tool; the script does. Only
//! the script argument counts, never a substring elsewhere in argv, so `node build.js
//! --out claude-code/` is not Claude Code.

use crate::path::file_name;

/// The program an interpreter was asked to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptArgument<'a> {
    /// A script file, with its index in argv (relative paths are relative to the cwd).
    Script { index: usize, path: &'a str },
    /// A Python module run with `-m`.
    Module(&'a str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Interpreter {
    Node,
    Bun,
    Deno,
    Python,
}

fn interpreter_named(program: &str) -> Option<Interpreter> {
    let name = file_name(program);
    let name = name.strip_suffix(".exe").or_else(|| name.strip_suffix(".EXE")).unwrap_or(name);
    let name = name.to_ascii_lowercase();
    match name.as_str() {
        "node" | "nodejs" => Some(Interpreter::Node),
        "bun" => Some(Interpreter::Bun),
        "deno" => Some(Interpreter::Deno),
        _ if name.starts_with("python") || name.starts_with("pypy") => {
            // python, python3, python3.12, pythonw; not "python-config" or "pythonista".
            let rest = name.trim_start_matches("python").trim_start_matches("pypy");
            rest.chars().all(|c| c.is_ascii_digit() || c == '.' || c == 'w').then_some(Interpreter::Python)
        }
        _ => None,
    }
}

/// Whether the program is `env`, which the kernel runs for `#!/usr/bin/env node` scripts.
fn is_env(program: &str) -> bool {
    file_name(program) == "env"
}

/// The script (or module) an interpreter launch runs, if `exe`/`argv` is one.
///
/// `exe` is the resolved executable; `argv[0]` is only used to see through `env`.
/// A shebang launch through `env` (`/usr/bin/env node /usr/local/bin/claude …`) is
/// recognised already at `env`'s exec, before `node` is even started.
pub fn interpreter_script<'a>(exe: &str, argv: &'a [String]) -> Option<ScriptArgument<'a>> {
    if let Some(interpreter) = interpreter_named(exe) {
        return script_of(interpreter, argv, 1);
    }
    if is_env(exe) {
        return through_env(argv);
    }
    None
}

fn through_env(argv: &[String]) -> Option<ScriptArgument<'_>> {
    let mut i = 1;
    while let Some(arg) = argv.get(i) {
        match arg.as_str() {
            "-i" | "--ignore-environment" | "-0" | "--null" | "-v" | "--debug" => i += 1,
            "-u" | "--unset" | "-C" | "--chdir" => i += 2,
            // `env -S "node --flag"` splits its value into several words; the interpreter
            // is the first, and the script follows the -S value in argv.
            "-S" | "--split-string" => {
                let words = argv.get(i + 1)?;
                let program = words.split_whitespace().next()?;
                let interpreter = interpreter_named(program)?;
                return script_of(interpreter, argv, i + 2);
            }
            a if a.starts_with('-') => i += 1,
            a if a.contains('=') => i += 1,
            program => {
                let interpreter = interpreter_named(program)?;
                return script_of(interpreter, argv, i + 1);
            }
        }
    }
    None
}

fn script_of(interpreter: Interpreter, argv: &[String], start: usize) -> Option<ScriptArgument<'_>> {
    match interpreter {
        Interpreter::Node => node_script(argv, start),
        Interpreter::Bun => bun_script(argv, start),
        Interpreter::Deno => deno_script(argv, start),
        Interpreter::Python => python_script(argv, start),
    }
}

fn script_at(argv: &[String], index: usize) -> Option<ScriptArgument<'_>> {
    argv.get(index).map(|path| ScriptArgument::Script { index, path })
}

fn node_script(argv: &[String], start: usize) -> Option<ScriptArgument<'_>> {
    const EVAL: &[&str] = &["-e", "--eval", "-p", "--print", "-i", "--interactive", "-"];
    const WITH_VALUE: &[&str] = &[
        "-r",
        "--require",
        "--import",
        "--loader",
        "--experimental-loader",
        "-C",
        "--conditions",
        "--title",
        "--inspect-port",
        "--input-type",
        "--env-file",
        "--max-old-space-size",
    ];
    let mut i = start;
    while let Some(arg) = argv.get(i) {
        let arg = arg.as_str();
        if arg == "--" {
            return script_at(argv, i + 1);
        }
        if EVAL.contains(&arg) {
            return None;
        }
        if WITH_VALUE.contains(&arg) {
            i += 2;
        } else if arg.starts_with('-') {
            i += 1;
        } else {
            return script_at(argv, i);
        }
    }
    None
}

fn bun_script(argv: &[String], start: usize) -> Option<ScriptArgument<'_>> {
    // Subcommands that run no script of their own (`bun x` starts the package as a child,
    // which is then judged on its own exec).
    const NOT_A_SCRIPT: &[&str] = &[
        "x", "install", "i", "add", "a", "remove", "rm", "update", "build", "test", "init", "create", "upgrade", "pm",
        "link", "unlink", "repl", "outdated", "publish",
    ];
    let mut i = start;
    while let Some(arg) = argv.get(i) {
        let arg = arg.as_str();
        if arg == "run" && i == start {
            i += 1;
        } else if arg.starts_with('-') {
            if arg == "-e" || arg == "--eval" || arg == "-p" || arg == "--print" {
                return None;
            }
            i += 1;
        } else if i == start && NOT_A_SCRIPT.contains(&arg) {
            return None;
        } else {
            return script_at(argv, i);
        }
    }
    None
}

fn deno_script(argv: &[String], start: usize) -> Option<ScriptArgument<'_>> {
    const WITH_VALUE: &[&str] = &["-c", "--config", "--import-map", "--location", "--seed", "--cert", "--env-file"];
    let mut i = start;
    match argv.get(i).map(String::as_str) {
        Some("run") => i += 1,
        Some(first) if !first.starts_with('-') && (first.contains('.') || first.contains('/')) => {}
        _ => return None,
    }
    while let Some(arg) = argv.get(i) {
        let arg = arg.as_str();
        if WITH_VALUE.contains(&arg) {
            i += 2;
        } else if arg.starts_with('-') {
            i += 1;
        } else {
            return script_at(argv, i);
        }
    }
    None
}

fn python_script(argv: &[String], start: usize) -> Option<ScriptArgument<'_>> {
    const WITH_VALUE: &[&str] = &["-W", "-X", "--check-hash-based-pycs"];
    let mut i = start;
    while let Some(arg) = argv.get(i) {
        let arg = arg.as_str();
        match arg {
            "-c" | "-" => return None,
            "-m" => return argv.get(i + 1).map(|module| ScriptArgument::Module(module)),
            _ if WITH_VALUE.contains(&arg) => i += 2,
            // Joined forms: `-mjson.tool`, or flags bundled before m: `-um aider`.
            _ if arg.starts_with('-') && !arg.starts_with("--") && arg.len() > 2 && arg[1..].contains('m') => {
                let (flags, module) = arg[1..].split_once('m')?;
                if flags.contains('c') {
                    return None;
                }
                return if module.is_empty() {
                    argv.get(i + 1).map(|m| ScriptArgument::Module(m))
                } else {
                    Some(ScriptArgument::Module(module))
                };
            }
            _ if arg.starts_with('-') => i += 1,
            _ => return script_at(argv, i),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &str) -> Vec<String> {
        words.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn finds_the_script_argument() {
        let cases: &[(&str, &str, Option<ScriptArgument<'static>>)] = &[
            ("/usr/bin/node", "node /x/cli.js --help", Some(ScriptArgument::Script { index: 1, path: "/x/cli.js" })),
            (
                "/usr/bin/node",
                "node --no-warnings -r ts-node/register /x/cli.js",
                Some(ScriptArgument::Script { index: 4, path: "/x/cli.js" }),
            ),
            ("/usr/bin/node", "node -e console.log(1) /x/cli.js", None),
            ("/usr/bin/node", "node", None),
            (
                "/usr/bin/env",
                "/usr/bin/env node /usr/local/bin/claude -p hi",
                Some(ScriptArgument::Script { index: 2, path: "/usr/local/bin/claude" }),
            ),
            (
                "/usr/bin/env",
                "env FOO=1 -i node /x/cli.js",
                Some(ScriptArgument::Script { index: 4, path: "/x/cli.js" }),
            ),
            ("/usr/bin/env", "/usr/bin/env bash /x/cli.js", None),
            ("/usr/bin/python3.12", "python3 -m aider --yes-always", Some(ScriptArgument::Module("aider"))),
            ("/usr/bin/python3", "python3 -um aider", Some(ScriptArgument::Module("aider"))),
            ("/usr/bin/python3", "python3 -c import aider", None),
            (
                "/v/bin/python",
                "/v/bin/python /v/bin/aider --model x",
                Some(ScriptArgument::Script { index: 1, path: "/v/bin/aider" }),
            ),
            ("/usr/bin/python3-config", "python3-config /v/bin/aider", None),
            (
                r"C:\Program Files\nodejs\node.exe",
                r"node.exe C:\x\cli.js",
                Some(ScriptArgument::Script { index: 1, path: r"C:\x\cli.js" }),
            ),
            ("/home/u/.bun/bin/bun", "bun run /x/cli.js", Some(ScriptArgument::Script { index: 2, path: "/x/cli.js" })),
            ("/home/u/.bun/bin/bun", "bun x @anthropic-ai/claude-code", None),
            ("/usr/bin/deno", "deno run -A /x/main.ts", Some(ScriptArgument::Script { index: 3, path: "/x/main.ts" })),
            ("/usr/bin/deno", "deno fmt /x/main.ts", None),
            ("/usr/bin/less", "less /x/claude-code/README.md", None),
        ];
        for (exe, words, expected) in cases {
            let argv = argv(words);
            assert_eq!(interpreter_script(exe, &argv), *expected, "{exe} {words}");
        }
    }
}
