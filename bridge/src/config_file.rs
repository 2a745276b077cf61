//! `--config ferry.toml`: every flag from a file (flags and env vars override it), and
//! `ferry-bridge config`, which prints the effective configuration with secrets redacted.
//!
//! A file's keys are the flags' long names (`max-inflight = 64`, `max_inflight` too); lists
//! are arrays (`allow = ["reports.*", "patient_summary"]`), durations strings (`"30s"`), switches
//! booleans. The file becomes arguments placed before the command line's, skipping every key
//! whose flag is on the command line or whose `FERRY_*` variable is set, so the precedence is
//! flag > env > file > default. An unknown key, a wrong type or an unreadable file stops the
//! bridge with a message naming the problem.

use std::ffi::OsString;
use std::path::Path;

use clap::{ArgAction, CommandFactory};

use crate::config::Config;

/// Largest config file read.
const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// The command line with `--config`'s file (or `FERRY_CONFIG`'s) merged in, as described
/// above; `env` says whether a variable is set.
pub fn with_file(
    argv: Vec<OsString>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Vec<OsString>, String> {
    let path = config_path(&argv).or_else(|| env("FERRY_CONFIG"));
    let Some(path) = path else {
        return Ok(argv);
    };
    let text = read(Path::new(&path))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| format!("config file {path}: {}", e.message()))?;
    let mut file_args =
        file_arguments(&table, &argv, &env).map_err(|e| format!("config file {path}: {e}"))?;
    let mut out = Vec::with_capacity(argv.len() + file_args.len());
    let mut rest = argv.into_iter();
    out.extend(rest.next()); // the program name
    out.append(&mut file_args);
    out.extend(rest);
    Ok(out)
}

/// `--config PATH` or `--config=PATH` on the command line.
fn config_path(argv: &[OsString]) -> Option<String> {
    let mut args = argv.iter().skip(1).map(|a| a.to_string_lossy());
    while let Some(a) = args.next() {
        if a == "--config" {
            return args.next().map(|p| p.into_owned());
        }
        if let Some(p) = a.strip_prefix("--config=") {
            return Some(p.to_owned());
        }
    }
    None
}

fn read(path: &Path) -> Result<String, String> {
    use std::io::Read as _;
    let file =
        std::fs::File::open(path).map_err(|e| format!("config file {}: {e}", path.display()))?;
    let mut text = String::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("config file {}: {e}", path.display()))?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(format!(
            "config file {}: over {MAX_FILE_BYTES} bytes",
            path.display()
        ));
    }
    Ok(text)
}

/// The file's settings as arguments, minus those the command line or the environment set.
fn file_arguments(
    table: &toml::Table,
    argv: &[OsString],
    env: &impl Fn(&str) -> Option<String>,
) -> Result<Vec<OsString>, String> {
    let command = Config::command();
    let mut out = Vec::new();
    for (key, value) in table {
        let long = key.replace('_', "-");
        let arg = command
            .get_arguments()
            .find(|a| a.get_long() == Some(long.as_str()) && long != "config")
            .ok_or_else(|| {
                format!("unknown setting {key:?} (settings are the flags' long names)")
            })?;
        let on_command_line = argv.iter().skip(1).any(|a| {
            let a = a.to_string_lossy();
            a == format!("--{long}") || a.starts_with(&format!("--{long}="))
        });
        let in_env = arg
            .get_env()
            .is_some_and(|v| env(&v.to_string_lossy()).is_some());
        if on_command_line || in_env {
            continue;
        }
        let flag = OsString::from(format!("--{long}"));
        let is_switch = matches!(arg.get_action(), ArgAction::SetTrue);
        match value {
            toml::Value::Boolean(on) if is_switch => {
                if *on {
                    out.push(flag);
                }
            }
            _ if is_switch => return Err(format!("{key} must be true or false")),
            toml::Value::Array(items) => {
                for item in items {
                    out.push(flag.clone());
                    out.push(scalar(key, item)?.into());
                }
            }
            other => {
                out.push(flag);
                out.push(scalar(key, other)?.into());
            }
        }
    }
    Ok(out)
}

fn scalar(key: &str, value: &toml::Value) -> Result<String, String> {
    match value {
        toml::Value::String(s) => Ok(s.clone()),
        toml::Value::Integer(n) => Ok(n.to_string()),
        toml::Value::Float(f) => Ok(f.to_string()),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        _ => Err(format!(
            "{key} must be a string, a number, a boolean or an array of them"
        )),
    }
}

