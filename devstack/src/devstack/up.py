"""The run command: the whole system on this machine with sample data, until Ctrl-C."""

from __future__ import annotations

import base64
import contextlib
import json
import secrets
import shlex
import signal
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

from devstack.errors import InfrastructureUnavailable, ProcessNotReady
from devstack.infra import Provided, ProvidedMail, provide_kafka, provide_mail, provide_store
from devstack.net import LOCALHOST, preferred_port
from devstack.paths import log_dir, repo_root, state_dir
from devstack.processes import ProcessRunner, ProcessSpec, http_ready, python_module
from devstack.sandbox import DEFAULT_SANDBOX_PORTS, SampleCredentials, SandboxLauncher
from devstack.settings import DEFAULT_HTTP_PORTS, SERVICES, StackSecrets, StackSettings, free_http_ports
from devstack.stack import service_spec
from devstack.versions import KAFKA_VERSION

T = TypeVar("T")

DEMO_ACCOUNT_ID: Final = "acct_demo"
DEMO_SKIP_ACCOUNT_ID: Final = "acct_demo_skip"
DEMO_STRIPE_ACCOUNT_ID: Final = "acct_demo_stripe"
DEMO_PAGE_ACCOUNT_ID: Final = "acct_demo_page"
DEMO_CONTACT_EMAIL: Final = "owner@acme.example"
DEMO_TOKEN_TTL_S: Final = 24 * 3600
DEMO_EMAIL_TIMEOUT_S: Final = 180.0
#: How long the demo waits for a change at the sandbox to reach the importer's API (the importer
#: reads the site's events every SYNC_INTERVAL_S, 60 s by default).
DEMO_SYNC_TIMEOUT_S: Final = 120.0
MAIL_SMTP_PORT: Final = 1025
MAIL_HTTP_PORT: Final = 1080
WATCH_INTERVAL_S: Final = 1.0
_PROGRESS_EVERY_S: Final = 5.0


def say(text: str = "") -> None:
    print(text, flush=True)


@contextlib.contextmanager
def _step(title: str) -> Iterator[None]:
    started = time.monotonic()
    print(f"  … {title}", end="", flush=True)
    try:
        yield
    except BaseException:
        say(" failed")
        raise
    say(f"  ({time.monotonic() - started:.1f} s)")


def _timed(title: str, start: Callable[[], T]) -> T:
    with _step(title):
        return start()


@dataclass
class LocalRun:
    """What the run command started."""

    settings: StackSettings
    kafka: Provided
    store: Provided
    runner: ProcessRunner
    mail: ProvidedMail
    credentials: SampleCredentials
    logs: Path


