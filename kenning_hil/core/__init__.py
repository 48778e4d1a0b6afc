"""The Kenning deployment API: one module per concept, no framework imports."""
