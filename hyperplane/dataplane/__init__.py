"""The data plane: a topology compiled into the walker's arrays (``compiled_vpc``), a function's
packets turned into walker rows (``inputs``), the walk itself with its hop log (``walk``), and the
flow log records observed in the hop log (``flow_logs``)."""
