"""Regenerate cepbus/reference/data/directory.json: the local partners and every organisation's
public key. Keys here are the INSECURE development keys (`cepbus.signing.dev_private_key`); a real
deployment replaces each with the public key the organisation sends. Run: python scripts/generate_directory.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cepbus.reference import load_reference
from cepbus.signing import dev_private_key, public_key_b64

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
    ids = [org.org_id for org in reference.organisations()] + [str(p["org_id"]) for p in partners]
    document = {
        "version": "2026.1",
        "source": (
            "Partenaires locaux du CEP : Transitions Pro (AT-pro), les 11 OPCO, points de contact du SPRO ; "
            "organismes de formation et partenaires santé-social : EXEMPLES fictifs. Clés publiques Ed25519 "
            "de DÉVELOPPEMENT (cepbus.signing.dev_private_key) : "
            "à remplacer par la clé de chaque organisation."
        ),
        "partners": partners,
        "public_keys": {org_id: public_key_b64(dev_private_key(org_id)) for org_id in sorted(ids)},
    }
    out = Path(__file__).resolve().parent.parent / "cepbus" / "reference" / "data" / "directory.json"
    out.write_text(json.dumps(document, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(f"{out}: {len(partners)} partners, {len(ids)} keys")


if __name__ == "__main__":
    main()
