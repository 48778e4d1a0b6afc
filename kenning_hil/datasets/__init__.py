"""Dataset implementations (core.dataset.Dataset): digits, random, EEMBC/MLPerf Tiny."""
