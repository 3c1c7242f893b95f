//! The authorization page's HTML: the consent page (the application, the
//! scopes it asks for, who is signed in or a sign-in form, Approve and
//! Deny) and the page that explains an error. Plain HTML and one inline
//! style sheet, whose hash the page's `Content-Security-Policy` names: no
//! script at all. Every value put into the page is HTML-escaped
//! ([`escape`]), in text and in (always double-quoted) attributes alike.
//!
//! The flows that fill these pages are in `page`; this module only renders.

use std::fmt::Write as _;

/// The page's whole style sheet, inline (its hash is in the CSP).
const CSS: &str = "\
*{box-sizing:border-box}\
body{margin:0;min-height:100vh;display:flex;align-items:center;justify-content:center;\
background:#eef1f5;color:#1c2430;font:16px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif}\
main{width:100%;max-width:26rem;margin:1.5rem;padding:2rem;background:#fff;border-radius:12px;\
box-shadow:0 2px 12px rgba(20,30,50,.12)}\
h1{margin:0 0 .75rem;font-size:1.35rem;line-height:1.3}\
p{margin:.5rem 0}\
.brand{margin:0 0 1.25rem;font-size:.8rem;letter-spacing:.08em;text-transform:uppercase;color:#5b6675}\
ul{margin:.5rem 0 1rem;padding:0;list-style:none}\
li{margin:.3rem 0;padding:.45rem .7rem;background:#f3f6fa;border-radius:6px}\
code{font:.9em ui-monospace,SFMono-Regular,Menlo,monospace;word-break:break-all}\
label{display:block;margin:.9rem 0 .25rem;font-weight:600;font-size:.9rem}\
input{width:100%;padding:.55rem .7rem;font:inherit;border:1px solid #b8c1cc;border-radius:6px}\
input:focus{outline:2px solid #2f6fde;outline-offset:1px}\
.who{padding:.6rem .8rem;background:#f3f6fa;border-radius:6px}\
.error{padding:.6rem .8rem;color:#8a1c1c;background:#fdecec;border:1px solid #f3b8b8;border-radius:6px}\
.buttons{display:flex;gap:.75rem;margin-top:1.5rem}\
button{flex:1;padding:.65rem 1rem;font:inherit;font-weight:600;border-radius:6px;cursor:pointer}\
.approve{color:#fff;background:#2f6fde;border:1px solid #2f6fde}\
.deny{color:#1c2430;background:#fff;border:1px solid #b8c1cc}\
.note{margin-top:1.25rem;font-size:.85rem;color:#5b6675}";

/// `'sha256-…'`: the CSP source that allows exactly [`CSS`].
pub(super) fn style_source() -> String {
    use base64::Engine as _;
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(CSS.as_bytes());
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

/// `s` as HTML text or as a double-quoted attribute value: `&`, `<`, `>`,
/// `"` and `'` become character references.
pub(super) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// What the consent page shows.
pub(super) struct Consent<'a> {
    /// Where the form posts (the authorization endpoint's path).
    pub(super) action: &'a str,
    /// The application's name.
    pub(super) app: &'a str,
    /// The scopes it asks for.
    pub(super) scopes: Vec<&'a str>,
    /// Where Approve and Deny send the user.
    pub(super) redirect: &'a str,
    /// The user a trusted proxy signed in (no sign-in form then).
    pub(super) user: Option<&'a str>,
    /// The username to fill in again after a failed sign-in.
    pub(super) username: &'a str,
    /// Why the last sign-in failed.
    pub(super) error: Option<&'a str>,
    /// The request, carried to the POST (and the CSRF token).
    pub(super) hidden: Vec<(&'a str, &'a str)>,
}

fn head(out: &mut String, title: &str) {
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"referrer\" content=\"no-referrer\">\n<title>{}</title>\n\
         <style>{CSS}</style>\n</head>\n<body>\n<main>\n<p class=\"brand\">Warden</p>\n",
        escape(title)
    );
}

const TAIL: &str = "</main>\n</body>\n</html>\n";

