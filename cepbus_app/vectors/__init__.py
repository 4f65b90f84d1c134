"""`cep-bus vectors`: the golden vectors of the contract (`schemas/vectors/`), from fixed example events
(`examples`) written with their bytes in both framings (`writer`).

Here, in the composition root, rather than in the contract package: the examples are data for
implementers and for the tests, not something a running service or an SDK needs. What the vectors'
readers do need at runtime, the plain JSON mapping of a value, is `cepbus.contract.plain_json`.
"""
