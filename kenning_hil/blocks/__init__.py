"""Building blocks: the short-name registry of classes and the one `{type, parameters}`
entry shape."""
