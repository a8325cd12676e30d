//! Which program an interpreter runs: `node …/cli.js`, `python -m aider`, `env node x`,
//! and the dynamic loader's `ld-linux-x86-64.so.2 PROGRAM`.
//!
//! For an interpreter the executable says nothing about the tool; the script does. Only
//! the script argument counts, never a substring elsewhere in argv, so `node build.js
//! --out claude-code/` is not Claude Code. Interpreters are known by their name's stem
//! (`node-22`, `nodejs20`, `python3.13`), so a renamed install does not hide one; the
//! loader is an interpreter whose program is its first non-option argument.

use crate::path::file_name;

/// The program an interpreter was asked to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptArgument<'a> {
    /// A script file, with its index in argv (relative paths are relative to the cwd).
    Script { index: usize, path: &'a str },
    /// A Python module run with `-m`.
    Module(&'a str),
    /// A native program the dynamic loader runs (`ld-linux-x86-64.so.2 [OPTIONS] PROGRAM
    /// ARGS…`): `index` is where the program's own argv starts (its path first).
    Program { index: usize, path: &'a str },
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
    if name.starts_with("python") || name.starts_with("pypy") {
        // python, python3, python3.12, pythonw; not "python-config" or "pythonista".
        let rest = name.trim_start_matches("python").trim_start_matches("pypy");
        return rest.chars().all(|c| c.is_ascii_digit() || c == '.' || c == 'w').then_some(Interpreter::Python);
    }
    // Distributions and version managers install versioned names: `node-22`, `nodejs20`,
    // `node_18`, `node-v22.11.0`, `bun-1.2`. The stem before a version suffix decides.
    match version_stem(&name) {
        "node" | "nodejs" => Some(Interpreter::Node),
        "bun" => Some(Interpreter::Bun),
        "deno" => Some(Interpreter::Deno),
        _ => None,
    }
}

/// Whether the program is a Python interpreter by its name (`python3`, `python3.13`, `pypy3`).
pub fn is_python_interpreter(program: &str) -> bool {
    interpreter_named(program) == Some(Interpreter::Python)
}

/// `node-22` → `node`, `nodejs20` → `nodejs`, `node-v22.11.0` → `node`; names without a
/// version suffix are returned unchanged (`node-gyp` stays `node-gyp`).
fn version_stem(name: &str) -> &str {
    let stem = name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
    if stem.len() == name.len() {
        return name;
    }
    let stem = stem.strip_suffix('v').filter(|s| s.ends_with(['-', '_'])).unwrap_or(stem);
    stem.strip_suffix(['-', '_']).unwrap_or(stem)
}

/// Whether the program is the dynamic loader: glibc's `ld-linux-x86-64.so.2`,
/// `ld-linux-aarch64.so.1`, `ld-linux.so.2`, `ld64.so.2`, `ld-2.36.so`, musl's
/// `ld-musl-x86_64.so.1`, or `ld.so`.
pub fn is_dynamic_loader(program: &str) -> bool {
    let name = file_name(program);
    name == "ld.so"
        || ((name.starts_with("ld-linux") || name.starts_with("ld-musl") || name.starts_with("ld64.so"))
            && name.contains(".so"))
        || name
            .strip_prefix("ld-")
            .and_then(|rest| rest.strip_suffix(".so"))
            .is_some_and(|version| !version.is_empty() && version.chars().all(|c| c.is_ascii_digit() || c == '.'))
}

/// The file whose content is the program a launch runs: the loader's program for
/// `ld-linux… PROGRAM`, else the executable itself. Relative to the working directory.
pub fn program_file<'a>(exe: &'a str, argv: &'a [String]) -> &'a str {
    match loader_program(exe, argv) {
        Some(ScriptArgument::Program { path, .. }) => path,
        _ => exe,
    }
}

/// The program the dynamic loader is asked to run, if `exe` is the loader and it runs one
/// (`--list` and `--verify` only inspect a program; `--help`, `--version` run nothing).
/// Options as in glibc 2.36's `ld.so --help` and musl's `ldso/dynlink.c`.
fn loader_program<'a>(exe: &str, argv: &'a [String]) -> Option<ScriptArgument<'a>> {
    if !is_dynamic_loader(exe) {
        return None;
    }
    const WITH_VALUE: &[&str] = &[
        "--library-path",
        "--inhibit-rpath",
        "--audit",
        "--preload",
        "--argv0",
        "--glibc-hwcaps-prepend",
        "--glibc-hwcaps-mask",
    ];
    const RUNS_NOTHING: &[&str] =
        &["--list", "--verify", "--help", "--version", "--list-tunables", "--list-diagnostics"];
    let mut i = 1;
    while let Some(arg) = argv.get(i) {
        let arg = arg.as_str();
        if arg == "--" {
            return argv.get(i + 1).map(|path| ScriptArgument::Program { index: i + 1, path });
        }
        if RUNS_NOTHING.contains(&arg) {
            return None;
        }
        if WITH_VALUE.contains(&arg) {
            i += 2;
        } else if arg.starts_with("--") {
            i += 1;
        } else {
            return Some(ScriptArgument::Program { index: i, path: arg });
        }
    }
    None
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
    if let Some(program) = loader_program(exe, argv) {
        return Some(program);
    }
    let (interpreter, start) = invocation(exe, argv)?;
    script_of(interpreter, argv, start)
}