/// The effective configuration as TOML (what `ferry-bridge config` prints): every setting
/// with its value after flags, env, file and defaults; passwords in AMQP URLs redacted.
pub fn effective(argv: Vec<OsString>) -> Result<String, clap::Error> {
    let matches = Config::command().try_get_matches_from(argv)?;
    let mut out = String::from("# ferry-bridge: effective configuration (secrets redacted)\n");
    for arg in Config::command().get_arguments() {
        let (Some(long), id) = (arg.get_long(), arg.get_id().as_str()) else {
            continue;
        };
        if long == "config" || long == "help" || long == "version" {
            continue;
        }
        let values: Vec<String> = matches
            .get_raw(id)
            .map(|vs| vs.map(|v| v.to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        let values: Vec<String> = if long == "amqp-url" {
            values
                .iter()
                .flat_map(|v| v.split(','))
                .map(redact_url)
                .collect()
        } else {
            values
        };
        let is_switch = matches!(arg.get_action(), ArgAction::SetTrue);
        let multiple = matches!(arg.get_action(), ArgAction::Append);
        let line = if is_switch {
            let on = matches.get_flag(id);
            format!("{long} = {on}\n")
        } else if multiple {
            let items: Vec<String> = values.iter().map(|v| toml_string(v)).collect();
            format!("{long} = [{}]\n", items.join(", "))
        } else if let Some(v) = values.first() {
            format!("{long} = {}\n", toml_string(v))
        } else {
            format!("# {long} (not set)\n")
        };
        out.push_str(&line);
    }
    Ok(out)
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// `amqp://user:secret@host` → `amqp://user:***@host`.
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(args: &[&str]) -> Vec<OsString> {
        std::iter::once("ferry-bridge")
            .chain(args.iter().copied())
            .map(OsString::from)
            .collect()
    }

    fn merged(file: &str, args: &[&str], env: &[(&str, &str)]) -> Result<Config, String> {
        let dir = std::env::temp_dir().join(format!("ferry-config-{}", uuid::Uuid::new_v4()));
        std::fs::write(&dir, file).map_err(|e| e.to_string())?;
        let path = dir.to_string_lossy().into_owned();
        let mut all = vec!["--config", path.as_str()];
        all.extend_from_slice(args);
        let env = |name: &str| {
            env.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        };
        let out = with_file(argv(&all), env);
        let _ = std::fs::remove_file(&dir);
        let argv = out?;
        use clap::Parser as _;
        Config::try_parse_from(argv).map_err(|e| e.to_string())
    }

    const FILE: &str = r#"
        listen = "127.0.0.1:8181"
        max_inflight = 64
        allow = ["reports.*", "patient_summary"]
        default-timeout = "5s"
        no-auth = true
    "#;

    #[test]
    fn the_file_sets_every_kind_of_flag() {
        let c = merged(FILE, &[], &[]).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8181");
        assert_eq!(c.max_inflight, 64);
        assert_eq!(c.allow, ["reports.*", "patient_summary"]);
        assert_eq!(c.default_timeout, std::time::Duration::from_secs(5));
        assert!(c.no_auth);
    }

    #[test]
    fn flags_then_env_override_the_file() {
        let c = merged(
            FILE,
            &["--max-inflight", "7", "--allow=other"],
            &[("FERRY_DEFAULT_TIMEOUT", "9s")],
        )
        .unwrap();
        assert_eq!(c.max_inflight, 7, "the flag wins");
        assert_eq!(
            c.allow,
            ["other"],
            "a list on the command line replaces the file's"
        );
        // The env var is not set in this process; the file's value was skipped for it, so
        // clap falls back to the default (in the binary, to the variable's value).
        assert_eq!(c.default_timeout, std::time::Duration::from_secs(30));
    }

    #[test]
    fn mistakes_name_the_setting() {
        let e = merged("max-inflihgt = 3", &[], &[]).unwrap_err();
        assert!(e.contains("unknown setting \"max-inflihgt\""), "{e}");
        let e = merged("no-auth = \"yes\"", &[], &[]).unwrap_err();
        assert!(e.contains("no-auth must be true or false"), "{e}");
        let e = merged("listen = [", &[], &[]).unwrap_err();
        assert!(e.contains("config file"), "{e}");
        let e = merged("max-inflight = \"lots\"", &[], &[]).unwrap_err();
        assert!(e.contains("--max-inflight"), "clap names the flag: {e}");
    }

    #[test]
    fn urls_lose_their_passwords() {
        assert_eq!(
            redact_url("amqp://ferry:s3cret@rabbit:5672/%2f"),
            "amqp://ferry:***@rabbit:5672/%2f"
        );
        assert_eq!(redact_url("amqp://rabbit"), "amqp://rabbit");
    }
}
