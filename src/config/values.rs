//! Values every section shares: cron schedules, URLs, durations, sizes, rates, file paths
//! relative to the config, `${ENV}` expansion, and secrets (from files or the environment,
//! never literal; files readable by others refused).

use super::*;

impl Resolver<'_> {
    pub(super) fn schedule(&mut self, text: &str) -> Option<cron::Schedule> {
        let fields = text.split_whitespace().count();
        let full = match fields {
            5 => format!("0 {text}"),
            6 => {
                self.warnings.push(format!("schedule: `{text}` has 6 fields, so its first is seconds (\"*/15 * * * * *\" runs every 15 seconds, not minutes); standard cron has 5: \"*/15 * * * *\""));
                text.to_string()
            }
            _ => {
                self.problem("schedule", format!("`{text}` has {fields} fields; write standard 5-field cron such as \"*/15 * * * *\" (minute hour day month weekday)"));
                return None;
            }
        };
        match cron::Schedule::from_str(&full) {
            Ok(s) => Some(s),
            Err(e) => {
                self.problem(
                    "schedule",
                    format!("`{text}` is not a cron expression ({e}); example: \"*/15 * * * *\""),
                );
                None
            }
        }
    }

    pub(super) fn url(&mut self, key: &str, text: &str, schemes: &[&str]) -> Option<Url> {
        match Url::parse(text) {
            Ok(u) if schemes.contains(&u.scheme()) && u.host_str().is_some() => Some(u),
            Ok(u) => {
                self.problem(
                    key,
                    format!(
                        "`{text}`: the scheme must be {} with a host (got `{}`)",
                        schemes.join(" or "),
                        u.scheme()
                    ),
                );
                None
            }
            Err(e) => {
                self.problem(key, format!("`{text}` is not a URL ({e})"));
                None
            }
        }
    }

    pub(super) fn duration(
        &mut self,
        key: &str,
        text: Option<&str>,
        default: std::time::Duration,
    ) -> std::time::Duration {
        match text {
            None => default,
            Some(t) => match humantime::parse_duration(t) {
                Ok(d) => d,
                Err(e) => {
                    self.problem(
                        key,
                        format!("`{t}` is not a duration ({e}); write e.g. `30s`, `15m`, `7d`"),
                    );
                    default
                }
            },
        }
    }

    pub(super) fn chrono_duration(
        &mut self,
        key: &str,
        text: Option<&str>,
        default: Option<Duration>,
    ) -> Option<Duration> {
        match text {
            None => default,
            Some("never") => None,
            Some(t) => {
                let d = self.duration(key, Some(t), std::time::Duration::ZERO);
                Duration::from_std(d).ok().or(default)
            }
        }
    }

    /// A path relative to the config file's folder, `${NAME}` expanded.
    pub(super) fn file_path(&mut self, key: &str, text: &str) -> Option<PathBuf> {
        let expanded = self.expand(key, text)?;
        let p = PathBuf::from(expanded);
        Some(match (&self.base, p.is_relative()) {
            (Some(base), true) => base.join(p),
            _ => p,
        })
    }

    pub(super) fn expand(&mut self, key: &str, text: &str) -> Option<String> {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let Some(end) = rest[start..].find('}') else {
                self.problem(key, "`${` without its closing `}`");
                return None;
            };
            let name = &rest[start + 2..start + end];
            match (self.env)(name) {
                Some(v) => out.push_str(&v),
                None => {
                    self.problem(key, format!("environment variable {name} is not set"));
                    return None;
                }
            }
            rest = &rest[start + end + 1..];
        }
        out.push_str(rest);
        Some(out)
    }

    /// A secret given inline as `${ENV}` or as a `*_file`; literal secrets are refused.
    pub(super) fn secret(
        &mut self,
        key: &str,
        inline: Option<&str>,
        file: Option<&str>,
    ) -> Option<Secret> {
        let file_key = format!("{key}_file");
        match (inline, file) {
            (Some(_), Some(_)) => {
                self.problem(
                    key,
                    format!("give either `{key}` or `{file_key}`, not both"),
                );
                None
            }
            (Some(v), None) => {
                let trimmed = v.trim();
                if !(trimmed.starts_with("${")
                    && trimmed.ends_with('}')
                    && trimmed.matches("${").count() == 1)
                {
                    self.problem(key, format!("secrets are not written in the config: use `{file_key}: /path` or `{key}: \"${{ENV_VAR}}\""));
                    return None;
                }
                let v = self.expand(key, trimmed)?;
                if v.is_empty() {
                    self.problem(key, "the environment variable it names is empty");
                    return None;
                }
                Some(Secret::new(v))
            }
            (None, Some(f)) => {
                let path = self.file_path(&file_key, f)?;
                if let Some(mode) = self.exposed_mode(&path) {
                    self.problem(
                        &file_key,
                        format!(
                            "{} can be read by other users (mode {mode:o}); run `chmod 600 {}`",
                            path.display(),
                            path.display()
                        ),
                    );
                    return None;
                }
                match std::fs::read_to_string(&path) {
                    Ok(s) => {
                        let s = s.trim_end_matches(['\n', '\r']).to_string();
                        if s.is_empty() {
                            self.problem(&file_key, format!("{} is empty", path.display()));
                            return None;
                        }
                        Some(Secret::new(s))
                    }
                    Err(e) => {
                        self.problem(&file_key, format!("cannot read {}: {e}", path.display()));
                        None
                    }
                }
            }
            (None, None) => None,
        }
    }

    /// Like `secret`, and a problem at `<key>_file` when neither form is given.
    pub(super) fn required_secret(
        &mut self,
        key: &str,
        inline: Option<&str>,
        file: Option<&str>,
        missing: &str,
    ) -> Option<Secret> {
        let secret = self.secret(key, inline, file);
        if secret.is_none() && !self.problems.iter().any(|p| p.path.starts_with(key)) {
            self.problem(&format!("{key}_file"), missing);
        }
        secret
    }

    /// An extra CA file, relative to the config's folder; it must exist.
    pub(super) fn ca_file(&mut self, key: &str, text: Option<&str>) -> Option<PathBuf> {
        let ca = self.file_path(key, text?)?;
        if !ca.is_file() {
            self.problem(key, format!("{} does not exist", ca.display()));
        }
        Some(ca)
    }

    /// The mode of a secret file that group or others may read (like libpq's .pgpass rule);
    /// systemd credentials (under $CREDENTIALS_DIRECTORY) are exempt: systemd guards them.
    pub(super) fn exposed_mode(&self, path: &Path) -> Option<u32> {
        use std::os::unix::fs::PermissionsExt;
        if let Some(creds) = (self.env)("CREDENTIALS_DIRECTORY").filter(|c| !c.trim().is_empty()) {
            if path.starts_with(&creds) {
                return None;
            }
        }
        let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
        (mode & 0o077 != 0).then_some(mode)
    }

    /// A size in bytes: a number, or "512KiB" / "64MiB", at most `max`.
    pub(super) fn size(
        &mut self,
        key: &str,
        raw: Option<serde_yaml::Value>,
        default: usize,
        max: usize,
    ) -> usize {
        let Some(v) = raw else {
            return default;
        };
        let parsed = match &v {
            serde_yaml::Value::Number(n) => n.as_u64(),
            serde_yaml::Value::String(s) => {
                let t = s.trim();
                let (num, mult) = if let Some(n) = t.strip_suffix("GiB") {
                    (n, 1024 * 1024 * 1024)
                } else if let Some(n) = t.strip_suffix("MiB") {
                    (n, 1024 * 1024)
                } else if let Some(n) = t.strip_suffix("KiB") {
                    (n, 1024)
                } else {
                    (t, 1)
                };
                num.trim().parse::<u64>().ok().map(|n| n * mult)
            }
            _ => None,
        };
        match parsed.filter(|n| *n > 0 && *n <= max as u64) {
            Some(n) => n as usize,
            None => {
                let most = if max >= 1 << 30 {
                    format!("{}GiB", max >> 30)
                } else {
                    format!("{}MiB", max >> 20)
                };
                self.problem(
                    key,
                    format!("write a size up to {most}, such as 1048576, \"512KiB\" or \"1MiB\""),
                );
                default
            }
        }
    }

    /// `proxy:` of an HTTP connector: the only proxy it uses (the environment's are ignored).
    pub(super) fn proxy(&mut self, key: &str, text: Option<&str>) -> Option<Url> {
        self.url(key, text?, &["http", "https", "socks5"])
    }

    pub(super) fn rate(&mut self, text: &str) -> Option<f64> {
        let parsed = text.split_once('/').and_then(|(n, unit)| {
            let n: f64 = n.trim().parse().ok()?;
            let per = match unit.trim() {
                "s" => 1.0,
                "m" => 60.0,
                "h" => 3600.0,
                _ => return None,
            };
            (n > 0.0).then_some(n / per)
        });
        if parsed.is_none() {
            self.problem(
                "target.rate_limit",
                format!("`{text}`: write requests per time unit, e.g. `20/s` or `600/m`"),
            );
        }
        parsed
    }
}
