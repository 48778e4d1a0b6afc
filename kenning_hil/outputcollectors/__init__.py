"""OutputCollector implementations (core.outputcollector.OutputCollector): JSON lines, a
live one-line summary, classification results drawn on the input images."""
