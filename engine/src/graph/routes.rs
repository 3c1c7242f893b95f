//! Picking a Kong-style route (`hosts`, `paths`) for a request, the way
//! Kong's router orders them (its documented order; see
//! `docs/kong-router.md`): a route that matches on more fields (hosts and
//! paths) beats one that matches on one; then a route whose hosts are all
//! plain names beats one with a wildcard; then the longest matching path;
//! then the route declared first (Kong breaks that tie by route id).
//! Hosts compare without port and case-insensitively; paths are plain
//! string prefixes (`/a` matches `/ab`), as in Kong.

use crate::model::DomainPattern;

/// A route's Kong-style matchers, compiled.
#[derive(Debug, Default, Clone, Copy)]
pub struct RouteMatch<'r> {
    pub hosts: &'r [DomainPattern],
    pub paths: &'r [Box<str>],
    /// Segment-boundary prefix (`path_prefix`), when the route has one.
    pub path_prefix: Option<&'r str>,
}

impl RouteMatch<'_> {
    /// Whether the route can be picked by host and path at all.
    pub fn routable(&self) -> bool {
        !self.hosts.is_empty() || !self.paths.is_empty() || self.path_prefix.is_some()
    }

    /// The route's rank for this request, if it matches: (fields matched,
    /// plain hosts only, matched path length).
    pub(crate) fn rank(&self, hostname: &str, path: &str) -> Option<(u8, bool, usize)> {
        if !self.routable() {
            return None;
        }
        let host_ok = self.hosts.is_empty() || self.hosts.iter().any(|h| host_matches(h, hostname));
        if !host_ok {
            return None;
        }
        let path_len = if let Some(p) = self.path_prefix {
            let boundary = path.len() == p.len()
                || p.ends_with('/')
                || path.as_bytes().get(p.len()) == Some(&b'/');
            (path.starts_with(p) && boundary).then_some(p.len())?
        } else if self.paths.is_empty() {
            0
        } else {
            self.paths
                .iter()
                .filter(|p| path.starts_with(&***p))
                .map(|p| p.len())
                .max()?
        };
        let has_path = self.path_prefix.is_some() || !self.paths.is_empty();
        let fields = u8::from(!self.hosts.is_empty()) + u8::from(has_path);
        let plain = !self.hosts.is_empty()
            && self
                .hosts
                .iter()
                .all(|h| matches!(h, DomainPattern::Exact(_)));
        Some((fields, plain, path_len))
    }
}

fn host_matches(pattern: &DomainPattern, hostname: &str) -> bool {
    match pattern {
        DomainPattern::Exact(h) => **h == *hostname,
        DomainPattern::Suffix(s) => hostname.len() > s.len() && hostname.ends_with(&**s),
        DomainPattern::Prefix(p) => hostname.len() > p.len() && hostname.starts_with(&**p),
    }
}

/// The best route for `hostname` and `path` among `routes` (index order is
/// declaration order, which breaks ties).
pub fn pick<'r>(
    routes: impl Iterator<Item = RouteMatch<'r>>,
    hostname: &str,
    path: &str,
) -> Option<u32> {
    let mut best: Option<((u8, bool, usize), u32)> = None;
    for (i, r) in routes.enumerate() {
        if let Some(rank) = r.rank(hostname, path)
            && best.is_none_or(|(b, _)| rank > b)
        {
            best = Some((rank, i as u32));
        }
    }
    best.map(|(_, i)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(hosts: &[DomainPattern], paths: &[&str]) -> (Vec<DomainPattern>, Vec<Box<str>>) {
        (hosts.to_vec(), paths.iter().map(|p| (*p).into()).collect())
    }

    #[test]
    fn kong_order() {
        use DomainPattern::*;
        let routes = [
            route(&[], &["/my-route"]),                       // 0
            route(&[], &["/my-route/hello"]),                 // 1
            route(&[Exact("route.com".into())], &[]),         // 2
            route(&[Suffix(".route.com".into())], &[]),       // 3
            route(&[Prefix("route.".into())], &[]),           // 4
            route(&[Exact("plain.route.com".into())], &[]),   // 5
            route(&[Suffix(".route.com".into())], &["/api"]), // 6
        ];
        let matchers = routes.iter().map(|(hosts, paths)| RouteMatch {
            hosts,
            paths,
            path_prefix: None,
        });
        let p = |h: &str, path: &str| pick(matchers.clone(), h, path);
        assert_eq!(p("x.org", "/my-route/hello/world"), Some(1));
        assert_eq!(p("x.org", "/my-route/world"), Some(0));
        assert_eq!(p("x.org", "/my-routes"), Some(0), "plain string prefix");
        assert_eq!(p("route.com", "/"), Some(2));
        assert_eq!(p("route.org", "/"), Some(4));
        assert_eq!(p("plain.route.com", "/"), Some(5));
        assert_eq!(p("foo.route.com", "/"), Some(3));
        assert_eq!(p("foo.route.com", "/api/x"), Some(6), "two fields beat one");
        assert_eq!(p("x.org", "/other"), None);
    }
}
