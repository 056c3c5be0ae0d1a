//! Container image references (`--image`, `FERRY_IMAGE`, `migration.image`),
//! checked against the OCI distribution grammar before anything is touched:
//!
//! ```text
//! reference  = name [ ":" tag ] [ "@" digest ]
//! name       = [ domain "/" ] path ( "/" path )*
//! domain     = label ( "." label )* [ ":" port ]       label: [A-Za-z0-9] or [A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9]
//! path       = [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
//! tag        = [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
//! digest     = algorithm ":" hex                       algorithm: [A-Za-z][A-Za-z0-9]* ( [+._-] [A-Za-z][A-Za-z0-9]* )*
//! ```
//!
//! The first component is a registry when it has a `.` or a `:` or is
//! `localhost`. A `sha256` digest has exactly 64 hex digits, `sha512` 128; any
//! other algorithm at least 32. The name is at most 255 characters.

/// Where an image reference came from, for the error message.
pub const IMAGE_SOURCES: &str = "--image, FERRY_IMAGE or migration.image";

/// `Ok` for a well-formed image reference; otherwise what is wrong with it and
/// what a good one looks like.
pub fn check_image(image: &str) -> Result<(), String> {
    problem(image).map_or(Ok(()), |p| {
        Err(format!(
            "image {image:?} is not a valid image reference: {p}; expected REPOSITORY[:TAG] or REPOSITORY@sha256:<64 hex digits>, \
             e.g. 123456789012.dkr.ecr.us-east-1.amazonaws.com/app:1.4.2"
        ))
    })
}

fn problem(image: &str) -> Option<String> {
    if image.is_empty() {
        return Some("it is empty".into());
    }
    if let Some(c) = image.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Some(format!("it contains {c:?}"));
    }
    let (rest, digest) = match image.split_once('@') {
        Some((rest, digest)) => (rest, Some(digest)),
        None => (image, None),
    };
    if let Some(d) = digest
        && let Some(p) = digest_problem(d)
    {
        return Some(p);
    }
    // A tag is after the last ':' that comes after the last '/' (a registry port comes before it).
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    if let Some(t) = tag
        && let Some(p) = tag_problem(t)
    {
        return Some(p);
    }
    name_problem(name)
}

fn digest_problem(digest: &str) -> Option<String> {
    let Some((algorithm, hex)) = digest.split_once(':') else {
        return Some(format!("the digest {digest:?} has no algorithm (sha256:...)"));
    };
    let algorithm_ok = !algorithm.is_empty()
        && algorithm.split(['+', '.', '_', '-']).all(|part| {
            part.starts_with(|c: char| c.is_ascii_alphabetic()) && part.chars().all(|c| c.is_ascii_alphanumeric())
        });
    if !algorithm_ok {
        return Some(format!("the digest algorithm {algorithm:?} is not valid"));
    }
    if !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Some(format!("the digest {digest:?} is not hexadecimal after {algorithm}:"));
    }
    let needed = match algorithm {
        "sha256" => Some(64),
        "sha512" => Some(128),
        _ => None,
    };
    match needed {
        Some(n) if hex.len() != n => Some(format!("a {algorithm} digest has {n} hex digits, not {}", hex.len())),
        None if hex.len() < 32 => Some(format!("the digest {digest:?} is shorter than 32 hex digits")),
        _ => None,
    }
}

fn tag_problem(tag: &str) -> Option<String> {
    let first_ok = tag.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_');
    let rest_ok = tag.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if tag.is_empty() {
        Some("the tag after ':' is empty".into())
    } else if tag.len() > 128 {
        Some(format!("the tag is {} characters long (at most 128)", tag.len()))
    } else if !first_ok || !rest_ok {
        Some(format!(
            "the tag {tag:?} may contain only letters, digits, '_', '.' and '-', and not start with '.' or '-'"
        ))
    } else {
        None
    }
}

fn name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("the repository name is empty".into());
    }
    if name.len() > 255 {
        return Some(format!("the repository name is {} characters long (at most 255)", name.len()));
    }
    let mut components: Vec<&str> = name.split('/').collect();
    let first = components[0];
    let has_registry = components.len() > 1 && (first.contains('.') || first.contains(':') || first == "localhost");
    if has_registry {
        if let Some(p) = registry_problem(first) {
            return Some(p);
        }
        components.remove(0);
    }
    components.iter().find_map(|c| path_problem(c))
}

fn registry_problem(registry: &str) -> Option<String> {
    let (host, port) = match registry.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (registry, None),
    };
    if let Some(p) = port
        && (p.is_empty() || !p.chars().all(|c| c.is_ascii_digit()))
    {
        return Some(format!("the registry port {p:?} is not a number"));
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if host.split('.').all(label_ok) { None } else { Some(format!("the registry {host:?} is not a host name")) }
}

