"""Archival Storage (OAIS functional entity): AIP versions and the version writer,
replication, audits, repair, the consistency check, recovery of interrupted work, and
storage locations. The backends it writes through are in preserve.stores."""
