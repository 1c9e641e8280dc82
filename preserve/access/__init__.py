"""Access (OAIS functional entity): AIP versions out of storage as verified bags (export);
rights, access copies, search and the reading room are to come here."""
