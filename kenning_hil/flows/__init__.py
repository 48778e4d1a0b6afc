"""Running KenningFlows with the harness: the model runner that reaches targets by name
(`modelruntimerunner`) and running a flow file with its results saved like any run's
(`flowrun`). The flow itself and its runner interfaces are in core/; data providers and
output collectors in dataproviders/ and outputcollectors/."""
