"""Text views in the shapes kernel developers read (/proc/buddyinfo and friends)."""


def format_buddyinfo(counts, zone="Normal", node=0):
    """``Node 0, zone   Normal    216     55 ...``: one column per order."""
    return f"Node {node}, zone {zone:>8} " + " ".join(f"{c:6d}" for c in counts)


def format_zeroedinfo(counts, zone="Normal", node=0):
    """Zeroed free blocks per order, in buddyinfo's shape (simulator-only view)."""
    return f"Node {node}, zone {zone:>8} zeroed " + " ".join(f"{c:6d}" for c in counts)
