"""The `preserve` command: parses arguments, calls one operation, renders the result.

No logic lives here. One module per OAIS entity holds its commands (ingest, data, access,
storage, planning, admin); app.py holds what they share and `main`, which maps every error
to a message and an exit code in one place: 0 success, 1 problems found, 2 usage or
configuration, 3 storage unreachable or tool failure, 130 interrupted. The commands are
registered below, in the order `preserve --help` lists them.
"""

from __future__ import annotations

from preserve.cli import access, admin, data, ingest, planning, storage
from preserve.cli.app import access_app, app, catalog_app, log_app, main, storage_app

__all__ = ["app", "main"]

for command, name in [
    (ingest.init, None), (ingest.ingest, None), (ingest.validate, None),
    (ingest.identify, None), (data.list_aips, "list"), (data.show, None),
    (data.describe, None), (access.export, None), (access.extract, None),
    (access.search, None), (access.rights, None), (access.serve, None), (storage.replicate, None),
    (storage.audit, None), (storage.repair, None), (planning.formats, None),
    (planning.migrate, None), (planning.reidentify, None),
    (planning.validate_files, "validate-files"), (storage.check, None),
    (admin.schedule, None), (admin.worker, None), (admin.jobs, None), (admin.drill, None),
    (admin.report, None),
]:
    app.command(name)(command)
for command, name in [(storage.storage_add, "add"), (storage.storage_list, "list"),
                      (storage.storage_check, "check"), (storage.storage_migrate, "migrate")]:
    storage_app.command(name)(command)
catalog_app.command("diff")(data.catalog_diff)
catalog_app.command("rebuild")(data.catalog_rebuild)
log_app.command("verify")(storage.log_verify)
log_app.command("checkpoint")(storage.log_checkpoint)
access_app.command("build")(access.access_build)
access_app.command("staff")(access.access_staff)
