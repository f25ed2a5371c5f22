"""The few HTML pages of the fake Stripe's Connect OAuth: plain forms, no JavaScript."""

from __future__ import annotations

from html import escape

from fastapi.responses import HTMLResponse

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem;color:#1a1a1a}"
    "fieldset{border:1px solid #888;border-radius:6px;margin:1rem 0;padding:.5rem 1rem}"
    "label{display:block;padding:.4rem 0}"
    "button{font-size:1rem;padding:.6rem 1.2rem;margin-right:.5rem;border-radius:6px;border:1px solid #333}"
    "button[value=authorize]{background:#0a5cc2;color:#fff;border-color:#0a5cc2}"
    "button:focus{outline:3px solid #f5a623;outline-offset:2px}"
    ".note{color:#444;font-size:.9rem}"
)


def _document(title: str, body: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><main>{body}</main></body></html>"
    )


def page(status: int, title: str, message: str) -> HTMLResponse:
    """A small error or information page."""
    body = f'<h1>{escape(title)}</h1><p role="alert">{escape(message)}</p>'
    return HTMLResponse(_document(f"Sandbox Stripe — {title}", body), status_code=status)


def authorize_page(
    *,
    platform_name: str,
    client_id: str,
    redirect_uri: str,
    state: str,
    scope: str,
    accounts: list[tuple[str, str]],
    selected: str,
) -> HTMLResponse:
    """The consent screen: pick an account, then Authorize or Deny (a plain form POST)."""
    hidden = "".join(
        f'<input type="hidden" name="{name}" value="{escape(value)}">'
        for name, value in (
            ("client_id", client_id),
            ("redirect_uri", redirect_uri),
            ("state", state),
            ("scope", scope),
            ("response_type", "code"),
        )
    )
    choices = "".join(
        f'<label><input type="radio" name="account" value="{escape(account_id)}"'
        f"{' checked' if account_id == selected else ''}> {escape(name)} "
        f'<span class="note">({escape(account_id)})</span></label>'
        for account_id, name in accounts
    )
    access = "read and write" if scope == "read_write" else "read-only"
    title = f"Sandbox Stripe — Authorize {platform_name} to access your account"
    body = (
        f"<h1>Authorize {escape(platform_name)} to access your account</h1>"
        f"<p>{escape(platform_name)} is asking for {access} access to your Stripe data. "
        '<span class="note">This is the sandbox: no real Stripe account is involved.</span></p>'
        f'<form method="post" action="/oauth/authorize">{hidden}'
        f"<fieldset><legend>Account to connect</legend>{choices}</fieldset>"
        '<button type="submit" name="decision" value="authorize">Authorize access</button>'
        '<button type="submit" name="decision" value="deny">Deny</button>'
        "</form>"
    )
    return HTMLResponse(_document(title, body))
