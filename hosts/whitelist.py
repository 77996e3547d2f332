"""VCH registry whitelists: what a VCH reports in /info, and what content trust asks of it.

A VIC 1.4 VCH reports its registry configuration in `docker info`'s SystemStatus (vmware/vic,
lib/apiservers/engine/backends/system.go): " Registry Whitelist Mode" is "enabled" (with "; remote source"
when the list came from the management portal) or "disabled.  All registry access allowed.",
" Whitelisted Registries" and " Insecure Registries" are comma-joined lists.

When a project holding the VCH has content trust on, the VCH may pull only from the portal's integrated
registry: its whitelist becomes exactly that registry. The VCH takes such a list only when it is no more
permissive than the one the vSphere administrator deployed it with; the rule below is VIC's own
(lib/config/dynamic/merger.go and pkg/registry/entry.go), so the portal predicts the VCH's answer: entries
are host[:port][/path] (a `*` in the host matches anything, no port matches every port) or CIDR ranges.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import SplitResult, urlsplit

from django.conf import settings

WHITELIST_MODE = "Registry Whitelist Mode"
WHITELISTED_REGISTRIES = "Whitelisted Registries"
INSECURE_REGISTRIES = "Insecure Registries"
REMOTE_SOURCE = "remote source"


class Verdict:
    """What content trust asks of one VCH's whitelist (the values of WhitelistChange.state)."""

    UNKNOWN = "unknown"
    CHANGE_NEEDED = "change_needed"
    COMPLIANT = "compliant"
    REFUSED = "refused"
    LIFTED = "lifted"


@dataclass(frozen=True)
class ReportedWhitelist:
    """A VCH's registry configuration as its /info reports it."""

    enabled: bool
    registries: list[str] = field(default_factory=list)
    insecure: list[str] = field(default_factory=list)
    # True when the list came from a management portal (VIC's dynamic configuration), not from vic-machine.
    remote: bool = False


@dataclass(frozen=True)
class Judgment:
    """Whether a VCH's whitelist needs changing for content trust, and why, in words for an administrator."""

    state: str
    required: list[str]
    reason: str


def _split_list(value: str) -> list[str]:
    """The entries of a comma-joined list, without blanks."""
    return [item.strip() for item in value.split(",") if item.strip()]


def from_info(info: dict[str, Any]) -> ReportedWhitelist | None:
    """The registry whitelist a VCH reports in /info's SystemStatus; None when it reports none (a Docker host)."""
    status: dict[str, str] = {}
    for pair in info.get("SystemStatus") or []:
        if isinstance(pair, list | tuple) and len(pair) == 2:
            status[str(pair[0]).strip()] = str(pair[1] or "")
    mode = status.get(WHITELIST_MODE)
    if mode is None:
        return None
    enabled = mode.strip().lower().startswith("enabled")
    return ReportedWhitelist(
        enabled=enabled,
        registries=_split_list(status.get(WHITELISTED_REGISTRIES, "")) if enabled else [],
        insecure=_split_list(status.get(INSECURE_REGISTRIES, "")),
        remote=enabled and REMOTE_SOURCE in mode.lower(),
    )


# --- VIC's registry entries (pkg/registry/entry.go) ---------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One whitelist entry: a CIDR range, or a URL (scheme optional, host may hold `*`, optional path)."""

    text: str
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
    url: SplitResult | None = None

    def __str__(self) -> str:
        return self.text

    def contains(self, other: Entry) -> bool:
        """Whether every registry `other` admits is admitted by this entry."""
        if self.network is not None:
            if other.network is not None:
                return other.network.version == self.network.version and other.network.subnet_of(self.network)
            return _ip_in(other.url.hostname if other.url else None, self.network)
        if self.url is None or other.url is None:
            return False
        mine, theirs = _with_port(self.url), _with_port(other.url)
        their_host = theirs.netloc
        if mine.port is None and theirs.port is not None:
            # An entry without a port admits every port of its host.
            their_host = theirs.hostname or ""
        return (
            (not self.url.scheme or self.url.scheme == other.url.scheme)
            and other.url.path.startswith(self.url.path)
            and _glob(mine.netloc.lower(), their_host.lower())
        )

    def equal(self, other: Entry) -> bool:
        """The same entry, ports compared after the scheme's default is filled in."""
        if self.url is not None and other.url is not None:
            return _with_port(self.url).geturl() == _with_port(other.url).geturl()
        return str(self) == str(other)


