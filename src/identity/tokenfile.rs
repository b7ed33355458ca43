//! kube-apiserver's `--token-auth-file`: static bearer tokens.
//!
//! Format, one token per line: `token,user,uid[,"group1,group2"]`. The
//! groups column is quoted when it holds more than one group.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context};

use super::user::UserInfo;

/// Read a token auth file into token → user. Blank lines and lines starting
/// with `#` are skipped (kube-apiserver rejects comments; accepting them
/// costs nothing). An empty token is skipped, as kube-apiserver does; the
/// last of duplicate tokens wins, as there.
pub fn load_token_auth_file(path: &Path) -> anyhow::Result<HashMap<String, UserInfo>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading token auth file {}", path.display()))?;
    parse_token_auth(&text).with_context(|| format!("token auth file {}", path.display()))
}

pub(crate) fn parse_token_auth(text: &str) -> anyhow::Result<HashMap<String, UserInfo>> {
    let mut out = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let lineno = i + 1;
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let fields = split_csv_line(line).with_context(|| format!("line {lineno}"))?;
        if fields.len() < 3 {
            bail!(
                "line {lineno}: need at least 3 columns (token, user name, user uid), found {}",
                fields.len()
            );
        }
        let token = fields[0].clone();
        if token.is_empty() {
            tracing::warn!(line = lineno, "empty token in token auth file; skipped");
            continue;
        }
        let groups = fields
            .get(3)
            .map(|g| {
                g.split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let user = UserInfo {
            name: fields[1].clone(),
            uid: fields[2].clone(),
            groups,
        };
        if out.insert(token, user).is_some() {
            tracing::warn!(line = lineno, "duplicate token in token auth file");
        }
    }
    Ok(out)
}

/// One CSV record (RFC 4180 quoting, `""` for a quote inside quotes).
/// Leading spaces of a field are dropped, like Go's csv.Reader with
/// TrimLeadingSpace, which kube-apiserver uses.
fn split_csv_line(line: &str) -> anyhow::Result<Vec<String>> {
    let line = line.strip_suffix('\r').unwrap_or(line);
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek() == Some(&' ') || chars.peek() == Some(&'\t') {
            chars.next();
        }
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                    None => bail!("unterminated quoted field"),
                }
            }
            match chars.next() {
                None => {
                    fields.push(field);
                    return Ok(fields);
                }
                Some(',') => fields.push(field),
                Some(c) => bail!("unexpected {c:?} after closing quote"),
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        fields.push(field);
                        return Ok(fields);
                    }
                    Some(',') => break,
                    Some('"') => bail!("bare \" in unquoted field"),
                    Some(c) => field.push(c),
                }
            }
            fields.push(field);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_users_and_quoted_groups() {
        let text = "\n# comment\nt1,alice,1\r\nt2,bob,2,\"dev,ops\"\nt3, carol ,3,viewers\n\nt4,dave,4,\"a \"\"q\"\"\"\n";
        let m = parse_token_auth(text).unwrap();
        assert_eq!(m.len(), 4);
        assert_eq!(m["t1"].name, "alice");
        assert_eq!(m["t1"].uid, "1");
        assert!(m["t1"].groups.is_empty());
        assert_eq!(m["t2"].groups, vec!["dev", "ops"]);
        assert_eq!(m["t3"].name, "carol ");
        assert_eq!(m["t3"].groups, vec!["viewers"]);
        assert_eq!(m["t4"].groups, vec!["a \"q\""]);
    }

    #[test]
    fn errors_name_the_line() {
        let err = parse_token_auth("t1,alice,1\nt2,bob\n").unwrap_err();
        assert!(format!("{err:#}").contains("line 2"), "{err:#}");
        let err = parse_token_auth("t1,alice,1,\"open\n").unwrap_err();
        assert!(format!("{err:#}").contains("line 1"), "{err:#}");
        let err = parse_token_auth("\n\nt1,al\"ice,1\n").unwrap_err();
        assert!(format!("{err:#}").contains("line 3"), "{err:#}");
    }

    #[test]
    fn empty_tokens_are_skipped() {
        let m = parse_token_auth(",nobody,0\nt,x,1\n").unwrap();
        assert_eq!(m.len(), 1);
    }

    #[test]
    fn loads_from_disk() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tokens.csv");
        std::fs::write(&p, "abc,admin,admin,\"system:masters\"\n").unwrap();
        let m = load_token_auth_file(&p).unwrap();
        assert_eq!(m["abc"].groups, vec!["system:masters"]);
        assert!(load_token_auth_file(&dir.path().join("nope")).is_err());
    }
}
