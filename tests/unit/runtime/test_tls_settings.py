"""TLS to the brokers: one settings object, translated for librdkafka, Faust and kafka-python, and the
Kubernetes Deployments mount what those settings point at."""

from __future__ import annotations

import datetime as dt
import ssl
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from cepbus.runtime.client_config import kafka_python_security, librdkafka_consumer, ssl_context
from cepbus.runtime.faust_driver import make_app
from cepbus.runtime.settings import BrokerSettings
from services.router.settings import RouterSettings
from tests.support import ROOT


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cepbus-router")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "user.crt", tmp_path / "user.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


def test_plaintext_by_default_for_the_embedded_broker() -> None:
    settings = BrokerSettings()
    assert ssl_context(settings) is None and kafka_python_security(settings) == {}
    assert "security.protocol" not in librdkafka_consumer(settings, "g")


def test_ssl_settings_build_one_context_for_both_clients(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    settings = BrokerSettings(security_protocol="SSL", ssl_cafile=cert, ssl_certfile=cert, ssl_keyfile=key)
    context = ssl_context(settings)
    assert isinstance(context, ssl.SSLContext) and context.verify_mode == ssl.CERT_REQUIRED
    assert context.get_ca_certs()[0]["subject"] == ((("commonName", "cepbus-router"),),)
    security = kafka_python_security(settings)
    assert security["security_protocol"] == "SSL" and isinstance(security["ssl_context"], ssl.SSLContext)
    librdkafka = librdkafka_consumer(settings, "tls-test")
    assert (librdkafka["security.protocol"], librdkafka["ssl.certificate.location"]) == ("SSL", str(cert))
    app = make_app(RouterSettings(group_id="tls-test"), settings)
    assert app.conf.broker_credentials is not None
    assert app.conf.broker_credentials.protocol.value == "SSL"


def test_the_deployments_mount_the_files_the_settings_name() -> None:
    kustomization = yaml.safe_load((ROOT / "deploy/k8s/base/kustomization.yaml").read_text())
    literals = dict(
        item.split("=", 1)
        for generator in kustomization["configMapGenerator"]
        for item in generator.get("literals", [])
    )
    assert literals["CEPBUS_SECURITY_PROTOCOL"] == "SSL"
    documents = list(yaml.safe_load_all((ROOT / "deploy/k8s/base/services/deployments.yaml").read_text()))
    users = {
        doc["metadata"]["name"]
        for doc in yaml.safe_load_all((ROOT / "deploy/k8s/base/kafka/users.yaml").read_text())
    }
    for deployment in (doc for doc in documents if doc and doc["kind"] == "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        secrets = {v["name"]: v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
        assert secrets["kafka-user"] == deployment["metadata"]["name"] and secrets["kafka-user"] in users
        mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
        for variable, volume in (
            ("CEPBUS_SSL_CAFILE", "kafka-cluster-ca"),
            ("CEPBUS_SSL_CERTFILE", "kafka-user"),
        ):
            assert literals[variable].startswith(mounts[volume] + "/")


def test_faust_keeps_its_data_directory_out_of_the_working_directory() -> None:
    from cepbus.runtime.client_config import faust_app_options

    options = faust_app_options(RouterSettings(group_id="cepbus-router-x"), BrokerSettings())
    datadir = Path(options["datadir"])
    assert datadir.is_absolute()
    assert not datadir.resolve().is_relative_to(Path.cwd().resolve())
    assert datadir.name == "cepbus-router-x"
