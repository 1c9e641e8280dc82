"""`python -m preserve` and the `preserve` command.

Kept free of imports: worker processes are started with "spawn", which
re-imports the main script in every worker, and the command-line layer
(typer, rich) would cost each worker a fifth of a second for nothing.
"""


def run() -> None:
    try:
        from preserve.cli import main
    except KeyboardInterrupt:  # Ctrl-C while the command-line layer loads: nothing began
        import sys  # (issue 22: a traceback in the first 50 ms)

        sys.stderr.write("interrupted: nothing was done\n")
        sys.exit(130)
    main()


if __name__ == "__main__":
    run()
