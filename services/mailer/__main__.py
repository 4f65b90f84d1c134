"""`python -m services.mailer`: run the mailer service."""

from cepbus.runtime.runner import run_service
from services.mailer.app import SERVICE, build_service

run_service(SERVICE, build_service)
