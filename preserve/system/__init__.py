"""What preserve asks of the operating system: folder trees at any depth, locks, disk
space, scratch databases, writeback, and external tools run under a sandbox. Imports
nothing of preserve but `errors` and its own modules."""
