//! The portal's frame: the page layout (header, navigation, main landmark), the error page, the
//! embedded stylesheet and script, and small formatting helpers (sizes, times, short digests).
//! Templates are maud, compiled into the binary; maud escapes every interpolated value, so no
//! page builds HTML from strings. This module reads nothing: pages hand it what to show.

use super::Ctx;
use maud::{html, Markup, DOCTYPE};

pub const STYLE: &str = include_str!("static/style.css");
pub const SCRIPT: &str = include_str!("static/portal.js");

/// A whole page: `title` in the tab and as the one `<h1>`, `body` inside `<main>`.
pub fn page(ctx: &Ctx, title: &str, body: Markup) -> Markup {
    let user = ctx.user();
    let admin = ctx.who.caller.is_admin();
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Stowage" }
                link rel="stylesheet" href="/-/style.css";
                script src="/-/portal.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/projects" { "Stowage" }
                    nav aria-label="Main" {
                        ul {
                            @if user.is_some() {
                                li { a href="/projects" { "Projects" } }
                                li { a href="/trash" { "Trash" } }
                                li { a href="/tokens" { "Access tokens" } }
                                li { a href="/teams" { "Teams" } }
                                @if admin {
                                    li { a href="/admin/users" { "Users" } }
                                    li { a href="/audit" { "Audit log" } }
                                }
                            } @else {
                                li { a href="/projects" { "Public projects" } }
                            }
                        }
                    }
                    div.who {
                        @if let Some(u) = user {
                            span { "Signed in as " strong { (u) } }
                            form method="post" action="/logout" {
                                (csrf(ctx))
                                button.link type="submit" { "Sign out" }
                            }
                        } @else {
                            a href="/login" { "Sign in" }
                        }
                    }
                }
                main id="main" tabindex="-1" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// The hidden CSRF field every form of a session carries.
pub fn csrf(ctx: &Ctx) -> Markup {
    html! {
        @if let Some(s) = &ctx.session {
            input type="hidden" name="csrf" value=(s.csrf);
        }
    }
}

/// The error page: what went wrong and what to do about it, never internals.
pub fn error_page(ctx: &Ctx, status: http::StatusCode, message: &str) -> Markup {
    let title = match status.as_u16() {
        400 => "That request could not be used",
        401 => "Sign in to see this",
        403 => "Not allowed",
        404 => "Not found",
        409 => "That conflicts with the current state",
        413 => "Too much data",
        429 => "Too many requests",
        503 | 507 => "The registry cannot do this right now",
        _ => "Something went wrong",
    };
    let next = ctx.path.clone();
    page(
        ctx,
        title,
        html! {
            p.error role="alert" { (message) }
            p {
                @if status == http::StatusCode::UNAUTHORIZED {
                    a.button href={ "/login?next=" (encode(&next)) } { "Sign in" } " "
                }
                a href="/projects" { "Back to projects" }
                @if status.is_server_error() { " · The registry log has the details; try again in a moment." }
            }
        },
    )
}

/// A `<code>` with a copy button (the button needs JavaScript; the text is selectable without).
pub fn copyable(text: &str, label: &str) -> Markup {
    html! {
        span.copyable {
            code { (text) }
            button.copy type="button" data-copy=(text) aria-label={ "Copy " (label) } hidden { "Copy" }
        }
    }
}

/// A digest shown short (algorithm and 12 hex digits), the full digest on hover and for copying.
pub fn short_digest(d: &str) -> Markup {
    let short = match d.split_once(':') {
        Some((alg, hex)) if hex.len() > 12 => format!("{alg}:{}", &hex[..12]),
        _ => d.to_string(),
    };
    html! {
        span.copyable {
            code title=(d) data-digest=(d) { (short) }
            button.copy type="button" data-copy=(d) aria-label={ "Copy digest " (d) } hidden { "Copy" }
        }
    }
}

/// A destructive action: a form with a required confirmation checkbox (checked on the server
/// too), so it needs no JavaScript.
pub fn confirm_form(ctx: &Ctx, action: &str, what: &str, button: &str, id: &str) -> Markup {
    html! {
        form.confirm method="post" action=(action) {
            (csrf(ctx))
            input type="checkbox" name="confirm" value="yes" id=(id) required;
            label for=(id) { (what) }
            " "
            button.danger type="submit" { (button) }
        }
    }
}

/// Bytes as people read them (binary units).
pub fn size(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// A Unix time as UTC `YYYY-MM-DD HH:MM`, in a `<time>` element.
pub fn time(secs: i64) -> Markup {
    let t = time::OffsetDateTime::from_unix_timestamp(secs).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let iso = t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
    let shown =
        format!("{:04}-{:02}-{:02} {:02}:{:02} UTC", t.year(), u8::from(t.month()), t.day(), t.hour(), t.minute());
    html! { time datetime=(iso) { (shown) } }
}

/// Percent-encodes a query value or path segment (everything but unreserved characters).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(size(0), "0 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(5 << 30), "5.0 GiB");
        assert_eq!(encode("a b/ü?&"), "a%20b/%C3%BC%3F%26");
        assert_eq!(time(0).into_string(), r#"<time datetime="1970-01-01T00:00:00Z">1970-01-01 00:00 UTC</time>"#);
        let d = format!("sha256:{}", "ab".repeat(32));
        assert!(short_digest(&d).into_string().contains(">sha256:abababababab<"));
    }
}