def up(*, demo: bool = False, exit_after_start: bool = False, only_infra: bool = False) -> int:
    """Start everything, print where to look, optionally run the demo, wait for Ctrl-C; the exit code."""
    logs = log_dir(state_dir() / "logs")
    for old in logs.glob("*.log"):
        old.unlink()
    # Ctrl-C and SIGTERM both stop everything, even when started with SIGINT ignored (in the background).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    say(f"Starting the local stack (logs in {_relative(logs)})")
    exit_code = 0
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(say, "Stopped.")
        try:
            run = _start(cleanup, logs, only_infra=only_infra)
            if only_infra:
                _print_infra_only(run)
            else:
                _print_summary(run)
            if demo and not only_infra and not _demo(run):
                exit_code = 1
            if not exit_after_start:
                say("Ctrl-C stops everything.")
                _watch(run.runner)
        except KeyboardInterrupt:
            pass
        except (InfrastructureUnavailable, ProcessNotReady) as error:
            say(f"\n{error}")
            exit_code = 1
        finally:
            # A second Ctrl-C (or SIGTERM) must not cut the clean-up short.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            say("\nStopping…")
    return exit_code


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _relative(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _start(cleanup: contextlib.ExitStack, logs: Path, *, only_infra: bool) -> LocalRun:
    store = cleanup.enter_context(_timed("store (MongoDB wire protocol)", lambda: provide_store(logs)))
    kafka = cleanup.enter_context(_timed(f"Kafka {KAFKA_VERSION} and topics", lambda: provide_kafka(logs)))
    runner = cleanup.enter_context(ProcessRunner(logs))
    mail = cleanup.enter_context(_timed("mail catcher", lambda: provide_mail(lambda: _local_mail(runner))))

    launcher = SandboxLauncher.from_env()
    sandbox_ports = launcher.allocate_ports(DEFAULT_SANDBOX_PORTS)
    _timed("sandbox (fake Stripe and Chargebee)", lambda: runner.start(launcher.spec(sandbox_ports)))

    credentials = SampleCredentials()
    settings = StackSettings(
        kafka_bootstrap_servers=kafka.address,
        mongodb_url=store.address,
        smtp_host=mail.smtp_host,
        smtp_port=mail.smtp_port,
        secrets=StackSecrets.generate(),
        http_ports=free_http_ports(DEFAULT_HTTP_PORTS),
        sandbox=launcher.endpoints(sandbox_ports),
        credentials=credentials,
    )
    if not only_infra:
        _timed(", ".join(SERVICES), lambda: runner.start_all([service_spec(settings, s) for s in SERVICES]))
    return LocalRun(
        settings=settings,
        kafka=kafka,
        store=store,
        runner=runner,
        mail=mail,
        credentials=credentials,
        logs=logs,
    )


def _local_mail(runner: ProcessRunner) -> ProvidedMail:
    """devstack's own mail catcher as a process of the run (no Docker): SMTP and its web UI."""
    smtp_port, http_port = preferred_port(MAIL_SMTP_PORT), preferred_port(MAIL_HTTP_PORT)
    spec = ProcessSpec(
        name="mailcatcher",
        argv=python_module(
            "devstack.mailcatcher", "--smtp-port", str(smtp_port), "--http-port", str(http_port)
        ),
        probe=http_ready(http_port, ("/readyz",)),
    )
    runner.start(spec)
    return ProvidedMail(f"http://{LOCALHOST}:{http_port}", "local", _runner_stops_it, LOCALHOST, smtp_port)


def _runner_stops_it() -> None:
    return None


def _curl(method: str, url: str, token_var: str, body: dict[str, Any] | None = None) -> str:
    lines = [f"curl -sS -X {method} {url}", f'-H "Authorization: Bearer ${token_var}"']
    if body is not None:
        lines += ["-H 'Content-Type: application/json'", f"-d {shlex.quote(json.dumps(body))}"]
    return "  " + " \\\n      ".join(lines)


def _print_summary(run: LocalRun) -> None:
    s, logs, mail_kind = run.settings, _relative(run.logs), _mail_kind(run.mail)
    smtp = f"{s.smtp_host}:{s.smtp_port}"
    connector, importer = s.base_url("connector"), s.base_url("importer")
    c = run.credentials
    say(
        f"""
Billing import is running on this machine.

  connector   {connector}    API, /livez, /readyz, /metrics   log {logs}/connector.log
  importer    {importer}    API, /livez, /readyz, /metrics   log {logs}/importer.log
  notifier    {s.base_url("notifier")}    /livez, /readyz, /metrics        log {logs}/notifier.log
  sandbox     fake Stripe {s.sandbox.stripe_api_base}, fake Chargebee {s.sandbox.chargebee_api_url_template}
  mail        {run.mail.address}    every email the notifier sends ({mail_kind}, SMTP {smtp})
  kafka       {run.kafka.address} ({run.kafka.origin})
  store       {run.store.address} ({run.store.origin}), database {s.mongodb_database}

Tokens for the demo accounts (valid 24 h):

  export TOKEN={s.secrets.jwt(DEMO_ACCOUNT_ID, ttl_s=DEMO_TOKEN_TTL_S)}
  export SKIP_TOKEN={s.secrets.jwt(DEMO_SKIP_ACCOUNT_ID, ttl_s=DEMO_TOKEN_TTL_S)}
  export STRIPE_TOKEN={s.secrets.jwt(DEMO_STRIPE_ACCOUNT_ID, ttl_s=DEMO_TOKEN_TTL_S)}

Connect the sample Chargebee site ({c.chargebee_site}) to {
            DEMO_ACCOUNT_ID
        }; the import starts and an email follows:

{
            _curl(
                "POST",
                f"{connector}/v1/accounts/{DEMO_ACCOUNT_ID}/connections/chargebee",
                "TOKEN",
                {
                    "site": c.chargebee_site,
                    "api_key": c.chargebee_api_key,
                    "contact_email": DEMO_CONTACT_EMAIL,
                },
            )
        }
{_curl("GET", f"{importer}/v1/accounts/{DEMO_ACCOUNT_ID}/imports/latest", "TOKEN")}
{_curl("GET", f"{importer}/v1/accounts/{DEMO_ACCOUNT_ID}/cancellations", "TOKEN")}

Skip connecting a processor ({DEMO_SKIP_ACCOUNT_ID}):

{
            _curl(
                "POST",
                f"{connector}/v1/accounts/{DEMO_SKIP_ACCOUNT_ID}/connections/skip",
                "SKIP_TOKEN",
                {"contact_email": DEMO_CONTACT_EMAIL},
            )
        }

Connect the sample Stripe account ({
            DEMO_STRIPE_ACCOUNT_ID
        }), then open the authorize_url it answers in a browser:

{
            _curl(
                "POST",
                f"{connector}/v1/accounts/{DEMO_STRIPE_ACCOUNT_ID}/connections/stripe",
                "STRIPE_TOKEN",
                {
                    "api_key": c.stripe_api_key,
                    "contact_email": DEMO_CONTACT_EMAIL,
                    "return_url": f"{run.mail.address}/",
                },
            )
        }
"""
    )
    _print_onboarding_page(run)


def _print_infra_only(run: LocalRun) -> None:
    env_dir = state_dir() / "env"
    env_dir.mkdir(parents=True, exist_ok=True)
    for service in SERVICES:
        env_file = env_dir / f"{service}.env"
        env = run.settings.service_env(service)
        env_file.write_text("".join(f"{name}={shlex.quote(value)}\n" for name, value in sorted(env.items())))
    say(
        f"""
Infrastructure only; start the services yourself with their environment, e.g.:

  set -a; . {_relative(env_dir)}/connector.env; set +a; uv run python -m connector

  kafka   {run.kafka.address} ({run.kafka.origin})
  store   {run.store.address} ({run.store.origin})
  mail    {run.mail.address} ({_mail_kind(run.mail)}, SMTP {run.settings.smtp_host}:{run.settings.smtp_port})
  sandbox {run.settings.sandbox.stripe_api_base} (Stripe), {run.settings.sandbox.chargebee_api_url_template}
"""
    )


def _http_json(method: str, url: str, token: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 (local URLs only)
    request.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode(errors="replace")


def _demo(run: LocalRun) -> bool:
    """Connect the sample Chargebee site and wait for the import's email, saying what happens."""
    s, c = run.settings, run.credentials
    token = s.jwt(DEMO_ACCOUNT_ID)
    say(f"Demo: connecting Chargebee site {c.chargebee_site} to {DEMO_ACCOUNT_ID}")
    url = f"{s.base_url('connector')}/v1/accounts/{DEMO_ACCOUNT_ID}/connections/chargebee"
    status, answer = _http_json(
        "POST",
        url,
        token,
        {"site": c.chargebee_site, "api_key": c.chargebee_api_key, "contact_email": DEMO_CONTACT_EMAIL},
    )
    say(f"  POST {url} → {status} {json.dumps(answer)}")
    if status != 201:
        say("  the connector did not connect; see its log")
        return False

    say(
        f"Demo: waiting for the import and its email to {DEMO_CONTACT_EMAIL}"
        f" (up to {DEMO_EMAIL_TIMEOUT_S:.0f} s)"
    )
    latest = f"{s.base_url('importer')}/v1/accounts/{DEMO_ACCOUNT_ID}/imports/latest"
    deadline, last_report, last_status = time.monotonic() + DEMO_EMAIL_TIMEOUT_S, 0.0, None
    while time.monotonic() < deadline:
        if message := _demo_email(run.mail):
            say(f"  email received: “{message.subject}” → {', '.join(message.to)}")
            for line in message.text.strip().splitlines():
                say(f"    | {line}")
            say(f"  read it at {message.link}")
            return _demo_sync(run, token)
        if time.monotonic() - last_report >= _PROGRESS_EVERY_S:
            last_report = time.monotonic()
            code, body = _http_json("GET", latest, token)
            current = (code, json.dumps(body.get("status") if isinstance(body, dict) else body))
            if current != last_status:
                last_status = current
                say(f"  GET {latest} → {code} {json.dumps(body)}")
        time.sleep(0.5)
    say("  no email arrived in time; see the importer's and notifier's logs")
    return False


def _demo_sync(run: LocalRun, token: str) -> bool:
    """Cancel a subscription at the fake Chargebee and watch the change reach the importer's API."""
    s, c = run.settings, run.credentials
    site_url = s.sandbox.chargebee_api_url_template.replace("{site}", c.chargebee_site)
    listed = _basic_get(f"{site_url}/subscriptions?limit=1&status[is]=active", c.chargebee_api_key)
    entries = listed.get("list") if isinstance(listed, dict) else None
    if not entries:
        say("Demo: no active subscription at the sandbox to cancel; sync not shown")
        return False
    subscription_id = str(entries[0]["subscription"]["id"])
    admin = s.sandbox.chargebee_api_url_template.split("/sites/")[0] + "/_sandbox"
    cancel = f"{admin}/objects/subscriptions/{subscription_id}/cancel"
    status, _ = _http_json("POST", cancel, token, {"site": c.chargebee_site, "reason": "demo"})
    say(f"Demo: cancelled subscription {subscription_id} at the sandbox (POST {cancel} → {status})")
    say(f"  waiting for sync to bring it to the importer (up to {DEMO_SYNC_TIMEOUT_S:.0f} s)")
    cancellations = f"{s.base_url('importer')}/v1/accounts/{DEMO_ACCOUNT_ID}/cancellations?limit=500"
    connection = f"{s.base_url('connector')}/v1/accounts/{DEMO_ACCOUNT_ID}/connection"
    started = time.monotonic()
    while time.monotonic() < started + DEMO_SYNC_TIMEOUT_S:
        _, body = _http_json("GET", cancellations, token)
        items = body.get("items", []) if isinstance(body, dict) else []
        found = [item for item in items if item.get("subscription_id") == subscription_id]
        if found:
            waited = time.monotonic() - started
            say(f"  after {waited:.1f} s: GET {cancellations} shows {json.dumps(found[0])}")
            _, shown = _http_json("GET", connection, token)
            sync = shown.get("sync") if isinstance(shown, dict) else None
            say(f"  GET {connection} → sync {json.dumps(sync)}")
            return True
        time.sleep(1.0)
    say("  the change did not arrive in time; see the importer's log (sync.polled lines)")
    return False


def _basic_get(url: str, user: str) -> Any:
    request = urllib.request.Request(url)  # noqa: S310 (local URLs only)
    request.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:".encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None


@dataclass(frozen=True)
class DemoEmail:
    subject: str
    to: list[str]
    text: str
    link: str


def _mail_kind(mail: ProvidedMail) -> str:
    return "Mailpit" if mail.origin == "container" else "devstack mail catcher"


def _get_json(url: str) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (local URLs only)
            return json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None


def _demo_email(mail: ProvidedMail) -> DemoEmail | None:
    """The first email to the demo contact: from Mailpit's API (``/api/v1``) or the local catcher's."""
    if mail.origin == "container":
        listed = _get_json(f"{mail.address}/api/v1/messages")
        for summary in listed.get("messages", []) if isinstance(listed, dict) else []:
            to = [str(a.get("Address", "")) for a in summary.get("To") or []]
            if DEMO_CONTACT_EMAIL in to:
                full = _get_json(f"{mail.address}/api/v1/message/{summary.get('ID')}")
                text = str(full.get("Text") or "") if isinstance(full, dict) else ""
                return DemoEmail(
                    str(summary.get("Subject")), to, text, f"{mail.address}/view/{summary.get('ID')}"
                )
        return None
    messages = _get_json(f"{mail.address}/api/messages")
    for m in messages if isinstance(messages, list) else []:
        if DEMO_CONTACT_EMAIL in m.get("envelope_to", []):
            return DemoEmail(
                str(m.get("subject")),
                list(m.get("to", [])),
                str(m.get("text") or ""),
                f"{mail.address}/messages/{m.get('id')}",
            )
    return None


def _print_onboarding_page(run: LocalRun) -> None:
    """The connector's onboarding page, opened as a gateway hands it over (docs/onboarding-page.md)."""
    import jwt

    s, c, now = run.settings, run.credentials, int(time.time())
    claims = {
        "sub": DEMO_PAGE_ACCOUNT_ID,
        "aud": "onboarding",
        "email": DEMO_CONTACT_EMAIL,
        "iat": now,
        "jti": secrets.token_urlsafe(16),
    }
    token = jwt.encode({**claims, "exp": now + DEMO_TOKEN_TTL_S}, s.secrets.api_jwt_secret, algorithm="HS256")
    say(
        f"""Or walk through onboarding in a browser ({DEMO_PAGE_ACCOUNT_ID}; the link opens the page once,
within 24 h; the browser then keeps its session for 2 h):

  {s.base_url("connector")}/onboarding?token={token}

  Stripe: paste {c.stripe_api_key}, then press Authorize (or Deny) on the sandbox's Stripe page.
  Chargebee: site {c.chargebee_site}, API key {c.chargebee_api_key}.
  Once the import is complete, "Try a churn-prevention offer" applies a coupon or a longer trial
  to one of the sandbox's subscriptions (the page lists a few).
"""
    )


def _watch(runner: ProcessRunner) -> None:
    """Until interrupted: report, once, each process that exits on its own."""
    reported: set[str] = set()
    while True:
        for process in runner:
            if not process.running and process.name not in reported:
                reported.add(process.name)
                say(
                    f"\n{process.name} exited with code {process.returncode};"
                    f" last lines of {process.log_path}:"
                )
                say(process.log_tail(20))
        time.sleep(WATCH_INTERVAL_S)


def main_up(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="devstack up", description=__doc__)
    parser.add_argument(
        "--demo", action="store_true", help="connect the sample Chargebee site and wait for the email"
    )
    parser.add_argument(
        "--exit", action="store_true", help="stop once started (and the demo done); for smoke tests"
    )
    parser.add_argument(
        "--only-infra", action="store_true", help="Kafka, store, mail catcher and sandbox only"
    )
    args = parser.parse_args(argv)
    say(f"Repository: {repo_root()}  Python {sys.version.split()[0]}")
    return up(demo=args.demo, exit_after_start=args.exit, only_infra=args.only_infra)
