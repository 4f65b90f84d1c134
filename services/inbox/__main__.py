"""`python -m services.inbox`: serve the partner inbox."""

from services.inbox.app import main

main()
