//! Which image a run's migration uses: `--image`, then `FERRY_IMAGE`, then
//! `migration.image` in ferry.toml; none of them: the one the task definition
//! (ecs) or the service (apprunner) pins.

use super::CommandError;
use ferry_core::config::{EnvConfig, RunnerKind, check_image};

/// The image chosen and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chosen {
    pub image: String,
    pub from: &'static str,
}

/// Choose, check (a malformed reference is exit 2), and return the environment
/// as the run sees it: `migration.image` set to the choice.
pub fn apply(env: &EnvConfig, flag: Option<&str>) -> Result<(EnvConfig, Option<Chosen>), CommandError> {
    let from_env = std::env::var("FERRY_IMAGE").ok();
    let chosen = choose(flag, from_env.as_deref(), env.migration.image.as_deref());
    if let Some(c) = &chosen {
        check_image(&c.image).map_err(|e| CommandError::Usage(format!("{} {e}", c.from)))?;
        if env.migration.runner == RunnerKind::Command {
            return Err(CommandError::Usage(format!(
                "{} sets an image ({}), but environment {} runs a local command (runner = \"command\"): images apply to \
                 runner = \"ecs\" and \"apprunner\"; unset it for this environment",
                c.from, c.image, env.name
            )));
        }
    }
    let mut env = env.clone();
    env.migration.image = chosen.as_ref().map(|c| c.image.clone());
    Ok((env, chosen))
}

fn choose(flag: Option<&str>, env_var: Option<&str>, config: Option<&str>) -> Option<Chosen> {
    let given = |v: Option<&str>| v.filter(|s| !s.is_empty()).map(String::from);
    given(flag)
        .map(|image| Chosen { image, from: "--image" })
        .or_else(|| given(env_var).map(|image| Chosen { image, from: "FERRY_IMAGE" }))
        .or_else(|| given(config).map(|image| Chosen { image, from: "migration.image" }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_wins_over_the_environment_which_wins_over_the_config() {
        let c = |f, e, k| choose(f, e, k).map(|c| (c.image, c.from));
        assert_eq!(c(Some("a:1"), Some("b:1"), Some("c:1")), Some(("a:1".into(), "--image")));
        assert_eq!(c(None, Some("b:1"), Some("c:1")), Some(("b:1".into(), "FERRY_IMAGE")));
        // An empty FERRY_IMAGE (an unset workflow input) means "not given".
        assert_eq!(c(None, Some(""), Some("c:1")), Some(("c:1".into(), "migration.image")));
        assert_eq!(c(None, None, None), None);
    }
}
