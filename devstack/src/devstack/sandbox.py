"""Starting the fake processors (``python -m sandbox``) and where they answer: the one place that knows.

The sandbox is written beside this package; only its command line, its URL layout and its sample
credentials matter here, and each can be changed without touching the rest of the stack: the
``SandboxLauncher`` defaults, or ``DEVSTACK_SANDBOX_ARGS`` (e.g. ``-m sandbox --port {stripe_port}``)
and the other ``DEVSTACK_SANDBOX_*`` variables.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from string import Formatter
from typing import Any, Final

from devstack.net import LOCALHOST, preferred_port
from devstack.processes import ProcessSpec, http_answers

SANDBOX_ENV_PREFIX: Final = "DEVSTACK_SANDBOX_"
#: Ports the run command prefers, so the URLs are the same every time.
DEFAULT_SANDBOX_PORTS: Final = {"stripe_port": 12111, "chargebee_port": 12112}
READY_TIMEOUT_S: Final = 60.0
_PORT_PLACEHOLDER: Final = re.compile(r"\{\w*port\}")


def _sample(name: str, fallback: str) -> str:
    """A sample constant of the sandbox (``sandbox.config``), or ``fallback`` when it has none."""
    try:
        from sandbox import config
    except ImportError:
        return fallback
    value = getattr(config, name, fallback)
    return value if isinstance(value, str) else fallback


@dataclass(frozen=True)
class SandboxEndpoints:
    """Where the services find the (fake) processors."""

    stripe_api_base: str
    stripe_connect_base: str
    chargebee_api_url_template: str


@dataclass(frozen=True)
class SampleCredentials:
    """The sandbox's sample site, keys and Connect platform credentials (test secrets of a fake)."""

    chargebee_site: str = field(default_factory=lambda: _sample("SAMPLE_CHARGEBEE_SITE", "acme-test"))
    chargebee_api_key: str = field(
        default_factory=lambda: _sample("SAMPLE_CHARGEBEE_KEY", "test_SandboxAcmeChargebeeKey0000000000acme")
    )
    stripe_api_key: str = field(
        default_factory=lambda: _sample(
            "SAMPLE_STRIPE_KEY", "sk_test_51SandboxAcmeSecretKey000000000000000000acme"
        )
    )
    stripe_client_id: str = field(
        default_factory=lambda: _sample("SAMPLE_STRIPE_CLIENT_ID", "ca_SandboxPlatformClientId00000000")
    )
    stripe_platform_secret_key: str = field(
        default_factory=lambda: _sample(
            "SAMPLE_STRIPE_PLATFORM_SECRET_KEY", "sk_test_51SandboxPlatformSecretKey00000000000000plat"
        )
    )


def _fill(template: str, values: Mapping[str, str | int]) -> str:
    """``template`` with each ``{name}`` of ``values`` replaced; other braces (``{site}``) stay."""
    filled = template
    for name, value in values.items():
        filled = filled.replace(f"{{{name}}}", str(value))
    if unknown := _PORT_PLACEHOLDER.findall(filled):
        raise ValueError(f"{template!r} names {unknown}, which the sandbox's args do not")
    return filled


@dataclass(frozen=True)
class SandboxLauncher:
    """How to start the sandbox and which of its URLs the services use.

    Every text may name ``{host}`` and ports ``{<name>_port}``; each port named in ``args`` gets a free
    one. ``from_env`` lets ``DEVSTACK_SANDBOX_<FIELD>`` replace a field (``ARGS`` split like a shell).
    """

    #: The arguments of this venv's python.
    args: tuple[str, ...] = (
        "-m", "sandbox", "--host", "{host}",
        "--stripe-port", "{stripe_port}", "--chargebee-port", "{chargebee_port}",
    )  # fmt: skip
    stripe_api_base: str = "http://{host}:{stripe_port}"
    stripe_connect_base: str = "http://{host}:{stripe_port}"
    chargebee_api_url_template: str = "http://{host}:{chargebee_port}/sites/{site}/api/v2"
    #: Ready once each of these answers below 500 (the sandbox need not have health routes).
    ready_urls: tuple[str, ...] = ("http://{host}:{stripe_port}/", "http://{host}:{chargebee_port}/")
    host: str = LOCALHOST

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SandboxLauncher:
        environ = os.environ if env is None else env
        changes: dict[str, Any] = {}
        for item in fields(cls):
            configured = environ.get(f"{SANDBOX_ENV_PREFIX}{item.name.upper()}")
            if configured is not None:
                is_tuple = item.name in ("args", "ready_urls")
                changes[item.name] = tuple(shlex.split(configured)) if is_tuple else configured
        return cls(**changes)

    def port_names(self) -> tuple[str, ...]:
        """The ``{…_port}`` placeholders of ``args``, in order."""
        names: list[str] = []
        for arg in self.args:
            for _, name, _, _ in Formatter().parse(arg):
                if name and name.endswith("port") and name not in names:
                    names.append(name)
        return tuple(names)

    def allocate_ports(self, preferred: Mapping[str, int] | None = None) -> dict[str, int]:
        """A port per name: the preferred one when free, else any free one."""
        wanted = preferred or {}
        return {name: preferred_port(wanted.get(name), self.host) for name in self.port_names()}

    def _values(self, ports: Mapping[str, int]) -> dict[str, str | int]:
        return {"host": self.host, **ports}

    def endpoints(self, ports: Mapping[str, int]) -> SandboxEndpoints:
        values = self._values(ports)
        return SandboxEndpoints(
            stripe_api_base=_fill(self.stripe_api_base, values),
            stripe_connect_base=_fill(self.stripe_connect_base, values),
            chargebee_api_url_template=_fill(self.chargebee_api_url_template, values),
        )

    def spec(
        self, ports: Mapping[str, int], *, env: Mapping[str, str] | None = None, name: str = "sandbox"
    ) -> ProcessSpec:
        values = self._values(ports)
        return ProcessSpec(
            name=name,
            argv=(sys.executable, *(_fill(arg, values) for arg in self.args)),
            env={"OTEL_SDK_DISABLED": "true", **(env or {})},
            probe=http_answers(*(_fill(url, values) for url in self.ready_urls)),
            ready_timeout_s=READY_TIMEOUT_S,
        )
