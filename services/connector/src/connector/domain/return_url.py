"""Where a browser may be sent back after the Stripe OAuth leg: only to hosts we were told to trust.

An open redirect would let anyone craft a link that passes through our authorization flow and lands
on a page of their own, looking like ours. So a ``return_url`` must be ``https`` (``http`` only on
the local machine) and its host one of ``RETURN_URL_HOSTS``; it carries no user name or password.
Our own address (``PUBLIC_BASE_URL``'s origin, where the reference onboarding page lives) is always
allowed, whatever its scheme: going back there opens nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from connector.domain.refusals import ConnectionRefused, RefusalCode

#: Hosts where plain ``http`` is allowed: the developer's own machine.
LOCAL_HOSTS: Final = frozenset({"localhost", "127.0.0.1"})
MAX_RETURN_URL_LENGTH: Final = 2048


def invalid_return_url() -> ConnectionRefused:
    return ConnectionRefused(
        RefusalCode.INVALID_RETURN_URL,
        "The return_url must be an https address on one of the sites this service was set up to send "
        "people back to. Nothing was saved; use your application's address.",
    )


@dataclass(frozen=True, slots=True)
class ReturnUrlPolicy:
    """The hosts a ``return_url`` may point to (lower case, no port)."""

    hosts: frozenset[str]
    #: ``scheme://host[:port]`` of our own pages (lower case).
    own_origin: str | None = None

    @classmethod
    def of(cls, hosts: Iterable[str], *, own_base_url: str | None = None) -> ReturnUrlPolicy:
        return cls(
            frozenset(host.strip().lower() for host in hosts if host.strip()),
            None if own_base_url is None else _origin(own_base_url),
        )

    @classmethod
    def from_setting(
        cls, return_url_hosts: str | None, *, public_base_url: str, app_base_url: str
    ) -> ReturnUrlPolicy:
        """``RETURN_URL_HOSTS`` (comma-separated), else the hosts of the two base URLs."""
        if return_url_hosts is not None and return_url_hosts.strip():
            hosts: Iterable[str] = return_url_hosts.split(",")
        else:
            hosts = (urlsplit(url).hostname or "" for url in (public_base_url, app_base_url))
        return cls.of(hosts, own_base_url=public_base_url)

    def check(self, url: str) -> str:
        """``url`` unchanged when it may be used, else :func:`invalid_return_url`."""
        if len(url) > MAX_RETURN_URL_LENGTH or any(ord(char) <= 32 or ord(char) == 127 for char in url):
            raise invalid_return_url()
        try:
            parts = urlsplit(url)
            host = parts.hostname
            parts.port  # noqa: B018 - a malformed port raises here
        except ValueError as error:
            raise invalid_return_url() from error
        if host is None or parts.username is not None or parts.password is not None or "\\" in url:
            raise invalid_return_url()
        if self.own_origin is not None and _origin(url) == self.own_origin:
            return url
        secure = parts.scheme == "https" or (parts.scheme == "http" and host in LOCAL_HOSTS)
        if not secure or host not in self.hosts:
            raise invalid_return_url()
        return url


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()