/// The consent page.
pub(super) fn consent(c: &Consent<'_>) -> String {
    let app = escape(c.app);
    let mut out = String::with_capacity(4096);
    head(&mut out, &format!("Authorize {}", c.app));
    let _ = writeln!(out, "<h1>Authorize {app}</h1>");
    if c.scopes.is_empty() {
        let _ = writeln!(
            out,
            "<p><strong>{app}</strong> asks for access to your account.</p>"
        );
    } else {
        let _ = writeln!(
            out,
            "<p><strong>{app}</strong> asks for access to your account, with these scopes:</p>\n<ul>"
        );
        for s in &c.scopes {
            let _ = writeln!(out, "<li><code>{}</code></li>", escape(s));
        }
        out.push_str("</ul>\n");
    }
    if let Some(e) = c.error {
        let _ = writeln!(out, "<p class=\"error\" role=\"alert\">{}</p>", escape(e));
    }
    let _ = writeln!(
        out,
        "<form method=\"post\" action=\"{}\">",
        escape(c.action)
    );
    for (name, value) in &c.hidden {
        let _ = writeln!(
            out,
            "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
            escape(name),
            escape(value)
        );
    }
    match c.user {
        Some(user) => {
            let _ = writeln!(
                out,
                "<p class=\"who\">Signed in as <strong>{}</strong></p>",
                escape(user)
            );
        }
        None => {
            let _ = writeln!(
                out,
                "<label for=\"username\">Username</label>\n\
                 <input id=\"username\" name=\"username\" autocomplete=\"username\" value=\"{}\" required autofocus>\n\
                 <label for=\"password\">Password</label>\n\
                 <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>",
                escape(c.username)
            );
        }
    }
    // Approve first: the button Enter presses in a field.
    out.push_str(
        "<div class=\"buttons\">\n\
         <button type=\"submit\" name=\"page_action\" value=\"approve\" class=\"approve\">Approve</button>\n\
         <button type=\"submit\" name=\"page_action\" value=\"deny\" class=\"deny\" formnovalidate>Deny</button>\n\
         </div>\n</form>\n",
    );
    let _ = writeln!(
        out,
        "<p class=\"note\">Either way you go back to <code>{}</code>.</p>",
        escape(c.redirect)
    );
    out.push_str(TAIL);
    out
}

/// A page that says what went wrong (no form, no link onwards).
pub(super) fn message(title: &str, text: &str) -> String {
    let mut out = String::with_capacity(1536);
    head(&mut out, title);
    let _ = writeln!(out, "<h1>{}</h1>\n<p>{}</p>", escape(title), escape(text));
    out.push_str(TAIL);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_interpolated_is_escaped() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        let evil = "\"><script>alert(1)</script><x a='";
        let page = consent(&Consent {
            action: evil,
            app: evil,
            scopes: vec![evil],
            redirect: evil,
            user: Some(evil),
            username: evil,
            error: Some(evil),
            hidden: vec![(evil, evil)],
        });
        assert!(
            !page.contains("<script") && !page.contains("\"><"),
            "{page}"
        );
        assert_eq!(page.matches("&lt;script&gt;").count(), 10, "{page}");
        let page = consent(&Consent {
            user: None,
            ..Consent {
                action: "/oauth2/authorize",
                app: "a",
                scopes: vec![],
                redirect: "r",
                user: None,
                username: evil,
                error: None,
                hidden: vec![],
            }
        });
        assert!(page.contains("name=\"password\" type=\"password\""));
        assert!(!page.contains("<script"));
        let page = message(evil, evil);
        assert!(!page.contains("<script"));
    }

    #[test]
    fn no_script_and_the_style_hash_matches() {
        let page = message("t", "x");
        assert!(page.contains(&format!("<style>{CSS}</style>")));
        assert!(!page.contains("<script") && !page.contains(" on"));
        let source = style_source();
        assert!(
            source.starts_with("'sha256-") && source.len() == 53,
            "{source}"
        );
    }
}