fn path_problem(component: &str) -> Option<String> {
    if component.is_empty() {
        return Some("the repository name has an empty path component (\"//\" or a leading or trailing '/')".into());
    }
    if let Some(c) = component.chars().find(|c| c.is_ascii_uppercase()) {
        return Some(format!("repository names are lowercase ({component:?} has {c:?})"));
    }
    if let Some(c) = component.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(*c))) {
        return Some(format!("{component:?} contains {c:?}, which repository names cannot"));
    }
    // Separators: '.', '_', '__' or a run of '-', each between alphanumerics.
    let bytes = component.as_bytes();
    let mut i = 0;
    let mut prev_alnum = false;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_alphanumeric() {
            prev_alnum = true;
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !bytes[i].is_ascii_alphanumeric() {
            i += 1;
        }
        let sep = &component[start..i];
        let sep_ok = matches!(sep, "." | "_" | "__") || sep.chars().all(|c| c == '-');
        if !prev_alnum || i == bytes.len() || !sep_ok {
            return Some(format!(
                "{component:?} must start and end with a letter or digit, with single '.', '_', \"__\" or dashes between"
            ));
        }
        prev_alnum = false;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn real_references_pass() {
        for ok in [
            "app",
            "app:1.2.3",
            "library/postgres:16-alpine",
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/app-migrations:2026.11.21_1",
            "public.ecr.aws/acme/app:latest",
            "localhost:5000/app:dev",
            "localhost/app",
            "ghcr.io/acme/my__app--x/y.z:v1",
            &format!("123456789012.dkr.ecr.us-east-1.amazonaws.com/app@{DIGEST}"),
            &format!("app:1.2.3@{DIGEST}"),
        ] {
            assert_eq!(check_image(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn garbage_is_refused_with_the_reason() {
        let why = |s: &str| check_image(s).unwrap_err();
        assert!(why("").contains("empty"));
        assert!(why("App:1").contains("lowercase"), "{}", why("App:1"));
        assert!(why("app:").contains("tag after ':' is empty"));
        assert!(why("app:-x").contains("may contain only"));
        assert!(why("app:1 2").contains("' '"));
        assert!(why("app@sha256:abc").contains("64 hex digits, not 3"));
        assert!(why("app@sha256:zz").contains("not hexadecimal"));
        assert!(why("app@0123").contains("no algorithm"));
        assert!(why("registry.example:x/app").contains("port"));
        assert!(why("-bad.example/app:1").contains("registry"));
        assert!(why("acme//app").contains("empty path component"));
        assert!(why("acme/app-").contains("start and end"));
        assert!(why("acme/a..b").contains("start and end"));
        assert!(why("acme/a$b").contains("'$'"));
        assert!(why(&format!("app:{}", "x".repeat(129))).contains("at most 128"));
        let message = why("App");
        assert!(message.contains("REPOSITORY[:TAG]") && message.contains("\"App\""), "{message}");
    }

    #[test]
    fn migration_image_is_checked_where_it_is_written_and_inherited_from_defaults() {
        let ecs = "migration = { cluster = \"c\", task_definition = \"t\", subnets = \"s\", security_groups = \"g\", container = \"m\", command = [\"x\"] }";
        let parse = |text: String| crate::config::parse(std::path::Path::new("/srv/ferry.toml"), &text);
        let ok = parse(format!(
            "project = \"x\"\n[defaults]\nmigration = {{ image = \"app:1.2\" }}\n[env.a]\ndatabase = {{ cluster = \"db\" }}\n{ecs}\n"
        ))
        .unwrap();
        assert_eq!(ok.env("a").unwrap().migration.image.as_deref(), Some("app:1.2"));

        let bad = parse(format!(
            "project = \"x\"\n[env.a]\ndatabase = {{ cluster = \"db\" }}\n{}\n",
            ecs.replace("command", "image = \"App:1\", command")
        ))
        .unwrap_err()
        .to_string();
        assert!(
            bad.starts_with(
                "/srv/ferry.toml:4:116: [env.a]: migration.image: image \"App:1\" is not a valid image reference"
            ),
            "{bad}"
        );

        let local = parse(
            "project = \"x\"\n[env.l]\nprovider = \"local\"\ndatabase = { url = \"sqlite://a.db\" }\nmigration = { command = [\"x\"], image = \"app:1\" }\n".into(),
        )
        .unwrap_err()
        .to_string();
        assert!(local.contains("migration.image needs runner = \"ecs\" or \"apprunner\""), "{local}");
    }
}
