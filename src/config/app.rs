//! `target:` (SCIM), resolved into the app connector's settings: URL, token, limits, photos.

use super::*;

impl Resolver<'_> {
    pub(super) fn scim(&mut self, mut s: raw::RawScim) -> Option<ScimConfig> {
        let url = self.url("target.url", &s.url, &["http", "https"]);
        let token = self.required_secret(
            "target.token",
            s.token.as_deref(),
            s.token_file.as_deref(),
            "the SCIM bearer token is required: `token_file: /path` or `token: \"${ENV}\"`",
        );
        self.warn_plain_http(url.as_ref());
        let ca_file = self.ca_file("target.ca_file", s.ca_file.as_deref());
        let concurrency = s.concurrency.unwrap_or(4);
        if !(1..=64).contains(&concurrency) {
            self.problem("target.concurrency", "must be between 1 and 64");
        }
        let rate_limit = s.rate_limit.as_deref().and_then(|r| self.rate(r));
        let timeout = self.duration(
            "target.timeout",
            s.timeout.as_deref(),
            std::time::Duration::from_secs(30),
        );
        let page_size = self.page_size(s.page_size, s.max_page);
        let deprovision = self.deprovision(s.deprovision.as_deref());
        let list = self.list_mode(s.list.as_deref());
        let full_every = self.duration(
            "target.full_every",
            s.full_every.as_deref(),
            crate::app::settings::DEFAULT_FULL_EVERY,
        );
        if s.group_patch_max_members == Some(0) {
            self.problem("target.group_patch_max_members", "must be at least 1");
        }
        let rate_limits = s
            .rate_limits
            .take()
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(scope, rate)| self.method_rate(&scope, &rate))
            .collect();
        let photo = self.photo_upload(s.photo, url.as_ref());
        let photo_max_bytes = self.photo_max_bytes(s.photo_max_bytes);
        let proxy = self.proxy("target.proxy", s.proxy.as_deref());
        let max_response_bytes = self.size(
            "target.max_response_bytes",
            s.max_response_bytes,
            crate::http::DEFAULT_MAX_RESPONSE,
            1 << 30,
        );
        let max_accounts = s.max_accounts.unwrap_or(DEFAULT_MAX_ITEMS);
        if max_accounts == 0 {
            self.problem("target.max_accounts", "must be at least 1");
        }
        Some(ScimConfig {
            url: url?,
            token: token?,
            ca_file,
            concurrency,
            rate_limit,
            timeout,
            page_size,
            max_retries: s.max_retries.unwrap_or(5),
            photo,
            photo_max_bytes,
            proxy,
            max_response_bytes,
            max_accounts,
            profile: s.profile,
            deprovision,
            deletes: s.deletes.unwrap_or(true),
            group_patch_max_members: s.group_patch_max_members,
            member_ref: s.member_ref,
            rate_limits,
            list,
            full_every,
            etags: s.etags.unwrap_or(true),
        })
    }

    /// A bearer token sent in clear text is worth a warning (not an error: a lab app).
    fn warn_plain_http(&mut self, url: Option<&Url>) {
        if let Some(u) = url {
            let loopback = matches!(u.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
            if u.scheme() == "http" && !loopback {
                self.warnings.push(format!("target.url: {u} is plain HTTP off loopback: the bearer token travels in clear text"));
            }
        }
    }

    /// `target.page_size` capped by the app's `max_page` (a profile's, say).
    fn page_size(&mut self, page_size: Option<u32>, max_page: Option<u32>) -> u32 {
        let page_size = page_size.unwrap_or(500);
        if !(0..=10_000).contains(&page_size) {
            self.problem(
                "target.page_size",
                "must be between 0 and 10000 (0: ask for no page size, for apps that fail on `count`)",
            );
        }
        match max_page {
            Some(0) => {
                self.problem(
                    "target.max_page",
                    "must be at least 1 (page_size: 0 asks for no page size)",
                );
                page_size
            }
            Some(max) if page_size == 0 || page_size > max => max,
            _ => page_size,
        }
    }

    fn deprovision(&mut self, text: Option<&str>) -> Deprovision {
        match text {
            None | Some("patch-active") => Deprovision::PatchActive,
            Some("delete") => Deprovision::Delete,
            Some("none") => Deprovision::None,
            Some(other) => {
                self.problem(
                    "target.deprovision",
                    format!("`{other}`: use `patch-active` (PATCH active=false), `delete` (the app has no suspension) or `none` (hold leavers for an operator)"),
                );
                Deprovision::PatchActive
            }
        }
    }

    fn list_mode(&mut self, text: Option<&str>) -> ListMode {
        match text {
            None | Some("full") => ListMode::Full,
            Some("active-only") => ListMode::ActiveOnly,
            Some("filter-only") => ListMode::FilterOnly,
            Some(other) => {
                self.problem(
                    "target.list",
                    format!("`{other}`: use `full` (GET /Users lists every account), `active-only` (it hides deactivated ones) or `filter-only` (accounts are looked up one by one)"),
                );
                ListMode::Full
            }
        }
    }

    /// One `target.rate_limits` entry: `GET: 1000/m`, `DELETE: 20/30s`, `writes: 10/s`.
    fn method_rate(&mut self, scope: &str, rate: &str) -> Option<RateLimit> {
        let key = format!("target.rate_limits.{scope}");
        let scope = match scope {
            "all" => LimitScope::All,
            "writes" => LimitScope::Writes,
            m if ["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&m) => {
                LimitScope::Method(m.parse().ok()?)
            }
            other => {
                self.problem(&key, format!("`{other}` is no method: use GET, POST, PUT, PATCH, DELETE, `writes` (all but GET) or `all`"));
                return None;
            }
        };
        let parsed = rate.split_once('/').and_then(|(n, per)| {
            let count: u32 = n.trim().parse().ok().filter(|n| *n > 0)?;
            let per = per.trim();
            let per = match per {
                "s" | "m" | "h" => format!("1{per}"),
                p => p.to_string(),
            };
            let per = humantime::parse_duration(&per).ok()?;
            (!per.is_zero()).then_some(RateLimit { scope, count, per })
        });
        if parsed.is_none() {
            self.problem(
                &key,
                format!("`{rate}`: write requests per time, e.g. `20/30s`, `600/m`"),
            );
        }
        parsed
    }

    pub(super) fn photo_upload(
        &mut self,
        raw: Option<raw::RawPhotoUpload>,
        app: Option<&Url>,
    ) -> PhotoUpload {
        use raw::RawPhotoUpload as R;
        let http = |method: reqwest::Method, url: String| PhotoUpload::Http { method, url };
        match raw {
            None => PhotoUpload::Scim,
            Some(R::Named(n)) if n == "scim" => PhotoUpload::Scim,
            Some(R::Named(n)) if n == "none" => PhotoUpload::None,
            Some(R::Http(h)) => match (h.put, h.post) {
                (Some(url), None) => self
                    .photo_url(url, app.filter(|_| !h.allow_other_origin))
                    .map_or(PhotoUpload::None, |u| http(reqwest::Method::PUT, u)),
                (None, Some(url)) => self
                    .photo_url(url, app.filter(|_| !h.allow_other_origin))
                    .map_or(PhotoUpload::None, |u| http(reqwest::Method::POST, u)),
                _ => {
                    self.problem("target.photo", "give one of `put:` or `post:` with a URL template such as \"{url}/Users/{id}/photo\"");
                    PhotoUpload::None
                }
            },
            Some(R::Named(other)) => {
                self.problem(
                    "target.photo",
                    format!("`{other}`: use `scim`, `none`, or `{{ put: \"{{url}}/Users/{{id}}/photo\" }}`"),
                );
                PhotoUpload::None
            }
        }
    }

    /// A photo URL template: it must name `{id}`, be a URL once filled in, and stay on the
    /// app's origin (`target.url`): photos and the token go nowhere else.
    pub(super) fn photo_url(&mut self, template: String, app: Option<&Url>) -> Option<String> {
        if !template.contains("{id}") {
            self.problem(
                "target.photo",
                format!("`{template}` must contain `{{id}}` (the account id)"),
            );
            return None;
        }
        let base = app.map_or("https://app.example".to_string(), |u| {
            u.as_str().trim_end_matches('/').to_string()
        });
        let sample = template.replace("{url}", &base).replace("{id}", "x");
        match Url::parse(&sample) {
            Ok(u) if app.is_some_and(|a| a.origin() != u.origin()) => {
                self.problem("target.photo", format!("`{template}` points to {}, not the app's origin (target.url); idsync sends photos and its token only to target.url: write the template as \"{{url}}/...\", or add allow_other_origin: true if the app really takes photos there", u.origin().ascii_serialization()));
                None
            }
            Ok(u) if matches!(u.scheme(), "http" | "https") => Some(template),
            _ => {
                self.problem("target.photo", format!("`{template}` is not an http(s) URL template such as \"{{url}}/Users/{{id}}/photo\""));
                None
            }
        }
    }

    pub(super) fn photo_max_bytes(&mut self, raw: Option<serde_yaml::Value>) -> usize {
        self.size(
            "target.photo_max_bytes",
            raw,
            crate::photo::DEFAULT_MAX_BYTES,
            64 * 1024 * 1024,
        )
    }
}