def parse_entry(text: str) -> Entry | None:
    """An entry as VIC parses it (CIDR first, then a URL with or without scheme); None when it is neither."""
    text = text.strip()
    if "/" in text:
        try:
            return Entry(text, network=ipaddress.ip_network(text, strict=False))
        except ValueError:
            pass
    for prefix in ("", "https://"):
        try:
            parts = urlsplit(prefix + text)
            parts.port  # noqa: B018 (raises ValueError for a port that is not a number)
        except ValueError:
            continue
        if parts.netloc and parts.scheme in ("http", "https"):
            # A scheme VIC added itself is ignored: the entry then admits both.
            return Entry(text, url=parts._replace(scheme="") if prefix else parts)
    return None


def _with_port(url: SplitResult) -> SplitResult:
    """The URL with the scheme's default port written out (VIC's ensurePort)."""
    if url.port is not None or url.scheme not in ("http", "https"):
        return url
    return url._replace(netloc=f"{url.netloc}:{80 if url.scheme == 'http' else 443}")


def _glob(pattern: str, text: str) -> bool:
    """go-glob's match: `*` stands for any run of characters, nothing else is special."""
    return re.fullmatch(".*".join(re.escape(part) for part in pattern.split("*")), text) is not None


def _ip_in(host: str | None, network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    """Whether a host that is an IP address lies in the range (a name never does: VIC resolves nothing here)."""
    try:
        return ipaddress.ip_address((host or "").strip("[]")) in network
    except ValueError:
        return False


# --- what content trust asks ---------------------------------------------------------------------


def portal_registry() -> str:
    """host:port of the integrated registry as docker clients name it: the portal's address in its token realm.

    The realm's address is the portal's first name (WHARF_HOSTNAMES, else 127.0.0.1) at its port
    (WHARF_REGISTRY_TOKEN_REALM overrides it): the one address the portal is known by everywhere, so the
    one a VCH pulls from and its whitelist must admit. The port is always written: a whitelist entry without
    one would admit every port of the host.
    """
    realm = urlsplit(settings.REGISTRY_TOKEN_REALM)
    host = (realm.hostname or "127.0.0.1").lower()
    bracketed = f"[{host}]" if ":" in host else host
    port = realm.port or (443 if realm.scheme == "https" else 80)
    return f"{bracketed}:{port}"


def narrowing_refusal(current: list[Entry], wanted: Entry) -> str:
    """Why the VCH would refuse a whitelist of only `wanted` over `current`, or "" when it takes it.

    VIC merges the new list into the deployed one entry by entry: an entry equal to or inside a deployed
    entry replaces it, one that would widen a deployed entry fails the merge, and one inside none of them
    is refused because it would admit a registry the vSphere administrator did not.
    """
    # In VIC's order: the first deployed entry that is equal to, wider than, or inside `wanted` decides.
    for entry in current:
        if entry.equal(wanted):
            return ""
        if wanted.contains(entry):
            return f"{wanted} would broaden the whitelisted entry {entry}"
        if entry.contains(wanted):
            return ""
    return f"the VCH's whitelist ({', '.join(map(str, current))}) does not permit {wanted}"


def judge(reported: ReportedWhitelist | None, registry: str) -> Judgment:
    """What content trust asks of a VCH's whitelist: the change it needs, nothing, or a refusal with its reason."""
    required = [registry]
    wanted = parse_entry(registry)
    if reported is None:
        reason = "the VCH has not reported its registry whitelist yet; it is judged at the next collection"
        return Judgment(Verdict.UNKNOWN, required, reason)
    if wanted is None:
        return Judgment(Verdict.UNKNOWN, required, f"the portal's registry address {registry!r} is not a registry")
    if not reported.enabled:
        reason = (
            "whitelist mode is off (all registries allowed): content trust turns it on with only the portal's "
            "registry, which is more restrictive, so the VCH accepts it"
        )
        return Judgment(Verdict.CHANGE_NEEDED, required, reason)
    entries = [entry for text in reported.registries if (entry := parse_entry(text)) is not None]
    refusal = narrowing_refusal(entries, wanted)
    if refusal:
        reason = f"refused: the change would make the VCH more permissive than its vSphere administrator set: {refusal}"
        if reported.remote:
            # VIC judges against the list it was deployed with, which /info does not show under a portal's list.
            reason += " (this list came from a management portal; the VCH judges against its deployed list)"
        return Judgment(Verdict.REFUSED, required, reason)
    if entries and all(entry.equal(wanted) for entry in entries):
        return Judgment(Verdict.COMPLIANT, required, f"the VCH already pulls only from {registry}")
    others = [str(entry) for entry in entries if not entry.equal(wanted)]
    reason = (
        f"the VCH's whitelist permits {registry}; content trust narrows it to that registry alone "
        f"(no longer {', '.join(others)})"
    )
    return Judgment(Verdict.CHANGE_NEEDED, required, reason)
