"""`python -m services.deadletters`: run the dead-letter archive service."""

from cepbus.runtime.runner import run_service
from services.deadletters.app import SERVICE, build_service

run_service(SERVICE, build_service)
