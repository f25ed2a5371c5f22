"""Emails rendered from the package's Jinja templates: HTML autoescaped, plain text as written."""

from __future__ import annotations

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from notifier.domain.notices import Notice, RenderedEmail


class JinjaEmailRenderer:
    def __init__(self, *, app_url: str) -> None:
        self._app_url = app_url
        self._env = Environment(
            loader=PackageLoader("notifier", "templates"),
            # Only the HTML part is markup; values from events (the failure detail) must not become tags.
            autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )

    def render(self, notice: Notice) -> RenderedEmail:
        # One pair of templates per kind, named after it (``connection_lost.txt`` / ``.html``).
        name = notice.kind.value
        context = {"notice": notice, "app_url": self._app_url}
        return RenderedEmail(
            subject=notice.subject,
            text=self._env.get_template(f"{name}.txt").render(context),
            html=self._env.get_template(f"{name}.html").render(context),
        )
