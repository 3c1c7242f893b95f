//! The decision graph as Graphviz DOT (`warden graph`), labelled with the
//! policy's own names: the dispatch, one entry per rule (its label) and the
//! "no rule matches" entry, the shared node chains (token endpoint with its
//! path, authentication with the scope's consumers, `allow` with the
//! consumers it admits, forward), and the outcomes each node can lead to
//! (token reply, 401, 403, forward). [`DecisionGraph::path_dot`] draws the
//! same graph with the path one request took highlighted and its decision
//! attached (`warden explain --graph`).

use std::fmt::Write as _;

use super::eval::PathTrace;
use super::{DecisionGraph, Node, NodeId};
use crate::{Decision, ForwardRef, Request, Services};

/// How a highlighted element is drawn.
const HOT: &str = ", color=\"#d62728\", fontcolor=\"#d62728\", penwidth=2.5";

/// DOT's quoted-string escapes.
fn esc(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// At most `max` names, then how many more.
fn names<'a>(all: impl Iterator<Item = &'a str>, max: usize) -> String {
    let all: Vec<&str> = all.collect();
    let mut out = all.iter().take(max).copied().collect::<Vec<_>>().join(", ");
    if all.len() > max {
        let _ = write!(out, ", … (+{})", all.len() - max);
    }
    if out.is_empty() { "nobody".into() } else { out }
}

impl DecisionGraph {
    /// The graph in Graphviz DOT form.
    pub fn to_dot(&self) -> String {
        self.dot(None)
    }

    /// The graph with the path `req` takes highlighted, ending at its
    /// decision (evaluated as `decide` would, without the memo).
    pub fn path_dot(&self, req: &Request<'_>, services: &dyn Services) -> String {
        let mut path = PathTrace::default();
        let decision = self.evaluate(req, services, None, &mut path);
        self.dot(Some((&path, &decision)))
    }

    fn node_label(&self, node: &Node) -> String {
        match node {
            Node::TokenEndpoint { scope, .. } => {
                let s = &self.scopes[*scope as usize];
                let path = if s.settings.dialect == crate::model::Dialect::Kong {
                    "…/oauth2/token, …/oauth2/authorize"
                } else {
                    s.settings.auth_path.as_str()
                };
                format!("token endpoint\n…{path}\n({})", s.label)
            }
            Node::Authenticate { scope, .. } => {
                let s = &self.scopes[*scope as usize];
                let mut ids: Vec<_> = s.clients.iter().map(|c| c.consumer).collect();
                ids.sort_unstable();
                ids.dedup();
                let who = names(ids.iter().map(|&c| self.consumer_name(c)), 6);
                format!("authenticate: a token of\n{who}\n({})", s.label)
            }
            Node::Authorize { set, .. } => {
                let set = &self.sets[*set as usize];
                let who = (0..self.consumer_names.len())
                    .filter(|&c| set.contains(c as crate::model::ConsumerId))
                    .map(|c| &*self.consumer_names[c]);
                format!("allow\n{}", names(who, 6))
            }
            Node::Forward => "forward".into(),
        }
    }

