"""A private OpenLDAP slapd for the integration tests: mdb database, test people and nested groups."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import ldap
import ldap.ldapobject
import ldap.modlist
import pytest

from tests.integration.processes import stop_process

SUFFIX = "dc=wharf,dc=test"
ROOT_DN = f"cn=admin,{SUFFIX}"
ROOT_PASSWORD = "wharf-ldap-admin-Secret"
USER_BASE = f"ou=people,{SUFFIX}"
GROUP_BASE = f"ou=groups,{SUFFIX}"
SCHEMA_DIR = Path("/etc/ldap/schema")
MODULE_DIRS = (Path("/usr/lib/ldap"), Path("/usr/lib/x86_64-linux-gnu/ldap"), Path("/usr/local/libexec/openldap"))
START_TIMEOUT = 15.0

# Passwords of the people below, by uid.
PASSWORDS = {uid: f"{uid}-Secret-1" for uid in ("alice", "bob", "carol", "dave")}

LDIF = """\
# The test directory: people, and groups nested three deep so some users hold a group only transitively.
# alice -> developers -> platform -> admins-nested; carol -> Release-Managers (mixed-case name).

dn: dc=wharf,dc=test
objectClass: dcObject
objectClass: organization
dc: wharf
o: Wharf test

dn: ou=people,dc=wharf,dc=test
objectClass: organizationalUnit
ou: people

dn: ou=groups,dc=wharf,dc=test
objectClass: organizationalUnit
ou: groups

dn: uid=alice,ou=people,dc=wharf,dc=test
objectClass: inetOrgPerson
uid: alice
cn: Alice Liddell
sn: Liddell
givenName: Alice
displayName: Alice Liddell
mail: alice@wharf.test
userPassword: alice-Secret-1

dn: uid=bob,ou=people,dc=wharf,dc=test
objectClass: inetOrgPerson
uid: bob
cn: Bob Builder
sn: Builder
givenName: Bob
displayName: Bob the Builder
mail: bob@wharf.test
userPassword: bob-Secret-1

dn: uid=carol,ou=people,dc=wharf,dc=test
objectClass: inetOrgPerson
uid: carol
cn: Carol Danvers
sn: Danvers
givenName: Carol
displayName: Carol Danvers
mail: carol@wharf.test
userPassword: carol-Secret-1

dn: uid=dave,ou=people,dc=wharf,dc=test
objectClass: inetOrgPerson
uid: dave
cn: Dave Bowman
sn: Bowman
givenName: Dave
displayName: Dave Bowman
mail: dbowman@discovery.test
userPassword: dave-Secret-1

dn: cn=developers,ou=groups,dc=wharf,dc=test
objectClass: groupOfNames
cn: developers
member: uid=alice,ou=people,dc=wharf,dc=test

dn: cn=platform,ou=groups,dc=wharf,dc=test
objectClass: groupOfNames
cn: platform
member: cn=developers,ou=groups,dc=wharf,dc=test
member: uid=bob,ou=people,dc=wharf,dc=test

dn: cn=admins-nested,ou=groups,dc=wharf,dc=test
objectClass: groupOfNames
cn: admins-nested
member: cn=platform,ou=groups,dc=wharf,dc=test

dn: cn=Release-Managers,ou=groups,dc=wharf,dc=test
objectClass: groupOfNames
cn: Release-Managers
member: uid=carol,ou=people,dc=wharf,dc=test

dn: cn=auditors,ou=groups,dc=wharf,dc=test
objectClass: groupOfNames
cn: auditors
member: uid=dave,ou=people,dc=wharf,dc=test
"""


@dataclass
class Slapd:
    """A running slapd and what a client needs to reach it."""

    url: str
    process: subprocess.Popen
    workdir: Path
    log_path: Path

    def env(self) -> dict[str, str]:
        """The WHARF_LDAP_* variables that point Wharf at this directory."""
        return {
            "WHARF_LDAP_URL": self.url,
            "WHARF_LDAP_BIND_DN": ROOT_DN,
            "WHARF_LDAP_BIND_PASSWORD": ROOT_PASSWORD,
            "WHARF_LDAP_USER_BASE": USER_BASE,
            "WHARF_LDAP_GROUP_BASE": GROUP_BASE,
            "WHARF_LDAP_USER_ATTR": "uid",
            "WHARF_LDAP_TIMEOUT": "5",
        }

    def connect(self) -> ldap.ldapobject.LDAPObject:
        """A connection bound as the directory's root, to change entries from a test."""
        conn = ldap.initialize(self.url)
        conn.set_option(ldap.OPT_NETWORK_TIMEOUT, 5)
        conn.simple_bind_s(ROOT_DN, ROOT_PASSWORD)
        return conn

    def stop(self) -> None:
        """Stop slapd and wait for it to exit."""
        stop_process(self.process, grace=10)


def user_dn(uid: str) -> str:
    """The DN of a person in the test directory."""
    return f"uid={uid},{USER_BASE}"


def group_dn(name: str) -> str:
    """The DN of a group in the test directory."""
    return f"cn={name},{GROUP_BASE}"


def free_port() -> int:
    """A TCP port on the loopback interface nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _binary(name: str) -> str:
    """The path of an OpenLDAP program; a missing one fails the run (never a skip)."""
    path = shutil.which(name, path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"]))
    if path is None:
        pytest.fail(f"{name} is not installed: the directory tests need OpenLDAP (apt-get install slapd ldap-utils)")
    return path


def _module_dir() -> Path | None:
    """Where the distribution keeps slapd's loadable backends (None when mdb is built in)."""
    return next((d for d in MODULE_DIRS if (d / "back_mdb.so").exists() or (d / "back_mdb.la").exists()), None)


