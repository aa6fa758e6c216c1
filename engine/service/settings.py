"""The settings of `callflow serve` (and of `callflow run --live`), read from the environment.

  CALLFLOW_AUTH_ID / CALLFLOW_AUTH_TOKEN   the trigger API's Basic auth (both or neither:
                                           neither generates a pair for the process)
  CALLFLOW_PUBLIC_URL                      where the provider reaches the callbacks
  CALLFLOW_IN_DOUBT_SECONDS                grace for a request left in doubt (default 60)
  CALLFLOW_RUN_TIMEOUT                     longest wait for a provider callback (default 15,000)
  CALLFLOW_PROVIDER_CONNECTIONS            the provider API's connection pool (default 16)
  CALLFLOW_PROVIDER_RETRIES                resends of a request the API refused (429, 503, no
                                           connection) (default 4; engine/service/retry.py)
  CALLFLOW_PROVIDER_RETRY_SECONDS          all attempts of one request within this (default 30)
  CALLFLOW_RECONCILE_SECONDS               a call silent this long is looked up at the provider
                                           (default 60; 0: never; engine/service/reconcile.py)
  CALLFLOW_HTTP_ALLOW_PRIVATE              http_request nodes may reach non-public hosts
  CALLFLOW_LEASE_SECONDS                   a process's hold on the runs it works on; another
                                           process takes them over this long after it died (30)
  CALLFLOW_MAX_QUEUED                      unsent provider requests a process holds before
                                           triggers get 429 + Retry-After (default 1,000)
  CALLFLOW_REVISION_KEEP_SECONDS           a stored flow revision no process serves and no
                                           unfinished run needs is deleted this long after it
                                           was last served (default 7 days; at least 10 min)
  PLIVO_AUTH_ID / PLIVO_AUTH_TOKEN / PLIVO_API_URL   the provider (`ProviderConfig`)
"""

from __future__ import annotations

import os
import secrets
import socket
import string
from dataclasses import dataclass, field

from engine.service.provider import DEFAULT_CONNECTIONS, ProviderConfig

DEFAULT_IN_DOUBT_SECONDS = 60.0
# A run waiting longer than this for a callback gives up: Plivo's longest call (time_limit
# 14,400 s) plus ringing and slack, so a real call is never cut short.
DEFAULT_RUN_TIMEOUT = 15_000.0
DEFAULT_RECONCILE_SECONDS = 60.0
DEFAULT_LEASE_SECONDS = 30.0
DEFAULT_MAX_QUEUED = 1000
# Finished runs' pages draw the graph of their own revision for a week after it was last
# served; never less than 10 minutes, many times the sweeper's marking of the revisions a
# process serves (every minute), so a revision still served by any process is never pruned.
DEFAULT_REVISION_KEEP_SECONDS = 7 * 24 * 3600.0
MIN_REVISION_KEEP_SECONDS = 600.0


def process_owner() -> str:
    """This process's name on the leases it holds: host, pid and a random part (a pid is
    reused after a restart; the lease of the dead process must not look like ours)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


@dataclass
class Settings:
    """Everything the service is configured with; `repr` never shows a token."""

    auth_id: str
    auth_token: str
    public_url: str
    provider: ProviderConfig
    in_doubt_seconds: float = DEFAULT_IN_DOUBT_SECONDS
    run_timeout_seconds: float = DEFAULT_RUN_TIMEOUT
    generated_credentials: bool = False
    provider_connections: int = DEFAULT_CONNECTIONS  # CALLFLOW_PROVIDER_CONNECTIONS: provider API pool
    allow_private_http: bool = False  # CALLFLOW_HTTP_ALLOW_PRIVATE: http_request may reach non-public hosts
    reconcile_seconds: float = DEFAULT_RECONCILE_SECONDS  # CALLFLOW_RECONCILE_SECONDS (0: off)
    lease_seconds: float = DEFAULT_LEASE_SECONDS  # CALLFLOW_LEASE_SECONDS
    max_queued: int = DEFAULT_MAX_QUEUED  # CALLFLOW_MAX_QUEUED
    revision_keep_seconds: float = DEFAULT_REVISION_KEEP_SECONDS  # CALLFLOW_REVISION_KEEP_SECONDS
    owner: str = field(default_factory=process_owner)

    def __repr__(self) -> str:  # never show tokens
        return (f"Settings(auth_id={self.auth_id!r}, public_url={self.public_url!r}, "
                f"provider={self.provider!r}, in_doubt_seconds={self.in_doubt_seconds})")


def generate_credentials() -> tuple[str, str]:
    """A fresh trigger-API pair. The auth id looks like Plivo's (MA + 18 upper-case letters)
    so that the official SDK accepts it."""
    letters = string.ascii_uppercase
    return "MA" + "".join(secrets.choice(letters) for _ in range(18)), secrets.token_urlsafe(30)


def _seconds(environ, name: str, default: float) -> float:
    raw = environ.get(name)
    try:
        value = float(raw) if raw else default
    except ValueError:
        raise ValueError(f"{name}: {raw!r} is not a number of seconds") from None
    if value < 0:
        raise ValueError(f"{name} must not be negative")
    return value


def _count(environ, name: str, default: int) -> int:
    raw = environ.get(name) or str(default)
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"{name}: {raw!r} is not a positive whole number")
    return int(raw)


def settings_from_env(public_url: str, environ=os.environ) -> Settings:
    """The settings from `environ`; `public_url` unless CALLFLOW_PUBLIC_URL says otherwise.
    Raises ValueError for a setting that does not parse."""
    auth_id, auth_token = environ.get("CALLFLOW_AUTH_ID", ""), environ.get("CALLFLOW_AUTH_TOKEN", "")
    generated = False
    if not auth_id or not auth_token:
        if auth_id or auth_token:
            raise ValueError("set both CALLFLOW_AUTH_ID and CALLFLOW_AUTH_TOKEN, or neither")
        auth_id, auth_token = generate_credentials()
        generated = True
    grace = _seconds(environ, "CALLFLOW_IN_DOUBT_SECONDS", DEFAULT_IN_DOUBT_SECONDS)
    run_timeout = _seconds(environ, "CALLFLOW_RUN_TIMEOUT", DEFAULT_RUN_TIMEOUT)
    lease = _seconds(environ, "CALLFLOW_LEASE_SECONDS", DEFAULT_LEASE_SECONDS)
    if lease < 1:
        raise ValueError("CALLFLOW_LEASE_SECONDS must be at least 1")
    return Settings(auth_id=auth_id, auth_token=auth_token,
                    public_url=(environ.get("CALLFLOW_PUBLIC_URL") or public_url).rstrip("/"),
                    provider=ProviderConfig.from_env(environ), in_doubt_seconds=grace,
                    run_timeout_seconds=run_timeout,
                    reconcile_seconds=_seconds(environ, "CALLFLOW_RECONCILE_SECONDS", DEFAULT_RECONCILE_SECONDS),
                    generated_credentials=generated,
                    provider_connections=_count(environ, "CALLFLOW_PROVIDER_CONNECTIONS", DEFAULT_CONNECTIONS),
                    lease_seconds=lease, max_queued=_count(environ, "CALLFLOW_MAX_QUEUED", DEFAULT_MAX_QUEUED),
                    revision_keep_seconds=max(MIN_REVISION_KEEP_SECONDS, _seconds(
                        environ, "CALLFLOW_REVISION_KEEP_SECONDS", DEFAULT_REVISION_KEEP_SECONDS)),
                    allow_private_http=environ.get("CALLFLOW_HTTP_ALLOW_PRIVATE", "").lower() in ("1", "true", "yes"))