/// The interpreter a launch runs and where its own arguments start in argv: directly
/// (`node …`), or through `env` (`/usr/bin/env node …`, `env -S "node --flag" …`).
fn invocation(exe: &str, argv: &[String]) -> Option<(Interpreter, usize)> {
    if let Some(interpreter) = interpreter_named(exe) {
        return Some((interpreter, 1));
    }
    if is_env(exe) {
        return through_env(argv);
    }
    None
}

fn through_env(argv: &[String]) -> Option<(Interpreter, usize)> {
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
                return Some((interpreter_named(program)?, i + 2));
            }
            a if a.starts_with('-') => i += 1,
            a if a.contains('=') => i += 1,
            program => return Some((interpreter_named(program)?, i + 1)),
        }
    }
    None
}

/// Files a JavaScript runtime loads as code besides its main script: node's
/// `-r`/`--require`, `--import`, `--loader`/`--experimental-loader` and bun's `--preload`
/// values (separate or `=`-joined), and path-like string literals in `-e`/`-p` code
/// (`node -e 'require("/x/cli.js")'`). Only values that look like paths count (`/…`,
/// `./…`, `../…`); a bare package name (`ts-node/register`) names no file here. Code fed
/// on stdin has no file at all: that is for the network layer to see.
pub fn preloaded_files<'a>(exe: &str, argv: &'a [String]) -> Vec<&'a str> {
    const PRELOAD: &[&str] = &["-r", "--require", "--import", "--loader", "--experimental-loader", "--preload"];
    const EVAL: &[&str] = &["-e", "--eval", "-p", "--print"];
    let Some((Interpreter::Node | Interpreter::Bun, start)) = invocation(exe, argv) else { return Vec::new() };
    let mut files = Vec::new();
    let mut i = start;
    while let Some(arg) = argv.get(i) {
        let arg = arg.as_str();
        if arg == "--" || !arg.starts_with('-') {
            break; // the script and its own arguments follow
        }
        let (option, joined) = match arg.split_once('=') {
            Some((option, value)) => (option, Some(value)),
            None => (arg, None),
        };
        let value = joined.or_else(|| argv.get(i + 1).map(String::as_str));
        if PRELOAD.contains(&option) {
            files.extend(value.filter(|v| looks_like_path(v)).map(|v| v.strip_prefix("file://").unwrap_or(v)));
        } else if EVAL.contains(&option) {
            files.extend(value.map(path_literals).unwrap_or_default());
        }
        i += if (PRELOAD.contains(&option) || EVAL.contains(&option)) && joined.is_none() { 2 } else { 1 };
    }
    files
}

fn looks_like_path(value: &str) -> bool {
    value.starts_with('/') || value.starts_with("./") || value.starts_with("../") || value.starts_with("file:///")
}

