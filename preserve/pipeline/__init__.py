"""The single pass shared by Ingest and the version writer (Archival Storage): read each
file once, write its copy with every digest, then identify the copies in stages. It sits
below both entities, so neither imports the other for it."""
