"""kenning-hil: hardware-in-the-loop tests for ML models on embedded targets.

The package follows the Kenning deployment API (Dataset, ModelWrapper, Optimizer, Runtime,
RuntimeProtocol, Measurements). Importing it loads no ML framework: implementations import
theirs lazily.
"""

__version__ = "0.1.0"
