"""A service's identity on the bus: the key it signs everything it emits with, and its judge of who said
what in everything it reads (`cepbus.reference.authorship`).

The key is the service's own (`CEPBUS_<SERVICE>_STATEMENT_KEY_PATH`, an Ed25519 PEM file such as
`cep-bus keys generate` writes, mounted from a Secret), and the signed directory must list it for the
service's organisation id. Without a path, in development, the service signs with its derivable
development key (`cepbus.trust.development`), which the packaged directory lists: a trust problem that
production refuses (`cepbus.trust.modes.enforce`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from cepbus.contract.statements import StatementSigner
from cepbus.contract.topics import ProducerKind
from cepbus.reference import ReferenceData
from cepbus.reference.authorship import Authorship
from cepbus.reference.directory import Directory
from cepbus.reference.producers import ProducerCatalog
from cepbus.runtime.settings import ServiceSettings
from cepbus.trust.development import dev_private_key
from cepbus.trust.keys import key_id, load_private_key, raw_public_key
from cepbus.trust.modes import TrustProblem


@dataclass(frozen=True)
class ServiceIdentity:
    signer: StatementSigner
    authorship: Authorship
    problems: list[TrustProblem]


def service_identity(
    service: str,
    settings: ServiceSettings,
    directory: Directory,
    reference: ReferenceData,
    role: ProducerKind,
) -> ServiceIdentity:
    """The service's signer and judge; ValueError (one line) when its key is not the directory's."""
    org_id = settings.service_org_id
    problems: list[TrustProblem] = []
    path = settings.statement_key_path
    if path is None:
        key = dev_private_key(org_id)
        setting = f"CEPBUS_{service.upper()}_STATEMENT_KEY_PATH"
        problems.append(
            TrustProblem(
                f"the {service} signs what it emits with the derivable development key of {org_id}",
                f"set {setting} to its own key (cep-bus keys generate) and list it in the signed directory",
            )
        )
    else:
        key = load_private_key(path)
    kid = key_id(org_id, raw_public_key(key))
    listed = directory.key_by_id(kid)
    if listed is None or listed.org_id != org_id:
        raise ValueError(
            f"the {service}'s signing key ({kid}) is not in the referral directory (serial "
            f"{directory.serial}) for {org_id}: add its public key to the directory and sign a new version"
        )
    if not listed.valid_at(datetime.now(UTC)):
        raise ValueError(f"the {service}'s signing key {kid} is not valid now in the referral directory")
    authorship = Authorship(directory, ProducerCatalog.build(reference, directory, {org_id: role}))
    return ServiceIdentity(StatementSigner(org_id, kid, key), authorship, problems)


__all__ = ["ServiceIdentity", "service_identity"]
