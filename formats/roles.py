"""Key roles and their one-byte codes, as encoded in key files, keyrings and wrapped keys."""

from __future__ import annotations

import enum

from formats.errors import FormatError

__all__ = ["ASYMMETRIC_ROLES", "KEY_BITS", "Role", "role_from_code"]


class Role(enum.IntEnum):
    ROOT = 1  # RSA-4096, PSS: signs the account keyring
    DATA = 2  # RSA-4096, OAEP: unwraps per-backup data keys
    BROWSE = 3  # RSA-4096, OAEP: unwraps per-backup metadata keys
    HOST = 4  # RSA-3072, PSS: signs one host's manifests
    DELETION = 5  # RSA-3072, PSS: signs delete and prune requests
    DEDUP = 6  # 256-bit symmetric secret: keys chunk ids and the chunker

    @property
    def label(self) -> str:
        return self.name.lower()


#: RSA modulus size of each asymmetric role.
KEY_BITS: dict[Role, int] = {
    Role.ROOT: 4096,
    Role.DATA: 4096,
    Role.BROWSE: 4096,
    Role.HOST: 3072,
    Role.DELETION: 3072,
}
ASYMMETRIC_ROLES = frozenset(KEY_BITS)


def role_from_code(code: int, what: str) -> Role:
    try:
        return Role(code)
    except ValueError:
        raise FormatError(f"{what} names unknown key role {code}") from None
