"""Ingest (OAIS functional entity): receive a SIP (folder, bag, zip, tar), validate it,
and generate the AIP that Archival Storage keeps."""
