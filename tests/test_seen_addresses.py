"""The replay's index of capture addresses (``hyperplane.formats.seen_addresses``) against a
dict: every address found at the place it was added at, however many share their low 16 bits."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from hyperplane.formats.seen_addresses import SeenAddresses

# few high halves and few low halves: many addresses share their low 16 bits
address = st.builds(lambda hi, lo: hi << 16 | lo, st.sampled_from([0x0A00, 0xAC10, 0xC0A8, 0xFFFF]),
                    st.sampled_from([0, 1, 0xFFFF, 0x1234]))


@given(st.lists(st.lists(address, max_size=12), max_size=6))
def test_every_address_is_found_where_it_was_added(batches):
    seen, places = SeenAddresses(), {}
    for batch in batches:
        ips = np.array(batch, np.uint32)
        assert seen.slots(ips).tolist() == [places.get(a, -1) for a in batch]
        fresh = list(dict.fromkeys(a for a in batch if a not in places))  # in order of first sight
        seen.add(np.array(fresh, np.uint32))
        places.update((a, len(places)) for a in fresh)
        assert seen.slots(ips).tolist() == [places[a] for a in batch]
    assert len(seen) == len(places)
