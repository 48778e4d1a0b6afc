"""Runtime implementations (core.runtime.Runtime) and the target server entry (`serve`)."""
