//! Passwords the way libpq finds them, so none has to sit in a URL on the
//! command line (visible in `ps`): `PGPASSWORD`, else the password file
//! (`PGPASSFILE`, default `~/.pgpass`: `host:port:database:user:password`
//! lines, `*` matching anything, `\` escaping `:` and `\`).

use std::path::PathBuf;

use dbsync_db::DbConfig;

/// `config` with a password from the environment or the password file, when it has none.
pub fn fill(config: DbConfig) -> DbConfig {
    if config.has_password() {
        return config;
    }
    if let Some(pw) = std::env::var("PGPASSWORD").ok().filter(|p| !p.is_empty()) {
        return config.with_password(&pw);
    }
    let file = std::env::var_os("PGPASSFILE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".pgpass")));
    let Some(text) = file.and_then(|f| std::fs::read_to_string(f).ok()) else {
        return config;
    };
    let key = [
        config.host().unwrap_or_default(),
        config.port().unwrap_or(5432).to_string(),
        config.database().unwrap_or_default(),
        config.user().unwrap_or_default(),
    ];
    match lookup(&text, &key) {
        Some(pw) => config.with_password(&pw),
        None => config,
    }
}

/// The password of the first line matching `key` (host, port, database, user).
fn lookup(text: &str, key: &[String; 4]) -> Option<String> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .find_map(|line| {
            let fields = split(line);
            if fields.len() != 5 {
                return None;
            }
            let matches = fields[..4]
                .iter()
                .zip(key)
                .all(|(f, k)| f == "*" || f == k || (f == "localhost" && k == "127.0.0.1"));
            matches.then(|| fields[4].clone())
        })
}

/// Splits a password-file line on unescaped `:`.
fn split(line: &str) -> Vec<String> {
    let (mut fields, mut cur, mut escaped) = (Vec::new(), String::new(), false);
    for c in line.chars() {
        match (escaped, c) {
            (true, c) => {
                cur.push(c);
                escaped = false;
            }
            (false, '\\') => escaped = true,
            (false, ':') => fields.push(std::mem::take(&mut cur)),
            (false, c) => cur.push(c),
        }
    }
    fields.push(cur);
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_file_lines_match_like_libpq() {
        let text = "# comment\nother:5432:*:*:nope\n127.0.0.1:6543:staging:app:s3cr\\:et\n*:*:*:app:fallback\n";
        let key = |host: &str, port: &str| {
            [
                host.to_owned(),
                port.to_owned(),
                "staging".to_owned(),
                "app".to_owned(),
            ]
        };
        assert_eq!(
            lookup(text, &key("127.0.0.1", "6543")).as_deref(),
            Some("s3cr:et")
        );
        assert_eq!(
            lookup(text, &key("db.example", "5432")).as_deref(),
            Some("fallback")
        );
        assert_eq!(lookup("", &key("h", "1")), None);
    }
}
