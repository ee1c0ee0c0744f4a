"""Forget: which snapshots a policy removes (per host), and the signed delete request that removes them.

Only manifests are deleted here; the objects they alone referenced, and the key envelopes no
remaining manifest names, are freed later by prune (:mod:`opsbackup.ops.prune`). Every manifest
is verified before the policy is applied, so a server cannot make forget remove something by
hiding or forging a listing entry: a hidden snapshot is simply not removed, and a forged one fails
verification and stops forget.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric import rsa

from crypto.primitives import random_bytes
from crypto.private import sign_object
from formats import delete_request
from opsbackup.client.account import Account, VerifiedManifest
from opsbackup.ops.retention import Policy, apply_policy

__all__ = ["ForgetPlan", "HostPlan", "delete_in_batches", "plan_forget", "sign_delete_request"]


@dataclass(frozen=True)
class HostPlan:
    """One host's snapshots split by the policy; ``reasons`` maps each kept backup id to its rules."""

    host: str
    keep: tuple[VerifiedManifest, ...]
    remove: tuple[VerifiedManifest, ...]
    reasons: dict[str, list[str]]


@dataclass
class ForgetPlan:
    """What forget keeps and removes, per host, and what the server said when it was applied."""

    policy: Policy
    hosts: list[HostPlan]
    deleted: dict[str, int] = field(default_factory=dict)

    @property
    def removed(self) -> list[VerifiedManifest]:
        return [vm for hp in self.hosts for vm in hp.remove]

    def to_json(self, *, dry_run: bool) -> dict[str, object]:
        """A JSON-ready summary: per host, each snapshot kept (with its rules) or removed."""
        return {
            "dry_run": dry_run,
            "policy": self.policy.describe(),
            "hosts": [
                {
                    "host": hp.host,
                    "keep": [
                        {
                            "backup_id": vm.backup_id,
                            "time": vm.manifest.time,
                            "reasons": hp.reasons[vm.backup_id],
                        }
                        for vm in hp.keep
                    ],
                    "remove": [{"backup_id": vm.backup_id, "time": vm.manifest.time} for vm in hp.remove],
                }
                for hp in self.hosts
            ],
            "deleted": self.deleted,
        }


def plan_forget(account: Account, policy: Policy, host: str | None = None) -> ForgetPlan:
    """Verify every snapshot (of ``host``, or of every host) and apply ``policy`` to each host's."""
    # Here, not at the top: ``opsbackup.restore`` loads every restore module, which ``opsbackup run``
    # (importing this module for its retention step) needs only when a policy is configured.
    from opsbackup.restore.snapshots import list_snapshots

    by_host: dict[str, list[VerifiedManifest]] = collections.defaultdict(list)
    for vm in list_snapshots(account, host):
        by_host[vm.host].append(vm)
    plans: list[HostPlan] = []
    for name, manifests in sorted(by_host.items()):
        by_id = {vm.backup_id: vm for vm in manifests}
        keep, remove, reasons = apply_policy([(vm.manifest.time, vm.backup_id) for vm in manifests], policy)
        plans.append(
            HostPlan(
                host=name,
                keep=tuple(by_id[i] for _, i in keep),
                remove=tuple(by_id[i] for _, i in remove),
                reasons=reasons,
            )
        )
    return ForgetPlan(policy, plans)


def _manifest_ids(ids: Sequence[tuple[str, bytes]]) -> tuple[delete_request.ManifestId, ...]:
    return tuple(
        sorted(
            {delete_request.ManifestId(h, b) for h, b in ids},
            key=lambda m: (m.host.encode("ascii"), m.backup_id),
        )
    )


def sign_delete_request(
    deletion_key: rsa.RSAPrivateKey,
    account_id: bytes,
    *,
    objects: Sequence[bytes] = (),
    manifests: Sequence[tuple[str, bytes]] = (),
    envelopes: Sequence[bytes] = (),
    basis: Sequence[tuple[str, bytes]] = (),
    now: float | None = None,
) -> bytes:
    """A signed delete request (fresh nonce, issued now) naming ``objects``, ``(host, id)`` manifests
    and the backup ids of ``envelopes`` (every generation of each goes). ``basis`` lists the
    ``(host, id)`` manifests the plan was computed from: the server keeps whatever a manifest
    outside it needs (docs/spec/delete-request.md)."""
    body = delete_request.encode(
        delete_request.DeleteRequest(
            account_id=account_id,
            nonce=random_bytes(delete_request.NONCE_SIZE),
            issued_at=int(time.time() if now is None else now),
            objects=tuple(sorted(set(objects))),
            manifests=_manifest_ids(manifests),
            envelopes=tuple(sorted(set(envelopes))),
            basis=_manifest_ids(basis),
        )
    )
    return sign_object(deletion_key, body)


def delete_in_batches(
    account: Account,
    deletion_key: rsa.RSAPrivateKey,
    *,
    objects: Sequence[bytes] = (),
    manifests: Sequence[tuple[str, bytes]] = (),
    envelopes: Sequence[bytes] = (),
    basis: Sequence[tuple[str, bytes]] = (),
    batch: int = 10_000,
) -> dict[str, int]:
    """Sign and post delete requests of at most ``batch`` items each; the server's counts, summed.

    Manifests go first, then objects, then envelopes (a backup's envelope outlives its manifest).
    Every request carries ``basis``, the manifests the plan was computed from.
    """
    fields = ("deleted_objects", "deleted_manifests", "deleted_envelopes", "missing")
    totals = dict.fromkeys((*fields, "kept_objects", "kept_envelopes", "kept_bytes"), 0)
    account_id = account.keyring.account_id
    none_b: Sequence[bytes] = ()
    none_m: Sequence[tuple[str, bytes]] = ()
    parts = [(none_b, manifests[i : i + batch], none_b) for i in range(0, len(manifests), batch)]
    parts += [(objects[i : i + batch], none_m, none_b) for i in range(0, len(objects), batch)]
    parts += [(none_b, none_m, envelopes[i : i + batch]) for i in range(0, len(envelopes), batch)]
    for objs, mans, envs in parts:  # each signed just before it goes: fresh for the server's window
        signed = sign_delete_request(
            deletion_key, account_id, objects=objs, manifests=mans, envelopes=envs, basis=basis
        )
        for key, value in account.repo.post_delete(signed).items():
            totals[key] = totals.get(key, 0) + value
    return totals
