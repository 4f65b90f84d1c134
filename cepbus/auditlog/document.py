"""The audit report as a document for France compétences' auditors: HTML, and PDF through a real layout
engine (WeasyPrint, PDF/A-3b where it can, the report's JSON attached).

Rendered from the report's JSON alone (`cepbus.auditlog.report.build_report` plus its `source`), so the
operator's database and an auditor's verified bundle give the same document, and the JSON attached to
the PDF is exactly what it shows. The reference data only supplies names (regions, départements,
operators). Charts are matplotlib SVG: inline in the HTML, SVG images in the PDF, vector either way
(paths and text, never a raster). Labels are French (the reader is the auditor), identifiers English.
"""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from cepbus.auditlog import report as indicators
from cepbus.auditlog.report import report_json
from cepbus.contract.regulation import NOTICE_ON_TIME_S

TEMPLATES = Path(__file__).parent / "templates"
ATTACHMENT_NAME = "rapport-audit.json"
PDF_VARIANT = "pdf/a-3b"

KIND_LABELS = {
    "regional_cep": "Opérateur régional CEP",
    "apec": "Apec",
    "cap_emploi": "Cap emploi",
    "france_travail": "France Travail",
    "mission_locale": "Mission locale",
    "transitions_pro": "Transitions Pro",
    "opco": "OPCO",
    "spro": "SPRO (orientation régionale)",
    "training": "Organisme de formation",
    "health_social": "Partenaire santé-social",
    "other": "Autre",
    "?": "inconnu",
}
CHANNEL_LABELS = {"in_person": "présentiel", "phone": "téléphone", "video": "visioconférence", "?": "inconnu"}
DELIVERY_LABELS = {"in_person": "présentiel", "remote": "à distance", "?": "inconnu"}
LEVEL_LABELS = {
    "level_1": "niveau 1 — accueil individualisé",
    "level_2": "niveau 2 — accompagnement personnalisé",
}
CHOICE_LABELS = {"stay": "reste", "switch": "change d'opérateur", "undecided": "indécis"}
#: The three delays drawn per region, with their section's title.
CHARTS = (
    ("intake_to_notice", "Délai accueil → avis d'information"),
    ("referral_to_first_appointment", "Délai orientation → premier rendez-vous du partenaire"),
    ("cep_appointment", "Délai de rendez-vous CEP (accueil → premier niveau 1 ou 2)"),
)


@dataclass(frozen=True)
class Labels:
    """Names for codes, from the reference data (a code without a name is shown as the code)."""

    regions: Mapping[str, str] = field(default_factory=dict)
    departements: Mapping[str, str] = field(default_factory=dict)
    organisations: Mapping[str, str] = field(default_factory=dict)
    sites: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_reference(cls, reference: Any | None = None, registry: Any | None = None) -> Labels:
        from cepbus.reference import load_reference
        from cepbus.reference.sites import load_sites

        data = reference or load_reference()
        return cls(
            regions={code: region.name for code, region in data.regions.items()},
            departements={code: dep.name for code, dep in data.departements.items()},
            organisations={org.org_id: org.name for org in data.organisations()},
            sites={site.site_id: site.name for site in (registry or load_sites()).sites()},
        )

    def region(self, code: str | None) -> str:
        if code is None or code == "?":
            return "sans région"
        return f"{self.regions[code]} ({code})" if code in self.regions else code

    def short_region(self, code: str) -> str:
        """For a chart's panel title: the code first, then the name."""
        return f"{code} {self.regions[code]}" if code in self.regions else self.region(code)

    def departement(self, code: str) -> str:
        return f"{code} {self.departements[code]}" if code in self.departements else code


# -- French formatting ---------------------------------------------------------------------------------


def number(value: int | float | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}".replace(",", "\u202f").replace(".", ",")
    return f"{int(value):,}".replace(",", "\u202f")


def percent(part: int | None, whole: int | None) -> str:
    if part is None or not whole:
        return "—"
    return f"{100 * part / whole:.1f}".replace(".", ",") + "\u00a0%"


def duration(seconds: float | None) -> str:
    """A delay for a reader: seconds, minutes, hours or days, one decimal at most."""
    if seconds is None:
        return "—"
    sign, value = ("−" if seconds < 0 else ""), abs(seconds)
    unit, size = next(((u, n) for u, n in (("j", 86_400), ("h", 3600), ("min", 60)) if value >= n), ("s", 1))
    scaled = value / size
    text = f"{scaled:.0f}" if scaled >= 10 else f"{scaled:.1f}".replace(".", ",")
    return f"{sign}{text.removesuffix(',0')}\u00a0{unit}"


