"""The ``hyperplane`` command's subcommands beyond the core ones in ``hyperplane.cli``, one module
each, and what they share (``common``)."""
