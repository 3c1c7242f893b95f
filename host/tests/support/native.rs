//! The engine's borrowed view of an [`OwnedRequest`], for deciding the same
//! request natively beside the guest (tests and benchmarks compare the two).

use warden_host::OwnedRequest;

/// `req` as the engine's [`warden_engine::Request`], with `headers` from
/// [`OwnedRequest::header_pairs`].
pub fn engine_request<'a>(
    req: &'a OwnedRequest,
    headers: &'a [(&'a str, &'a str)],
) -> warden_engine::Request<'a> {
    warden_engine::Request {
        method: &req.method,
        scheme: &req.scheme,
        proxy_terminated: req.proxy_terminated,
        authority: &req.authority,
        path: &req.path,
        query: &req.query,
        headers,
        body: req.body.as_deref(),
        route: req.route.as_deref(),
        service: req.service.as_deref(),
        peer: req.peer.as_deref(),
        trusted_user: req.trusted_user.as_deref(),
        keys_refreshed: req.keys_refreshed,
        fetched: req.fetched.as_ref().map(|f| match f {
            warden_host::FetchOutcome::Response { status, body } => {
                warden_engine::Fetched::Response {
                    status: *status,
                    body,
                }
            }
            warden_host::FetchOutcome::Failed(why) => warden_engine::Fetched::Failed(why),
        }),
    }
}
