"""`python -m services.router`: run the router service."""

from cepbus.runtime.runner import run_service
from services.router.app import SERVICE, build_service

run_service(SERVICE, build_service)
