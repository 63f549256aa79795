//! The listener's settings that `systemctl reload` (SIGHUP) may change while `serve` goes on:
//! `readiness.max_lag`, `api_max_body:`, `console:` and `trusted_proxies:`. The routes and the
//! accept loop read the current [`Settings`] at each request, so a reload applies to the next
//! request; a request already being served keeps what it read. `listen:` itself belongs to the
//! bound socket and still needs a restart.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::client_addr::TrustedProxies;
use crate::config::{Config, ConsoleAccess};

/// What the routes and the accept loop read from the config.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// `readiness.max_lag`.
    pub max_lag: Option<Duration>,
    /// `api_max_body:`: the largest body an API endpoint flow accepts.
    pub api_max_body: usize,
    /// `console:`: who may open the web console (`None`: off).
    pub console: Option<ConsoleAccess>,
    /// `trusted_proxies:`: whose `X-Forwarded-For` names a request's client.
    pub trusted: TrustedProxies,
}

impl Settings {
    pub fn of(config: &Config) -> Settings {
        Settings {
            max_lag: config.max_lag,
            api_max_body: config.api_max_body,
            console: config.console.clone(),
            trusted: config.trusted_proxies.clone(),
        }
    }
}

/// The current [`Settings`], shared by the routes, the accept loop and `serve`'s reload: a
/// reader gets the whole old set or the whole new one, never a mix.
#[derive(Debug, Clone)]
pub struct LiveSettings(Arc<RwLock<Arc<Settings>>>);

impl LiveSettings {
    pub fn new(settings: Settings) -> LiveSettings {
        LiveSettings(Arc::new(RwLock::new(Arc::new(settings))))
    }

    /// The settings now.
    pub fn get(&self) -> Arc<Settings> {
        // A poisoned lock still holds a whole value: each write replaces it in one assignment.
        match self.0.read() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces the settings with those of `config`; the names of the settings that changed,
    /// in config order.
    pub fn apply(&self, config: &Config) -> Vec<&'static str> {
        let new = Settings::of(config);
        let old = self.get();
        let changed = [
            ("readiness", old.max_lag != new.max_lag),
            ("api_max_body", old.api_max_body != new.api_max_body),
            ("console", old.console != new.console),
            ("trusted_proxies", old.trusted != new.trusted),
        ]
        .into_iter()
        .filter_map(|(name, changed)| changed.then_some(name))
        .collect();
        let new = Arc::new(new);
        match self.0.write() {
            Ok(mut s) => *s = new,
            Err(poisoned) => *poisoned.into_inner() = new,
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apply_swaps_the_whole_set_and_names_what_changed() {
        let mut config = Config::with_state_dir(std::path::Path::new("/nonexistent"));
        let live = LiveSettings::new(Settings::of(&config));
        let before = live.get();
        assert!(live.apply(&config).is_empty());

        config.api_max_body = before.api_max_body * 2;
        config.console = Some(ConsoleAccess::Loopback);
        config.trusted_proxies = TrustedProxies::parse(&["127.0.0.1".to_string()]).unwrap();
        assert_eq!(
            live.apply(&config),
            ["api_max_body", "console", "trusted_proxies"]
        );
        let after = live.get();
        assert_eq!(*after, Settings::of(&config));
        // What a request read before the reload stays as it was.
        assert_eq!(before.api_max_body * 2, after.api_max_body);
        assert_eq!(before.console, None);
    }
}
