"""Domain layer: BagIt, fixity, identification, PREMIS, policy, model. No storage or CLI here."""