def instant(ms: int | None) -> str:
    if ms is None:
        return "—"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%d/%m/%Y %H:%M:%S UTC")


def bin_label(seconds: int) -> str:
    return "0" if seconds == 0 else duration(seconds).replace("\u00a0", " ")


# -- charts ----------------------------------------------------------------------------------------------

_ID = re.compile(r'\bid="([^"]+)"')
_REF = re.compile(r'(url\(#|href="#)([^")]+)')


def _inline_svg(svg: str, prefix: str) -> str:
    """Matplotlib's SVG made fit to sit inline in HTML beside others: no XML prolog, no global <style>,
    every id (clip paths) prefixed so that two charts never share one."""
    svg = svg[svg.index("<svg") :]
    svg = re.sub(r"<style[^>]*>.*?</style>", "", svg, flags=re.S)
    svg = re.sub(r"<!--.*?-->", "", svg, flags=re.S)
    svg = _ID.sub(lambda m: f'id="{prefix}-{m.group(1)}"', svg)
    svg = _REF.sub(lambda m: f"{m.group(1)}{prefix}-{m.group(2)}", svg)
    return svg.replace("<svg ", '<svg role="img" style="stroke-linejoin:round;stroke-linecap:butt" ', 1)


def delay_chart_svg(
    distribution: Mapping[str, Any],
    bins_s: Sequence[int],
    panels: Sequence[tuple[str, str]],
    *,
    chart_id: str,
    columns: int = 4,
) -> str:
    """Small multiples, one panel per region: bars count the delays on the bus's clock per bin, an
    orange outline the same delays on the times claimed by the senders where those differ. `panels`
    are (region code, title) pairs. An inline SVG string (vector: paths and text, no raster)."""
    import matplotlib
    from matplotlib.figure import Figure  # no pyplot: no global figure state, no GUI backend

    by_region = distribution.get("by_region", {})
    shown = [(code, title) for code, title in panels if sum(by_region.get(code, {}).get("recorded", [])) > 0]
    if not shown:
        return ""
    rows = -(-len(shown) // columns)
    cols = min(columns, len(shown))
    style: Any = {  # rcParams (matplotlib types them as a closed set of literal keys)
        "svg.fonttype": "none",
        "svg.hashsalt": chart_id,
        "font.family": "DejaVu Sans",
        "font.size": 6.5,
        "axes.linewidth": 0.5,
        "xtick.major.width": 0.5,
        "ytick.major.width": 0.5,
    }
    height = 0.5 + 1.2 * rows  # inches: a fixed layout (constrained layout is slow with many panels)
    with matplotlib.rc_context(style):
        figure = Figure(figsize=(7.0, height))
        axes = figure.subplots(rows, cols, squeeze=False, sharex=True, gridspec_kw={
            "left": 0.06, "right": 0.99, "top": 1 - 0.42 / height, "bottom": 0.5 / height,
            "hspace": 0.55, "wspace": 0.22,
        })  # fmt: skip
        positions = list(range(len(bins_s)))
        labels = [bin_label(edge) for edge in bins_s]
        for index, ax in enumerate(axes.flat):
            if index >= len(shown):
                ax.set_visible(False)
                continue
            code, title = shown[index]
            series = by_region[code]
            recorded = series["recorded"]
            ax.bar(positions, recorded, width=0.8, color="#1f5fa8", label="horloge du bus")
            if "claimed" in series:  # bars of zero height would draw as stray lines: left out
                drawn = [(x, n) for x, n in zip(positions, series["claimed"], strict=False) if n]
                ax.bar([x for x, _ in drawn], [n for _, n in drawn], width=0.55, fill=False,
                       edgecolor="#d9730d", linewidth=1.0, label="dates déclarées")  # fmt: skip
            ax.set_title(title, fontsize=6.5, loc="left")
            ax.text(0.98, 0.97, f"n = {sum(recorded)}", transform=ax.transAxes, ha="right", va="top",
                    fontsize=6)  # fmt: skip
            ax.set_xticks(positions, labels, rotation=90, fontsize=5.5)
            ax.tick_params(axis="x", labelbottom=index + cols >= len(shown))  # the lowest in its column
            ax.set_xlim(-0.6, len(positions) - 0.4)
            ax.tick_params(axis="y", labelsize=5.5)
            ax.spines[["top", "right"]].set_visible(False)
            ax.yaxis.get_major_locator().set_params(integer=True)
        handles: list[Any] = []
        names: list[str] = []
        for ax in axes.flat:
            for handle, name in zip(*ax.get_legend_handles_labels(), strict=True):
                if name not in names:
                    handles.append(handle)
                    names.append(name)
        figure.legend(handles, names, loc="upper right", ncols=2, fontsize=6.5, frameon=False)
        buffer = io.StringIO()
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    return _inline_svg(buffer.getvalue(), chart_id)


# -- the document ----------------------------------------------------------------------------------------


def _delay_cells(stats: Mapping[str, Any] | None) -> dict[str, str]:
    """p50 / p90 / max as text, with the claimed figures beside when they differ."""
    stats = stats or {}
    cells = {key: duration(stats.get(f"{key}_s")) for key in ("p50", "p90", "max")}
    cells["count"] = number(stats.get("count", 0))
    claimed = stats.get("claimed")
    cells["claimed"] = (
        "" if not claimed else " / ".join(duration(claimed.get(f"{key}_s")) for key in ("p50", "p90", "max"))
    )
    cells["claimed_p50"] = "" if not claimed else duration(claimed.get("p50_s"))
    return cells


def _group_rows(table: Mapping[str, Mapping[str, Any]], name: Any) -> list[dict[str, Any]]:
    rows = []
    for key, row in table.items():
        issued = row.get("notices_issued", 0)
        decided = row.get("referrals_accepted", 0) + row.get("referrals_declined", 0)
        rows.append(
            {
                "name": name(key),
                "counts": {metric: number(row.get(metric, 0)) for metric in indicators.GROUP_COUNTS},
                "on_time_share": percent(row.get("notices_on_time", 0), issued),
                "acceptance": percent(row.get("referrals_accepted", 0), decided),
                "delays": {delay: _delay_cells(row.get(delay)) for delay in indicators.GROUP_DELAYS},
            }
        )
    return rows


def _stat_rows(table: Mapping[str, Any] | None, name: Any) -> list[dict[str, Any]]:
    return [{"name": name(key), **_delay_cells(stats)} for key, stats in (table or {}).items()]


def _verification(source: Mapping[str, Any]) -> dict[str, Any]:
    """What was verified, against which key, and the outcome, in the auditor's words."""
    check = source.get("verification") or {}
    checkpoint = source.get("checkpoint") or {}
    tree_size = source.get("tree_size")
    if source.get("kind") == "bundle":
        what = (
            "Lot d'export vérifié hors ligne : signature du point de contrôle par la clé épinglée, racine "
            f"recalculée à partir des {number(tree_size)} feuilles, contenu de chaque entrée comparé à sa "
            "feuille."
        )
        key = source.get("verified_by")
    elif not check:
        what = "Aucun résultat de vérification dans ce rapport : les chiffres ne sont pas vérifiés."
        key = None
    else:
        signatures = (
            "vérifiée avec la clé du registre" if check.get("signatures_checked_with") else "NON vérifiée"
        )
        what = (
            "Registre vérifié (store.verify) : chaque feuille relue et décodée, chaque nœud de l'arbre de "
            "Merkle recalculé, la racine de chaque point de contrôle stocké comparée ; leur signature "
            f"{signatures}."
        )
        key = check.get("signatures_checked_with")
    warnings = [check["key_problem"]] if check.get("key_problem") else []
    if source.get("kind") != "bundle":
        if check and not check.get("signatures_checked_with") and not check.get("key_problem"):
            warnings.append("Signatures des points de contrôle non vérifiées : pas de clé du registre.")
        if not checkpoint:
            warnings.append(
                "Aucun point de contrôle signé : les chiffres ne sont adossés à aucune signature."
            )
        elif checkpoint.get("tree_size") != tree_size:
            later = (tree_size or 0) - checkpoint.get("tree_size", 0)
            warnings.append(
                f"Le rapport porte sur {number(tree_size)} entrées ; le dernier point de contrôle signé en "
                f"couvre {number(checkpoint.get('tree_size'))} : les {number(later)} plus récentes ne sont "
                "pas encore signées (les signer avec cep-bus ledger checkpoint avant de produire le rapport)."
            )
    return {
        "ok": bool(check.get("ok")),
        "what": what,
        "key": key,
        "entries_checked": number(check.get("entries_checked")),
        "reason": check.get("reason"),
        "first_bad_index": check.get("first_bad_index"),
        "warnings": warnings,
    }


def _headline(report: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    notices, refs, cep = report["notices"], report["referrals"], report.get("cep_appointment_delay") or {}
    choices = report["choices"]
    silent = report.get("silent_operators")
    delay = cep.get("delay") or {}
    claimed = delay.get("claimed")
    tiles = [
        ("Accueils", number(report["intakes"]["total"]), "IntakeRegistered de la période"),
        ("Avis d'information dus", number(notices["due"]),
         f"émis : {number(notices['issued'])} ; dus non émis : {number(notices['due_not_issued'])}"),
        ("Avis émis à temps", percent(notices.get("on_time"), notices["issued"]),
         f"{number(notices.get('on_time'))} émis en {number(notices.get('on_time_within_s'))} s au plus"),
        ("Choix recueillis", number(sum(choices.get(c, 0) for c in indicators.CHOICES)),
         " ; ".join(f"{CHOICE_LABELS[c]} : {number(choices.get(c, 0))}" for c in indicators.CHOICES)),
        ("Orientations", number(refs["total"]),
         f"acceptées : {number(refs['accepted'])} ; refusées : {number(refs['declined'])} ; "
         f"taux d'acceptation : {percent(refs['accepted'], refs['accepted'] + refs['declined'])}"),
        ("Manquements à la régulation", number(report["regulation_breaches"]["total"]),
         f"dépassements de délais d'orientation : {number(report['deadline_breaches']['total'])}"),
        ("Délai de rendez-vous CEP (médiane)", duration(delay.get("p50_s")),
         f"{number(cep.get('started', 0))} accueils suivis d'un niveau 1 ou 2"
         + (f" ; dates déclarées : {duration(claimed.get('p50_s'))}" if claimed else "")),
        ("Opérateurs silencieux", "—" if silent is None else number(silent["silent"]),
         "liste des opérateurs non fournie" if silent is None else
         f"sur {number(silent['expected'])} attendus ; mise en demeure (> {silent['threshold_days']} j) : "
         f"{number(silent['formal_notice_due'])}"),
    ]  # fmt: skip
    return tiles


def _period(report: Mapping[str, Any]) -> str:
    period = report.get("period") or {}
    scope = report.get("scope") or {}
    if period.get("cut") == "local midnight per region":
        first, last = period.get("from") or "l'origine", period.get("to") or "la dernière entrée"
        return f"du {first} au {last} inclus, jours coupés à minuit heure locale de chaque région"
    if period.get("cut") == "instants [from_ms, to_ms)":
        start, end = instant(scope.get("from_ms")), instant(scope.get("to_ms"))
        return f"de {start} à {end} (instants : la période du lot d'export)"
    return "toutes les entrées du registre (aucune période)"


def _chart_markup(svg: str, title: str, as_image: bool) -> Markup:
    """The chart inline (HTML: its text searchable, styled with the page), or as an SVG image in a data
    URI (for WeasyPrint: still vector in the PDF, and its nodes stay out of the CSS cascade, which makes
    the layout about a third faster)."""
    if not svg or not as_image:
        return Markup(svg)
    data = base64.b64encode(svg.encode()).decode()
    return Markup('<img src="data:image/svg+xml;base64,{}" alt="{}">').format(Markup(data), title)


def document_context(
    report: Mapping[str, Any],
    labels: Labels | None = None,
    generated_at: datetime | None = None,
    *,
    svg_as_image: bool = False,
) -> dict[str, Any]:
    """Everything the template shows, formatted: the template only lays it out."""
    labels = labels or Labels()
    moment = generated_at or datetime.now(UTC)
    source = report.get("source") or {}
    checkpoint = source.get("checkpoint") or {}
    distributions = report.get("delay_distributions") or {}
    bins = distributions.get("bins_s") or list(indicators.DELAY_BINS_S)
    regions = sorted(
        {code for dist in distributions.values() if isinstance(dist, dict)
         for code in dist.get("by_region", {})}
    )  # fmt: skip
    panels = [(code, labels.short_region(code)) for code in regions]
    charts = []
    for number_, (name, title) in enumerate(CHARTS, start=1):
        svg = delay_chart_svg(distributions.get(name) or {}, bins, panels, chart_id=f"chart{number_}")
        markup = _chart_markup(svg, title, svg_as_image)
        charts.append({"name": name, "title": title, "svg": markup, "id": f"chart-{name}"})
    cep = report.get("cep_appointment_delay") or {}
    sites = report.get("reception_sites") or {}
    silent = report.get("silent_operators")
    refs = report["referrals"]
    return {
        "report": report,
        "generated_at": moment.strftime("%d/%m/%Y %H:%M UTC"),
        "report_created": moment.isoformat(timespec="seconds"),
        "origin": source.get("origin") or checkpoint.get("origin") or "origine inconnue",
        "source": source,
        "checkpoint": checkpoint,
        "tree_size": number(source.get("tree_size")),
        "root_b64": source.get("root_b64"),
        "root_hex": None if not source.get("root_b64") else _hex(source["root_b64"]),
        "verification": _verification(source),
        "period": _period(report),
        "region_scope": "toutes les régions"
        if not report["scope"].get("region")
        else labels.region(report["scope"]["region"]),
        "headline": _headline(report),
        "by_region": _group_rows(report.get("by_region") or {}, labels.region),
        "by_kind": _group_rows(report.get("by_operator_kind") or {}, lambda k: KIND_LABELS.get(k, k)),
        "charts": {chart["name"]: chart for chart in charts},
        "cep": cep,
        "cep_overall": _delay_cells(cep.get("delay")),
        "cep_by_delivery": _stat_rows(cep.get("by_delivery"), lambda k: DELIVERY_LABELS.get(k, k)),
        "cep_by_channel": _stat_rows(cep.get("by_channel"), lambda k: CHANNEL_LABELS.get(k, k)),
        "cep_by_level": _stat_rows(cep.get("by_first_level"), lambda k: LEVEL_LABELS.get(k, k)),
        "cep_by_region_delivery": _region_delivery_rows(cep, labels),
        "cep_by_departement": _stat_rows(cep.get("by_departement"), labels.departement),
        "sites": sites,
        "site_rows": _site_rows(sites, labels),
        "site_list": _site_list(sites, cep.get("by_reception_site") or {}, labels),
        "silent": silent,
        "silent_rows": _silent_rows(silent, labels),
        "notice_delay": _delay_cells(report["notices"]["intake_to_notice_delay"]),
        "referral_delay": _delay_cells(refs["delay_to_first_appointment"]),
        "matrix_rows": _matrix_rows(refs["matrix"]),
        "recipient_kinds": [(KIND_LABELS.get(k, k), number(n)) for k, n in refs["by_recipient_kind"].items()],
        "kind_labels": KIND_LABELS,
        "choice_labels": CHOICE_LABELS,
        "period_regions": [
            (labels.region(code), row["zone"], instant(row["from_ms"]), instant(row["to_ms"]))
            for code, row in ((report.get("period") or {}).get("regions") or {}).items()
        ],
        "constants": {
            "notice_on_time_s": number(NOTICE_ON_TIME_S),
            "silence_days": indicators.SILENCE_THRESHOLD_DAYS,
            "fallback_zone": indicators.FALLBACK_ZONE,
            "bins": ", ".join(bin_label(edge) for edge in bins),
            "accepted": ", ".join(sorted(indicators.ACCEPTED_STATUSES)),
            "remote": ", ".join(sorted(indicators.REMOTE_CHANNELS)),
        },
        "number": number,
        "percent": percent,
        "duration": duration,
        "instant": instant,
        "attachment_name": ATTACHMENT_NAME,
    }


def _region_delivery_rows(cep: Mapping[str, Any], labels: Labels) -> list[dict[str, Any]]:
    return [
        {
            "name": labels.region(code),
            "in_person": _delay_cells(row.get("in_person")),
            "remote": _delay_cells(row.get("remote")),
        }
        for code, row in (cep.get("by_region_and_delivery") or {}).items()
    ]


def _site_rows(sites: Mapping[str, Any], labels: Labels) -> list[dict[str, Any]]:
    rows = []
    for dep, row in (sites.get("by_departement") or {}).items():
        listed = row.get("sites")
        rows.append(
            {
                "name": labels.departement(dep),
                "region": labels.region(row.get("region_code")),
                "intakes": number(row["intakes"]),
                "in_person": number(row["in_person"]),
                "remote": number(row["remote"]),
                "operators": ", ".join(f"{op} ({n})" for op, n in row["operators"].items()),
                "in_use": None if listed is None else number(len(listed)),
                "registered": row.get("registered_sites"),
                "unused": len(row.get("registered_sites_unused") or ()),
            }
        )
    return rows


def _site_list(sites: Mapping[str, Any], delays: Mapping[str, Any], labels: Labels) -> list[dict[str, Any]]:
    """Each site in use, by département then id: its name from the registry, its intakes and the CEP's
    appointment delay there (people seen, median)."""
    rows = []
    for dep, row in (sites.get("by_departement") or {}).items():
        for site_id, intakes in sorted((row.get("sites") or {}).items()):
            stats = delays.get(site_id) or {}
            rows.append(
                {
                    "id": site_id,
                    "name": labels.sites.get(site_id, "hors registre"),
                    "departement": dep,
                    "intakes": number(intakes),
                    "started": number(stats.get("count", 0)),
                    "p50": duration(stats.get("p50_s")) if stats else "—",
                }
            )
    return rows


def _silent_rows(silent: Mapping[str, Any] | None, labels: Labels) -> list[dict[str, Any]]:
    rows = []
    for org_id, row in ((silent or {}).get("operators") or {}).items():
        since, as_of = row.get("silent_since_ms"), row.get("as_of_ms")
        silent_for = "—" if since is None or as_of is None else duration((as_of - since) / 1000)
        rows.append(
            {
                "org_id": org_id,
                "name": labels.organisations.get(org_id, ""),
                "kind": KIND_LABELS.get(row["kind"], row["kind"]),
                "region": labels.region(row["region_code"]),
                "last_heard": instant(row["last_heard_ms"]) if row["last_heard_ms"] else "jamais",
                "silent_for": silent_for,
                "since_ledger_start": not row["last_heard_ms"],
                "formal_notice_due": row["formal_notice_due"],
            }
        )
    return rows


def _matrix_rows(matrix: Mapping[str, Mapping[str, int]]) -> list[tuple[str, int, str]]:
    """One row per requester: its referrals, and its recipients with their counts, most frequent first."""
    rows = []
    for source, targets in matrix.items():
        ranked = sorted(targets.items(), key=lambda item: (-item[1], item[0]))
        rows.append((source, sum(targets.values()), ", ".join(f"{target} ({n})" for target, n in ranked)))
    return rows


def _hex(b64: str) -> str:
    return base64.b64decode(b64).hex()


def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_html(
    report: Mapping[str, Any],
    labels: Labels | None = None,
    generated_at: datetime | None = None,
    *,
    svg_as_image: bool = False,
) -> str:
    """The whole document as one self-contained HTML page (CSS and SVG inline, nothing fetched)."""
    context = document_context(report, labels, generated_at, svg_as_image=svg_as_image)
    return _environment().get_template("audit_report.html.j2").render(**context)


@dataclass(frozen=True)
class PdfDocument:
    data: bytes
    variant: str | None  # "pdf/a-3b", or None when the PDF/A conversion failed (plain PDF)
    problem: str | None = None  # why it is not PDF/A


def render_pdf(
    report: Mapping[str, Any], labels: Labels | None = None, generated_at: datetime | None = None
) -> PdfDocument:
    """The document laid out by WeasyPrint as PDF/A-3b, with the report's JSON attached (AFRelationship
    Data) so that the figures can be re-read by a program; a plain PDF, saying why, when PDF/A fails."""
    import weasyprint  # type: ignore[import-untyped]

    moment = generated_at or datetime.now(UTC)
    html = render_html(report, labels, moment, svg_as_image=True)
    document = weasyprint.HTML(string=html, base_url=str(TEMPLATES)).render()

    def attachment() -> Any:
        return weasyprint.Attachment(
            string=report_json(report),
            name=ATTACHMENT_NAME,
            description="Le rapport d'audit en JSON (cep-bus-audit-report/1), dont ce document est le rendu",
            created=moment,
            modified=moment,
            relationship="Data",
        )

    try:
        data = document.write_pdf(pdf_variant=PDF_VARIANT, attachments=[attachment()])
        return PdfDocument(bytes(data), PDF_VARIANT)
    except Exception as exc:  # any PDF/A failure falls back to a plain PDF, said so
        data = document.write_pdf(attachments=[attachment()])
        return PdfDocument(bytes(data), None, f"{type(exc).__name__}: {exc}")