    fn dot(&self, path: Option<(&PathTrace, &Decision<ForwardRef<'_>>)>) -> String {
        let visited = |id: NodeId| path.is_some_and(|(p, _)| p.nodes.contains(&id));
        let hot = |on: bool| if on { HOT } else { "" };
        // An edge is on the path when both its ends are, one after the other.
        let step = |from: NodeId, to: NodeId| {
            path.is_some_and(|(p, _)| p.nodes.windows(2).any(|w| w == [from, to]))
        };
        let last = path.and_then(|(p, _)| p.nodes.last().copied());
        let mut out = String::from(
            "digraph warden {\n  rankdir=LR;\n  node [shape=box, style=rounded, fontname=\"Helvetica\"];\n  edge [fontname=\"Helvetica\", fontsize=10];\n",
        );
        let dispatched = path.is_some_and(|(p, _)| p.dispatched);
        let _ = writeln!(
            out,
            "  request [shape=oval, label=\"request\"{}];",
            hot(path.is_some())
        );
        let _ = writeln!(
            out,
            "  dispatch [shape=diamond, label=\"first matching rule\\n(route, service, domain)\"{}];\n  request -> dispatch [{}];",
            hot(dispatched),
            hot(dispatched).trim_start_matches(", ")
        );
        for (pos, entry) in self.rule_entry.iter().enumerate() {
            let on = path.is_some_and(|(p, _)| p.dispatched && p.rule == Some(pos as _));
            let label = esc(&self.rule_names.get(pos).label());
            let _ = writeln!(
                out,
                "  r{pos} [shape=note, label=\"{label}\"{}];\n  dispatch -> r{pos} [{}];\n  r{pos} -> n{entry} [{}];",
                hot(on),
                hot(on).trim_start_matches(", "),
                hot(on).trim_start_matches(", ")
            );
        }
        let on = path.is_some_and(|(p, _)| p.dispatched && p.rule.is_none());
        let _ = writeln!(
            out,
            "  unmatched [shape=note, label=\"no rule matches\\n(global_auth)\"{}];\n  dispatch -> unmatched [{}];\n  unmatched -> n{} [{}];",
            hot(on),
            hot(on).trim_start_matches(", "),
            self.unmatched_entry,
            hot(on).trim_start_matches(", ")
        );
        let (mut to_token, mut to_401, mut to_403) = (false, false, false);
        for (id, node) in self.nodes.iter().enumerate() {
            let id = id as NodeId;
            let label = esc(&self.node_label(node));
            let shape = if matches!(node, Node::Forward) {
                ", shape=oval"
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "  n{id} [label=\"{label}\"{shape}{}];",
                hot(visited(id))
            );
            let ends_here = last == Some(id);
            match *node {
                Node::TokenEndpoint { next, .. } => {
                    to_token = true;
                    let _ = writeln!(
                        out,
                        "  n{id} -> n{next} [label=\"other paths\"{}];",
                        hot(step(id, next))
                    );
                    let _ = writeln!(
                        out,
                        "  n{id} -> token [label=\"token path\", style=dashed];"
                    );
                }
                Node::Authenticate { next, .. } => {
                    to_401 = true;
                    let _ = writeln!(
                        out,
                        "  n{id} -> n{next} [label=\"valid token\"{}];",
                        hot(step(id, next))
                    );
                    let _ = writeln!(
                        out,
                        "  n{id} -> unauthorized [label=\"none or invalid\", style=dashed];"
                    );
                }
                Node::Authorize { next, .. } => {
                    to_403 = true;
                    let _ = writeln!(
                        out,
                        "  n{id} -> n{next} [label=\"listed\"{}];",
                        hot(step(id, next))
                    );
                    let _ = writeln!(
                        out,
                        "  n{id} -> forbidden [label=\"not listed\", style=dashed];"
                    );
                }
                Node::Forward => {}
            }
            if ends_here && let Some((_, decision)) = path {
                let _ = writeln!(
                    out,
                    "  decision [shape=oval, style=filled, fillcolor=\"#fde0dc\", label=\"{}\"{HOT}];\n  n{id} -> decision [{}];",
                    esc(&decision_label(decision)),
                    HOT.trim_start_matches(", ")
                );
            }
        }
        for (on, node, label) in [
            (to_token, "token", "token reply"),
            (to_401, "unauthorized", "401"),
            (to_403, "forbidden", "403"),
        ] {
            if on {
                let _ = writeln!(out, "  {node} [shape=oval, label=\"{label}\"];");
            }
        }
        if let Some((p, decision)) = path
            && p.nodes.is_empty()
        {
            // Decided before any node (a published document, a path refused).
            let _ = writeln!(
                out,
                "  decision [shape=oval, style=filled, fillcolor=\"#fde0dc\", label=\"{}\"{HOT}];\n  request -> decision [{}];",
                esc(&decision_label(decision)),
                HOT.trim_start_matches(", ")
            );
        }
        out.push_str("}\n");
        out
    }
}

/// A decision in a few words.
fn decision_label(decision: &Decision<ForwardRef<'_>>) -> String {
    match decision {
        Decision::Forward(f) => format!(
            "forward\nconsumer {}\n{}",
            f.consumer.as_deref().unwrap_or("none"),
            f.upstream
                .map_or("default upstream".into(), |u| u.to_string())
        ),
        Decision::Reply(r) => format!("reply {}\n{}", r.status, r.reason),
        Decision::NeedBody { .. } => "read the body, decide again".into(),
        Decision::RefreshKeys { .. } => "fetch the JWK Set, decide again".into(),
        Decision::Fetch(_) => "introspect, decide again".into(),
    }
}
