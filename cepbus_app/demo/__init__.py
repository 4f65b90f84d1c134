"""`cep-bus demo`: the whole regulation loop on the embedded default (`loop`), its simulated operators
(`simulator`), its example partners (`partner`, `referrals`) and its summary table (`summary`)."""
