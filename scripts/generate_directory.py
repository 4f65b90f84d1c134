"""Regenerate cepbus/reference/data/directory.json, the packaged EXAMPLE directory (format
cep-bus-directory/3): the local partners and one key per organisation. Every key here is an INSECURE
development key (`cepbus.trust.development.dev_private_key`, derivable from the organisation id), valid
from 2020-01-01, and the file is signed by the INSECURE development directory authority
(`dev_authority_key()`): it says `"development": true`, and production refuses it. A real deployment
keeps its own signed directory apart from the software (CEPBUS_DIRECTORY_PATH), with the public keys
the organisations generated (`cep-bus keys generate`, `cep-bus directory add-key / sign`).
The output is deterministic (Ed25519 signatures are). Run: python scripts/generate_directory.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from datetime import UTC, datetime

from cepbus.reference import load_reference
from cepbus.reference.directory import FORMAT, Directory, encryption_key_entry, key_entry, sign_document
from cepbus.trust.development import dev_authority_key, dev_encryption_key, dev_private_key
from cepbus.trust.keys import AuthorityKey

OPCO = [
    ("opco-afdas", "AFDAS", "https://www.afdas.com", "culture, médias, sport, loisirs"),
    ("opco-akto", "AKTO", "https://www.akto.fr", "services à forte intensité de main-d'œuvre"),
    ("opco-atlas", "ATLAS", "https://www.opco-atlas.fr", "services financiers et conseil"),
    ("opco-constructys", "Constructys", "https://www.constructys.fr", "construction"),
    ("opco-ocapiat", "OCAPIAT", "https://www.ocapiat.fr", "agriculture, pêche, agroalimentaire"),
    ("opco-2i", "OPCO 2i", "https://www.opco2i.fr", "interindustriel"),
    ("opco-commerce", "OPCO Commerce", "https://www.lopcommerce.com", "commerce"),
    ("opco-ep", "OPCO EP", "https://www.opcoep.fr", "entreprises de proximité"),
    ("opco-mobilites", "OPCO Mobilités", "https://www.opcomobilites.fr", "mobilités"),
    ("opco-sante", "OPCO Santé", "https://www.opco-sante.fr", "santé"),
    ("opco-uniformation", "Uniformation", "https://www.uniformation.fr", "cohésion sociale"),
]
EXAMPLE_REGIONS = ("11", "84", "04")
DEV_KEYS_NOT_BEFORE = datetime(2020, 1, 1, tzinfo=UTC)
ISSUED_AT = "2026-01-01T00:00:00Z"
# A development directory does not expire before its tests do; production refuses it anyway.
EXPIRES_AT = "2099-12-31T00:00:00Z"


def main() -> None:
    reference = load_reference()
    partners: list[dict[str, object]] = []
    for region in sorted(reference.regions.values(), key=lambda r: r.code):
        partners.append(
            {
                "org_id": f"transitions-pro-r{region.code}",
                "kind": "transitions_pro",
                "name": f"Transitions Pro {region.name}",
                "region_code": region.code,
                "website": "https://www.transitionspro.fr",
                "example": False,
                "note": "AT-pro : projet de transition professionnelle, démission-reconversion.",
            }
        )
        partners.append(
            {
                "org_id": f"spro-r{region.code}",
                "kind": "spro",
                "name": f"Service public régional de l'orientation — {region.name} (point de contact)",
                "region_code": region.code,
                "website": None,
                "example": False,
                "note": "Point de contact régional du SPRO ; adresse à renseigner par la région.",
            }
        )
    for org_id, name, website, sector in OPCO:
        partners.append(
            {
                "org_id": org_id,
                "kind": "opco",
                "name": name,
                "region_code": None,
                "website": website,
                "example": False,
                "note": f"Opérateur de compétences national : {sector}.",
            }
        )
    for code in EXAMPLE_REGIONS:
        region = reference.region(code)
        partners.append(
            {
                "org_id": f"exemple-formation-r{code}",
                "kind": "training",
                "name": f"EXEMPLE — organisme de formation fictif ({region.name})",
                "region_code": code,
                "website": None,
                "example": True,
                "note": "Exemple fictif, pour la démonstration et les tests.",
            }
        )
        partners.append(
            {
                "org_id": f"exemple-medico-social-r{code}",
                "kind": "health_social",
                "name": f"EXEMPLE — partenaire santé-social fictif ({region.name})",
                "region_code": code,
                "website": None,
                "example": True,
                "note": "Exemple fictif, pour la démonstration et les tests.",
            }
        )
    services = [
        {"org_id": org_id, "role": role, "name": name}
        for org_id, role, name in (
            ("cep-bus-router", "router", "cep-bus — routeur (décisions, orientations)"),
            ("cep-bus-notifier", "notifier", "cep-bus — avis de choix éclairé"),
            ("cep-bus-ledger", "ledger", "cep-bus — registre de régulation"),
            ("cep-bus-deadletters", "deadletters", "cep-bus — archive des lettres mortes"),
        )
    ]
    ids = [org.org_id for org in reference.organisations()] + [str(p["org_id"]) for p in partners]
    ids += [str(service["org_id"]) for service in services]
    body = {
        "format": FORMAT,
        "version": "2026.2",  # 2026.2: organisations' encryption keys (issue #24)
        "serial": 2,
        "development": True,
        "issued_at": ISSUED_AT,
        "expires_at": EXPIRES_AT,
        "source": (
            "EXEMPLE DE DÉVELOPPEMENT. Partenaires locaux du CEP : Transitions Pro (AT-pro), les 11 OPCO, "
            "points de contact du SPRO ; organismes de formation et partenaires santé-social : EXEMPLES "
            "fictifs. Clés Ed25519 et X25519 INSECURE de DÉVELOPPEMENT "
            "(cepbus.trust.development.dev_private_key, dev_encryption_key, calculables par quiconque "
            "depuis l'identifiant) et signature de l'autorité de développement : "
            "ne prouvent rien, refusées en production. Un déploiement réel utilise son propre annuaire "
            "signé (CEPBUS_DIRECTORY_PATH, CEPBUS_DIRECTORY_AUTHORITY_KEY)."
        ),
        "partners": partners,
        "services": services,
        "keys": [key_entry(org_id, dev_private_key(org_id), DEV_KEYS_NOT_BEFORE) for org_id in sorted(ids)],
        # every organisation may receive a referral's contact (not the bus's own services)
        "encryption_keys": [
            encryption_key_entry(org_id, dev_encryption_key(org_id), DEV_KEYS_NOT_BEFORE)
            for org_id in sorted(set(ids) - {str(service["org_id"]) for service in services})
        ],
    }
    document = sign_document(body, dev_authority_key())
    Directory.build(reference, document, AuthorityKey.of(dev_authority_key()))  # fails loudly if invalid
    out = Path(__file__).resolve().parent.parent / "cepbus" / "reference" / "data" / "directory.json"
    out.write_text(json.dumps(document, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(f"{out}: {len(partners)} partners, {len(ids)} INSECURE development keys")


if __name__ == "__main__":
    main()
