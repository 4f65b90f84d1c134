"""What every service process runs on: message types and event processing (no broker), the stream
driver (`faust_driver`), settings, logs, metrics, health, lag, SQL plumbing and topic administration.

Import the module you need: this package imports nothing itself, so an SDK that reads
`cepbus.runtime.settings` does not load a stream framework.
"""