def _config(workdir: Path) -> str:
    modules = _module_dir()
    lines = [f"include {SCHEMA_DIR / name}.schema" for name in ("core", "cosine", "inetorgperson")]
    lines += [f"pidfile {workdir / 'slapd.pid'}", f"argsfile {workdir / 'slapd.args'}"]
    if modules is not None:
        lines += [f"modulepath {modules}", "moduleload back_mdb"]
    lines += [
        "database mdb",
        "maxsize 104857600",
        f'suffix "{SUFFIX}"',
        f'rootdn "{ROOT_DN}"',
        f"rootpw {ROOT_PASSWORD}",
        f"directory {workdir / 'data'}",
        "index objectClass eq",
        "index uid,cn,member eq",
    ]
    return "\n".join(lines) + "\n"


def start_slapd(workdir: Path) -> Slapd:
    """Write a slapd.conf, load the test entries with slapadd, start slapd and wait until it answers."""
    slapd, slapadd = _binary("slapd"), _binary("slapadd")
    (workdir / "data").mkdir(parents=True)
    conf = workdir / "slapd.conf"
    conf.write_text(_config(workdir))
    ldif = workdir / "directory.ldif"
    ldif.write_text(LDIF)
    loaded = subprocess.run([slapadd, "-f", str(conf), "-l", str(ldif)], capture_output=True, text=True, check=False)
    if loaded.returncode != 0:
        pytest.fail(f"slapadd failed ({loaded.returncode}): {loaded.stderr.strip()}")
    url = f"ldap://127.0.0.1:{free_port()}/"
    log_path = workdir / "slapd.log"
    with log_path.open("w") as log:
        # -d 0 keeps slapd in the foreground (no daemon to lose track of) without debug output.
        process = subprocess.Popen([slapd, "-f", str(conf), "-h", url, "-d", "0"], stdout=log, stderr=subprocess.STDOUT)
    server = Slapd(url, process, workdir, log_path)
    _wait_until_answering(server)
    return server


def _wait_until_answering(server: Slapd) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if server.process.poll() is not None:
            pytest.fail(f"slapd exited with {server.process.returncode}: {server.log_path.read_text()[-2000:]}")
        try:
            server.connect().unbind_s()
            return
        except ldap.LDAPError as exc:
            if time.monotonic() > deadline:
                server.stop()
                pytest.fail(f"slapd did not answer on {server.url} within {START_TIMEOUT:.0f} s: {exc}")
            time.sleep(0.1)


class DirectoryEditor:
    """Changes entries of the running directory for one test, and puts every touched entry back after it."""

    def __init__(self, server: Slapd) -> None:
        self.conn = server.connect()
        self.originals: dict[str, dict[str, list[bytes]] | None] = {}

    def _read(self, dn: str) -> dict[str, list[bytes]] | None:
        try:
            found = self.conn.search_s(dn, ldap.SCOPE_BASE, "(objectClass=*)")
        except ldap.NO_SUCH_OBJECT:
            return None
        return found[0][1] if found else None

    def _remember(self, dn: str) -> None:
        if dn not in self.originals:
            self.originals[dn] = self._read(dn)

    def add_user(self, uid: str, password: str, full_name: str) -> str:
        """Add a person; returns the DN."""
        dn = user_dn(uid)
        self._remember(dn)
        given, _, surname = full_name.partition(" ")
        attrs = {
            "objectClass": [b"inetOrgPerson"],
            "uid": [uid.encode()],
            "cn": [full_name.encode()],
            "sn": [(surname or given).encode()],
            "givenName": [given.encode()],
            "displayName": [full_name.encode()],
            "mail": [f"{uid}@wharf.test".encode()],
            "userPassword": [password.encode()],
        }
        self.conn.add_s(dn, ldap.modlist.addModlist(attrs))
        return dn

    def add_group(self, name: str, members: list[str]) -> str:
        """Add a groupOfNames with the given member DNs; returns the DN."""
        dn = group_dn(name)
        self._remember(dn)
        attrs = {"objectClass": [b"groupOfNames"], "cn": [name.encode()], "member": [m.encode() for m in members]}
        self.conn.add_s(dn, ldap.modlist.addModlist(attrs))
        return dn

    def add_member(self, group: str, member_dn: str) -> None:
        """Put a user or group DN into a group."""
        self._remember(group_dn(group))
        self.conn.modify_s(group_dn(group), [(ldap.MOD_ADD, "member", [member_dn.encode()])])

    def remove_member(self, group: str, member_dn: str) -> None:
        """Take a user or group DN out of a group (which keeps at least one other member)."""
        self._remember(group_dn(group))
        self.conn.modify_s(group_dn(group), [(ldap.MOD_DELETE, "member", [member_dn.encode()])])

    def delete(self, dn: str) -> None:
        """Delete an entry."""
        self._remember(dn)
        self.conn.delete_s(dn)

    def restore(self) -> None:
        """Put every touched entry back as it was before the test, newest change first."""
        for dn, original in reversed(self.originals.items()):
            current = self._read(dn)
            if original is None and current is not None:
                self.conn.delete_s(dn)
            elif original is not None and current is None:
                self.conn.add_s(dn, ldap.modlist.addModlist(original))
            elif original is not None and current is not None and current != original:
                self.conn.modify_s(dn, ldap.modlist.modifyModlist(current, original))
        self.originals.clear()
        self.conn.unbind_s()
