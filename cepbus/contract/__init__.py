"""The contract of the bus: Avro schemas and their codec, the pydantic models, the topic catalog, header
names, cross-service rule ids, signed status updates and the schema evolution gate.

Every process of the bus (services, SDKs, tools) speaks through these modules; they open no connection.
"""
