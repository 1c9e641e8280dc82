"""`python -m preserve` and the `preserve` command.

Kept free of imports: worker processes are started with "spawn", which
re-imports the main script in every worker, and the command-line layer
(typer, rich) would cost each worker a fifth of a second for nothing.
"""


def run() -> None:
    from preserve.cli import main

    main()


if __name__ == "__main__":
    run()
