"""`python -m services.notifier`: run the notifier service."""

from cepbus.runtime.runner import run_service
from services.notifier.app import SERVICE, build_service

run_service(SERVICE, build_service)
