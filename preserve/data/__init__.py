"""Data Management (OAIS functional entity): operations on what the repository knows of
its AIPs: descriptive metadata corrections now; the catalog rebuilt from storage and the
tamper-evident log next. The catalog itself is a floor below (preserve.catalog)."""
