"""`python -m services.ledger`: run the ledger service."""

from cepbus.runtime.runner import run_service
from services.ledger.app import SERVICE, build_service

run_service(SERVICE, build_service)
