"""deploy/k8s: generated files match the code's catalogs, both overlays render with kubectl
kustomize, the core objects validate offline against the Kubernetes schemas (kubernetes-validate),
and the Strimzi and prometheus-operator objects carry the fields that matter."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import pytest
import yaml

from cepbus.contract import wiring
from cepbus.contract.topics import (
    INTAKE_REGISTERED,
    NOTICE_ISSUED,
    REFERRAL_STATUS,
    notice_inbox,
    referral_inbox,
    referral_rejections,
)
from cepbus.reference import load_reference
from cepbus.reference.directory import load_directory
from cepbus.runtime.admin import bus_topics
from cepbus_app import k8s
from tests.support import ROOT

BASE = ROOT / "deploy/k8s/base"
KUBERNETES_VERSION = "1.30.0"
CORE_KINDS = {"Deployment", "Service", "ServiceAccount", "PodDisruptionBudget", "ConfigMap", "Namespace"}

kubectl = shutil.which("kubectl")
needs_kubectl = pytest.mark.skipif(kubectl is None, reason="kubectl absent (Debian package kubectl)")


@pytest.mark.parametrize(
    ("what", "path"),
    [
        ("topics", "kafka/topics.yaml"),
        ("users", "kafka/users.yaml"),
        ("prometheus-rule", "monitoring/prometheusrule.yaml"),
    ],
)
def test_committed_generated_files_match_a_fresh_generation(what: str, path: str) -> None:
    fresh = k8s.render(k8s.GENERATORS[what](), what)
    assert (BASE / path).read_text() == fresh, f"regenerate: cep-bus k8s {what} > deploy/k8s/base/{path}"


def test_topics_are_exactly_the_catalog() -> None:
    topics = list(yaml.safe_load_all((BASE / "kafka/topics.yaml").read_text()))
    assert {t["spec"]["topicName"]: t["spec"]["partitions"] for t in topics} == {
        spec.name: spec.partition_count(k8s.DEFAULT_PARTITIONS) for spec in bus_topics()
    }


def _render(overlay: str) -> list[dict[str, Any]]:
    assert kubectl is not None
    out = subprocess.run(
        [kubectl, "kustomize", str(ROOT / "deploy/k8s/overlays" / overlay)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


@pytest.fixture(scope="module", params=["dev", "prod"])
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    if kubectl is None:
        pytest.skip("kubectl absent (Debian package kubectl)")
    return request.param, _render(request.param)


def _of(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def test_core_objects_validate_against_the_kubernetes_schemas(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    import kubernetes_validate

    _, objects = rendered
    core = [o for o in objects if o["kind"] in CORE_KINDS | {"NetworkPolicy", "StatefulSet", "Secret"}]
    assert {o["kind"] for o in core} >= CORE_KINDS | {"NetworkPolicy"}
    for obj in core:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_invalid_objects_are_refused_by_the_validator() -> None:
    """The check above can fail: a misspelt field is refused."""
    import kubernetes_validate

    bad = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}, "spec": {"portz": []}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, KUBERNETES_VERSION, strict=True)


STRIMZI_CRDS = ROOT / "deploy/k8s/crds/strimzi"
STRIMZI_KINDS = {"Kafka", "KafkaNodePool", "KafkaTopic", "KafkaUser"}


def _strimzi_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> the openAPIV3Schema of each version each Strimzi CRD serves."""
    schemas: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(STRIMZI_CRDS.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            if version.get("served"):
                schemas[(f"{group}/{version['name']}", kind)] = version["schema"]["openAPIV3Schema"]
    return schemas


def _crd_errors(obj: dict[str, Any], schemas: dict[tuple[str, str], dict[str, Any]]) -> list[str]:
    import jsonschema

    schema = schemas.get((obj["apiVersion"], obj["kind"]))
    if schema is None:
        return [f"{obj['kind']} {obj['metadata']['name']}: {obj['apiVersion']} is not served by the CRDs"]
    validator = jsonschema.Draft7Validator(schema)
    return [
        f"{obj['kind']} {obj['metadata']['name']}: {'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(obj)
    ]


def test_strimzi_objects_validate_against_the_v1_crd_schemas(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    """Strimzi 1.x serves kafka.strimzi.io/v1 only: every rendered Strimzi resource must be of that
    version and valid against the CRD's openAPIV3Schema (deploy/k8s/crds/strimzi)."""
    _, objects = rendered
    schemas = _strimzi_schemas()
    assert {kind for _, kind in schemas} == STRIMZI_KINDS
    strimzi = [o for o in objects if o["apiVersion"].startswith("kafka.strimzi.io/")]
    assert {o["kind"] for o in strimzi} == STRIMZI_KINDS
    errors = [error for obj in strimzi for error in _crd_errors(obj, schemas)]
    assert not errors, "\n".join(errors[:20])


def test_the_crd_check_can_fail() -> None:
    """A resource of the removed v1beta2 API, and a KafkaUser with a misspelt ACL field, are refused."""
    schemas = _strimzi_schemas()
    user = k8s.kafka_users()[0]
    old = {**user, "apiVersion": "kafka.strimzi.io/v1beta2"}
    assert _crd_errors(old, schemas) and "not served" in _crd_errors(old, schemas)[0]
    bad_acl = {**user["spec"]["authorization"]["acls"][0], "operationz": ["Read"]}
    del bad_acl["operations"]
    broken = {**user, "spec": {**user["spec"], "authorization": {"type": "simple", "acls": [bad_acl]}}}
    assert _crd_errors(broken, schemas)


def test_kafka_sizes_per_overlay(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    overlay, objects = rendered
    brokers, rf, min_isr = (3, 3, 2) if overlay == "prod" else (1, 1, 1)
    [kafka] = _of(objects, "Kafka")
    [pool] = _of(objects, "KafkaNodePool")
    assert kafka["metadata"]["annotations"] == {
        "strimzi.io/node-pools": "enabled",
        "strimzi.io/kraft": "enabled",
    }
    assert "zookeeper" not in kafka["spec"]
    assert pool["spec"]["replicas"] == brokers and set(pool["spec"]["roles"]) == {"controller", "broker"}
    assert pool["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
    config = kafka["spec"]["kafka"]["config"]
    assert (config["default.replication.factor"], config["min.insync.replicas"]) == (rf, min_isr)
    assert config["offsets.topic.replication.factor"] == rf
    assert kafka["spec"]["kafka"]["authorization"]["type"] == "simple"
    topics = _of(objects, "KafkaTopic")
    assert len(topics) == len(bus_topics())
    for topic in topics:
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
        assert topic["spec"]["replicas"] == rf
        assert topic["spec"]["config"]["min.insync.replicas"] == min_isr
    [settings] = [
        c for c in _of(objects, "ConfigMap") if c["metadata"]["name"].startswith("cepbus-settings-")
    ]
    assert settings["data"]["CEPBUS_REPLICATION_FACTOR"] == str(rf)


def test_every_principal_of_the_wiring_has_a_user_and_a_partner_reads_only_its_own_topics(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    _, objects = rendered
    users = {u["metadata"]["name"]: u for u in _of(objects, "KafkaUser")}
    operators = sorted(org.org_id for org in load_reference().organisations())
    partners = sorted(set(load_directory().org_ids()) - set(operators))
    services = {
        "cepbus-router",
        "cepbus-notifier",
        "cepbus-ledger",
        "cepbus-deadletters",
        "cepbus-mailer",
        "cepbus-inbox",
        "cepbus-ops",
        "cepbus-auditor",
    }
    assert services | {f"operator-{o}" for o in operators} | {f"partner-{p}" for p in partners} == set(users)
    for org in partners:
        acls = users[f"partner-{org}"]["spec"]["authorization"]["acls"]
        topic_ops = {
            (a["resource"]["name"], a["resource"]["patternType"], op)
            for a in acls
            if a["resource"]["type"] == "topic"
            for op in a["operations"]
        }
        own = {referral_inbox(org).name, referral_rejections(org).name}
        assert {(name, op) for name, kind, op in topic_ops if op == "Read"} == {(t, "Read") for t in own}
        assert all(kind == "literal" for _, kind, _ in topic_ops)  # no prefix reaches another's inbox
        assert (REFERRAL_STATUS.name, "literal", "Write") in topic_ops
        groups = {
            (a["resource"]["name"], a["resource"]["patternType"])
            for a in acls
            if a["resource"]["type"] == "group"
        }
        assert groups == {(f"cepbus-partner-{org}", "prefix")}  # the partner SDK's group id


def test_the_users_match_the_wiring_the_runtime_enforces() -> None:
    """What the generated ACLs allow is exactly what `cepbus.contract.wiring` declares, per principal."""
    users = {u["metadata"]["name"]: u for u in k8s.kafka_users()}
    for name, access in wiring.SERVICES.items():
        acls = users[f"cepbus-{name}"]["spec"]["authorization"]["acls"]
        reads = {_wired(a) for a in acls if a["resource"]["type"] == "topic" and "Read" in a["operations"]}
        writes = {_wired(a) for a in acls if a["resource"]["type"] == "topic" and "Write" in a["operations"]}
        faust = f"cepbus-{name}-*"
        assert reads - {faust} == set(access.reads) and writes - {faust} == set(access.writes)
    # nobody but the router, the ledger and ops reads the intakes
    readers = {
        user for user, u in users.items() for a in u["spec"]["authorization"]["acls"]
        if a["resource"]["name"] == INTAKE_REGISTERED.name and "Read" in a["operations"]
    }  # fmt: skip
    assert readers == {"cepbus-router", "cepbus-ledger"}
    # the national notices name, for every person, the operators they are told of: the router and the
    # ledger only; each operator reads the notices of its own intakes on its own topic, literally
    notice_readers = {
        user for user, u in users.items() for a in u["spec"]["authorization"]["acls"]
        if a["resource"]["name"] == NOTICE_ISSUED.name and "Read" in a["operations"]
    }  # fmt: skip
    assert notice_readers == {"cepbus-router", "cepbus-ledger"}
    for org in (o.org_id for o in load_reference().organisations()):
        reads = {(n, "Read") for n, op in _topic_ops(users[f"operator-{org}"]) if op == "Read"}
        own = {notice_inbox(org).name, referral_inbox(org).name, referral_rejections(org).name}
        assert reads == {(t, "Read") for t in own}
    # the partner inbox publishes the signed status updates and reaches nothing else on Kafka
    inbox = users["cepbus-inbox"]["spec"]["authorization"]["acls"]
    assert _topic_ops(users["cepbus-inbox"]) == {
        (REFERRAL_STATUS.name, "Write"),
        (REFERRAL_STATUS.name, "Describe"),
    }
    assert all(a["resource"]["patternType"] == "literal" and a["resource"]["type"] == "topic" for a in inbox)


def _wired(acl: dict[str, Any]) -> str:
    name = acl["resource"]["name"]
    return f"{name}*" if acl["resource"]["patternType"] == "prefix" else name


def _topic_ops(user: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (a["resource"]["name"], op)
        for a in user["spec"]["authorization"]["acls"]
        if a["resource"]["type"] == "topic"
        for op in a["operations"]
    }


def test_only_the_dead_letter_service_and_ops_read_dead_letters_and_ops_may_replay_to_every_consumed_topic(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    _, objects = rendered
    users = {u["metadata"]["name"]: _topic_ops(u) for u in _of(objects, "KafkaUser")}
    readers = {name for name, ops in users.items() if ("cep.deadletter", "Read") in ops}
    assert readers == {"cepbus-deadletters", "cepbus-ops"}
    archive_reads = {topic for topic, op in users["cepbus-deadletters"] if op == "Read"}
    assert archive_reads == {"cep.deadletter", "cepbus-deadletters-"}  # and Faust's own topics
    services = ("cepbus-router", "cepbus-notifier", "cepbus-ledger", "cepbus-deadletters")
    consumed = {topic for name in services for topic, op in users[name] if op == "Read"}
    consumed -= {"cep.deadletter", *(f"{name}-" for name in services)}  # and Faust's own topics
    assert consumed and {(topic, "Write") for topic in consumed} <= users["cepbus-ops"]
    assert not any(op == "Read" for topic, op in users["cepbus-ops"] if topic != "cep.deadletter")


def test_deployments_are_probed_bounded_and_non_root(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    overlay, objects = rendered
    deployments = {d["metadata"]["name"]: d for d in _of(objects, "Deployment")}
    assert set(deployments) == {
        "cepbus-router",
        "cepbus-notifier",
        "cepbus-ledger",
        "cepbus-deadletters",
        "cepbus-mailer",
        "cepbus-inbox",
    }
    assert deployments["cepbus-ledger"]["spec"]["replicas"] == 1  # the single ledger writer
    assert deployments["cepbus-inbox"]["spec"]["replicas"] == 1  # its sessions live in the process
    if overlay == "prod":
        assert deployments["cepbus-router"]["spec"]["replicas"] == 2
    for deployment in deployments.values():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
        [container] = pod["containers"]
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["image"].startswith("registry.example.org/cep-bus/cep-bus:")
    pdbs = {p["metadata"]["name"] for p in _of(objects, "PodDisruptionBudget")}
    assert pdbs == set(deployments)


def test_monitoring_objects(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = rendered
    [monitor] = _of(objects, "ServiceMonitor")
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["ops", "http"]
    [inbox] = [s for s in _of(objects, "Service") if s["metadata"]["name"] == "cepbus-inbox"]
    assert [p["name"] for p in inbox["spec"]["ports"]] == ["http"]  # scraped beside its pages
    assert inbox["metadata"]["labels"].items() >= monitor["spec"]["selector"]["matchLabels"].items()
    services = [s for s in _of(objects, "Service") if any(p["name"] == "ops" for p in s["spec"]["ports"])]
    assert len(services) == 5 and all(
        s["metadata"]["labels"].items() >= monitor["spec"]["selector"]["matchLabels"].items()
        for s in services
    )
    [rule] = _of(objects, "PrometheusRule")
    assert (
        rule["spec"]["groups"]
        == yaml.safe_load((ROOT / "deploy/prometheus/cepbus-rules.yml").read_text())["groups"]
    )
    [dashboard] = [
        c for c in _of(objects, "ConfigMap") if c["metadata"]["name"] == "cepbus-dashboard-national"
    ]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["cepbus-national.json"])["uid"] == "cepbus-national"


def _env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


def test_no_state_on_the_pods_and_keys_from_secrets(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    """Stores on PostgreSQL (URLs from Secrets), keys and trust root from Secrets, nothing kept on an
    emptyDir but /tmp scratch; production mode in the base, and a router scaled out only with its state
    shared."""
    overlay, objects = rendered
    deployments = {d["metadata"]["name"]: d for d in _of(objects, "Deployment")}
    inbox = deployments.pop("cepbus-inbox")
    assert set(deployments) == {
        "cepbus-router",
        "cepbus-notifier",
        "cepbus-ledger",
        "cepbus-deadletters",
        "cepbus-mailer",
    }
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]["spec"]
        [container] = pod["containers"]
        scratch = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
        mounted = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        assert all(mounted.get(v) == "/tmp" for v in scratch), f"{name} keeps something on an emptyDir"
        secrets = {v["name"]: v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
        env = _env(container)
        urls = [n for n in env if n.endswith("_DATABASE_URL")]
        assert urls and all("secretKeyRef" in env[n]["valueFrom"] for n in urls), name
        service = name.removeprefix("cepbus-")
        database = env[f"CEPBUS_{service.upper()}_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"]
        # its own database Secret (the dev overlay generates them, with a hash suffix)
        assert database.startswith(f"{name}-database") and secrets["kafka-user"] == name
        # every service signs what it emits with its own key, and verifies what it reads against the
        # signed directory (issue #23): both from Secrets, the key readable by its owner only
        statement_key = env[f"CEPBUS_{service.upper()}_STATEMENT_KEY_PATH"]["value"]
        assert statement_key.startswith(mounted["statement-key"] + "/")
        assert secrets["statement-key"] == f"{name}-statement-key"
        # key files readable by root and the pod's group only: what production accepts of a key file
        for volume in pod["volumes"]:
            if volume["name"].endswith("-key"):
                assert volume["secret"]["defaultMode"] == 0o440, (name, volume)
        assert env["CEPBUS_DIRECTORY_PATH"]["value"].startswith(mounted["directory"] + "/")
        assert secrets["directory"] == "cepbus-directory"
        assert "secretKeyRef" in env["CEPBUS_DIRECTORY_AUTHORITY_KEY"]["valueFrom"]
        if service in ("deadletters", "mailer"):  # they derive no event: no event-id key to hold
            assert "id-key" not in secrets and f"CEPBUS_{service.upper()}_ID_KEY_PATH" not in env
            continue
        id_key = env[f"CEPBUS_{service.upper()}_ID_KEY_PATH"]["value"]
        assert id_key.startswith(mounted["id-key"] + "/") and secrets["id-key"] == f"{name}-id-key"
    ledger = _env(deployments["cepbus-ledger"]["spec"]["template"]["spec"]["containers"][0])
    assert ledger["CEPBUS_LEDGER_SIGNING_KEY_PATH"]["value"].startswith("/etc/cepbus/signing/")
    router_pod = deployments["cepbus-router"]["spec"]["template"]["spec"]
    router = _env(router_pod["containers"][0])
    assert "secretKeyRef" in router["CEPBUS_DIRECTORY_AUTHORITY_KEY"]["valueFrom"]
    assert router["CEPBUS_DIRECTORY_PATH"]["value"].startswith("/etc/cepbus/directory/")
    settings = next(
        c for c in _of(objects, "ConfigMap") if c["metadata"]["name"].startswith("cepbus-settings")
    )
    assert settings["data"]["CEPBUS_ENV"] == ("development" if overlay == "dev" else "production")
    # scaled out in production only, which the shared (PostgreSQL, from Secrets) state checked above allows
    assert deployments["cepbus-router"]["spec"]["replicas"] == (2 if overlay == "prod" else 1)
    assert deployments["cepbus-ledger"]["spec"]["replicas"] == 1  # the Merkle tree's single appender
    # the inbox: no store; its session secret and the directory it verifies with from Secrets, its
    # KafkaUser's certificate, and the read side over HTTPS (production refuses plain HTTP there)
    pod = inbox["spec"]["template"]["spec"]
    [container] = pod["containers"]
    env = _env(container)
    mounted = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    secrets = {v["name"]: v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
    assert {v["name"] for v in pod["volumes"] if "emptyDir" in v} == {"tmp"} and mounted["tmp"] == "/tmp"
    assert not [n for n in env if n.endswith("_DATABASE_URL")]
    assert env["CEPBUS_INBOX_SESSION_SECRET_PATH"]["value"].startswith(mounted["session"] + "/")
    assert secrets["session"] == "cepbus-inbox-session" and secrets["kafka-user"] == "cepbus-inbox"
    assert env["CEPBUS_DIRECTORY_PATH"]["value"].startswith(mounted["directory"] + "/")
    assert secrets["directory"] == "cepbus-directory"
    assert "secretKeyRef" in env["CEPBUS_DIRECTORY_AUTHORITY_KEY"]["valueFrom"]
    assert env["CEPBUS_INBOX_READ_SIDE_URL"]["value"].startswith("https://")
    # behind the ingress, the failed-log-in throttle counts the address the ingress saw
    assert env["CEPBUS_INBOX_CLIENT_ADDRESS_HEADER"]["value"] == "X-Forwarded-For"
    assert container["args"] == ["inbox"] and inbox["spec"]["replicas"] == 1


def test_network_policies_let_pods_reach_only_brokers_database_and_dns(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    _, objects = rendered
    policies = {p["metadata"]["name"]: p for p in _of(objects, "NetworkPolicy")}
    services = policies["cepbus-services"]["spec"]
    assert set(services["policyTypes"]) == {"Ingress", "Egress"}
    egress_ports = {p["port"] for rule in services["egress"] for p in rule["ports"]}
    assert egress_ports == {9093, 5432, 53}
    assert [p["port"] for rule in services["ingress"] for p in rule["ports"]] == ["ops"]
    read_side = policies["cepbus-read-side"]["spec"]
    assert [p["port"] for rule in read_side["ingress"] for p in rule["ports"]] == ["read-side"]
    inbox = policies["cepbus-inbox"]["spec"]
    assert inbox["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "cepbus-inbox"}
    selected = set(services["podSelector"]["matchExpressions"][0]["values"])
    assert {f"cepbus-{name}" for name in wiring.SERVICES} <= selected and "cepbus-inbox" not in selected
    assert set(inbox["policyTypes"]) == {"Ingress", "Egress"}
    assert {p["port"] for rule in inbox["egress"] for p in rule["ports"]} == {9093, 443, 53}  # no database
    assert [p["port"] for rule in inbox["ingress"] for p in rule["ports"]] == ["http"]
    # the mailer alone reaches beyond the bus: the SMTP relay's submission port, egress only
    smtp = policies["cepbus-mailer-smtp"]["spec"]
    assert smtp["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "cepbus-mailer"}
    assert smtp["policyTypes"] == ["Egress"] and "ingress" not in smtp
    assert {p["port"] for rule in smtp["egress"] for p in rule["ports"]} == {587}
    for policy in policies.values():
        import kubernetes_validate

        kubernetes_validate.validate(policy, KUBERNETES_VERSION, strict=True)


def test_broker_metrics_and_the_exporter_lag_are_scraped(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = rendered
    [kafka] = _of(objects, "Kafka")
    assert kafka["spec"]["kafkaExporter"]["groupRegex"] == "cepbus-.*"
    ref = kafka["spec"]["kafka"]["metricsConfig"]["valueFrom"]["configMapKeyRef"]
    [config] = [c for c in _of(objects, "ConfigMap") if c["metadata"]["name"].startswith(ref["name"])]
    assert yaml.safe_load(config["data"][ref["key"]])["rules"]
    [monitor] = _of(objects, "PodMonitor")
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] == "tcp-prometheus"
