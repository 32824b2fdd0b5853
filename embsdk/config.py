"""The one place embsdk reads its configuration from the environment.

Every command, the SDK, the registry and the trainer call :func:`get_settings`; no other module reads
``os.environ`` for ``EMB_*`` variables. Values are read at call time, so tests can ``monkeypatch.setenv``.

Environment:
    EMB_HOME            root of the embedded defaults (default ``~/.embsdk``)
    EMB_REGISTRY_URL    any SQLAlchemy URL; default ``sqlite:///$EMB_HOME/registry.db``
    EMB_ARTIFACTS       artifact store folder; default ``$EMB_HOME/artifacts``
    EMB_STORE           embedding store folder; default ``$EMB_HOME/store``
    EMB_TRITON_REPOSITORY  Triton model repository; default ``$EMB_HOME/triton_models``
    EMB_USER            who is acting (events, creator); default the login name
    EMB_DEBUG           ``1`` shows tracebacks in the CLI
    EMB_TRITON_ADMIN_KEY  secret ``emb serve`` gives Triton for its admin APIs (shared-memory, logging, trace,
                        statistics; model-repository off loopback); unset: a random key per start
    EMB_GROCERY_ROOT    the Grocery Store dataset folder; default ``../shared/data/grocery-store`` beside the project
"""

from __future__ import annotations

import getpass
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Settings", "get_settings", "redact_url"]

_PROJECT_ROOT = Path(__file__).resolve().parents[1]
_DEFAULT_GROCERY_ROOT = _PROJECT_ROOT.parent / "shared" / "data" / "grocery-store"


@dataclass(frozen=True)
class Settings:
    """Resolved configuration (paths are absolute)."""

    home: Path
    registry_url: str
    artifact_dir: Path
    store_dir: Path
    triton_repository: Path
    user: str
    debug: bool
    triton_admin_key: str | None = field(default=None, repr=False)
    grocery_root: Path = _DEFAULT_GROCERY_ROOT

    @property
    def registry_url_redacted(self) -> str:
        """The registry URL with any password replaced by ``***`` (safe to print)."""
        return redact_url(self.registry_url)


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def _default_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name in some containers
        return "unknown"


def get_settings() -> Settings:
    """Resolve the configuration from ``EMB_*`` environment variables (read now, not at import)."""
    env = os.environ
    home = Path(env.get("EMB_HOME") or Path.home() / ".embsdk").expanduser().resolve()
    registry_url = env.get("EMB_REGISTRY_URL") or f"sqlite:///{home / 'registry.db'}"
    return Settings(
        home=home,
        registry_url=registry_url,
        artifact_dir=Path(env.get("EMB_ARTIFACTS") or home / "artifacts").expanduser().resolve(),
        store_dir=Path(env.get("EMB_STORE") or home / "store").expanduser().resolve(),
        triton_repository=Path(env.get("EMB_TRITON_REPOSITORY") or home / "triton_models")
        .expanduser()
        .resolve(),
        user=env.get("EMB_USER") or _default_user(),
        debug=_truthy(env.get("EMB_DEBUG")),
        triton_admin_key=env.get("EMB_TRITON_ADMIN_KEY") or None,
        grocery_root=Path(env.get("EMB_GROCERY_ROOT") or _DEFAULT_GROCERY_ROOT).expanduser().resolve(),
    )


# The password runs from ``://user:`` to the LAST ``@`` of the URL (``\S*`` is greedy): a raw ``@``, ``:`` or
# ``/`` inside it is hidden too. When a token holds more ``@`` than the URL needs, more is hidden, never less.
# Each pattern may only start where its run of characters starts (the look-behinds): without that, a long run with
# no match was rescanned from every position (quadratic: 40,000 characters took seconds).
_PASSWORD_IN_URL = re.compile(r"(?<![a-zA-Z0-9+.\-])(?P<head>[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s]*:)\S*@")
_PASSWORD_PARAM = re.compile(r"(?P<head>\b(?:password|passwd|pwd)=)[^&\s'\"]+", re.IGNORECASE)


# Any other token with credentials before an ``@`` (a malformed URL such as ``postgresql//bob:pw@host`` or a bare
# ``bob:pw@host``, which SQLAlchemy refuses and echoes): everything from its first ``:`` not starting ``//`` up to
# the LAST ``@`` is hidden.
_CREDENTIALS_TOKEN = re.compile(r"(?<![^\s'\"<>()])[^\s'\"<>()]*@[^\s'\"<>()]*")
_USERINFO_COLON = re.compile(r":(?!//)")


def _hide_credentials(token: str) -> str:
    before, _, after = token.rpartition("@")
    if "://" in before:  # a well-formed URL: _PASSWORD_IN_URL has already hidden its password
        return token
    colon = _USERINFO_COLON.search(before)
    if colon is None:  # ``user@host``: no password in it
        return token
    return f"{before[: colon.end()]}***@{after}"


def redact_url(text: str) -> str:
    """Hide passwords in *text*: of every ``scheme://user:password@host`` URL, of malformed ones
    (``postgresql//user:pw@host``, ``user:pw@host``), and every ``password=`` value."""
    text = _PASSWORD_IN_URL.sub(lambda m: f"{m.group('head')}***@", text)
    text = _CREDENTIALS_TOKEN.sub(lambda m: _hide_credentials(m.group(0)), text)
    return _PASSWORD_PARAM.sub(lambda m: f"{m.group('head')}***", text)
