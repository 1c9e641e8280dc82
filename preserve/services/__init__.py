"""Services: one module per operation (ingest, export, ...). They take their collaborators as arguments."""
