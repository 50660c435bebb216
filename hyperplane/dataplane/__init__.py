"""The data plane: a topology compiled into the walker's arrays (``compiled_vpc``), a function's
packets turned into walker rows (``inputs``), and the walk itself with its hop log (``walk``)."""