/// String literals in JavaScript code that look like paths: `require('/x/cli.js')`,
/// `import("./cli.js")`. Escapes are not interpreted (a path needing them is rare enough).
fn path_literals(code: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(open) = rest.find(['\'', '"', '`']) {
        let quote = rest.as_bytes()[open] as char;
        let body = &rest[open + 1..];
        let Some(close) = body.find(quote) else { break };
        let literal = &body[..close];
        if looks_like_path(literal) {
            found.push(literal.strip_prefix("file://").unwrap_or(literal));
        }
        rest = &body[close + 1..];
    }
    found
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
            // Renamed interpreters: distributions and version managers add versions.
            ("/usr/bin/node-22", "node /x/gemini.js", Some(ScriptArgument::Script { index: 1, path: "/x/gemini.js" })),
            ("/usr/bin/nodejs20", "nodejs20 /x/cli.js", Some(ScriptArgument::Script { index: 1, path: "/x/cli.js" })),
            ("/opt/node-v22.11.0", "node /x/cli.js", Some(ScriptArgument::Script { index: 1, path: "/x/cli.js" })),
            ("/usr/bin/node-gyp", "node-gyp rebuild", None),
            ("/usr/bin/nodemon", "nodemon /x/cli.js", None),
            // The dynamic loader runs its first non-option argument.
            (
                "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
                "/lib64/ld-linux-x86-64.so.2 /x/claude --version",
                Some(ScriptArgument::Program { index: 1, path: "/x/claude" }),
            ),
            (
                "/lib/ld-musl-x86_64.so.1",
                "ld --argv0 claude --library-path /l /x/claude -p hi",
                Some(ScriptArgument::Program { index: 5, path: "/x/claude" }),
            ),
            ("/lib64/ld-linux-x86-64.so.2", "ld --list /x/claude", None),
            ("/lib64/ld-linux-x86-64.so.2", "ld --verify /x/claude", None),
            ("/usr/bin/ld", "ld -o out main.o", None),
            ("/usr/bin/ldd", "ldd /x/claude", None),
        ];
        for (exe, words, expected) in cases {
            let argv = argv(words);
            assert_eq!(interpreter_script(exe, &argv), *expected, "{exe} {words}");
        }
    }

    #[test]
    fn finds_files_javascript_preloads() {
        let cases: &[(&str, &str, &[&str])] = &[
            ("/usr/bin/node", "node -e require('/tmp/x/cli.js')", &["/tmp/x/cli.js"]),
            ("/usr/bin/node", "node --require /tmp/x/cli.js -e 1", &["/tmp/x/cli.js"]),
            ("/usr/bin/node", "node --import=file:///tmp/x/cli.mjs app.js", &["/tmp/x/cli.mjs"]),
            ("/usr/bin/node", "node -r ts-node/register app.ts", &[]),
            ("/usr/bin/node", "node -p import(\"./x/cli.js\")", &["./x/cli.js"]),
            ("/usr/bin/node", "node app.js -r /tmp/x/cli.js", &[]),
            ("/usr/bin/python3", "python3 -e /tmp/x/cli.js", &[]),
        ];
        for (exe, words, expected) in cases {
            let argv = argv(words);
            assert_eq!(preloaded_files(exe, &argv), *expected, "{exe} {words}");
        }
    }

    #[test]
    fn the_program_file_is_the_loaders_program() {
        let argv = argv("ld-linux-x86-64.so.2 --argv0 claude ./claude");
        assert_eq!(program_file("/lib64/ld-linux-x86-64.so.2", &argv), "./claude");
        assert_eq!(program_file("/usr/bin/node", &argv), "/usr/bin/node");
        for (name, loader) in [
            ("ld-linux-x86-64.so.2", true),
            ("ld-linux.so.2", true),
            ("ld-2.36.so", true),
            ("ld.so", true),
            ("ld64.so.2", true),
            ("ld-musl-aarch64.so.1", true),
            ("ld", false),
            ("ld.gold", false),
            ("ld-notes.so.txt", false),
        ] {
            assert_eq!(is_dynamic_loader(name), loader, "{name}");
        }
    }
}
